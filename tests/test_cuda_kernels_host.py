"""The CUDA kernel sources, run on the CPU (tests/cuda_host.py) and checked by nvcc.

Without a GPU these tests still check what the kernels compute: the launch configuration
and argument packing that the GPU path uses, node for node against the array code, every
scheme, boundary condition, dtype and strip length, and launch grids capped below the
array's extent so that the grid-stride loops run.  Where nvcc is installed, the device
compiler must accept each source, and the HJ kernel's PTX must hold no 64-bit integer
division (what made the earlier 1D launch slow).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import _cuda_kernels, _fused_hj
from hjsmooth.solvers._cuda_launch import launch_config
from hjsmooth.solvers.hj import HamiltonJacobiOperator
from hjsmooth.solvers.runge_kutta import forward_euler

from cuda_host import compile_host, compile_ptx, host_compiler, nvcc, ptx_function

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="needs a host C++ compiler")

DTYPES = ("float32", "float64")
HJ_ENTRIES = [(d, bc, s) for d in DTYPES for bc in ("extrapolate", "neumann", "periodic")
              for s in _fused_hj.FUSED_SCHEMES]


@pytest.fixture(scope="module")
def hj_kernels(tmp_path_factory):
    return compile_host(_fused_hj.kernel_source(*HJ_ENTRIES), tmp_path_factory.mktemp("hj_host"))


@pytest.fixture(scope="module")
def envelope_kernels(tmp_path_factory):
    source = "".join(_cuda_kernels.kernel_source(d) for d in DTYPES)
    return compile_host(source, tmp_path_factory.mktemp("envelope_host"))


def periodic_field(u: np.ndarray) -> np.ndarray:
    """``u`` with its last node along every axis set to its first (the HJ periodic convention)."""
    u = u.copy()
    for k in range(u.ndim):
        index = [slice(None)] * u.ndim
        index[k] = -1
        first = [slice(None)] * u.ndim
        first[k] = 0
        u[tuple(index)] = u[tuple(first)]
    return u


def host_step(kernels, u: np.ndarray, dt: float, spacing, nu: float, bc: str, scheme: str, slopes, rows: int,
              max_grid_yz: int = 65535) -> np.ndarray:
    """What ``fused_first_order_step`` launches, with numpy arrays and the host-compiled kernel."""
    grid, block, dims = launch_config(u.shape, rows, max_grid_yz)
    out = np.full_like(u, np.nan)
    scalar = np.float32 if u.dtype == np.float32 else np.float64
    code = "extrapolate" if bc == "dirichlet" else bc
    kernel = kernels[_fused_hj.kernel_name(u.dtype.name, code, scheme)]
    kernel(grid, block, _fused_hj.kernel_arguments(u, out, dims, rows, dt, spacing, nu, slopes, scalar, np.int32))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", _fused_hj.FUSED_SCHEMES)
@pytest.mark.parametrize("bc", ["extrapolate", "neumann", "periodic", "dirichlet"])
@pytest.mark.parametrize("shape", [(41,), (19, 23), (9, 11, 13), (3, 70)])
@pytest.mark.parametrize("rows", [1, 4])
def test_hj_kernel_equals_the_operator_step(hj_kernels, dtype, scheme, bc, shape, rows, rng) -> None:
    grid = hs.Grid([-1.0] * len(shape), [1.3] * len(shape), shape)
    u = rng.standard_normal(shape)
    if bc == "periodic":
        u = periodic_field(u)
    u = u.astype(dtype)
    op = HamiltonJacobiOperator(grid, scheme, "first", bc, 2.0, 0.5)
    dt = 0.3 * op.stable_dt(u)
    expected = forward_euler(u, dt, op.rhs)
    got = host_step(hj_kernels, u, dt, grid.spacing, op.nu, bc, scheme, _fused_hj.axis_slopes(u, grid.spacing), rows)
    assert got.dtype == u.dtype
    inner = (slice(1, -1),) * len(shape) if bc == "dirichlet" else ...  # the solver projects the Dirichlet edge
    scale = float(np.abs(expected).max())
    tol = 1e-13 * scale if dtype == "float64" else 4e-6 * scale
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0, atol=tol)


@pytest.mark.parametrize("shape,rows", [((9, 11, 13), 2), ((41,), 1), ((7, 300), 3)])
def test_hj_kernel_covers_the_array_when_the_launch_grid_is_capped(hj_kernels, shape, rows, rng) -> None:
    grid = hs.Grid([-1.0] * len(shape), [1.0] * len(shape), shape)
    u = rng.standard_normal(shape)
    op = HamiltonJacobiOperator(grid, "godunov", "first", "neumann", 1.0, 0.5)
    dt = 0.3 * op.stable_dt(u)
    launch, _, _ = launch_config(shape, rows, max_grid_yz=2)
    assert launch[1] <= 2 and launch[2] <= 2
    got = host_step(hj_kernels, u, dt, grid.spacing, op.nu, "neumann", "godunov", [0.0] * len(shape), rows,
                    max_grid_yz=2)
    np.testing.assert_allclose(got, forward_euler(u, dt, op.rhs), rtol=0, atol=1e-13)


def test_launch_config_puts_threads_on_the_contiguous_axis() -> None:
    grid, block, dims = launch_config((4096, 4096), rows=4)
    assert dims == (1, 4096, 4096) and block == (256, 1, 1) and grid == (16, 1024, 1)
    grid, block, dims = launch_config((13,))
    assert dims == (1, 1, 13) and block == (32, 1, 1) and grid == (1, 1, 1)
    grid, _, _ = launch_config((100_000, 3))
    assert grid == (1, 65535, 1)
    with pytest.raises(ValueError, match="rows"):
        launch_config((5, 5), rows=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("track", [False, True])
def test_lower_envelope_kernel_equals_brute_force(envelope_kernels, dtype, track, rng) -> None:
    n, lines, c = 37, 45, 0.37
    values = rng.standard_normal((n, lines)).astype(dtype)
    values[5] = values[6]  # ties
    scalar = np.dtype(dtype).type
    out = np.empty_like(values)
    argmin = np.full((n, lines) if track else (1,), -1, dtype=np.int64)
    stack = np.empty((n, lines), dtype=np.int32)
    stack_val = np.empty_like(values)
    cross = np.empty((n + 1, lines), dtype=dtype)
    threads = _cuda_kernels.THREADS
    envelope_kernels[f"lower_envelope_{dtype}"](
        ((lines + threads - 1) // threads,), (threads,),
        (values, out, argmin, stack, stack_val, cross, np.int64(n), np.int64(lines), scalar(c), scalar(np.inf),
         np.int32(track)),
    )
    p = np.arange(n)
    candidates = values[None, :, :] + (c * (p[:, None] - p[None, :]) ** 2).astype(dtype)[:, :, None]
    np.testing.assert_allclose(out, candidates.min(axis=1), rtol=0, atol=4 * np.finfo(dtype).eps * 8)
    if track:
        chosen = np.take_along_axis(candidates, argmin[:, None, :], axis=1)[:, 0, :]
        np.testing.assert_allclose(chosen, out, rtol=0, atol=4 * np.finfo(dtype).eps * 8)


needs_nvcc = pytest.mark.skipif(nvcc() is None, reason="needs nvcc")


@needs_nvcc
def test_nvcc_accepts_the_hj_kernels_and_they_do_no_64_bit_division(tmp_path) -> None:
    ptx = compile_ptx(_fused_hj.kernel_source(*HJ_ENTRIES), build_dir=tmp_path)
    for entry in HJ_ENTRIES:
        body = ptx_function(ptx, _fused_hj.kernel_name(*entry))
        assert "ld.global" in body and "st.global" in body
        assert not re.findall(r"\b(?:div|rem)\.[su]64\b", body), entry


@needs_nvcc
def test_nvcc_accepts_the_lower_envelope_kernels(tmp_path) -> None:
    ptx = compile_ptx("".join(_cuda_kernels.kernel_source(d) for d in DTYPES), build_dir=tmp_path)
    for dtype in DTYPES:
        assert "st.global" in ptx_function(ptx, f"lower_envelope_{dtype}")
