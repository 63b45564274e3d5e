"""Tests of ``hopf_lax(..., subgrid=...)``: the Hopf-Lax minimum refined between the grid points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hjsmooth as hs
from hjsmooth.solvers.hopf_lax import HopfLaxSolution, hopf_lax, hopf_lax_prox

from grid_strategies import grid_functions

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
DEGREES = {"quadratic": 2, "cubic": 3, "quartic": 4}


def prox_pair(solution: HopfLaxSolution) -> tuple:
    """``(values, prox)`` of a :func:`hopf_lax_prox` result."""
    return solution.values, solution.prox


# ------------------------------------------------------------------------------ references


def log_profile(r: np.ndarray) -> np.ndarray:
    """``phi(r) = log(1 + r^2)``: smooth, not a polynomial, ``phi'' >= -1/4``, ``|phi'| <= 1``."""
    return np.log1p(r**2)


def log_profile_prime(r: np.ndarray) -> np.ndarray:
    return 2.0 * r / (1.0 + r**2)


def hopf_lax_1d_reference(x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """``min_y phi(y) + (x - y)^2 / (2t)`` and its minimiser, for every ``x``, to rounding.

    For ``t < 4`` the objective is strictly convex (``phi'' + 1/t > 0``), so the minimiser is the
    unique root of the increasing ``F(y) = phi'(y) + (y - x)/t``, which lies in
    ``[x - t, x + t]`` since ``|phi'| <= 1``: 80 bisection steps bracket it to rounding (the value
    is stationary, so its error is the square of that).
    """
    lo, hi = x - t - 1.0, x + t + 1.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        up = log_profile_prime(mid) + (mid - x) / t > 0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    y = 0.5 * (lo + hi)
    return log_profile(y) + (x - y) ** 2 / (2.0 * t), y


def errors_under_refinement(ns, degree, t=1.0, ndim=1):
    """Max errors of ``u`` and ``prox`` on ``|x|_inf <= 2`` for ``f = log(1 + |x|^2)`` on ``[-4, 4]^d``.

    ``f`` is radial and increasing in ``|x|``, so the minimiser lies on the ray through ``x`` and
    the ``d``-dimensional minimum is the 1D one at ``r = |x|``.  The minimiser is within ``t`` of
    ``x`` (``|grad f| <= 1``), so the window's edge does not matter on the central region.
    """
    u_err, prox_err = [], []
    for n in ns:
        grid = hs.Grid([-4.0] * ndim, [4.0] * ndim, (n,) * ndim)
        x = np.stack(grid.coords)
        r = np.sqrt((x**2).sum(axis=0))
        u, prox = prox_pair(hopf_lax_prox(log_profile(r), grid, t, subgrid=degree))
        exact, y = hopf_lax_1d_reference(r, t)
        exact_prox = x * np.where(r > 0, y / np.where(r > 0, r, 1.0), 0.0)
        inside = np.all(np.abs(x) <= 2.0, axis=0)
        u_err.append(np.abs(u - exact)[inside].max())
        prox_err.append(np.abs(prox - exact_prox)[:, inside].max())
    return np.array(u_err), np.array(prox_err)


def orders(errors: np.ndarray) -> np.ndarray:
    """Observed orders for grids whose spacing halves from one to the next."""
    return np.log2(errors[:-1] / errors[1:])


# ------------------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("subgrid", list(DEGREES))
@pytest.mark.parametrize("shape", [(101,), (41, 37), (21, 23, 19)])
@pytest.mark.parametrize("t", [0.3, 2.0])
def test_exact_to_rounding_for_quadratic_f(subgrid, shape, t):
    # f = (x - b)^T A (x - b) / 2 with A symmetric positive definite and not diagonal has
    # prox = b + (I + tA)^{-1} (x - b) and u = (x - b)^T A (I + tA)^{-1} (x - b) / 2.  Every local
    # interpolant of a quadratic is the quadratic itself and the refined minimum of a quadratic
    # objective is its vertex; pass a's minimiser is affine in the later variables, which the
    # tensor-product interpolation of prox reproduces.  So u and prox are exact up to rounding
    # (values are O(10) here) wherever the minimiser is inside the window, with a margin of
    # three cells for the stencils of the later passes.
    ndim = len(shape)
    grid = hs.Grid([-3.0] * ndim, [3.0] * ndim, shape)
    a = np.array([[1.0, 0.3, -0.2], [0.3, 0.6, 0.25], [-0.2, 0.25, 2.0]])[:ndim, :ndim]
    b = np.array([0.3, -0.5, 0.4])[:ndim].reshape((-1,) + (1,) * ndim)
    x = np.stack(grid.coords)
    xm = x - b
    f = 0.5 * np.einsum("i...,ij,j...->...", xm, a, xm)
    shrink = np.linalg.inv(np.eye(ndim) + t * a)
    prox_exact = b + np.einsum("ij,j...->i...", shrink, xm)
    exact = 0.5 * np.einsum("i...,ij,j...->...", xm, a @ shrink, xm)
    spacing = np.array(grid.spacing).reshape((-1,) + (1,) * ndim)
    inside = np.all(np.abs(prox_exact) <= 3.0 - 3 * spacing, axis=0)
    assert inside.mean() > 0.5
    u, prox = prox_pair(hopf_lax_prox(f, grid, t, subgrid=subgrid))
    np.testing.assert_allclose(u[inside], exact[inside], rtol=0, atol=1e-13 * (1 + np.abs(exact).max()))
    np.testing.assert_allclose(prox[:, inside], prox_exact[:, inside], rtol=0, atol=1e-12)
    # while the grid minimum is off by O(h^2)
    assert np.abs(hopf_lax(f, grid, t) - exact)[inside].max() > 1e-5


@pytest.mark.parametrize("subgrid", list(DEGREES))
def test_minimiser_at_the_window_edge_is_exact(subgrid):
    # f(y) = -s y on [0, 1]: the state-constrained minimiser is min(x + s t, 1).  Where it is
    # inside, the objective is quadratic (exact as above); where it is the last node, the
    # refinement's window [y_{n-2}, y_{n-1}] keeps it there and the grid value is exact.
    slope, t = 3.0, 0.1
    grid = hs.Grid(0.0, 1.0, 201)
    x = grid.axes[0]
    u, prox = prox_pair(hopf_lax_prox(-slope * x, grid, t, subgrid=subgrid))
    y = np.minimum(x + slope * t, 1.0)
    assert np.any(y == 1.0) and np.any(y < 1.0)
    np.testing.assert_allclose(u, -slope * y + (x - y) ** 2 / (2 * t), rtol=0, atol=1e-13)
    np.testing.assert_allclose(prox[0], y, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ convergence


@pytest.mark.parametrize("subgrid", list(DEGREES))
def test_order_of_accuracy_1d(subgrid):
    # Interpolation error O(h^(k+1)) for degree k; the minimum moves by the interpolation error at
    # the minimiser, the minimiser by its derivative, O(h^k).  Measured (81..641 points): value
    # orders 2.99 / 3.99 / 4.94, prox orders about k; 0.2 of slack for pre-asymptotic grids.
    k = DEGREES[subgrid]
    u_err, prox_err = errors_under_refinement((81, 161, 321, 641), subgrid)
    assert np.all(orders(u_err) > k + 1 - 0.2), (u_err, orders(u_err))
    assert np.all(orders(prox_err) > k - 0.2), (prox_err, orders(prox_err))
    # and far below the grid minimum's O(h^2) error on the same grid (5.4e-5 at 641 points)
    plain_err = errors_under_refinement((641,), None)[0][0]
    assert u_err[-1] < plain_err / 100


@pytest.mark.parametrize("subgrid", list(DEGREES))
def test_order_of_accuracy_2d_non_separable(subgrid):
    # Second pass interpolates the first pass's output, and prox is interpolated across passes;
    # both keep the 1D orders (measured 81 -> 161 -> 321: 2.96 / 2.92, 3.96 / 3.99, 4.68 / 4.99).
    k = DEGREES[subgrid]
    u_err, prox_err = errors_under_refinement((81, 161, 321), subgrid, ndim=2)
    assert np.all(orders(u_err) > k + 1 - 0.4), (u_err, orders(u_err))
    assert np.all(orders(prox_err) > k - 0.4), (prox_err, orders(prox_err))


# ------------------------------------------------------------------------------ properties




@SETTINGS
@given(grid_functions(10.0), st.floats(1e-3, 1e3), st.sampled_from(list(DEGREES)), st.sampled_from(["auto", "brute_force"]))
def test_never_above_the_grid_minimum(data, t, subgrid, method):
    # Each pass keeps min(refined, grid), and the grid minimum is monotone in its input, so the
    # refined u is <= the plain u everywhere, for any f.
    grid, f = data
    plain = hopf_lax(f, grid, t, method=method)
    refined, prox = prox_pair(hopf_lax_prox(f, grid, t, subgrid=subgrid, method=method))
    assert np.all(refined <= plain)
    assert np.all(np.isfinite(prox))
    lower = np.array(grid.lower).reshape((-1,) + (1,) * grid.ndim)
    upper = np.array(grid.upper).reshape((-1,) + (1,) * grid.ndim)
    assert np.all((prox >= lower - 1e-12) & (prox <= upper + 1e-12))


def test_kinked_f_can_undershoot_min_f_which_is_why_it_is_opt_in():
    # Two adjacent nodes at the minimum -1 of an otherwise flat f: every interpolant through them
    # dips below -1 in between (the parabola through 0, -1, -1 reaches -1.125), so u < min f,
    # impossible for the true (and the grid) Hopf-Lax minimum.  Documented in the docstring;
    # the default keeps u >= min f.
    grid = hs.Grid(-1.0, 1.0, 41)
    f = np.zeros(grid.shape)
    f[20:22] = -1.0
    assert hopf_lax(f, grid, 0.01).min() == -1.0
    for subgrid in DEGREES:
        assert hopf_lax(f, grid, 0.01, subgrid=subgrid).min() < -1.05


# ------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("subgrid", list(DEGREES))
@pytest.mark.parametrize("shape", [(57,), (23, 31), (7, 9, 11)])
def test_backends_agree_with_numpy(backend, subgrid, shape, rng, one_torch_thread):
    grid = hs.Grid([-2.0] * len(shape), [2.0] * len(shape), shape)
    x = np.stack(grid.coords)
    # smooth but not quadratic, plus a little noise so that every branch (edges, skipped
    # Newton steps, rejected refinements) is taken somewhere
    f = np.cos(x).sum(axis=0) + 0.5 * (x**2).sum(axis=0) + 0.01 * rng.standard_normal(shape)
    t = 0.3
    u_ref, prox_ref = prox_pair(hopf_lax_prox(f, grid, t, subgrid=subgrid))
    for method in ("auto", "brute_force"):
        arr = backend.asarray(f)
        u, prox = prox_pair(hopf_lax_prox(arr, grid, t, subgrid=subgrid, method=method))
        assert backend.is_same_kind(u, arr) and backend.is_same_kind(prox, arr)
        np.testing.assert_allclose(backend.to_numpy(u), u_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(backend.to_numpy(prox), prox_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("subgrid", list(DEGREES))
def test_float32_stays_float32_and_is_refined(subgrid):
    # For quadratic f the float64 result is exact; float32 is limited by rounding of values
    # of size 2 (u on |x| <= 2): a few ulps, far below the grid minimum's 1.2e-4.
    grid = hs.Grid((-4.0, -4.0), (4.0, 4.0), (256, 256))
    x, y = grid.coords
    f = (0.5 * (x**2 + y**2)).astype(np.float32)
    u = hopf_lax(f, grid, 1.0, subgrid=subgrid)
    assert u.dtype == np.float32
    inside = (np.abs(x) <= 2) & (np.abs(y) <= 2)
    assert np.abs(u - (x**2 + y**2) / 4)[inside].max() < 2e-6


def test_refinement_along_axis_0_equals_along_the_last_axis(rng):
    # The CuPy engine refines columns (line axis 0), the CPU engines rows (axis -1); the GPU is
    # not available to every test run, so the column layout is checked here on numpy.
    from hjsmooth.solvers._lower_envelope import lower_envelope_rows
    from hjsmooth.solvers.hopf_lax import _refine_lines

    rows = np.cumsum(rng.standard_normal((30, 64)), axis=1) * 0.1 + np.linspace(-2, 2, 64) ** 2
    c = 0.02
    env, arg = lower_envelope_rows(rows, c, track=True)
    for degree in DEGREES.values():
        env_r, pos_r = _refine_lines(rows, env, arg, c, degree, -1)
        env_c, pos_c = _refine_lines(rows.T, env.T, arg.T, c, degree, 0)
        np.testing.assert_array_equal(env_c.T, env_r)
        np.testing.assert_array_equal(pos_c.T, pos_r)
        assert np.all(env_r <= env) and np.any(env_r < env - 1e-6)


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-13), ("float32", 2e-6)])
def test_compiled_refinement_equals_the_array_api_one(dtype, atol, rng):
    # The numba engine refines with a compiled twin of the array-API code (used on the GPU and
    # by brute force): same operations in the same order, so float64 agrees to rounding; for
    # float32 the compiled one works in double precision, the array-API one in float32 (values
    # here are O(4): a few float32 ulps).
    from hjsmooth.solvers._lower_envelope import lower_envelope_rows, refine_rows
    from hjsmooth.solvers.hopf_lax import _NEWTON_STEPS, _inverse_vandermonde, _refine_lines

    x = np.linspace(-2, 2, 64)
    rows = (np.cos(3 * x) + x**2 + 0.02 * rng.standard_normal((40, 64))).astype(dtype)
    for c in (0.002, 0.05):
        env, arg = lower_envelope_rows(rows, c, track=True)
        for k in DEGREES.values():
            env_a, pos_a = _refine_lines(rows, env, arg, c, k, -1)
            env_b, pos_b = refine_rows(rows, env, arg, c, k, _inverse_vandermonde(k), _NEWTON_STEPS)
            assert env_b.dtype == pos_b.dtype == np.dtype(dtype)
            np.testing.assert_allclose(env_b, env_a, rtol=0, atol=atol)
            # positions agree where both take the refinement (a near-tie with the grid value may
            # go either way in float32); float32 vertices -a1 / (2 a2) measured within 2.3e-5 cells
            both = (env_a < env) & (env_b < env)
            np.testing.assert_allclose(pos_b[both], pos_a[both], rtol=0, atol=1e-12 if dtype == "float64" else 1e-3)
            assert both.mean() > 0.5


# ------------------------------------------------------------------------------ input handling


@pytest.mark.parametrize("bad", ["linear", "Quadratic", "", 2, True, ("quadratic",)])
def test_bad_subgrid_names_the_argument_and_lists_the_valid_values(bad):
    grid = hs.Grid(0.0, 1.0, 5)
    with pytest.raises(ValueError, match=r"`subgrid`.*None, 'quadratic', 'cubic', 'quartic'"):
        hopf_lax(np.zeros(5), grid, 0.5, subgrid=bad)


def test_t_zero_with_subgrid_returns_f_and_the_grid_points():
    grid = hs.Grid((0.0, 0.0), (1.0, 2.0), (4, 3))
    f = np.arange(12.0).reshape(4, 3)
    u, prox = prox_pair(hopf_lax_prox(f, grid, 0.0, subgrid="cubic"))
    np.testing.assert_array_equal(u, f)
    np.testing.assert_array_equal(prox, np.stack(grid.coords))
