"""The fused GPU step of the first-order HJ scheme equals the array-API operator, node for node."""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers._fused_hj import axis_slopes, fused_available, fused_first_order_step
from hjsmooth.solvers.hj import HamiltonJacobiOperator
from hjsmooth.solvers.runge_kutta import forward_euler

from grid_strategies import periodic_field


def test_not_used_off_the_gpu() -> None:
    u = np.zeros((5, 5))
    assert not fused_available(u, "godunov", "first", None)


def test_slopes_give_the_operators_cfl_rate(rng: np.random.Generator) -> None:
    grid = hs.Grid((-1.0, -2.0), (1.0, 2.0), (17, 23))
    u = rng.standard_normal(grid.shape)
    for scheme in ("godunov", "lax_friedrichs"):
        for bc in ("extrapolate", "neumann", "periodic", "dirichlet"):
            op = HamiltonJacobiOperator(grid, scheme, "first", bc, 3.0, 0.5)
            field = u.copy()
            if bc == "periodic":
                field[-1], field[:, -1] = field[0], field[:, 0]
            _, rate = op.evaluate(field)
            slopes = axis_slopes(field, grid.spacing)
            assert sum(s / h for s, h in zip(slopes, grid.spacing)) == pytest.approx(rate, rel=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("scheme", ["godunov", "lax_friedrichs"])
@pytest.mark.parametrize("bc", ["extrapolate", "neumann", "periodic", "dirichlet"])
@pytest.mark.parametrize("shape", [(41,), (19, 23), (9, 11, 13)])
@pytest.mark.parametrize("rows", [1, 4])
def test_fused_step_equals_operator_step(backend, scheme: str, bc: str, shape: tuple, rows: int, rng) -> None:
    if backend.name not in ("cupy", "torch-cuda"):
        pytest.skip("the fused kernel runs on CUDA arrays")
    grid = hs.Grid([-1.0] * len(shape), [1.3] * len(shape), shape)
    u_np = rng.standard_normal(shape)
    if bc == "periodic":
        u_np = periodic_field(u_np)
    u = backend.asarray(u_np)
    assert fused_available(u, scheme, "first", None)
    op = HamiltonJacobiOperator(grid, scheme, "first", bc, 2.0, 0.5)
    dt = 0.3 * op.stable_dt(u_np)
    expected = forward_euler(u_np, dt, op.rhs)
    got = fused_first_order_step(u, dt, grid.spacing, op.nu, bc, scheme, axis_slopes(u, grid.spacing), rows=rows)
    assert backend.is_same_kind(got, u)
    np.testing.assert_allclose(backend.to_numpy(got)[(slice(1, -1),) * len(shape)] if bc == "dirichlet"
                               else backend.to_numpy(got),
                               expected[(slice(1, -1),) * len(shape)] if bc == "dirichlet" else expected,
                               rtol=0, atol=1e-12)


@pytest.mark.gpu
def test_solve_hj_on_the_gpu_uses_the_fused_kernel_and_matches_numpy(backend) -> None:
    if backend.name not in ("cupy", "torch-cuda"):
        pytest.skip("the fused kernel runs on CUDA arrays")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (65, 65))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    ref = hs.solve_hj(f, grid, 0.5, beta=5.0)
    sol = hs.solve_hj(backend.asarray(f), grid, 0.5, beta=5.0)
    assert sol.info["fused_gpu_kernel"] and not ref.info["fused_gpu_kernel"]
    assert sol.steps == ref.steps
    np.testing.assert_allclose(backend.to_numpy(sol.values), ref.values, rtol=0, atol=1e-10)
    single = hs.solve_hj(backend.asarray(f, dtype="float32"), grid, 0.5, beta=5.0)
    np.testing.assert_allclose(backend.to_numpy(single.values), ref.values, rtol=0, atol=1e-4)
