"""The fused GPU step of the Scharfetter-Gummel operator equals its array code (GPU only).

The kernel's logic is also tested without a GPU in tests/test_cuda_kernels_host.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import _fused_fp
from hjsmooth.solvers.fokker_planck import explicit_stepper, fokker_planck_operator, solve_fokker_planck


def test_not_used_off_the_gpu() -> None:
    grid = hs.Grid(-1.0, 1.0, 11)
    op = fokker_planck_operator(grid, potential=grid.axes[0] ** 2)
    assert not _fused_fp.cuda_fp_supports(op, np.ones(grid.shape))
    assert explicit_stepper(op, np.ones(grid.shape))[0] == "numba"


def cuda_only(backend) -> None:
    if backend.name not in ("cupy", "torch-cuda"):
        pytest.skip("the fused kernel runs on CUDA arrays")


@pytest.mark.gpu
@pytest.mark.parametrize("bc", ["reflecting", "periodic", "absorbing"])
@pytest.mark.parametrize("shape", [(41,), (19, 23), (9, 11, 13)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_step_equals_array_step(backend, bc: str, shape: tuple, dtype: str, rng) -> None:
    cuda_only(backend)
    grid = hs.Grid([-1.0] * len(shape), [1.2] * len(shape), shape)
    f = sum(np.sin(2.0 * xi + k) for k, xi in enumerate(grid.coords)) + 0.3 * rng.standard_normal(shape)
    rho_np = rng.uniform(0.1, 1.0, shape)
    rho = backend.asarray(rho_np, dtype=dtype)
    op = fokker_planck_operator(grid, rho, potential=f, beta=2.0, bc=bc)
    engine, stepper = explicit_stepper(op, rho)
    assert engine == "cuda"
    dt = 0.9 * op.stable_dt
    got = stepper.read(stepper.step(stepper.start(rho), dt))
    assert backend.is_same_kind(got, rho)
    expected = op.step(rho, dt)  # the array code
    tol = 1e-13 if dtype == "float64" else 4e-6
    np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(expected), rtol=0, atol=tol)


@pytest.mark.gpu
def test_explicit_solve_on_the_gpu_matches_numpy(backend) -> None:
    cuda_only(backend)
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (48, 40))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    rho0 = np.exp(-((x - 0.5) ** 2 + y**2))
    ref = solve_fokker_planck(rho0, grid, 0.3, potential=f, beta=1.5, diffusion=np.array([1.0, 0.5]),
                              method="explicit")
    sol = solve_fokker_planck(backend.asarray(rho0), grid, 0.3, potential=backend.asarray(f), beta=1.5,
                              diffusion=np.array([1.0, 0.5]), method="explicit")
    assert sol.info["engine"] == "cuda" and sol.steps == ref.steps
    np.testing.assert_allclose(backend.to_numpy(sol.values), ref.values, rtol=0, atol=1e-12)
    assert abs(sol.info["mass"] - sol.info["mass0"]) < 1e-12
