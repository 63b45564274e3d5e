"""Hessian eigenvalues, trace and spectral density against exact linear algebra on small float64 networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diagnostics_models import (
    LeastSquares,
    assert_unchanged,
    batches,
    classification_data,
    cross_entropy,
    exact_hessian,
    snapshot,
    tiny_cnn,
    tiny_mlp,
)

from hjsmooth.diagnostics import ConvergenceWarning, hessian_eigenvalues, hessian_spectrum, hessian_trace
from hjsmooth.diagnostics.trace import rademacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mlp_problem(seed: int = 0):
    model = tiny_mlp(seed)
    x, y = classification_data(40, seed=seed + 1)
    return model, x, y


def cnn_problem():
    model = tiny_cnn()
    x, y = classification_data(30, n_in=6, seed=2)
    with torch.no_grad():  # give the batch-norm layer non-trivial running statistics
        model.train()
        model(x)
    return model, x, y


@pytest.fixture(scope="module")
def mlp():
    model, x, y = mlp_problem()
    H = exact_hessian(model, cross_entropy, x, y)
    return model, x, y, H, torch.linalg.eigvalsh(H).numpy()


@pytest.fixture(scope="module")
def cnn():
    model, x, y = cnn_problem()
    H = exact_hessian(model, cross_entropy, x, y)
    return model, x, y, H, torch.linalg.eigvalsh(H).numpy()


@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_eigenvalues_match_eigvalsh_of_the_exact_hessian(net, which, request) -> None:
    model, x, y, H, exact = request.getfixturevalue(net)
    before = snapshot(model)
    k = 4
    res = hessian_eigenvalues(model, cross_entropy, (x, y), k=k, which=which, rng=0, progress=False)
    want = exact[::-1][:k] if which == "largest" else exact[:k]
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-8)
    assert res.converged.all() and res.which == which and res.dimension == H.shape[0]
    assert_unchanged(model, before)


def test_batches_are_weighted_by_their_size(mlp) -> None:
    model, x, y, H, exact = mlp
    data = batches(x, y, [7, 25, 8])  # unequal batches: an unweighted mean of batch losses would differ
    res = hessian_eigenvalues(model, cross_entropy, data, k=3, rng=1, progress=False)
    np.testing.assert_allclose(res.eigenvalues, exact[::-1][:3], rtol=1e-8)
    # and a one-shot iterator is read once
    res = hessian_eigenvalues(model, cross_entropy, iter(data), k=1, rng=1, progress=False)
    np.testing.assert_allclose(res.eigenvalues, exact[-1:], rtol=1e-8)


def test_eigenvectors_are_orthonormal_eigenvectors(mlp) -> None:
    model, x, y, H, exact = mlp
    res = hessian_eigenvalues(model, cross_entropy, (x, y), k=3, which="smallest", eigenvectors=True, rng=0,
                              progress=False)
    shapes = [tuple(p.shape) for p in model.parameters()]
    Y = torch.stack([torch.cat([t.reshape(-1) for t in vec]) for vec in res.eigenvectors])
    assert [[tuple(t.shape) for t in vec] for vec in res.eigenvectors] == [shapes] * 3
    np.testing.assert_allclose((Y @ Y.T).numpy(), np.eye(3), atol=1e-12)
    lam = torch.as_tensor(res.eigenvalues)
    residual = torch.linalg.vector_norm(Y @ H - lam[:, None] * Y, dim=1)
    assert residual.max() < 1e-7 * abs(exact).max()


def test_every_eigenvalue_when_k_is_d(mlp) -> None:
    model, x, y, H, exact = mlp
    d = H.shape[0]
    res = hessian_eigenvalues(model, cross_entropy, (x, y), k=d, rng=0, progress=False)
    np.testing.assert_allclose(res.eigenvalues, exact[::-1], atol=1e-10 * abs(exact).max())


def test_float32_model_runs_in_float32(mlp) -> None:
    model, x, y, H, exact = mlp
    m32 = tiny_mlp(0).float()
    res = hessian_eigenvalues(m32, cross_entropy, (x, y), k=2, rng=0, progress=False)  # float64 data is cast
    np.testing.assert_allclose(res.eigenvalues, exact[::-1][:2], rtol=1e-4)


def test_iteration_limit_warns_and_reports_unconverged(mlp) -> None:
    model, x, y, _, _ = mlp
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        res = hessian_eigenvalues(model, cross_entropy, (x, y), k=3, which="smallest", max_iter=4, rng=0,
                                  progress=False)
    assert res.matvecs == 4 and not res.converged.all()


def test_bad_arguments_get_errors_that_name_them(mlp) -> None:
    model, x, y, H, _ = mlp
    d = H.shape[0]
    with pytest.raises(ValueError, match=rf"`k` must be <= the number of trainable parameters d = {d}, got {d + 1}"):
        hessian_eigenvalues(model, cross_entropy, (x, y), k=d + 1)
    with pytest.raises(ValueError, match="`k` must be >= 1"):
        hessian_eigenvalues(model, cross_entropy, (x, y), k=0)
    with pytest.raises(ValueError, match="unknown `which`"):
        hessian_eigenvalues(model, cross_entropy, (x, y), which="top")
    with pytest.raises(ValueError, match=r"`data`: the model cannot be evaluated on inputs of shape \(40, 4\)"):
        hessian_eigenvalues(model, cross_entropy, (torch.randn(40, 4, dtype=torch.float64), y))
    with pytest.raises(ValueError, match="`data`: batch 0 has 40 inputs but 39 targets"):
        hessian_trace(model, cross_entropy, (x, y[:-1]))
    with pytest.raises(ValueError, match="`data`: the inputs of batch 1 must be finite"):
        hessian_trace(model, cross_entropy, [(x, y), (x * math.nan, y)])
    with pytest.raises(ValueError, match="`data` holds no batches"):
        hessian_trace(model, cross_entropy, [])
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar"):
        hessian_trace(model, lambda o, t: F.cross_entropy(o, t, reduction="none"), (x, y))
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        hessian_trace(lambda v: v, cross_entropy, (x, y))
    with pytest.raises(ValueError, match="`samples` must be >= 2"):
        hessian_trace(model, cross_entropy, (x, y), samples=1)
    with pytest.raises(ValueError, match="`deflation` must be <= the number of trainable parameters"):
        hessian_trace(model, cross_entropy, (x, y), deflation=d + 1)
    with pytest.raises(ValueError, match="`steps` must be <= the number of trainable parameters"):
        hessian_spectrum(model, cross_entropy, (x, y), steps=d + 1)
    with pytest.raises(TypeError, match="`rng` must be None, an int seed"):
        hessian_trace(model, cross_entropy, (x, y), rng="seed")


# ----------------------------------------------------------------------------- trace
@pytest.mark.parametrize("deflation", [0, 8])
def test_trace_is_within_its_stderr_of_the_exact_trace(mlp, deflation) -> None:
    model, x, y, H, _ = mlp
    before = snapshot(model)
    n = 200
    res = hessian_trace(model, cross_entropy, batches(x, y, [30, 10]), samples=n, deflation=deflation, rng=3,
                        progress=False)
    exact = float(torch.trace(H))
    assert abs(res.estimate - exact) < 4 * res.stderr
    assert res.samples == n and res.matvecs == n + deflation and res.deflation == deflation
    # the standard error is the one of Hutchinson's estimator: variance 2 (|H|_F^2 - sum_i H_ii^2) / n
    if deflation == 0:
        Hn = H.numpy()
        sd = math.sqrt(2 * ((Hn**2).sum() - (np.diag(Hn) ** 2).sum()))
        assert abs(res.stderr * math.sqrt(n) / sd - 1) < 0.2
    assert_unchanged(model, before)


def test_deflation_cuts_the_variance_and_deflating_everything_is_exact(mlp) -> None:
    model, x, y, H, _ = mlp
    full = hessian_trace(model, cross_entropy, (x, y), samples=2, deflation=H.shape[0], rng=5, progress=False)
    assert abs(full.estimate - float(torch.trace(H))) < 1e-10 and full.stderr < 1e-10
    # a Hessian with a few large eigenvalues (as at a trained network): a short Krylov space carries them
    ls = LeastSquares(p=30, scales=[10.0, 6.0, 4.0] + [0.5] * 27)
    exact = float(torch.trace(ls.H))
    plain = hessian_trace(ls.model, ls.loss_fn, ls.data, samples=200, rng=5, progress=False)
    deflated = hessian_trace(ls.model, ls.loss_fn, ls.data, samples=200, deflation=6, rng=5, progress=False)
    assert abs(plain.estimate - exact) < 4 * plain.stderr and abs(deflated.estimate - exact) < 4 * deflated.stderr
    assert deflated.stderr < 0.1 * plain.stderr


def test_trace_stops_early_at_its_relative_tolerance(mlp) -> None:
    model, x, y, _, _ = mlp
    res = hessian_trace(model, cross_entropy, (x, y), samples=5000, tol=0.1, rng=0, progress=False)
    assert 10 <= res.samples < 5000 and res.stderr <= 0.1 * abs(res.estimate)


def test_same_seed_same_draws_and_a_generator_advances(mlp) -> None:
    model, x, y, _, _ = mlp
    a = hessian_trace(model, cross_entropy, (x, y), samples=5, rng=11, progress=False)
    b = hessian_trace(model, cross_entropy, (x, y), samples=5, rng=11, progress=False)
    np.testing.assert_array_equal(a.values, b.values)
    gen = torch.Generator().manual_seed(11)
    c = hessian_trace(model, cross_entropy, (x, y), samples=5, rng=gen, progress=False)
    d = hessian_trace(model, cross_entropy, (x, y), samples=5, rng=gen, progress=False)
    np.testing.assert_array_equal(a.values, c.values)
    assert not np.array_equal(c.values, d.values)
    e = hessian_trace(model, cross_entropy, (x, y), samples=5, rng=np.random.default_rng(0), progress=False)
    f = hessian_trace(model, cross_entropy, (x, y), samples=5, rng=None, progress=False)
    assert e.values.shape == f.values.shape == (5,)


# ----------------------------------------------------------------------------- spectral density
def test_slq_quadrature_is_exact_for_each_start_vector(mlp) -> None:
    """Gauss quadrature with s Lanczos steps is exact for t^p, p <= 2s - 1: sum_j w_j theta_j^p = v^T H^p v / d."""
    model, x, y, H, _ = mlp
    steps, runs, d = 4, 3, H.shape[0]
    res = hessian_spectrum(model, cross_entropy, (x, y), steps=steps, runs=runs, rng=21, progress=False)
    gen = torch.Generator().manual_seed(21)
    for r in range(runs):  # run r starts from the r-th Rademacher draw
        v = rademacher(d, gen, H)
        for p in range(2 * steps):
            quad = float(np.sum(res.weights[r] * res.nodes[r] ** p))
            exact = float(v @ torch.linalg.matrix_power(H, p) @ v) / d
            assert quad == pytest.approx(exact, rel=1e-9, abs=1e-12), (r, p)


def test_slq_moments_match_the_spectrum_within_their_stderr(mlp) -> None:
    model, x, y, H, exact = mlp
    before = snapshot(model)
    res = hessian_spectrum(model, cross_entropy, (x, y), steps=6, runs=60, rng=4, progress=False)
    assert_unchanged(model, before)
    for p in range(1, 5):
        per_run = np.sum(res.weights * res.nodes**p, axis=1)
        stderr = per_run.std(ddof=1) / math.sqrt(len(per_run))
        assert abs(res.moment(p) - np.mean(exact**p)) < 4 * stderr + 1e-12, p
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, atol=1e-12)
    assert res.density.sum() * res.spacing == pytest.approx(1.0, abs=1e-12)
    assert np.all(res.density >= 0)
    # the density's mean is the first moment (cell averages of a Gaussian mixture: to O(h^2))
    mean = float((res.grid * res.density).sum() * res.spacing)
    assert mean == pytest.approx(res.moment(1), abs=res.spacing**2 + 1e-3 * np.abs(exact).max())


def test_full_lanczos_finds_every_distinct_eigenvalue(mlp) -> None:
    """A Krylov space holds each distinct eigenvalue once (the softmax makes 0 a multiple one here)."""
    model, x, y, H, exact = mlp
    d = H.shape[0]
    res = hessian_spectrum(model, cross_entropy, (x, y), steps=d, runs=1, bandwidth=0.0, rng=0, progress=False)
    scale = abs(exact).max()
    distinct = exact[np.concatenate([[True], np.diff(exact) > 1e-9 * scale])]
    nodes = res.nodes[0][res.weights[0] > 0]
    assert len(nodes) == len(distinct) < d
    np.testing.assert_allclose(np.sort(nodes), distinct, atol=1e-9 * scale)
    assert res.bandwidth == 0.0 and res.density.sum() * res.spacing == pytest.approx(1.0)
