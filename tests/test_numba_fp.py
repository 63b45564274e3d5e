"""The fused numba step of the explicit Fokker-Planck scheme, and the default ``method="auto"``."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers.fokker_planck import explicit_stepper, fokker_planck_operator, solve_fokker_planck

from grid_strategies import fp_operator


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("coefficients", ["potential", "drift", "diffusion"])
@pytest.mark.parametrize("bc", ["reflecting", "periodic", "absorbing"])
@pytest.mark.parametrize("shape", [(41,), (19, 23), (9, 11, 13)])
def test_numba_step_equals_the_array_step(dtype, coefficients, bc, shape, rng) -> None:
    grid, op = fp_operator(shape, coefficients, bc, dtype, rng)
    rho = rng.uniform(0.1, 1.0, shape).astype(dtype)
    engine, stepper = explicit_stepper(op, rho)
    assert engine == "numba"
    dt = 0.9 * op.stable_dt
    got = stepper.read(stepper.step(stepper.start(rho), dt))
    expected = op.step(rho, dt)
    assert got.dtype == rho.dtype
    tol = 1e-14 if dtype == "float64" else 4e-6
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol * float(np.abs(expected).max()))
    if bc != "absorbing":  # every link moves mass from cell to cell, formed alike at both ends
        assert abs(float(got.sum(dtype=np.float64)) - float(rho.sum(dtype=np.float64))) <= 50 * tol * rho.size


def test_mixed_derivative_links_take_the_array_engine() -> None:
    grid = hs.Grid([-1.0, -1.0], [1.0, 1.0], (9, 9))
    op = fokker_planck_operator(grid, diffusion=np.array([[1.0, 0.3], [0.3, 1.0]]))
    assert explicit_stepper(op, np.ones(grid.shape))[0] == "array"


def test_steps_allocate_nothing_of_the_grids_size(rng) -> None:
    _, op = fp_operator((150, 140), "potential", "reflecting", "float64", rng)
    rho = rng.uniform(0.1, 1.0, (150, 140))
    _, stepper = explicit_stepper(op, rho)
    state = stepper.step(stepper.start(rho), 0.5 * op.stable_dt)
    tracemalloc.start()
    try:
        for _ in range(5):
            state = stepper.step(state, 0.5 * op.stable_dt)
            assert any(state is b for b in stepper.buffers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < rho.nbytes / 8, peak


def _ou(n: int):
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (n, n))
    x, y = grid.coords
    rho0 = np.exp(-((x - 0.8) ** 2 + (y + 0.5) ** 2) / 0.1)
    return grid, rho0, 0.5 * (x**2 + y**2)


def test_auto_marches_explicitly_when_the_positivity_bound_allows_few_steps() -> None:
    grid, rho0, f = _ou(40)
    sol = solve_fokker_planck(rho0, grid, 0.5, potential=f)
    assert sol.info["method"] == "explicit" and sol.info["engine"] == "numba"
    ref = solve_fokker_planck(rho0, grid, 0.5, potential=f, method="explicit")
    np.testing.assert_array_equal(sol.values, ref.values)


def test_auto_takes_tr_bdf2_for_long_stiff_runs() -> None:
    grid, rho0, f = _ou(40)
    sol = solve_fokker_planck(rho0, grid, 200.0, potential=f)  # ~1e5 explicit steps
    assert sol.info["method"] == "tr_bdf2" and sol.info["rtol"] == 1e-4 and sol.steps < 200  # error-controlled
    gibbs = hs.fokker_planck_steady_state(grid, potential=f)
    np.testing.assert_allclose(sol.values / grid.integrate(sol.values), gibbs, rtol=0, atol=1e-8 * gibbs.max())


def test_auto_threshold_grows_with_the_cost_of_a_factorisation() -> None:
    """About 5000 explicit passes are a long march on 40^2 (more than 100 n = 4000: TR-BDF2 is cheaper)
    while 1400 passes on 15^3 are a short one (TR-BDF2's 3D factorisations cost ~n^3 passes each)."""
    grid, rho0, f = _ou(40)
    sol = solve_fokker_planck(rho0, grid, 50.0, potential=f, save_at=[1e-3])
    assert sol.info["method"] == "tr_bdf2"  # 2D: ~4900 passes
    cube = hs.Grid((-3.0,) * 3, (3.0,) * 3, (15,) * 3)
    x, y, z = cube.coords
    sol = solve_fokker_planck(np.exp(-(x**2 + y**2 + z**2)), cube, 60.0, potential=0.5 * (x**2 + y**2 + z**2),
                              save_at=[1e-3])
    assert sol.info["method"] == "explicit" and 40 * 15 < sol.steps < 3 * 15**3  # 3D: explicit up to 3 n^3


@pytest.mark.parametrize("engine", ["default", "array"])
def test_backends_agree_with_either_engine(backend, engine, monkeypatch) -> None:
    """numpy's default engine against every backend with its default engine and with the array code."""
    grid, rho0, f = _ou(24)
    ref = solve_fokker_planck(rho0, grid, 0.2, potential=f, method="explicit", save_at=2)
    if engine == "array":
        monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
        monkeypatch.setitem(kernels._PACKAGES, "cuda", lambda: False)
    sol = solve_fokker_planck(backend.asarray(rho0), grid, 0.2, potential=backend.asarray(f), method="explicit",
                              save_at=2)
    assert backend.is_same_kind(sol.values, backend.asarray(rho0)) and sol.steps == ref.steps
    assert engine == "default" or sol.info["engine"] == "array"
    np.testing.assert_allclose(backend.to_numpy(sol.values), ref.values, rtol=0, atol=1e-10 * ref.values.max())
    np.testing.assert_allclose(backend.to_numpy(sol.snapshots), ref.snapshots, rtol=0, atol=1e-10 * ref.values.max())
