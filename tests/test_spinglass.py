"""The spherical p-spin model of chapter 2, checked against computations that do not share its code:
einsum over the raw couplings, torch autograd, finite differences along geodesics, covariances over the
disorder, and the p = 2 model's exact ground state (the top eigenvector)."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest

from hjsmooth.spinglass import (
    SphericalSpinGlass,
    mean_cosine_distance,
    project_to_sphere,
    projected_gradient_descent,
    tangent_projection,
    threshold_energy,
    uniform_on_sphere,
)
from hjsmooth.spinglass.model import MAX_COUPLINGS

torch = pytest.importorskip("torch")


def einsum_energy(model: SphericalSpinGlass, sigma: np.ndarray) -> np.ndarray:
    """(2.4) and (2.14) written out: -J N^{-(p-1)/2} sum J_{i..} sigma_i.. - h.sigma, over the raw couplings."""
    p, n = model.p, model.n
    letters = string.ascii_lowercase[:p]
    spec = letters + "," + ",".join("z" + c for c in letters) + "->z"
    raw = np.einsum(spec, model.couplings, *([sigma] * p))
    return -model.coupling * n ** (-(p - 1) / 2) * raw - sigma @ model.h


def autograd_energy(model: SphericalSpinGlass, sigma: "torch.Tensor") -> "torch.Tensor":
    p, n = model.p, model.n
    letters = string.ascii_lowercase[:p]
    spec = letters + "," + ",".join(letters) + "->"
    raw = torch.einsum(spec, torch.as_tensor(model.couplings), *([sigma] * p))
    return -model.coupling * n ** (-(p - 1) / 2) * raw - sigma @ torch.as_tensor(model.h)


def sphere_points(count: int, n: int, seed: int = 1) -> np.ndarray:
    return uniform_on_sphere(count, n, rng=seed)


@pytest.mark.parametrize("p", [2, 3, 4])
def test_energy_is_the_sum_over_the_raw_couplings(p: int) -> None:
    model = SphericalSpinGlass(9, p, field=0.7, coupling=1.3, rng=0)
    sigma = sphere_points(6, 9)
    np.testing.assert_allclose(model.energy(sigma), einsum_energy(model, sigma), rtol=1e-12, atol=1e-12)
    out = model.energy(torch.as_tensor(sigma))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), einsum_energy(model, sigma), rtol=1e-12, atol=1e-12)
    out32 = model.energy(sigma.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, einsum_energy(model, sigma), rtol=1e-4, atol=1e-4)


def test_batch_shapes() -> None:
    model = SphericalSpinGlass(7, 3, field=0.2, rng=3)
    sigma = sphere_points(6, 7).reshape(2, 3, 7)
    assert model.energy(sigma).shape == (2, 3)
    assert model.grad(sigma).shape == (2, 3, 7)
    assert model.hessian(sigma).shape == (2, 3, 7, 7)
    assert model.index(sigma).shape == (2, 3)
    single = sigma[0, 0]
    assert model.energy(single).shape == () and model.grad(single).shape == (7,)
    np.testing.assert_allclose(model.energy(single), model.energy(sigma)[0, 0], rtol=1e-13)
    np.testing.assert_allclose(model.hessian(single), model.hessian(sigma)[0, 0], rtol=1e-12, atol=1e-12)


def test_large_batches_are_contracted_in_chunks_with_the_same_result() -> None:
    model = SphericalSpinGlass(40, 3, rng=5)
    sigma = sphere_points(6000, 40)            # 6000 x 820 products: several chunks of 2^22
    full = model.grad(sigma)
    np.testing.assert_allclose(full[::997], model.grad(sigma[::997]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [3, 4])
def test_gradients_match_autograd(p: int) -> None:
    model = SphericalSpinGlass(8, p, field=0.5, rng=2)
    sigma = torch.as_tensor(sphere_points(4, 8), dtype=torch.float64)
    for row in sigma:
        x = row.clone().requires_grad_(True)
        autograd_energy(model, x).backward()
        euclid = x.grad
        np.testing.assert_allclose(model.euclidean_grad(row).numpy(), euclid.numpy(), rtol=1e-11, atol=1e-11)
        projected = euclid - (euclid @ row) / (row @ row) * row
        np.testing.assert_allclose(model.grad(row).numpy(), projected.numpy(), rtol=1e-11, atol=1e-11)
        assert abs(float(model.grad(row) @ row)) < 1e-10          # tangent to the sphere


def geodesic(sigma: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    """The great circle through sigma with unit tangent v, at arc length t, on the sphere of radius |sigma|."""
    r = np.linalg.norm(sigma)
    return np.cos(t / r) * sigma + r * np.sin(t / r) * v


def test_grad_and_hessian_are_derivatives_along_geodesics() -> None:
    model = SphericalSpinGlass(10, 3, field=0.8, rng=4)
    rng = np.random.default_rng(0)
    h = 1e-3
    for sigma in sphere_points(3, 10):
        grad, hess = model.grad(sigma), model.hessian(sigma)
        for _ in range(3):
            v = tangent_projection(sigma, rng.standard_normal(10))
            v /= np.linalg.norm(v)
            e = [float(model.energy(geodesic(sigma, v, s * h))) for s in (-2, -1, 0, 1, 2)]
            first = (e[0] - 8 * e[1] + 8 * e[3] - e[4]) / (12 * h)
            second = (-e[0] + 16 * e[1] - 30 * e[2] + 16 * e[3] - e[4]) / (12 * h * h)
            assert first == pytest.approx(float(grad @ v), rel=1e-7, abs=1e-8)
            assert second == pytest.approx(float(v @ hess @ v), rel=1e-5, abs=1e-5)


def test_hessian_is_the_tangent_block_of_the_radially_extended_energy() -> None:
    """On the tangent plane the Riemannian Hessian equals the Euclidean Hessian of g(x) = H~(|sigma| x / |x|)."""
    model = SphericalSpinGlass(7, 3, field=0.3, rng=6)
    for row in sphere_points(3, 7):
        sigma = torch.as_tensor(row)
        radius = torch.linalg.norm(sigma)

        def extended(x: "torch.Tensor") -> "torch.Tensor":
            return autograd_energy(model, radius * x / torch.linalg.norm(x))

        full = torch.autograd.functional.hessian(extended, sigma).numpy()
        proj = np.eye(7) - np.outer(row, row) / (row @ row)
        ours = model.hessian(row)
        np.testing.assert_allclose(ours, proj @ full @ proj, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours, ours.T, atol=1e-12)
        np.testing.assert_allclose(ours @ row, 0.0, atol=1e-10)
        # the index: negative eigenvalues of the Hessian in an orthonormal basis of the tangent plane
        basis = np.linalg.qr(np.column_stack([row, np.eye(7)[:, :6]]))[0][:, 1:]
        tangent = np.linalg.eigvalsh(basis.T @ full @ basis)
        assert int(model.index(row)) == int(np.sum(tangent < 0))
        torch_h = model.hessian(torch.as_tensor(row, dtype=torch.float32))
        assert torch_h.dtype == torch.float32
        np.testing.assert_allclose(torch_h.numpy(), ours, rtol=1e-3, atol=1e-3)


def test_hessian_at_critical_points_has_the_shift_of_lemma_2_5() -> None:
    """At a critical point of the unperturbed model, Hess = P grad^2 H P - p (H/N) P (Euler: sigma.grad H = p H)."""
    n, p = 30, 3
    model = SphericalSpinGlass(n, p, rng=8)
    end = projected_gradient_descent(model, sphere_points(4, n), tol=1e-10, progress=False)
    assert end.success
    sigma = end.sigma
    hess = model.hessian(sigma)
    u = np.asarray(end.energy) / n
    # the trace of the tangent block: tr(P grad^2 H P) - p u (n - 1)
    letters = "abc"
    sym = sum(np.transpose(model.couplings, perm) for perm in
              [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]) / 6
    for s, h, uu in zip(sigma, hess, u):
        curv = -p * (p - 1) * n ** (-(p - 1) / 2) * np.einsum(letters + ",c->ab", sym, s)
        proj = np.eye(n) - np.outer(s, s) / n
        expected = proj @ curv @ proj - p * uu * proj
        np.testing.assert_allclose(h, expected, rtol=1e-8, atol=1e-8)
        assert np.trace(h) == pytest.approx(np.trace(proj @ curv @ proj) - p * uu * (n - 1), rel=1e-10)


def test_converged_descents_are_minima_and_their_antipodes_maxima() -> None:
    n = 40
    model = SphericalSpinGlass(n, 3, rng=11)
    start = sphere_points(6, n, seed=12)
    end = projected_gradient_descent(model, start, progress=False)
    assert end.success and np.all(end.grad_norm <= 1e-4)
    assert np.all(end.steps > 0)
    assert np.all(np.asarray(end.energy) < model.energy(start))
    np.testing.assert_allclose(np.linalg.norm(end.sigma, axis=1), math.sqrt(n), rtol=1e-12)
    np.testing.assert_array_equal(model.index(end.sigma), 0)
    # p odd and no field: H(-sigma) = -H(sigma), so -sigma is a maximum: every tangent eigenvalue negative
    np.testing.assert_array_equal(model.index(-end.sigma), n - 1)
    # the torch path takes the same steps
    torch_end = projected_gradient_descent(model, torch.as_tensor(start), progress=False)
    np.testing.assert_array_equal(torch_end.steps, end.steps)
    np.testing.assert_allclose(torch_end.sigma.numpy(), end.sigma, atol=1e-8)


def test_trivial_regime_every_descent_ends_at_one_minimum() -> None:
    n = 60
    model = SphericalSpinGlass(n, 3, field=3.0, rng=13)
    assert model.regime_parameter == pytest.approx(-1 / 3)
    end = projected_gradient_descent(model, sphere_points(40, n, seed=14), progress=False)
    assert end.success
    assert mean_cosine_distance(end.sigma) < 1e-6
    # the field dominates: the minimum leans along h and lies below the field's own direction
    along_h = math.sqrt(n) * model.h / np.linalg.norm(model.h)
    assert end.sigma[0] @ along_h / n > 0.5
    assert np.all(np.asarray(end.energy) < model.energy(along_h))


def test_p2_ground_state_is_the_top_eigenvector_and_tends_to_minus_sqrt2() -> None:
    """For p = 2, H = -N^{-1/2} sigma^T S sigma: its minimum per spin is -lambda_max(S)/sqrt(N) -> -E_0 = -sqrt 2."""
    n = 1000
    model = SphericalSpinGlass(n, 2, rng=15)
    sym = (model.couplings + model.couplings.T) / 2
    lam, vec = np.linalg.eigh(sym)
    top = math.sqrt(n) * vec[:, -1]
    assert float(model.energy(top)) / n == pytest.approx(-lam[-1] / math.sqrt(n), rel=1e-12)
    np.testing.assert_allclose(model.grad(top), 0.0, atol=1e-9)
    assert int(model.index(top)) == 0
    # Tracy-Widom: lambda_max / sqrt(N) = sqrt 2 + O(N^{-2/3}) (about 0.01 here)
    assert -lam[-1] / math.sqrt(n) == pytest.approx(-math.sqrt(2), abs=0.03)
    assert threshold_energy(2) == pytest.approx(math.sqrt(2))


def test_covariance_over_the_disorder_is_n_r_to_the_p() -> None:
    """E[H(s) H(s')] = J^2 N (s.s'/N)^p (the normalisation of (2.4)); h has variance v^2 per coordinate."""
    n, p, coupling, field, models = 6, 3, 1.5, 0.8, 3000
    rng = np.random.default_rng(16)
    a = sphere_points(1, n, seed=17)[0]
    b = project_to_sphere(a + 0.8 * rng.standard_normal(n))
    overlap = a @ b / n
    values, fields = np.empty((models, 2)), np.empty((models, n))
    for k in range(models):
        model = SphericalSpinGlass(n, p, field=field, coupling=coupling, rng=rng)
        values[k] = model.energy(np.stack([a, b])) + model.h @ np.stack([a, b]).T   # H alone
        fields[k] = model.h
    var_expected = coupling**2 * n
    cov_expected = coupling**2 * n * overlap**p
    var = values[:, 0].var()
    assert abs(var - var_expected) < 5 * var_expected * math.sqrt(2 / models)
    cov = np.mean(values[:, 0] * values[:, 1])
    stderr = np.std(values[:, 0] * values[:, 1]) / math.sqrt(models)
    assert abs(cov - cov_expected) < 5 * stderr
    assert abs(fields.var() - field**2) < 5 * field**2 * math.sqrt(2 / fields.size)


def test_seeds_and_generators() -> None:
    a = SphericalSpinGlass(5, 3, field=0.0, rng=7)
    b = SphericalSpinGlass(5, 3, field=2.0, rng=7)
    np.testing.assert_array_equal(a.couplings, b.couplings)            # one disorder for every field
    c = SphericalSpinGlass(5, 3, field=1.0, rng=7)
    np.testing.assert_allclose(b.h / 2.0, c.h)                          # ... and one field direction
    assert not np.any(a.h)
    gen = np.random.default_rng(3)
    d, e = SphericalSpinGlass(5, 3, rng=gen), SphericalSpinGlass(5, 3, rng=gen)
    assert not np.allclose(d.couplings, e.couplings)                   # a Generator is used as is
    t1 = SphericalSpinGlass(5, 3, field=1.0, rng=torch.Generator().manual_seed(4))
    t2 = SphericalSpinGlass(5, 3, field=1.0, rng=torch.Generator().manual_seed(4))
    np.testing.assert_array_equal(t1.couplings, t2.couplings)
    assert t1.couplings.dtype == np.float64 and t1.couplings.shape == (5, 5, 5)
    assert not np.array_equal(SphericalSpinGlass(5, 3).couplings, SphericalSpinGlass(5, 3).couplings)


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="`n` must be >= 2"):
        SphericalSpinGlass(1)
    with pytest.raises(ValueError, match="`p` must be >= 2"):
        SphericalSpinGlass(5, 1)
    with pytest.raises(TypeError, match="`p` must be an integer"):
        SphericalSpinGlass(5, 2.5)
    with pytest.raises(ValueError, match="`field` must be >= 0"):
        SphericalSpinGlass(5, field=-1.0)
    with pytest.raises(ValueError, match="`coupling` must be > 0"):
        SphericalSpinGlass(5, coupling=0.0)
    with pytest.raises(ValueError, match="n\\*\\*p"):
        SphericalSpinGlass(int(MAX_COUPLINGS ** (1 / 3)) + 2, 3)
    with pytest.raises(TypeError, match="`rng`"):
        SphericalSpinGlass(5, rng="seed")
    model = SphericalSpinGlass(5, rng=0)
    with pytest.raises(ValueError, match="`sigma` must have shape \\(..., n\\) with n = 5"):
        model.energy(np.ones(4))
    with pytest.raises(ValueError, match="`sigma` must be finite"):
        model.grad(np.array([1.0, np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="`tol` must be >= 0"):
        model.index(np.ones(5), tol=-1.0)
    with pytest.raises(TypeError, match="`model` must be a SphericalSpinGlass"):
        projected_gradient_descent(object(), np.ones((2, 5)))
    with pytest.raises(ValueError, match="`start` must have shape \\(runs, n\\)"):
        projected_gradient_descent(model, np.ones((2, 4)))
    with pytest.raises(ValueError, match="`step` must be > 0"):
        projected_gradient_descent(model, np.ones((2, 5)), step=0.0)


def test_sphere_helpers_against_brute_force() -> None:
    from scipy.spatial.distance import pdist

    points = uniform_on_sphere(4000, 20, rng=21)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), math.sqrt(20), rtol=1e-12)
    # uniform: each coordinate has mean 0 and second moment 1 (|sigma|^2 = n shared by n coordinates)
    assert np.all(np.abs(points.mean(axis=0)) < 5 / math.sqrt(4000))
    assert abs(np.mean(points**2) - 1.0) < 1e-12
    few = points[:50]
    assert mean_cosine_distance(few) == pytest.approx(pdist(few, "cosine").mean(), rel=1e-12)
    assert mean_cosine_distance(np.tile(few[:1], (5, 1))) == pytest.approx(0.0, abs=1e-12)
    assert mean_cosine_distance(np.stack([few[0], -few[0]])) == pytest.approx(2.0)
    assert uniform_on_sphere(3, 4, rng=torch.Generator().manual_seed(0)).shape == (3, 4)
    like = uniform_on_sphere(3, 4, rng=0, like=torch.zeros(1, dtype=torch.float32))
    assert isinstance(like, torch.Tensor) and like.dtype == torch.float32
    with pytest.raises(ValueError, match="zero vector"):
        project_to_sphere(np.zeros((2, 3)))


def test_public_names_resolve_from_the_package() -> None:
    import hjsmooth
    from hjsmooth import spinglass

    assert hjsmooth.spinglass is spinglass
    for name in spinglass.__all__:
        assert getattr(spinglass, name) is not None, name
