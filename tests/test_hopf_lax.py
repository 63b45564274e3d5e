"""Tests of the exact inviscid Hamilton-Jacobi solver (Hopf-Lax formula on the grid)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hjsmooth as hs
from hjsmooth.solvers.hopf_lax import HopfLaxSolution, hopf_lax, hopf_lax_prox

from grid_strategies import grid_functions, small_grid

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def prox_pair(solution: HopfLaxSolution) -> tuple:
    """``(values, prox)`` of a :func:`hopf_lax_prox` result."""
    return solution.values, solution.prox


def test_prox_is_a_separate_function_and_no_flag_changes_the_return_type() -> None:
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (21, 17))
    f = np.sin(3 * grid.coords[0]) * grid.coords[1]
    sol = hopf_lax_prox(f, grid, 0.3)
    assert isinstance(sol, HopfLaxSolution) and sol.prox.shape == (2, 21, 17)
    np.testing.assert_array_equal(sol.values, hopf_lax(f, grid, 0.3))
    with pytest.raises(TypeError, match="return_prox"):
        hopf_lax(f, grid, 0.3, return_prox=True)
    assert hs.hopf_lax_prox is hopf_lax_prox and hs.local_entropy_mean is hs.solvers.cole_hopf.local_entropy_mean


def brute_force_hopf_lax(f: np.ndarray, grid: hs.Grid, t: float) -> tuple[np.ndarray, np.ndarray]:
    """``min_y f(y) + |x - y|^2 / (2t)`` over all pairs of grid points (O(N^2)), and the min's argmin."""
    pts = grid.points()
    cost = f.ravel()[None, :] + ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1) / (2.0 * t)
    return cost.min(axis=1).reshape(f.shape), cost.argmin(axis=1).reshape(f.shape)


def objective_at(f: np.ndarray, grid: hs.Grid, t: float, prox: np.ndarray, grid_tol: float = 1e-12) -> np.ndarray:
    """``f(prox(x)) + |x - prox(x)|^2 / (2t)`` with ``prox`` given by coordinates on the grid.

    ``grid_tol`` is how far a coordinate may sit from its node: rounding of the coordinate itself
    (about ``eps * |x|``, so ~1e-7 for float32 coordinates).
    """
    lower = np.array(grid.lower).reshape((-1,) + (1,) * grid.ndim)
    spacing = np.array(grid.spacing).reshape((-1,) + (1,) * grid.ndim)
    index = np.rint((prox - lower) / spacing).astype(int)
    assert np.allclose(prox, lower + index * spacing, rtol=0, atol=grid_tol), "prox must be a grid point"
    x = np.stack(grid.coords)
    return f[tuple(index)] + ((x - prox) ** 2).sum(axis=0) / (2.0 * t)


times = st.floats(1e-3, 1e3)


# ------------------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("shape", [(401,), (81, 61), (21, 17, 19)])
@pytest.mark.parametrize("t", [0.3, 1.0])
def test_quadratic_closed_form_within_grid_resolution(shape, t):
    grid = hs.Grid([-3.0] * len(shape), [3.0] * len(shape), shape)
    x = np.stack(grid.coords)
    f = 0.5 * (x**2).sum(axis=0)
    u, prox = prox_pair(hopf_lax_prox(f, grid, t))
    exact = 0.5 * (x**2).sum(axis=0) / (1.0 + t)
    # The minimiser x/(1+t) is always inside the window; restricting y to the grid costs at most
    # (curvature of the objective in y) / 2 * (h/2)^2 per axis, and never makes u smaller.
    bound = sum((1.0 + 1.0 / t) / 2.0 * (h / 2.0) ** 2 for h in grid.spacing)
    assert np.all(u >= exact - 1e-12)
    assert np.max(u - exact) <= bound + 1e-12
    # The proximal point is the grid point nearest to x / (1+t) along each axis (up to ties).
    spacing = np.array(grid.spacing).reshape((-1,) + (1,) * len(shape))
    assert np.all(np.abs(prox - x / (1.0 + t)) <= spacing / 2 + 1e-12)
    np.testing.assert_allclose(objective_at(f, grid, t, prox), u, rtol=0, atol=1e-12)


def test_quadratic_error_is_second_order_under_refinement():
    t = 0.5
    errors = []
    for n in (101, 201, 401):
        grid = hs.Grid(-3.0, 3.0, n)
        x = grid.axes[0]
        u = hopf_lax(0.5 * x**2, grid, t)
        errors.append(np.max(np.abs(u - 0.5 * x**2 / (1.0 + t))))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.8), (errors, orders)


# ------------------------------------------------------------------------------ brute force


@SETTINGS
@given(grid_functions(10.0), times, st.sampled_from(["auto", "brute_force"]))
def test_equals_brute_force_minimum_and_prox_attains_it(data, t, method):
    grid, f = data
    u, prox = prox_pair(hopf_lax_prox(f, grid, t, method=method))
    expected, _ = brute_force_hopf_lax(f, grid, t)
    scale = 1.0 + np.max(np.abs(expected))
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(objective_at(f, grid, t, prox), expected, rtol=0, atol=1e-13 * scale)


def test_envelope_equals_brute_force_on_a_larger_rugged_grid(rng):
    grid = hs.Grid((-2.0, -1.0), (2.0, 3.0), (64, 48))
    f = rng.standard_normal(grid.shape) + np.sin(7 * grid.coords[0]) * grid.coords[1]
    for t in (0.01, 0.2, 5.0):
        u, prox = prox_pair(hopf_lax_prox(f, grid, t))
        u_ref, prox_ref = prox_pair(hopf_lax_prox(f, grid, t, method="brute_force"))
        np.testing.assert_allclose(u, u_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(objective_at(f, grid, t, prox), u_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(objective_at(f, grid, t, prox_ref), u_ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ properties


@SETTINGS
@given(grid_functions(10.0), times, st.floats(0.0, 5.0))
def test_comparison_principle_min_preserved_and_below_f(data, t, lift):
    grid, f = data
    bump = np.abs(np.sin(np.arange(f.size).reshape(f.shape))) * lift
    g = f + bump  # g >= f
    u_f = hopf_lax(f, grid, t)
    u_g = hopf_lax(g, grid, t)
    assert np.all(u_f <= u_g + 1e-12)
    assert np.all(u_f <= f)
    assert u_f.min() == f.min()


def second_differences(u: np.ndarray, step: int, axis: int) -> np.ndarray:
    n = u.shape[axis]
    lo = np.take(u, range(0, n - 2 * step), axis=axis)
    mid = np.take(u, range(step, n - step), axis=axis)
    hi = np.take(u, range(2 * step, n), axis=axis)
    return lo - 2 * mid + hi


@pytest.mark.parametrize("shape", [(500,), (60, 70)])
@pytest.mark.parametrize("t", [0.01, 0.3])
def test_semiconcave_with_constant_one_over_t_for_rugged_f(shape, t, rng):
    # Lemma 4.17 (inviscid): u is a minimum of parabolas of curvature 1/t, so every
    # second difference of u is <= 1/t, even on the grid and for discontinuous f.
    grid = hs.Grid([-2.0] * len(shape), [2.0] * len(shape), shape)
    f = 5.0 * rng.standard_normal(shape)
    u = hopf_lax(f, grid, t)
    for axis, h in enumerate(grid.spacing):
        d2 = second_differences(u, 1, axis) / h**2
        assert d2.max() <= 1.0 / t * (1 + 1e-9)
    # f itself is far rougher than that
    assert (second_differences(f, 1, 0) / grid.spacing[0] ** 2).max() > 10.0 / t


def test_semiconcavity_improves_to_one_over_inverse_c_plus_t_for_smooth_f():
    # Lemma 4.17 with C = sup f'': u_xx <= 1 / (1/C + t).  The grid minimum is within
    # E = (C + 1/t)/2 (h/2)^2 of the continuous one, so a second difference of width H is
    # bounded by 1/(1/C + t) + 4 E / H^2.
    t = 0.1
    grid = hs.Grid(-3.0, 3.0, 1201)
    x = grid.axes[0]
    f = np.sin(3 * x) + 0.3 * np.cos(5 * x)
    curvature = 9.0 + 0.3 * 25.0
    h = grid.spacing[0]
    u = hopf_lax(f, grid, t)
    step = 20
    width = step * h
    d2 = second_differences(u, step, 0) / width**2
    centres = x[step:-step]
    margin = t * (3.0 + 1.5) + width  # |x - prox(x)| <= t sup|f'|: minimiser inside the window
    inside = np.abs(centres) <= 3.0 - margin
    bound = 1.0 / (1.0 / curvature + t)
    slack = 4 * (curvature + 1.0 / t) / 2 * (h / 2) ** 2 / width**2
    assert d2[inside].max() <= bound + slack
    assert bound + slack < 0.7 / t  # strictly better than the rugged bound 1/t
    assert d2[inside].max() >= 0.6 * bound  # and the bound is nearly attained


# ------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("shape", [(57,), (23, 31), (7, 9, 11)])
def test_backend_agrees_with_numpy_and_keeps_array_kind(backend, shape, rng):
    grid = small_grid(shape)
    f = rng.standard_normal(shape)
    t = 0.07
    u_ref, prox_ref = prox_pair(hopf_lax_prox(f, grid, t))
    x = backend.asarray(f)
    u, prox = prox_pair(hopf_lax_prox(x, grid, t))
    assert backend.is_same_kind(u, x) and backend.is_same_kind(prox, x)
    assert tuple(prox.shape) == (len(shape), *shape)
    np.testing.assert_allclose(backend.to_numpy(u), u_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(objective_at(f, grid, t, backend.to_numpy(prox)), u_ref, rtol=0, atol=1e-10)

    x32 = backend.asarray(f, dtype="float32")
    u32, prox32 = prox_pair(hopf_lax_prox(x32, grid, t))
    assert backend.is_same_kind(u32, x32) and backend.is_same_kind(prox32, x32)
    np.testing.assert_allclose(backend.to_numpy(u32), u_ref, rtol=0, atol=2e-5 * (1 + np.abs(u_ref).max()))


def test_torch_brute_force_path_agrees(rng):
    torch = pytest.importorskip("torch")
    grid = small_grid((19, 13))
    f = rng.standard_normal(grid.shape)
    u_ref = hopf_lax(f, grid, 0.2)
    u, prox = prox_pair(hopf_lax_prox(torch.as_tensor(f), grid, 0.2, method="brute_force"))
    assert isinstance(u, torch.Tensor) and u.dtype == torch.float64
    np.testing.assert_allclose(u.numpy(), u_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(objective_at(f, grid, 0.2, prox.numpy()), u_ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ input handling


def test_t_zero_returns_a_copy_and_identity_prox():
    grid = small_grid((5, 4))
    f = np.arange(20.0).reshape(5, 4)
    u, prox = prox_pair(hopf_lax_prox(f, grid, 0.0))
    np.testing.assert_array_equal(u, f)
    assert u is not f and not np.shares_memory(u, f)
    np.testing.assert_array_equal(prox, np.stack(grid.coords))


def test_integer_input_is_promoted_to_float64():
    grid = small_grid((6,))
    u = hopf_lax(np.array([3, 1, 4, 1, 5, 9]), grid, 0.1)
    assert u.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"f": np.array([0.0, math.nan, 1.0, 2.0])}, ValueError, "`f`"),
        ({"f": np.zeros(5)}, ValueError, "`f` must have the grid's shape"),
        ({"t": -1.0}, ValueError, "`t`"),
        ({"t": math.nan}, ValueError, "`t`"),
        ({"t": "soon"}, TypeError, "`t`"),
        ({"grid": (0, 1, 4)}, TypeError, "`grid`"),
        ({"method": "fast"}, ValueError, "`method`"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = {"f": np.zeros(4), "grid": hs.Grid(0.0, 1.0, 4), "t": 0.5} | kwargs
    method = args.pop("method", "auto")
    with pytest.raises(error, match=match):
        hopf_lax(args["f"], args["grid"], args["t"], method=method)


# ------------------------------------------------------------------------------ GPU


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(1000,), (300, 257), (40, 33, 50)])
def test_cupy_kernel_equals_numpy(dtype, shape, rng):
    cupy = pytest.importorskip("cupy")
    grid = hs.Grid([-2.0] * len(shape), [2.0] * len(shape), shape)
    f = (rng.standard_normal(shape) * 3).astype(dtype)
    u_ref, prox_ref = prox_pair(hopf_lax_prox(f, grid, 0.05))
    u, prox = prox_pair(hopf_lax_prox(cupy.asarray(f), grid, 0.05))
    assert isinstance(u, cupy.ndarray) and u.dtype == f.dtype and prox.dtype == f.dtype
    atol = 1e-12 if dtype == "float64" else 1e-5 * (1 + np.abs(u_ref).max())
    np.testing.assert_allclose(u.get(), u_ref, rtol=0, atol=atol)
    grid_tol = 1e-12 if dtype == "float64" else 4 * float(np.finfo(np.float32).eps) * 2.0
    objective = objective_at(f.astype(np.float64), grid, 0.05, prox.get().astype(np.float64), grid_tol)
    np.testing.assert_allclose(objective, u_ref, rtol=0, atol=atol * 10)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["auto", "brute_force"])
def test_cuda_torch_equals_numpy(method, rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (129, 200))
    f = rng.standard_normal(grid.shape)
    u_ref = hopf_lax(f, grid, 0.1)
    u, prox = prox_pair(hopf_lax_prox(torch.as_tensor(f, device="cuda"), grid, 0.1, method=method))
    assert u.device.type == "cuda" and prox.device.type == "cuda" and u.dtype == torch.float64
    np.testing.assert_allclose(u.cpu().numpy(), u_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(objective_at(f, grid, 0.1, prox.cpu().numpy()), u_ref, rtol=0, atol=1e-12)
