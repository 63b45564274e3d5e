"""The fused numba stages of the HJ schemes (three-point, ENO2, WENO5) equal the array-API operator.

The kernels form every node with the operations of ``HamiltonJacobiOperator.evaluate`` but sum
the terms in another order, group some factors differently (WENO5's weights with one division)
and may contract multiply-adds, so they agree with the array code to rounding: the tolerances
are 1e-13 of the data's scale in float64 per Runge-Kutta stage (at most 1e-12 per step) and 1e-5
relative in float32.
"""

from __future__ import annotations

import tracemalloc

import numba
import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers._numba_hj import NumbaHJStepper, float_grid, numba_supports
from hjsmooth.solvers.hj_operator import HamiltonJacobiOperator, method_for
from hjsmooth.solvers.hj_stepping import HJCase, initial_state, stage_projection
from hjsmooth.solvers.runge_kutta import rk_step

from grid_strategies import periodic_field

SCHEMES = ["godunov", "engquist_osher", "lax_friedrichs", "hybrid"]
BCS = ["extrapolate", "neumann", "periodic", "dirichlet"]
SHAPES = [(41,), (19, 23), (9, 11, 13)]
#: every (scheme, stencil) pair solve_hj accepts: the hybrid scheme is three-point only
PAIRS = [(scheme, "first") for scheme in SCHEMES] + [
    (scheme, accuracy) for accuracy in ("eno2", "weno5") for scheme in SCHEMES if scheme != "hybrid"]
PAIR_IDS = [f"{scheme}-{accuracy}" for scheme, accuracy in PAIRS]


def _case(shape: tuple, dtype: type, bc: str, rng: np.random.Generator):
    """Random non-convex data (and held values for Dirichlet), prepared as solve_hj prepares them."""
    grid = hs.Grid([-1.0] * len(shape), [1.3 + 0.2 * k for k in range(len(shape))], shape)
    u = initial_state(rng.standard_normal(shape).astype(dtype), bc)
    held = rng.standard_normal(shape).astype(dtype) if bc == "dirichlet" else None
    project = stage_projection(u, bc, held)
    return grid, project(u), project


def _assert_close(got: np.ndarray, expected: np.ndarray, steps: int = 1) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    scale = float(np.max(np.abs(expected)))
    if got.dtype == np.float64:
        np.testing.assert_allclose(got, expected, rtol=0, atol=min(1e-13 * steps, 1e-12) * scale)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * steps * scale)


def _stepper(u, grid, op, project):
    held = project.held if op.bc[0] == "dirichlet" else None
    return NumbaHJStepper(u, grid.spacing, op.nu, op.bc, op.scheme, op.method, op.step_for_rate, held, op.accuracy)


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("scheme, accuracy", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_fused_step_and_cfl_step_equal_the_operator(shape, bc, scheme, accuracy, dtype, rng) -> None:
    """One step, CFL step included, of every scheme and stencil on every boundary rule, 1D-3D,
    both dtypes; two steps, so that the second starts from a state the kernels wrote."""
    grid, u, project = _case(shape, dtype, bc, rng)
    for beta in (2.0, float("inf")):
        op = HamiltonJacobiOperator(grid, scheme, accuracy, bc, beta, 0.5)
        assert numba_supports(HJCase(op, project), u)
        stepper = _stepper(u, grid, op, project)
        state = stepper.start(u)
        expected = u
        for _ in range(2):
            dt = stepper.stable_dt(state)
            assert dt == pytest.approx(op.stable_dt(expected), rel=1e-6 if dtype == np.float32 else 1e-13)
            expected = rk_step(expected, dt, op.rhs, op.method, project)
            state = stepper.step(state, dt)
            _assert_close(stepper.read(state), expected, op.method.stage_count)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(beta=5.0, scheme="godunov", bc="extrapolate", dtype=np.float64),
        dict(beta=5.0, scheme="hybrid", bc="extrapolate", dtype=np.float32),
        dict(beta=float("inf"), scheme="lax_friedrichs", bc="periodic", dtype=np.float64),
        dict(beta=2.0, scheme="engquist_osher", bc="neumann", dtype=np.float64),
        dict(beta=2.0, scheme="auto", bc="dirichlet", dtype=np.float64, bc_value=0.3),
        dict(beta=5.0, scheme="godunov", accuracy="eno2", bc="extrapolate", dtype=np.float64),
        dict(beta=float("inf"), scheme="lax_friedrichs", accuracy="eno2", bc="periodic", dtype=np.float32),
        dict(beta=4.0, scheme="engquist_osher", accuracy="weno5", bc="neumann", dtype=np.float64),
        dict(beta=float("inf"), scheme="lax_friedrichs", accuracy="weno5", bc="periodic", dtype=np.float64),
        dict(beta=2.0, scheme="godunov", accuracy="weno5", bc="dirichlet", dtype=np.float32, bc_value=0.3),
    ],
    ids=["godunov-f64", "hybrid-f32", "lf-periodic-inviscid", "eo-neumann", "auto-dirichlet", "eno2-godunov",
         "eno2-lf-periodic-f32", "weno5-eo-neumann", "weno5-lf-periodic-inviscid", "weno5-dirichlet-f32"],
)
def test_solve_hj_takes_the_numba_engine_and_matches_the_array_engine(kwargs, monkeypatch) -> None:
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 37))
    x, y = grid.coords
    f = np.cos(3 * x) * np.sin(2 * y) + 0.25 * (x**2 + y**2)  # non-convex
    if kwargs["bc"] == "periodic":
        f = periodic_field(f)
    args = dict(f=f.astype(dtype), grid=grid, t=0.3, save_at=3, progress=False, **kwargs)
    fused = hs.solve_hj(**args)
    monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
    generic = hs.solve_hj(**args)
    assert fused.info["engine"] == "numba" and generic.info["engine"] == "array"
    assert fused.steps == generic.steps
    assert fused.info["min_dt"] == pytest.approx(generic.info["min_dt"], rel=1e-12 if dtype == np.float64 else 1e-4)
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


@pytest.mark.parametrize("scheme, accuracy", [("hybrid", "first"), ("godunov", "eno2"), ("engquist_osher", "weno5"),
                                              ("lax_friedrichs", "weno5")])
def test_steps_allocate_nothing_of_the_grids_size(scheme, accuracy, rng) -> None:
    """The stages run on buffers made once: a step returns one of them and allocates no grid."""
    grid, u, project = _case((129, 127), np.float64, "extrapolate", rng)
    op = HamiltonJacobiOperator(grid, scheme, accuracy, "extrapolate", 3.0, 0.5)
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
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), u.shape)

    def case(accuracy, shift=None, integrator="auto"):
        op = HamiltonJacobiOperator(grid, "godunov", accuracy, "extrapolate", 1.0, 0.5, shift=shift,
                                    method=method_for("godunov", accuracy, integrator))
        return HJCase(op, lambda v: v)

    for accuracy in ("first", "eno2", "weno5"):
        assert numba_supports(case(accuracy), u)
        assert not numba_supports(case(accuracy, [u, u]), u)  # the HJB solver's shifted Hamiltonian
        assert numba_supports(case(accuracy, integrator="ssp33"), u)
    assert not numba_supports(case("first", integrator="rk5"), u)  # Butcher form: ENO2/WENO5 kernels only
    assert numba_supports(case("eno2", integrator="rk5"), u)
    assert not numba_supports(case("first"), u.astype(np.int64))
    assert not float_grid(np.zeros((3, 3, 3, 3)))  # 1 to 3 axes only
    grid = hs.Grid(-1.0, 1.0, 21)
    for accuracy in ("eno2", "weno5"):
        assert hs.solve_hj(grid.coords[0] ** 2, grid, 0.1, accuracy=accuracy, progress=False).info["engine"] == "numba"


@pytest.mark.parametrize("bc", ["periodic", "neumann"])
def test_an_axis_too_short_for_the_stencil_is_refused_as_by_the_array_code(bc) -> None:
    u = np.zeros((3, 9))
    grid = hs.Grid((0.0, 0.0), (1.0, 1.0), u.shape)
    with pytest.raises(ValueError, match="needs at least 4 nodes per axis, got 3"):
        NumbaHJStepper(u, grid.spacing, 0.0, bc, "godunov", method_for("godunov", "weno5"), lambda r: 1.0,
                       accuracy="weno5")
    with pytest.raises(ValueError, match="needs at least 4 nodes per axis, got 3"):
        hs.solve_hj(u, grid, 0.1, accuracy="weno5", bc=bc)


@pytest.mark.parametrize("scheme, accuracy", PAIRS, ids=PAIR_IDS)
def test_a_nan_reaches_the_rate_so_a_blow_up_is_reported(scheme, accuracy) -> None:
    """As with the array code (``numpy.maximum`` propagates NaN), a NaN node makes the step fail."""
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (21, 21))
    u = grid.coords[0] ** 2 + 0.0 * grid.coords[1]
    u[7, 3] = np.nan
    op = HamiltonJacobiOperator(grid, scheme, accuracy, "extrapolate", 1.0, 0.5)
    stepper = _stepper(u, grid, op, stage_projection(u, "extrapolate", None))
    with pytest.raises(FloatingPointError):
        stepper.stable_dt(stepper.start(u))


# ----------------------------------------------------------------------------- ENO2 / WENO5 on degenerate data


@pytest.mark.parametrize("accuracy", ["eno2", "weno5"])
@pytest.mark.parametrize("dtype, value", [(np.float64, v) for v in (0.0, 2.5, -1e-300, 1e300)]
                         + [(np.float32, v) for v in (0.0, -1e-38, 1e36)])
def test_constant_fields_stay_exactly_constant_through_the_fused_stencils(accuracy, dtype, value) -> None:
    """Zero differences everywhere: the WENO5 scale is then 1 and every smoothness indicator 0, so the
    weights are the optimal ones (never 0/0) and u stays exactly constant, viscous or not."""
    grid = hs.Grid((0.0, 0.0), (1.0, 1.0), (9, 7))
    for beta in (4.0, float("inf")):
        sol = hs.solve_hj(np.full(grid.shape, value, dtype=dtype), grid, 1.0, beta=beta, accuracy=accuracy)
        assert sol.info["engine"] == "numba" and sol.values.dtype == dtype
        np.testing.assert_array_equal(sol.values, np.asarray(value, dtype=dtype))


@pytest.mark.parametrize("shape", [(41, 9), (41, 3)])
@pytest.mark.parametrize("scheme", ["godunov", "lax_friedrichs", "engquist_osher"])
def test_fused_weno5_on_a_field_constant_along_an_axis(shape, scheme) -> None:
    """2D f = x^2 is flat along y (a 3-node y axis included): the fused solve is the 1D solve on every
    line and equals the array code."""
    grid = hs.Grid((-2.0, -1.0), (2.0, 1.0), shape)
    f = grid.coords[0] ** 2
    sol = hs.solve_hj(f, grid, 0.5, scheme=scheme, accuracy="weno5")
    line = hs.solve_hj(grid.axes[0] ** 2, hs.Grid(-2.0, 2.0, shape[0]), 0.5, scheme=scheme, accuracy="weno5")
    assert sol.info["engine"] == "numba" == line.info["engine"]
    np.testing.assert_allclose(sol.values, np.broadcast_to(line.values[:, None], shape), rtol=0, atol=1e-14)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(kernels._PACKAGES, "numba", lambda: False)
        generic = hs.solve_hj(f, grid, 0.5, scheme=scheme, accuracy="weno5")
    assert generic.info["engine"] == "array" and generic.steps == sol.steps
    np.testing.assert_allclose(sol.values, generic.values, rtol=0, atol=1e-12 * float(np.abs(generic.values).max()))


@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_fused_weno5_is_scale_invariant(scale, rng) -> None:
    """The smoothness weights see the differences divided by their largest magnitude, so one fused step
    of c u is c times that of u (to rounding), for tiny and huge c alike: no underflow to 0/0."""
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (23, 19))
    x, y = grid.coords
    u = np.sin(3.0 * x) * np.cos(2 * y) + np.abs(x - 0.1)  # smooth, with a kink
    op = HamiltonJacobiOperator(grid, "godunov", "weno5", "extrapolate", float("inf"), 0.5)
    project = stage_projection(u, "extrapolate", None)
    results = []
    for c in (1.0, scale):
        stepper = _stepper(c * u, grid, op, project)
        state = stepper.start(c * u)
        rates = stepper.axis_rates(state).copy()
        results.append((rates / c, stepper.read(stepper.step(state, 0.01 / c)) / c))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- ENO2 / WENO5 orders


def _inviscid_sin(x: np.ndarray, t: float) -> np.ndarray:
    """``u_t + u_x^2 / 2 = 0``, ``u(x, 0) = sin x`` before the first shock (t < 1): along the
    characteristic from ``y``, ``x = y + t cos y`` and ``u = sin y + t cos^2 y / 2``."""
    y = x.copy()
    for _ in range(60):
        y = y - (y + t * np.cos(y) - x) / (1.0 - t * np.sin(y))
    return np.sin(y) + 0.5 * t * np.cos(y) ** 2


@pytest.mark.parametrize("accuracy, resolutions, low, high", [("eno2", (40, 80, 160), 1.85, 2.3),
                                                               ("weno5", (80, 160, 320), 4.7, 5.5)])
def test_fused_stencils_converge_at_their_order_in_space(accuracy, resolutions, low, high) -> None:
    """Periodic u_t + u_x^2 / 2 = 0 from sin x to t = 0.5 (smooth, before the shock at t = 1), with
    time steps small enough that the Runge-Kutta error (order 2 / 3) stays below the space error:
    dt = h / 4 for ENO2 (Heun: dt^2 ~ h^2 / 16) and dt = h^(5/3) / 4 for WENO5 (TVD RK3: dt^3 ~ h^5;
    a four times smaller dt changes the WENO5 errors by less than 3%).  Jiang-Peng weights lose
    accuracy where u_xx = 0 until the grid resolves it: the WENO5 orders are 4.1, 4.3, 5.1 from
    40 to 320 nodes, so the order is read from the two finest grids."""
    errors = []
    for n in resolutions:
        grid = hs.Grid(0.0, 2.0 * np.pi, n + 1)
        x = grid.axes[0]
        h = grid.spacing[0]
        dt = h / 4 if accuracy == "eno2" else h ** (5 / 3) / 4
        sol = hs.solve_hj(np.sin(x), grid, 0.5, scheme="godunov", accuracy=accuracy, bc="periodic", dt=dt)
        assert sol.info["engine"] == "numba" and sol.info["min_dt"] <= dt
        errors.append(float(np.max(np.abs(sol.values - _inviscid_sin(x, 0.5)))))
    orders = [np.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert low < orders[-1] < high, (errors, orders)
