"""The gradient-noise covariance D(x) against the explicit d x d covariance of per-sample gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diagnostics_models import (
    assert_unchanged,
    batches,
    classification_data,
    cross_entropy,
    snapshot,
    tiny_cnn,
    tiny_mlp,
)
from torch import nn

from hjsmooth.diagnostics import gradient_noise_spectrum

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def explicit_covariance(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(1/N) sum_i (g_i - g)(g_i - g)^T`` from one backward pass per sample, in eval mode."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(x)):
        loss = cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    G = torch.stack(rows)
    C = G - G.mean(0)
    return C.T @ C / len(x)


@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_eigenvalues_trace_and_rank_match_the_explicit_covariance(net) -> None:
    if net == "mlp":
        model, (x, y) = tiny_mlp(), classification_data(25)
    else:
        model, (x, y) = tiny_cnn(), classification_data(25, n_in=6)
    model.train()
    before = snapshot(model)
    res = gradient_noise_spectrum(model, cross_entropy, batches(x, y, [10, 15]), progress=False)
    assert_unchanged(model, before)
    D = explicit_covariance(model, x, y)
    model.train()
    exact = torch.linalg.eigvalsh(D).flip(0).numpy()
    d = D.shape[0]
    assert res.samples == 25 and res.dimension == d and res.eigenvalues.shape == (min(25, d),)
    np.testing.assert_allclose(res.eigenvalues, exact[: min(25, d)], rtol=1e-9, atol=1e-12 * exact[0])
    assert res.trace == pytest.approx(float(torch.trace(D)), rel=1e-12)
    assert res.effective_rank == pytest.approx(float(torch.trace(D)) ** 2 / float((D * D).sum()), rel=1e-10)
    assert res.rank == int(np.linalg.matrix_rank(D.numpy(), tol=exact[0] * d * np.finfo(np.float64).eps))
    assert res.rank <= 24  # centred gradients of 25 samples span at most 24 directions
    mean_grad = torch.autograd.grad(cross_entropy(model.eval()(x), y), list(model.parameters()))
    model.train()
    assert res.gradient_norm == pytest.approx(float(torch.cat([g.reshape(-1) for g in mean_grad]).norm()), rel=1e-10)


def test_the_k_largest_and_the_lanczos_route_agree_with_the_dense_one(monkeypatch) -> None:
    import hjsmooth.diagnostics.noise as noise

    model, (x, y) = tiny_mlp(), classification_data(30)
    dense = gradient_noise_spectrum(model, cross_entropy, (x, y), k=4, progress=False)
    monkeypatch.setattr(noise, "FULL_EIGH_SAMPLES", 10)  # force the Lanczos route on the Gram matrix
    lanczos = gradient_noise_spectrum(model, cross_entropy, (x, y), k=4, progress=False)
    np.testing.assert_allclose(lanczos.eigenvalues, dense.eigenvalues, rtol=1e-10)
    assert lanczos.rank is None and lanczos.trace == pytest.approx(dense.trace, rel=1e-12)
    with pytest.raises(ValueError, match="`k` must be given when the data has more than 10 samples"):
        gradient_noise_spectrum(model, cross_entropy, (x, y))


class ItemInForward(nn.Module):
    """A model ``vmap`` cannot batch (``.item()`` in forward): per-sample gradients fall back to a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if x.abs().max().item() < 1e6 else 0.0
        return self.net(x) * scale


def test_models_that_cannot_be_vmapped_fall_back_to_a_loop() -> None:
    x, y = classification_data(20)
    res = gradient_noise_spectrum(ItemInForward(), cross_entropy, (x, y), k=3, progress=False)
    ref = gradient_noise_spectrum(tiny_mlp(), cross_entropy, (x, y), k=3, progress=False)
    np.testing.assert_allclose(res.eigenvalues, ref.eigenvalues, rtol=1e-12)


def test_bad_k_is_refused() -> None:
    model, (x, y) = tiny_mlp(), classification_data(12)
    with pytest.raises(ValueError, match="`k` must be <= 12, got 13"):
        gradient_noise_spectrum(model, cross_entropy, (x, y), k=13)
