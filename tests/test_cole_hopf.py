"""Tests of the exact viscous Hamilton-Jacobi (Local Entropy) and heat solvers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

import hjsmooth as hs
from hjsmooth.solvers.cole_hopf import heat, local_entropy, local_entropy_mean
from hjsmooth.solvers.hopf_lax import hopf_lax

from grid_strategies import grid_functions

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


def lattice_sum(h: float, s: float) -> float:
    """``sum_{m in Z} exp(-m^2 h^2 / (2 s))`` by direct summation (the solver uses the Poisson dual)."""
    m = np.arange(-int(40 * math.sqrt(s) / h) - 40, int(40 * math.sqrt(s) / h) + 41)
    return float(np.exp(-(m * h) ** 2 / (2 * s)).sum())


def log_gaussian_weights(grid: hs.Grid, s: float) -> np.ndarray:
    """``log K(x, y)`` for all pairs of grid points, shape (N, N): the Gaussian of variance ``s``
    divided by its sum over the whole lattice, per axis (the Riemann weight ``h G_s`` up to
    ``2 exp(-2 pi^2 s / h^2)`` for resolved kernels, and the identity for narrow ones)."""
    pts = grid.points()
    sq = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    return -sq / (2 * s) - sum(math.log(lattice_sum(h, s)) for h in grid.spacing)


def direct_local_entropy(f: np.ndarray, grid: hs.Grid, t: float, beta: float) -> np.ndarray:
    """The Riemann-sum Cole-Hopf formula as one d-dimensional log-sum-exp per point (O(N^2))."""
    terms = log_gaussian_weights(grid, t / beta) - beta * f.ravel()[None, :]
    return (-logsumexp(terms, axis=1) / beta).reshape(f.shape)


def direct_mean(f: np.ndarray, grid: hs.Grid, t: float, beta: float) -> np.ndarray:
    """The mean of rho_1(y; x) over the grid, per point (O(N^2))."""
    terms = log_gaussian_weights(grid, t / beta) - beta * f.ravel()[None, :]
    weights = np.exp(terms - logsumexp(terms, axis=1, keepdims=True))
    return np.stack([(weights @ grid.points()[:, k]).reshape(f.shape) for k in range(grid.ndim)])


def direct_heat(f: np.ndarray, grid: hs.Grid, t: float, beta: float) -> np.ndarray:
    return (np.exp(log_gaussian_weights(grid, t / beta)) @ f.ravel()).reshape(f.shape)




# ------------------------------------------------------------------------------ closed forms


@pytest.mark.parametrize(
    "shape, half_width, beta",
    [((241,), 6.0, 1.0), ((241,), 6.0, 10.0), ((121, 101), 6.0, 3.0), ((61, 61, 57), 4.5, 10.0)],
)
@pytest.mark.parametrize("t", [0.5, 1.0])
def test_quadratic_closed_form_example_4_12(shape, half_width, beta, t):
    # u(x, 0) = |x|^2/2  ->  u = |x|^2 / (2 (1+t)) + d/(2 beta) log(1+t).  The Riemann sum of a
    # Gaussian integrand is spectrally accurate, so away from the window's edge the grid result
    # is exact to rounding.
    d = len(shape)
    grid = hs.Grid([-half_width] * d, [half_width] * d, shape)
    x = np.stack(grid.coords)
    r2 = (x**2).sum(axis=0)
    sol = local_entropy_mean(r2 / 2, grid, t, beta)
    u, mean = sol.values, sol.mean
    np.testing.assert_array_equal(u, local_entropy(r2 / 2, grid, t, beta))
    exact = r2 / (2 * (1 + t)) + d / (2 * beta) * math.log1p(t)
    inside = np.max(np.abs(x), axis=0) <= half_width / 2
    np.testing.assert_allclose(u[inside], exact[inside], rtol=0, atol=1e-10)
    # rho_1(.; x) is the Gaussian of mean x/(1+t): grad u = (x - <y>)/t = x/(1+t)
    np.testing.assert_allclose(mean[:, inside], (x / (1 + t))[:, inside], rtol=0, atol=1e-9)


@pytest.mark.parametrize("shape", [(301,), (101, 121), (41, 45, 43)])
@pytest.mark.parametrize("s0", [0.3, 1.0])
def test_heat_of_a_gaussian_is_a_gaussian_of_variance_s0_plus_t_over_beta(shape, s0):
    d = len(shape)
    grid = hs.Grid([-7.0] * d, [7.0] * d, shape)
    r2 = (np.stack(grid.coords) ** 2).sum(axis=0)
    t, beta = 0.8, 2.0
    s = s0 + t / beta
    v = heat(np.exp(-r2 / (2 * s0)), grid, t, beta)
    exact = (s0 / s) ** (d / 2) * np.exp(-r2 / (2 * s))
    np.testing.assert_allclose(v, exact, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------ brute force


@SETTINGS
@given(grid_functions(5.0), st.floats(1e-2, 10.0), st.floats(0.1, 100.0))
def test_local_entropy_equals_direct_quadrature(data, t, beta):
    grid, f = data
    sol = local_entropy_mean(f, grid, t, beta)
    u, mean = sol.values, sol.mean
    expected = direct_local_entropy(f, grid, t, beta)
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-12 * (1 + np.abs(expected).max()))
    np.testing.assert_allclose(mean, direct_mean(f, grid, t, beta), rtol=0, atol=1e-11)


@SETTINGS
@given(grid_functions(5.0), st.floats(1e-2, 10.0), st.floats(0.1, 100.0))
def test_heat_equals_direct_quadrature(data, t, beta):
    grid, f = data
    expected = direct_heat(f, grid, t, beta)
    np.testing.assert_allclose(heat(f, grid, t, beta), expected, rtol=0, atol=1e-12 * (1 + np.abs(f).max()))


@pytest.mark.parametrize("shape", [(400,), (40, 36)])
def test_huge_beta_times_variation_stays_finite_and_exact(shape, rng):
    # beta * (max f - min f) = 1e6: almost every term of the fast pass underflows and is
    # recomputed by the per-entry log-sum-exp.
    grid = hs.Grid([-2.0] * len(shape), [2.0] * len(shape), shape)
    f = np.sin(5 * grid.coords[0]) + 0.5 * rng.standard_normal(shape)
    beta = 1e6 / (f.max() - f.min())
    for t in (0.01, 1.0):
        u = local_entropy(f, grid, t, beta)
        assert np.all(np.isfinite(u))
        expected = direct_local_entropy(f, grid, t, beta)
        np.testing.assert_allclose(u, expected, rtol=1e-12, atol=1e-13)


def test_float32_fast_pass_falls_back_where_it_underflows(rng):
    grid = hs.Grid(-2.0, 2.0, 300)
    f = np.sin(4 * grid.axes[0]) + 0.3 * rng.standard_normal(300)
    beta = 1e3
    u = local_entropy(f.astype(np.float32), grid, 0.5, beta)
    assert u.dtype == np.float32 and np.all(np.isfinite(u))
    expected = direct_local_entropy(f.astype(np.float32).astype(np.float64), grid, 0.5, beta)
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-5 * (1 + np.abs(expected).max()))


def test_exact_logsumexp_numba_and_chunked_paths_agree(rng):
    from hjsmooth.solvers.cole_hopf import _exact_logsumexp, _exact_logsumexp_chunked

    n, n_lines = 50, 30
    log_k0 = -0.3 * (np.arange(n)[:, None] - np.arange(n)[None, :]) ** 2.0
    lines = 2000.0 * rng.standard_normal((n, n_lines))
    rows = rng.integers(0, n, 200)
    cols = rng.integers(0, n_lines, 200)
    expected = logsumexp(log_k0[rows, :] + lines[:, cols].T, axis=1)
    np.testing.assert_allclose(_exact_logsumexp(log_k0, lines, rows, cols), expected, rtol=1e-14)
    np.testing.assert_allclose(_exact_logsumexp_chunked(log_k0, lines.T, rows, cols), expected, rtol=1e-14)
    torch = pytest.importorskip("torch")
    as_t = torch.as_tensor
    chunked = _exact_logsumexp_chunked(as_t(log_k0), as_t(lines).T, as_t(rows), as_t(cols))
    assert isinstance(chunked, torch.Tensor) and chunked.dtype == torch.float64
    np.testing.assert_allclose(chunked.numpy(), expected, rtol=1e-14)


# ------------------------------------------------------------------------------ inviscid limit


@pytest.mark.parametrize("shape", [(200,), (30, 40)])
def test_tends_to_hopf_lax_as_beta_grows(shape, rng):
    # On the grid, u_beta - u_HL = -log(1 + R)/beta + (1/beta) sum_k log theta_k, where R is the sum over
    # the non-minimal grid points of exp(-beta (objective - min)) and theta_k = sum_m exp(-m^2 h_k^2 beta / (2t))
    # the kernel's lattice sum.  So the residual beta * gap - sum_k log theta_k = -log(1 + R) is <= 0,
    # increases with beta and vanishes, and the gap closes exponentially fast (no log(beta)/beta offset).
    d = len(shape)
    grid = hs.Grid([-2.0] * d, [2.0] * d, shape)
    f = np.cos(3 * grid.coords[0]) + 0.2 * rng.standard_normal(shape)
    t = 0.4
    u_hl = hopf_lax(f, grid, t)
    np.testing.assert_array_equal(local_entropy(f, grid, t, math.inf), u_hl)
    residuals, gaps = [], []
    betas = [1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7]
    for beta in betas:
        gap = local_entropy(f, grid, t, beta) - u_hl
        gaps.append(np.abs(gap).max())
        log_theta = sum(math.log(lattice_sum(h, t / beta)) for h in grid.spacing)
        residuals.append(beta * gap - log_theta)
    residuals = np.array(residuals)
    assert np.all(residuals <= 1e-6)
    assert np.all(np.diff(residuals, axis=0) >= -1e-6)
    assert np.abs(residuals[-1]).max() < 1e-6
    assert gaps[-1] < 1e-10  # the old Riemann scaling left d/(2 beta) log(beta h^2/(2 pi t)) ~ 1e-6 here


def test_kernels_narrower_than_the_grid_tend_to_f(rng):
    """t / beta far below h^2: heat and local_entropy return f (the unnormalised Riemann sum would
    multiply f by h / sqrt(2 pi t / beta), about 4e4 for heat at t = 1e-12)."""
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (11, 13))
    f = rng.standard_normal(grid.shape)
    for t in (1e-12, 1e-6, 1e-4):  # the neighbour's weight exp(-h^2 / (2 t)) is below exp(-130)
        np.testing.assert_allclose(heat(f, grid, t, 1.0), f, rtol=0, atol=1e-15)
        np.testing.assert_allclose(local_entropy(f, grid, t, 1.0), f, rtol=0, atol=1e-15)
    # the transition: at sqrt(s) = h / 2 a neighbour weighs exp(-2) / theta, and v stays a weighted average
    h = grid.spacing[0]
    v = heat(np.ones(grid.shape), grid, (h / 2) ** 2, 1.0)
    assert v.max() <= 1.0 + 1e-15 and v.min() > 0.5


# ------------------------------------------------------------------------------ properties


@SETTINGS
@given(grid_functions(5.0), st.floats(1e-2, 10.0), st.floats(0.1, 1e4), st.floats(0.0, 3.0))
def test_comparison_principle(data, t, beta, lift):
    grid, f = data
    g = f + lift * np.abs(np.cos(np.arange(f.size))).reshape(f.shape)
    assert np.all(local_entropy(f, grid, t, beta) <= local_entropy(g, grid, t, beta) + 1e-12)
    assert np.all(heat(f, grid, t, beta) <= heat(g, grid, t, beta) + 1e-12)


def test_heat_preserves_mass_far_from_the_edge():
    grid = hs.Grid((-12.0, -12.0), (12.0, 12.0), (241, 241))
    x, y = grid.coords
    f = np.exp(-((x - 1) ** 2 + y**2)) * (1 + 0.5 * np.sin(3 * x))
    v = heat(f, grid, 1.0, 1.0)
    assert grid.integrate(v) == pytest.approx(grid.integrate(f), rel=1e-12)


# ------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("shape", [(57,), (23, 31), (7, 9, 11)])
def test_backend_agrees_with_numpy_and_keeps_array_kind(backend, shape, rng):
    grid = hs.Grid([-1.0] * len(shape), [1.5] * len(shape), shape)
    f = rng.standard_normal(shape)
    t, beta = 0.3, 20.0
    ref = local_entropy_mean(f, grid, t, beta)
    u_ref, mean_ref = ref.values, ref.mean
    v_ref = heat(f, grid, t, beta)
    x = backend.asarray(f)
    sol = local_entropy_mean(x, grid, t, beta)
    u, mean = sol.values, sol.mean
    v = heat(x, grid, t, beta)
    for out in (u, mean, v):
        assert backend.is_same_kind(out, x)
    np.testing.assert_allclose(backend.to_numpy(u), u_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(mean), mean_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(v), v_ref, rtol=0, atol=1e-10)

    x32 = backend.asarray(f, dtype="float32")
    u32 = local_entropy(x32, grid, t, beta)
    v32 = heat(x32, grid, t, beta)
    assert backend.is_same_kind(u32, x32) and backend.is_same_kind(v32, x32)
    np.testing.assert_allclose(backend.to_numpy(u32), u_ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(v32), v_ref, rtol=0, atol=1e-5)

    # huge beta: most entries take the exact path, on every backend
    big = 1e5
    np.testing.assert_allclose(
        backend.to_numpy(local_entropy(x, grid, t, big)), local_entropy(f, grid, t, big), rtol=0, atol=1e-10
    )


# ------------------------------------------------------------------------------ input handling


def test_t_zero_and_beta_inf_shortcuts():
    grid = hs.Grid(0.0, 1.0, 5)
    f = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    for out in (local_entropy(f, grid, 0.0, 2.0), heat(f, grid, 0.0, 2.0), heat(f, grid, 1.0, math.inf)):
        np.testing.assert_array_equal(out, f)
        assert not np.shares_memory(out, f)
    np.testing.assert_array_equal(local_entropy_mean(f, grid, 0.0, 2.0).mean, np.stack(grid.coords))
    inviscid = local_entropy_mean(f, grid, 0.5, math.inf)
    prox = hs.hopf_lax_prox(f, grid, 0.5)
    np.testing.assert_array_equal(inviscid.values, prox.values)
    np.testing.assert_array_equal(inviscid.mean, prox.prox)


@pytest.mark.parametrize("solver", [local_entropy, heat])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"f": np.array([0.0, math.nan, 1.0, 2.0])}, ValueError, "`f`"),
        ({"f": np.array([0.0, math.inf, 1.0, 2.0])}, ValueError, "`f`"),
        ({"f": np.zeros((4, 1))}, ValueError, "`f` must have the grid's shape"),
        ({"t": -0.5}, ValueError, "`t`"),
        ({"beta": 0.0}, ValueError, "`beta`"),
        ({"beta": -3.0}, ValueError, "`beta`"),
        ({"beta": math.nan}, ValueError, "`beta`"),
        ({"grid": None}, TypeError, "`grid`"),
    ],
)
def test_bad_input_names_the_argument(solver, kwargs, error, match):
    args = {"f": np.zeros(4), "grid": hs.Grid(0.0, 1.0, 4), "t": 0.5, "beta": 1.0} | kwargs
    with pytest.raises(error, match=match):
        solver(args["f"], args["grid"], args["t"], args["beta"])


# ------------------------------------------------------------------------------ GPU


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cupy_large_grid_equals_numpy(dtype, rng):
    cupy = pytest.importorskip("cupy")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (300, 257))
    f = (np.sin(4 * grid.coords[0]) * np.cos(3 * grid.coords[1]) + 0.3 * rng.standard_normal(grid.shape)).astype(dtype)
    for beta in (5.0, 1e4):
        u_ref = local_entropy(f, grid, 0.2, beta)
        u = local_entropy(cupy.asarray(f), grid, 0.2, beta)
        assert isinstance(u, cupy.ndarray) and u.dtype == f.dtype
        atol = 1e-10 if dtype == "float64" else 1e-4
        np.testing.assert_allclose(u.get(), u_ref, rtol=0, atol=atol)
    v = heat(cupy.asarray(f), grid, 0.2, 5.0)
    np.testing.assert_allclose(v.get(), heat(f, grid, 0.2, 5.0), rtol=0, atol=1e-10 if dtype == "float64" else 1e-5)
