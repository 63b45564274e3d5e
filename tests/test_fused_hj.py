"""The fused GPU stage of the three-point HJ schemes equals the array-API operator, node for node.

The kernel's logic is also tested without a GPU in tests/test_cuda_kernels_host.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers._fused_hj import FUSED_SCHEMES, axis_slopes, cfl_rate, cuda_supports, fused_stage
from hjsmooth.solvers.hj_operator import HamiltonJacobiOperator
from hjsmooth.solvers.hj_stepping import HJCase
from hjsmooth.solvers.runge_kutta import SSP_METHODS, rk_step

from grid_strategies import periodic_field


def test_not_used_off_the_gpu() -> None:
    u = np.zeros((5, 5))
    op = HamiltonJacobiOperator(hs.Grid((0.0, 0.0), (1.0, 1.0), (5, 5)), "godunov", "first", "extrapolate", 2.0, 0.5)
    assert not cuda_supports(HJCase(op, None), u)
    assert hs.solve_hj(u, hs.Grid((0.0, 0.0), (1.0, 1.0), (5, 5)), 0.1, beta=2.0).info["engine"] != "cuda"


def test_slopes_give_the_operators_cfl_rate(rng: np.random.Generator) -> None:
    grid = hs.Grid((-1.0, -2.0), (1.0, 2.0), (17, 23))
    u = rng.standard_normal(grid.shape)
    for scheme in FUSED_SCHEMES:
        for bc in ("extrapolate", "neumann", "periodic", "dirichlet"):
            op = HamiltonJacobiOperator(grid, scheme, "first", bc, 3.0, 0.5)
            field = periodic_field(u) if bc == "periodic" else u
            _, rate = op.evaluate(field)
            bound = cfl_rate(axis_slopes(field, grid.spacing), grid.spacing, op.nu, scheme)
            if scheme == "engquist_osher":
                assert rate <= bound
            else:
                assert bound == pytest.approx(rate, rel=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("scheme", FUSED_SCHEMES)
@pytest.mark.parametrize("bc", ["extrapolate", "neumann", "periodic", "dirichlet"])
@pytest.mark.parametrize("shape", [(41,), (19, 23), (9, 11, 13)])
@pytest.mark.parametrize("rows", [1, 4])
def test_fused_stage_equals_operator_step(backend, scheme: str, bc: str, shape: tuple, rows: int, rng) -> None:
    if backend.name not in ("cupy", "torch-cuda"):
        pytest.skip("the fused kernel runs on CUDA arrays")
    import cupy

    from hjsmooth.backend import to_cupy

    grid = hs.Grid([-1.0] * len(shape), [1.3] * len(shape), shape)
    u_np = rng.standard_normal(shape)
    if bc == "periodic":
        u_np = periodic_field(u_np)
    u = backend.asarray(u_np)
    op = HamiltonJacobiOperator(grid, scheme, "first", bc, 2.0, 0.5)
    assert cuda_supports(HJCase(op, None), u)
    dt = 0.3 * op.stable_dt(u_np)
    expected = rk_step(u_np, dt, op.rhs, SSP_METHODS['euler'])
    cu = cupy.ascontiguousarray(to_cupy(u))
    got = cupy.asnumpy(fused_stage(cu, cu, cupy.empty_like(cu), (0.0, 1.0, dt), grid.spacing, op.nu, bc, scheme,
                                   axis_slopes(cu, grid.spacing), rows=rows))
    inner = (slice(1, -1),) * len(shape) if bc == "dirichlet" else ...
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("scheme", ["godunov", "hybrid"])
def test_solve_hj_on_the_gpu_uses_the_fused_kernel_and_matches_numpy(backend, scheme) -> None:
    if backend.name not in ("cupy", "torch-cuda"):
        pytest.skip("the fused kernel runs on CUDA arrays")
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (65, 65))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    ref = hs.solve_hj(f, grid, 0.5, beta=5.0, scheme=scheme)
    sol = hs.solve_hj(backend.asarray(f), grid, 0.5, beta=5.0, scheme=scheme)
    assert sol.info["engine"] == "cuda" and ref.info["engine"] != "cuda"
    assert backend.is_same_kind(sol.values, backend.asarray(f))
    assert sol.steps == ref.steps
    np.testing.assert_allclose(backend.to_numpy(sol.values), ref.values, rtol=0, atol=1e-10)
    single = hs.solve_hj(backend.asarray(f, dtype="float32"), grid, 0.5, beta=5.0, scheme=scheme)
    np.testing.assert_allclose(backend.to_numpy(single.values), ref.values, rtol=0, atol=1e-4)
