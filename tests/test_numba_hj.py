"""The fused numba step of the first-order HJ scheme equals the array-API operator step.

The kernel forms every node with the operations of ``HamiltonJacobiOperator.evaluate`` in the
same order and dtype, so on this platform the two agree bitwise; the asserted tolerances are the
ones a different compiler could need (1e-13 of the data's scale in float64, 1e-5 relative in
float32: one rounding of a handful of operations).
"""

from __future__ import annotations

from unittest import mock

import numba
import numpy as np
import pytest

import hjsmooth as hs
import hjsmooth.solvers.hj as hj_module
from hjsmooth.solvers._numba_hj import numba_available, numba_first_order_step, numba_rates, rate_sum
from hjsmooth.solvers.hj import HamiltonJacobiOperator, _dirichlet_projection, _initial_state
from hjsmooth.solvers.runge_kutta import forward_euler

SCHEMES = ["godunov", "engquist_osher", "lax_friedrichs"]
BCS = ["extrapolate", "neumann", "periodic", "dirichlet"]
SHAPES = [(41,), (19, 23), (9, 11, 13)]


def _case(shape: tuple, dtype: type, bc: str, rng: np.random.Generator):
    """Random non-convex data (and held values for Dirichlet), prepared as solve_hj prepares them."""
    grid = hs.Grid([-1.0] * len(shape), [1.3 + 0.2 * k for k in range(len(shape))], shape)
    u = _initial_state(rng.standard_normal(shape).astype(dtype), bc)
    held = rng.standard_normal(shape).astype(dtype) if bc == "dirichlet" else None
    project = _dirichlet_projection(u, bc, held)
    return grid, project(u), project


def _assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if got.dtype == np.float64:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * float(np.max(np.abs(expected))))
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(expected))))


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_fused_step_and_rates_equal_the_operator(shape, bc, scheme, dtype, rng) -> None:
    grid, u, project = _case(shape, dtype, bc, rng)
    assert numba_available(u, scheme, "first", None)
    rates = numba_rates(u, grid.spacing, bc, scheme)
    for beta in (2.0, float("inf")):
        op = HamiltonJacobiOperator(grid, scheme, "first", bc, beta, 0.5)
        dt = op.stable_dt(u)
        _, rate = op.evaluate(u)
        assert rate_sum(rates, grid.spacing) == pytest.approx(rate, rel=1e-14)
        expected = forward_euler(u, dt, op.rhs, project, op.cached_rhs(u))
        got, new_rates = numba_first_order_step(u, dt, grid.spacing, op.nu, bc, scheme, rates,
                                                project.held if bc == "dirichlet" else None)
        _assert_close(got, expected)
        _, expected_rate = op.evaluate(expected)
        assert rate_sum(new_rates, grid.spacing) == pytest.approx(expected_rate, rel=1e-6 if dtype == np.float32 else 1e-13)


def test_fused_step_is_bitwise_the_operator_step(rng) -> None:
    """The design property behind the tolerances above (same operations, same order, same dtype)."""
    for dtype in (np.float64, np.float32):
        grid, u, project = _case((19, 23), dtype, "extrapolate", rng)
        op = HamiltonJacobiOperator(grid, "godunov", "first", "extrapolate", 3.0, 0.5)
        dt = op.stable_dt(u)
        rates = numba_rates(u, grid.spacing, "extrapolate", "godunov")
        assert op.step_for_rate(rate_sum(rates, grid.spacing)) == dt
        got, _ = numba_first_order_step(u, dt, grid.spacing, op.nu, "extrapolate", "godunov", rates)
        np.testing.assert_array_equal(got, forward_euler(u, dt, op.rhs, project, op.cached_rhs(u)))


def test_result_does_not_depend_on_the_thread_count(rng) -> None:
    grid, u, _ = _case((33, 29), np.float64, "neumann", rng)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            for scheme in SCHEMES:
                rates = numba_rates(u, grid.spacing, "neumann", scheme)
                out, new_rates = numba_first_order_step(u, 1e-3, grid.spacing, 0.1, "neumann", scheme, rates)
                results.append((threads, scheme, rates, out, new_rates))
    finally:
        numba.set_num_threads(before)
    by_scheme: dict[str, list] = {}
    for _, scheme, *arrays in results:
        by_scheme.setdefault(scheme, []).append(arrays)
    for runs in by_scheme.values():
        for arrays in runs[1:]:
            for a, b in zip(arrays, runs[0]):
                np.testing.assert_array_equal(a, b)


def _generic(**kwargs) -> hs.PDESolution:
    with mock.patch.object(hj_module, "numba_available", return_value=False):
        return hs.solve_hj(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(beta=5.0, scheme="godunov", bc="extrapolate", dtype=np.float64),
        dict(beta=5.0, scheme="godunov", bc="extrapolate", dtype=np.float32),
        dict(beta=float("inf"), scheme="lax_friedrichs", bc="periodic", dtype=np.float64),
        dict(beta=2.0, scheme="engquist_osher", bc="neumann", dtype=np.float64),
        dict(beta=2.0, scheme="godunov", bc="dirichlet", dtype=np.float64, bc_value=0.3),
    ],
    ids=["godunov-f64", "godunov-f32", "lf-periodic-inviscid", "eo-neumann", "dirichlet"],
)
def test_solve_hj_takes_the_fused_path_and_matches_the_generic_one(kwargs) -> None:
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 37))
    x, y = grid.coords
    f = (np.cos(3 * x) * np.sin(2 * y) + 0.25 * (x**2 + y**2)).astype(dtype)  # non-convex
    args = dict(f=f, grid=grid, t=0.3, save_at=3, progress=False, **kwargs)
    fused, generic = hs.solve_hj(**args), _generic(**args)
    assert fused.info["fused_cpu_kernel"] and not generic.info["fused_cpu_kernel"]
    assert fused.steps == generic.steps and fused.info["min_dt"] == generic.info["min_dt"]
    assert fused.values.dtype == dtype and fused.snapshots.dtype == dtype
    _assert_close(fused.values, generic.values)
    _assert_close(fused.snapshots, generic.snapshots)


def test_dirichlet_array_values_are_held_by_the_kernel(rng) -> None:
    grid = hs.Grid((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (9, 10, 11))
    f = rng.standard_normal(grid.shape)
    held = rng.standard_normal(grid.shape)
    sol = hs.solve_hj(f, grid, 0.05, beta=4.0, bc="dirichlet", bc_value=held, progress=False)
    ref = _generic(f=f, grid=grid, t=0.05, beta=4.0, bc="dirichlet", bc_value=held, progress=False)
    assert sol.info["fused_cpu_kernel"] and sol.steps == ref.steps
    _assert_close(sol.values, ref.values)
    np.testing.assert_array_equal(sol.values[0], held[0])
    np.testing.assert_array_equal(sol.values[:, :, -1], held[:, :, -1])


def test_not_used_where_it_does_not_apply() -> None:
    u = np.zeros((5, 5))
    assert not numba_available(u, "godunov", "eno2", None)
    assert not numba_available(u, "godunov", "first", [u, u])
    assert not numba_available(u.astype(np.int64), "godunov", "first", None)
    torch = pytest.importorskip("torch")
    assert not numba_available(torch.zeros(5, 5), "godunov", "first", None)
    grid = hs.Grid(-1.0, 1.0, 21)
    assert not hs.solve_hj(grid.coords[0] ** 2, grid, 0.1, accuracy="eno2", progress=False).info["fused_cpu_kernel"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_nan_reaches_the_rate_so_a_blow_up_is_reported(scheme) -> None:
    """As with the array code (``numpy.maximum`` propagates NaN), a NaN node makes the rate NaN."""
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (21, 21))
    u = grid.coords[0] ** 2 + 0.0 * grid.coords[1]
    u[7, 3] = np.nan
    rates = numba_rates(u, grid.spacing, "extrapolate", scheme)
    assert np.isnan(rates).all()
    op = HamiltonJacobiOperator(grid, scheme, "first", "extrapolate", 1.0, 0.5)
    with pytest.raises(FloatingPointError):
        op.step_for_rate(rate_sum(rates, grid.spacing))
