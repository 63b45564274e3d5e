"""The CUDA kernel sources, run on the CPU (tests/cuda_host.py) and checked by nvcc.

Without a GPU these tests still check what the kernels compute: the launch configuration
and argument packing that the GPU path uses, node for node against the array code, every
scheme, boundary condition, dtype and strip length, and launch grids capped below the
array's extent so that the grid-stride loops run.  Where nvcc is installed, the device
compiler must accept each source, and the HJ kernel's PTX must hold no 64-bit integer
division (what made the earlier 1D launch slow).
"""

from __future__ import annotations

import importlib.machinery
import re
import sys
import types

import numpy as np
import pytest

import hjsmooth as hs
import hjsmooth.solvers.fokker_planck as fp
from hjsmooth.solvers import _cuda_kernels, _fused_fp, _fused_hj, kernels
from hjsmooth.solvers._cuda_launch import launch_config, raw_kernel
from hjsmooth.solvers.hj_operator import HamiltonJacobiOperator
from hjsmooth.solvers.hj_stepping import HJCase
from hjsmooth.solvers.runge_kutta import SSP_METHODS, rk_step

from cuda_host import compile_host, compile_ptx, host_compiler, nvcc, ptx_function
from grid_strategies import fp_operator, periodic_field

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="needs a host C++ compiler")

DTYPES = ("float32", "float64")
HJ_ENTRIES = [(d, bc, s) for d in DTYPES for bc in ("extrapolate", "neumann", "periodic")
              for s in _fused_hj.FUSED_SCHEMES]


@pytest.fixture(scope="module")
def hj_kernels(tmp_path_factory):
    return compile_host(_fused_hj.kernel_source(*HJ_ENTRIES), tmp_path_factory.mktemp("hj_host"))


@pytest.fixture(scope="module")
def envelope_kernels(tmp_path_factory):
    return compile_host(_cuda_kernels.kernel_source(*DTYPES), tmp_path_factory.mktemp("envelope_host"))


def host_step(kernels, u: np.ndarray, dt: float, spacing, nu: float, bc: str, scheme: str, slopes, rows: int,
              max_grid_yz: int = 65535, u0: np.ndarray | None = None, weights=(0.0, 1.0)) -> np.ndarray:
    """What ``fused_stage`` launches, with numpy arrays and the host-compiled kernel:
    ``a u0 + b (u + dt L(u))`` for ``weights = (a, b)`` (forward Euler by default)."""
    grid, block, dims = launch_config(u.shape, rows, max_grid_yz)
    out = np.full_like(u, np.nan)
    scalar = np.float32 if u.dtype == np.float32 else np.float64
    code = "extrapolate" if bc == "dirichlet" else bc
    kernel = kernels[_fused_hj.kernel_name(u.dtype.name, code, scheme)]
    stage = (*weights, dt)
    kernel(grid, block, _fused_hj.kernel_arguments(u, u if u0 is None else u0, out, dims, rows, spacing, nu, slopes,
                                                   stage, scalar, np.int32))
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
    expected = rk_step(u, dt, op.rhs, SSP_METHODS['euler'])
    got = host_step(hj_kernels, u, dt, grid.spacing, op.nu, bc, scheme, _fused_hj.axis_slopes(u, grid.spacing), rows)
    assert got.dtype == u.dtype
    inner = (slice(1, -1),) * len(shape) if bc == "dirichlet" else ...  # the solver projects the Dirichlet edge
    scale = float(np.abs(expected).max())
    tol = 1e-13 * scale if dtype == "float64" else 4e-6 * scale
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0, atol=tol)
    _, rate = op.evaluate(u)
    bound = _fused_hj.cfl_rate(_fused_hj.axis_slopes(u, grid.spacing), grid.spacing, op.nu, scheme)
    if scheme == "engquist_osher":  # a bound
        assert rate <= bound * (1 + 1e-6)
    else:
        assert bound == pytest.approx(rate, rel=1e-6 if dtype == "float32" else 1e-13)


@pytest.mark.parametrize("scheme", _fused_hj.FUSED_SCHEMES)
def test_hj_kernel_runs_a_runge_kutta_stage(hj_kernels, scheme, rng) -> None:
    """``a u0 + b (u + dt L(u))``: the stage form that every SSP method is built of."""
    grid = hs.Grid([-1.0, -1.0], [1.3, 1.3], (19, 23))
    u, u0 = rng.standard_normal(grid.shape), rng.standard_normal(grid.shape)
    op = HamiltonJacobiOperator(grid, scheme, "first", "neumann", 2.0, 0.5)
    dt = 0.3 * op.stable_dt(u)
    got = host_step(hj_kernels, u, dt, grid.spacing, op.nu, "neumann", scheme, _fused_hj.axis_slopes(u, grid.spacing),
                    2, u0=u0, weights=(0.25, 0.75))
    np.testing.assert_allclose(got, 0.25 * u0 + 0.75 * rk_step(u, dt, op.rhs, SSP_METHODS['euler']), rtol=0, atol=1e-13)


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
    np.testing.assert_allclose(got, rk_step(u, dt, op.rhs, SSP_METHODS['euler']), rtol=0, atol=1e-13)


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
    ptx = compile_ptx(_cuda_kernels.kernel_source(*DTYPES), build_dir=tmp_path)
    for dtype in DTYPES:
        assert "st.global" in ptx_function(ptx, f"lower_envelope_{dtype}")


FP_ENTRIES = [(d, p, a) for d in DTYPES for p in (False, True) for a in (False, True) if not (p and a)]


@pytest.fixture(scope="module")
def fp_kernels(tmp_path_factory):
    return compile_host(_fused_fp.kernel_source(*FP_ENTRIES), tmp_path_factory.mktemp("fp_host"))


def host_fp_step(kernels, op, rho: np.ndarray, dt: float, rows: int, max_grid_yz: int = 65535) -> np.ndarray:
    """What ``FokkerPlanckOperator.step`` launches on a GPU, with numpy arrays and the host-compiled kernel."""
    grid, block, dims = launch_config(rho.shape, rows, max_grid_yz)
    out = np.full_like(rho, np.nan)
    periodic = op.bc == "periodic"
    scalar = np.float32 if rho.dtype == np.float32 else np.float64
    rates = tuple(np.ascontiguousarray(r) for r in _fused_fp.packed_rates(op))
    args = _fused_fp.kernel_arguments(rho, out, op.absorption, rates, dims, rows, dt, scalar, np.int32)
    kernels[_fused_fp.kernel_name(rho.dtype.name, periodic, op.absorption is not None)](grid, block, args)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("coefficients", ["potential", "drift", "diffusion"])
@pytest.mark.parametrize("bc", ["reflecting", "periodic", "absorbing"])
@pytest.mark.parametrize("shape", [(41,), (19, 23), (9, 11, 13)])
@pytest.mark.parametrize("rows", [1, 3])
def test_fp_kernel_equals_the_operator_step(fp_kernels, dtype, coefficients, bc, shape, rows, rng) -> None:
    grid, op = fp_operator(shape, coefficients, bc, dtype, rng)
    rho = rng.uniform(0.1, 1.0, shape).astype(dtype)
    dt = 0.9 * op.stable_dt
    expected = op.step(rho, dt)  # the array code
    got = host_fp_step(fp_kernels, op, rho, dt, rows)
    assert got.dtype == rho.dtype
    tol = 1e-14 if dtype == "float64" else 4e-6
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol * float(np.abs(expected).max()))
    if bc != "absorbing":  # every link moves mass from cell to cell
        assert abs(float(got.sum(dtype=np.float64)) - float(rho.sum(dtype=np.float64))) <= 50 * tol * rho.size


def test_fp_kernel_covers_the_array_when_the_launch_grid_is_capped(fp_kernels, rng) -> None:
    _, op = fp_operator((9, 11, 13), "drift", "reflecting", "float64", rng)
    rho = rng.uniform(0.1, 1.0, (9, 11, 13))
    dt = 0.9 * op.stable_dt
    np.testing.assert_allclose(host_fp_step(fp_kernels, op, rho, dt, rows=2, max_grid_yz=2), op.step(rho, dt),
                               rtol=0, atol=1e-14)


def test_packed_rates_refuse_mixed_derivative_links() -> None:
    grid = hs.Grid([-1.0, -1.0], [1.0, 1.0], (9, 9))
    op = fp.fokker_planck_operator(grid, diffusion=np.array([[1.0, 0.3], [0.3, 1.0]]))
    assert not _fused_fp.axis_links_only(op)
    with pytest.raises(ValueError, match="along the axes"):
        _fused_fp.packed_rates(op)


@needs_nvcc
def test_nvcc_accepts_the_fp_kernels(tmp_path) -> None:
    ptx = compile_ptx(_fused_fp.kernel_source(*FP_ENTRIES), build_dir=tmp_path)
    for entry in FP_ENTRIES:
        body = ptx_function(ptx, _fused_fp.kernel_name(*entry))
        assert "st.global" in body and not re.findall(r"\b(?:div|rem)\.[su]64\b", body), entry


# ----------------------------------------------------------------------------- the GPU code paths end to end
class HostCuPy(types.ModuleType):
    """The few CuPy names the fused wrappers use, backed by numpy and host-compiled kernels."""

    float32, float64, int32, int64 = np.float32, np.float64, np.int32, np.int64

    def __init__(self, build_dir) -> None:
        super().__init__("cupy")
        self.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
        self.ascontiguousarray = np.ascontiguousarray
        self.empty_like = np.empty_like
        self.compiled: list[str] = []
        outer = self

        class RawModule:
            def __init__(self, code: str, options: tuple = ()) -> None:
                assert "--std=c++14" in options
                assert "__global__" in code
                self.kernels = compile_host(code, build_dir)
                outer.compiled.extend(self.kernels)

            def get_function(self, name: str):
                return self.kernels[name]

        self.RawModule = RawModule


@pytest.fixture
def host_cupy(monkeypatch, tmp_path):
    """Numpy arrays take the CUDA code paths of solve_hj and the Fokker-Planck step, on host kernels."""
    fake = HostCuPy(tmp_path)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(kernels, "device_kind", lambda x: "cuda")
    for module in (_fused_hj, _fused_fp):
        monkeypatch.setattr(module, "is_cupy_array", lambda x: isinstance(x, np.ndarray))
        monkeypatch.setattr(module, "is_cuda", lambda x: isinstance(x, np.ndarray))
        monkeypatch.setattr(module, "to_cupy", lambda x: x)
    raw_kernel.cache_clear()
    yield fake
    raw_kernel.cache_clear()  # no host kernel may outlive the fake


@pytest.mark.parametrize("bc", ["extrapolate", "periodic", "dirichlet"])
def test_solve_hj_gpu_path_on_host_kernels_equals_the_numpy_solve(host_cupy, bc) -> None:
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (33, 41))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    if bc == "periodic":
        f = periodic_field(f)
    for scheme in ("godunov", "hybrid"):
        sol = hs.solve_hj(f, grid, 0.3, beta=5.0, bc=bc, scheme=scheme)
        assert sol.info["engine"] == "cuda" and host_cupy.compiled
        with pytest.MonkeyPatch.context() as undo:  # the plain numpy solve, for reference
            undo.setattr(kernels, "device_kind", lambda x: "cpu")
            ref = hs.solve_hj(f, grid, 0.3, beta=5.0, bc=bc, scheme=scheme)
        assert ref.info["engine"] == "numba" and sol.steps == ref.steps
        np.testing.assert_allclose(sol.values, ref.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("accuracy", ["eno2", "weno5"])
def test_high_order_stencils_on_a_gpu_array_run_the_array_code(host_cupy, accuracy) -> None:
    """The CUDA kernel has the three-point stencil only: the engine table sends ENO2 and WENO5 on a
    GPU array to the array code, which equals the fused numba solve of the same data on the host."""
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (33, 41))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    for scheme in ("godunov", "lax_friedrichs"):
        first = HamiltonJacobiOperator(grid, scheme, "first", "extrapolate", 5.0, 0.5)
        high = HamiltonJacobiOperator(grid, scheme, accuracy, "extrapolate", 5.0, 0.5)
        assert _fused_hj.cuda_supports(HJCase(first, None), f) and not _fused_hj.cuda_supports(HJCase(high, None), f)
        sol = hs.solve_hj(f, grid, 0.2, beta=5.0, scheme=scheme, accuracy=accuracy)
        assert sol.info["engine"] == "array" and not host_cupy.compiled
        with pytest.MonkeyPatch.context() as undo:
            undo.setattr(kernels, "device_kind", lambda x: "cpu")
            ref = hs.solve_hj(f, grid, 0.2, beta=5.0, scheme=scheme, accuracy=accuracy)
        assert ref.info["engine"] == "numba" and sol.steps == ref.steps
        np.testing.assert_allclose(sol.values, ref.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bc", ["reflecting", "periodic", "absorbing"])
def test_fokker_planck_gpu_path_on_host_kernels_equals_the_array_code(host_cupy, bc, rng) -> None:
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (24, 30))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.25 * (x**2 + y**2)
    rho0 = np.exp(-((x - 0.5) ** 2 + y**2))
    op = fp.fokker_planck_operator(grid, rho0, potential=f, beta=1.5, bc=bc)
    dt = 0.9 * op.stable_dt
    engine, stepper = fp.explicit_stepper(op, rho0)
    assert engine == "cuda"
    np.testing.assert_allclose(stepper.read(stepper.step(stepper.start(rho0), dt)), rho0 + dt * op.apply(rho0),
                               rtol=0, atol=1e-15)
    sol = fp.solve_fokker_planck(rho0, grid, 0.2, potential=f, beta=1.5, bc=bc)
    assert sol.info["engine"] == "cuda"
    assert host_cupy.compiled == [_fused_fp.kernel_name("float64", bc == "periodic", bc == "absorbing")]
    with pytest.MonkeyPatch.context() as undo:
        undo.setattr(kernels, "device_kind", lambda x: "cpu")
        ref = fp.solve_fokker_planck(rho0, grid, 0.2, potential=f, beta=1.5, bc=bc)
    assert ref.info["engine"] == "numba" and sol.steps == ref.steps
    np.testing.assert_allclose(sol.values, ref.values, rtol=0, atol=1e-14)


def test_fused_fp_path_needs_rates_of_the_densitys_backend_and_dtype(host_cupy) -> None:
    grid = hs.Grid(-1.0, 1.0, 11)
    op = fp.fokker_planck_operator(grid, np.zeros((), dtype="float32"), potential=grid.axes[0] ** 2)
    assert _fused_fp.cuda_fp_supports(op, np.ones(grid.shape, dtype="float32"))
    assert not _fused_fp.cuda_fp_supports(op, np.ones(grid.shape))  # float64 density, float32 rates
    assert fp.explicit_stepper(op, np.ones(grid.shape))[0] == "array"
