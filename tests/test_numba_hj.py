"""The fused numba stages of the three-point HJ schemes equal the array-API operator.

The kernels form every node with the operations of ``HamiltonJacobiOperator.evaluate`` but sum
the axis terms in another order (and may contract multiply-adds), so they agree with the array
code to rounding: the tolerances are 1e-13 of the data's scale in float64 and 1e-5 relative in
float32 per step.
"""

from __future__ import annotations

import tracemalloc

import numba
import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers._numba_hj import NumbaHJStepper, numba_supports
from hjsmooth.solvers.hj import HamiltonJacobiOperator, _dirichlet_projection, _initial_state
from hjsmooth.solvers.runge_kutta import ssp_step

SCHEMES = ["godunov", "engquist_osher", "lax_friedrichs", "hybrid"]
BCS = ["extrapolate", "neumann", "periodic", "dirichlet"]
SHAPES = [(41,), (19, 23), (9, 11, 13)]


def _case(shape: tuple, dtype: type, bc: str, rng: np.random.Generator):
    """Random non-convex data (and held values for Dirichlet), prepared as solve_hj prepares them."""
    grid = hs.Grid([-1.0] * len(shape), [1.3 + 0.2 * k for k in range(len(shape))], shape)
    u = _initial_state(rng.standard_normal(shape).astype(dtype), bc)
    held = rng.standard_normal(shape).astype(dtype) if bc == "dirichlet" else None
    project = _dirichlet_projection(u, bc, held)
    return grid, project(u), project


def _assert_close(got: np.ndarray, expected: np.ndarray, steps: int = 1) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    scale = float(np.max(np.abs(expected)))
    if got.dtype == np.float64:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * steps * scale)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * steps * scale)


def _stepper(u, grid, op, project):
    held = project.held if op.bc == "dirichlet" else None
    return NumbaHJStepper(u, grid.spacing, op.nu, op.bc, op.scheme, op.method, op.step_for_rate, held)


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_fused_step_and_cfl_step_equal_the_operator(shape, bc, scheme, dtype, rng) -> None:
    grid, u, project = _case(shape, dtype, bc, rng)
    assert numba_supports(u, scheme, "first", None)
    for beta in (2.0, float("inf")):
        op = HamiltonJacobiOperator(grid, scheme, "first", bc, beta, 0.5)
        stepper = _stepper(u, grid, op, project)
        state = stepper.start(u)
        dt = stepper.stable_dt(state)
        assert dt == pytest.approx(op.stable_dt(u), rel=1e-6 if dtype == np.float32 else 1e-13)
        expected = ssp_step(u, dt, op.rhs, op.method, project)
        got = stepper.read(stepper.step(state, dt))
        _assert_close(got, expected, len(op.method.stages))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(beta=5.0, scheme="godunov", bc="extrapolate", dtype=np.float64),
        dict(beta=5.0, scheme="hybrid", bc="extrapolate", dtype=np.float32),
        dict(beta=float("inf"), scheme="lax_friedrichs", bc="periodic", dtype=np.float64),
        dict(beta=2.0, scheme="engquist_osher", bc="neumann", dtype=np.float64),
        dict(beta=2.0, scheme="auto", bc="dirichlet", dtype=np.float64, bc_value=0.3),
    ],
    ids=["godunov-f64", "hybrid-f32", "lf-periodic-inviscid", "eo-neumann", "auto-dirichlet"],
)
def test_solve_hj_takes_the_numba_engine_and_matches_the_array_engine(kwargs, monkeypatch) -> None:
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 37))
    x, y = grid.coords
    f = (np.cos(3 * x) * np.sin(2 * y) + 0.25 * (x**2 + y**2)).astype(dtype)  # non-convex
    args = dict(f=f, grid=grid, t=0.3, save_at=3, progress=False, **kwargs)
    fused = hs.solve_hj(**args)
    monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
    generic = hs.solve_hj(**args)
    assert fused.info["engine"] == "numba" and generic.info["engine"] == "array"
    assert fused.steps == generic.steps and fused.info["min_dt"] == pytest.approx(generic.info["min_dt"], rel=1e-6)
    assert fused.values.dtype == dtype and fused.snapshots.dtype == dtype
    _assert_close(fused.values, generic.values, fused.steps)
    _assert_close(fused.snapshots, generic.snapshots, fused.steps)


def test_dirichlet_array_values_are_held_by_the_kernel(rng) -> None:
    grid = hs.Grid((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (9, 10, 11))
    f = rng.standard_normal(grid.shape)
    held = rng.standard_normal(grid.shape)
    sol = hs.solve_hj(f, grid, 0.05, beta=4.0, bc="dirichlet", bc_value=held, progress=False)
    assert sol.info["fused_cpu_kernel"]
    np.testing.assert_array_equal(sol.values[0], held[0])
    np.testing.assert_array_equal(sol.values[:, :, -1], held[:, :, -1])
    np.testing.assert_array_equal(sol.values[:, 0, :], held[:, 0, :])


def test_result_does_not_depend_on_the_thread_count(rng, monkeypatch) -> None:
    monkeypatch.setattr(kernels, "NODES_PER_THREAD", 16)  # let this small grid use every thread
    grid, u, project = _case((33, 29), np.float64, "neumann", rng)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            for scheme in SCHEMES:
                op = HamiltonJacobiOperator(grid, scheme, "first", "neumann", 3.0, 0.5)
                stepper = _stepper(u, grid, op, project)
                assert stepper.threads.threads == threads
                state = stepper.start(u)
                dt = stepper.stable_dt(state)
                results.append((scheme, dt, stepper.read(stepper.step(state, dt))))
    finally:
        numba.set_num_threads(before)
    for scheme, dt, out in results:
        first = next(r for r in results if r[0] == scheme)
        assert dt == first[1]
        np.testing.assert_array_equal(out, first[2])


def test_steps_allocate_nothing_of_the_grids_size(rng) -> None:
    """The stages run on three buffers made once: a step returns one of them and allocates no grid."""
    grid, u, project = _case((129, 127), np.float64, "extrapolate", rng)
    op = HamiltonJacobiOperator(grid, "hybrid", "first", "extrapolate", 3.0, 0.9)
    stepper = _stepper(u, grid, op, project)
    state = stepper.start(u)
    state = stepper.step(state, stepper.stable_dt(state))  # compiled and warm
    tracemalloc.start()
    try:
        for _ in range(5):
            state = stepper.step(state, stepper.stable_dt(state))
            assert any(state is b for b in stepper.buffers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < u.nbytes / 8, peak


def test_torch_cpu_runs_the_numba_engine_and_equals_numpy() -> None:
    torch = pytest.importorskip("torch")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (33, 31))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    ref = hs.solve_hj(f, grid, 0.3, beta=4.0)
    sol = hs.solve_hj(torch.as_tensor(f), grid, 0.3, beta=4.0)
    assert sol.info["engine"] == "numba" and isinstance(sol.values, torch.Tensor)
    assert sol.values.dtype == torch.float64
    np.testing.assert_array_equal(sol.values.numpy(), ref.values)


def test_not_used_where_it_does_not_apply() -> None:
    u = np.zeros((5, 5))
    assert not numba_supports(u, "godunov", "eno2", None)
    assert not numba_supports(u, "godunov", "first", [u, u])
    assert not numba_supports(u.astype(np.int64), "godunov", "first", None)
    grid = hs.Grid(-1.0, 1.0, 21)
    assert hs.solve_hj(grid.coords[0] ** 2, grid, 0.1, accuracy="eno2", progress=False).info["engine"] == "array"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_nan_reaches_the_rate_so_a_blow_up_is_reported(scheme) -> None:
    """As with the array code (``numpy.maximum`` propagates NaN), a NaN node makes the step fail."""
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (21, 21))
    u = grid.coords[0] ** 2 + 0.0 * grid.coords[1]
    u[7, 3] = np.nan
    op = HamiltonJacobiOperator(grid, scheme, "first", "extrapolate", 1.0, 0.5)
    stepper = _stepper(u, grid, op, _dirichlet_projection(u, "extrapolate", None))
    with pytest.raises(FloatingPointError):
        stepper.stable_dt(stepper.start(u))
