"""Loss slices against direct evaluation, filter normalisation, and the smoothed losses against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diagnostics_models import (
    LeastSquares,
    assert_unchanged,
    batches,
    classification_data,
    cross_entropy,
    flat_params,
    loss_at,
    snapshot,
    tiny_cnn,
    tiny_mlp,
)

import hjsmooth as hs
from hjsmooth.diagnostics import hessian_eigenvalues, loss_slice, normalize_direction, smoothed_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- slices
@pytest.mark.parametrize("vectorize", [False, True])
def test_2d_slice_equals_direct_evaluation(vectorize) -> None:
    model = tiny_cnn()
    x, y = classification_data(20, n_in=6)
    model.train()
    before = snapshot(model)
    grid = hs.Grid(lower=(-1.0, -0.5), upper=(1.0, 1.5), shape=(5, 4))
    res = loss_slice(model, cross_entropy, batches(x, y, [12, 8]), grid, rng=0, vectorize=vectorize, progress=False)
    assert_unchanged(model, before)
    assert res.values.shape == (5, 4) and res.values.dtype == np.float64 and res.grid is grid
    d1, d2 = (torch.cat([t.reshape(-1) for t in d]) for d in res.directions)
    w = flat_params(model)
    for i, a in enumerate(grid.axes[0]):
        for j, b in enumerate(grid.axes[1]):
            direct = float(loss_at(model, cross_entropy, x, y, w + a * d1 + b * d2))
            assert res.values[i, j] == pytest.approx(direct, rel=1e-12), (i, j)


def test_filter_normalised_directions_have_the_weights_filter_norms() -> None:
    model = tiny_cnn()
    x, y = classification_data(10, n_in=6)
    grid = hs.Grid(lower=-1.0, upper=1.0, shape=5)
    res = loss_slice(model, cross_entropy, (x, y), grid, normalization="filter", rng=1, progress=False)
    assert len(res.directions) == 1 and res.normalization == "filter"
    for d, (name, w) in zip(res.directions[0], model.named_parameters()):
        if w.ndim <= 1:       # biases and batch-norm scales and shifts do not move
            assert torch.count_nonzero(d) == 0, name
        else:                 # each filter (slice along the first axis) has the norm of the weights' filter
            dn = torch.linalg.vector_norm(d.reshape(d.shape[0], -1), dim=1)
            wn = torch.linalg.vector_norm(w.detach().reshape(w.shape[0], -1), dim=1)
            np.testing.assert_allclose(dn.numpy(), wn.numpy(), rtol=1e-12)
    layer = loss_slice(model, cross_entropy, (x, y), grid, normalization="layer", rng=1, progress=False)
    for d, w in zip(layer.directions[0], model.parameters()):
        norm = float(torch.linalg.vector_norm(w.detach()))
        assert float(torch.linalg.vector_norm(d)) == pytest.approx(norm, rel=1e-12)


def test_normalize_direction_keeps_zero_filters_zero_and_none_copies() -> None:
    w = [torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([1.0, 2.0])]
    d = [torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([5.0, 5.0])]
    f = normalize_direction(d, w, "filter")
    assert torch.equal(f[0], torch.tensor([[5.0, 0.0], [0.0, 0.0]])) and torch.equal(f[1], torch.zeros(2))
    n = normalize_direction(d, w, None)
    assert all(torch.equal(a, b) and a is not b for a, b in zip(n, d))


def test_given_directions_flat_or_parameter_shaped_and_eigenvectors() -> None:
    ls = LeastSquares(p=3)
    grid = hs.Grid(lower=-2.0, upper=2.0, shape=9)
    top = hessian_eigenvalues(ls.model, ls.loss_fn, ls.data, k=1, eigenvectors=True, rng=0, progress=False)
    along = loss_slice(ls.model, ls.loss_fn, ls.data, grid, normalization=None, directions=[top.eigenvectors[0]],
                       progress=False)
    u = torch.cat([t.reshape(-1) for t in top.eigenvectors[0]])
    # on the quadratic, the slice along a unit eigenvector is f(w) + a g.u + lambda a^2 / 2
    g = ls.H @ (ls.w - ls.a)
    a = grid.axes[0]
    expected = ls.f(ls.w) + a * float(g @ u) + top.eigenvalues[0] * a**2 / 2
    np.testing.assert_allclose(along.values, expected, rtol=1e-12)
    flat = loss_slice(ls.model, ls.loss_fn, ls.data, grid, normalization=None, directions=[u], progress=False)
    np.testing.assert_allclose(flat.values, along.values, rtol=1e-14)


def test_slice_feeds_the_grid_solvers() -> None:
    """The slice lives on an hs.Grid: heat-smoothing it on the grid is the Gaussian average along the line."""
    ls = LeastSquares(p=3)
    grid = hs.Grid(lower=-4.0, upper=4.0, shape=801)
    u = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    sl = loss_slice(ls.model, ls.loss_fn, ls.data, grid, normalization=None, directions=[u], progress=False)
    t, beta = 0.5, 4.0
    smoothed = hs.heat(sl.values, grid, t, beta)
    # exact: q(a) = c0 + c1 a + c2 a^2 / 2 smoothed by variance t/beta adds c2 t / (2 beta)
    c2 = float(ls.H[0, 0])
    centre = slice(300, 501)
    np.testing.assert_allclose(smoothed[centre], sl.values[centre] + c2 * t / (2 * beta), rtol=1e-9)


def test_slice_errors_name_the_argument() -> None:
    model, (x, y) = tiny_mlp(), classification_data(10)
    with pytest.raises(TypeError, match="`grid` must be an hjsmooth.Grid"):
        loss_slice(model, cross_entropy, (x, y), np.linspace(-1, 1, 5))
    with pytest.raises(ValueError, match="`grid` must have 1 or 2 dimensions"):
        loss_slice(model, cross_entropy, (x, y), hs.Grid((-1.0,) * 3, (1.0,) * 3, (3, 3, 3)))
    with pytest.raises(ValueError, match="unknown `normalization`"):
        loss_slice(model, cross_entropy, (x, y), hs.Grid(-1.0, 1.0, 3), normalization="unit")
    with pytest.raises(ValueError, match="one direction per grid axis"):
        loss_slice(model, cross_entropy, (x, y), hs.Grid(-1.0, 1.0, 3), directions=[None, None])
    with pytest.raises(ValueError, match=r"`directions\[0\]`\[0\] \(0.weight\) must have shape \(5, 3\)"):
        bad = [torch.zeros(3, 5)] + [torch.zeros_like(p) for p in list(model.parameters())[1:]]
        loss_slice(model, cross_entropy, (x, y), hs.Grid(-1.0, 1.0, 3), directions=[bad])


# ----------------------------------------------------------------------------- smoothed loss
def test_heat_smoothed_loss_matches_its_closed_form() -> None:
    ls = LeastSquares(p=4)
    before = snapshot(ls.model)
    t, beta = 0.5, 5.0
    res = smoothed_loss(ls.model, ls.loss_fn, ls.data, t, beta, kind="heat", samples=2000, rng=0, progress=False)
    assert_unchanged(ls.model, before)
    exact = ls.heat(t, beta)          # f(w) + t tr(H) / (2 beta)
    assert abs(res.estimate - exact) < 4 * res.stderr
    assert res.loss == pytest.approx(ls.f(ls.w), rel=1e-12)
    assert res.estimate - res.loss > 0 and res.samples == 2000 and res.values.shape == (2000,)


def test_local_entropy_matches_cole_hopf_on_the_quadratic() -> None:
    ls = LeastSquares(p=4)
    for t, beta, seed in [(0.5, 5.0, 1), (2.0, 20.0, 2)]:
        res = smoothed_loss(ls.model, ls.loss_fn, ls.data, t, beta, kind="viscous", samples=4000, rng=seed,
                            progress=False)
        exact = ls.viscous(t, beta)   # (w-a)^T (I+tH)^{-1} H (w-a)/2 + f_min + log det(I+tH)/(2 beta)
        assert abs(res.estimate - exact) < 4 * res.stderr, (t, beta, res.estimate, exact, res.stderr)
        heat = smoothed_loss(ls.model, ls.loss_fn, ls.data, t, beta, kind="heat", samples=4000, rng=seed,
                             progress=False)
        assert res.estimate <= heat.estimate       # Jensen: the same perturbations, log-mean-exp <= mean
        np.testing.assert_allclose(res.values, heat.values, rtol=1e-12)


def test_smoothed_loss_edge_cases_and_errors() -> None:
    ls = LeastSquares(p=3)
    zero = smoothed_loss(ls.model, ls.loss_fn, ls.data, 0.0, 5.0, kind="viscous", samples=3, rng=0, progress=False)
    assert zero.estimate == pytest.approx(ls.f(ls.w), rel=1e-12) and zero.stderr < 1e-12
    cold = smoothed_loss(ls.model, ls.loss_fn, ls.data, 1.0, math.inf, samples=3, rng=0, progress=False)
    assert cold.estimate == pytest.approx(ls.f(ls.w), rel=1e-12)
    # batches weighted by size: the same perturbations give the same losses
    one = smoothed_loss(ls.model, ls.loss_fn, ls.data, 1.0, 4.0, samples=5, rng=3, progress=False)
    many = smoothed_loss(ls.model, ls.loss_fn, batches(*ls.data, [50, 10]), 1.0, 4.0, samples=5, rng=3,
                         progress=False)
    np.testing.assert_allclose(one.values, many.values, rtol=1e-12)
    with pytest.raises(ValueError, match="`t` must be >= 0 and finite, got -1"):
        smoothed_loss(ls.model, ls.loss_fn, ls.data, -1.0, 1.0)
    with pytest.raises(ValueError, match="`beta` must be > 0"):
        smoothed_loss(ls.model, ls.loss_fn, ls.data, 1.0, 0.0)
    with pytest.raises(ValueError, match="`beta` must be finite for kind='viscous'"):
        smoothed_loss(ls.model, ls.loss_fn, ls.data, 1.0, math.inf, kind="viscous")
    with pytest.raises(ValueError, match="unknown `kind`"):
        smoothed_loss(ls.model, ls.loss_fn, ls.data, 1.0, 1.0, kind="inviscid")


class ItemInForward(torch.nn.Module):
    """A model vmap cannot batch (``.item()`` in forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * (1.0 if x.abs().max().item() < 1e6 else 0.0)


@pytest.mark.parametrize("vectorize", [None, True])
def test_models_vmap_cannot_batch_are_evaluated_point_by_point(vectorize) -> None:
    x, y = classification_data(15)
    grid = hs.Grid(lower=(-1.0, -1.0), upper=(1.0, 1.0), shape=(3, 4))
    odd = loss_slice(ItemInForward(), cross_entropy, (x, y), grid, rng=2, vectorize=vectorize, progress=False)
    plain = loss_slice(tiny_mlp(), cross_entropy, (x, y), grid, rng=2, vectorize=False, progress=False)
    np.testing.assert_allclose(odd.values, plain.values, rtol=1e-12)
