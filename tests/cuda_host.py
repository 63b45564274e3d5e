"""Run the project's CUDA kernel sources on the CPU, to test their logic without a GPU.

A kernel source written for CuPy's ``RawKernel``/``RawModule`` is compiled by the host C++
compiler with a small prelude that turns the CUDA keywords into plain C++ and makes
``threadIdx``/``blockIdx``/``blockDim``/``gridDim`` ordinary globals.  A launch runs every
thread of every block one after another, so kernels that need ``__syncthreads`` or shared
memory cannot be emulated (they are refused).  :class:`HostKernel` is called like a CuPy
kernel, ``kernel(grid, block, args)``, with numpy arrays in place of device arrays and numpy
scalars (``np.int64``, ``np.int32``, ``np.float32``, ``np.float64``) for the scalar
parameters, so the launch code that a solver would use on the GPU can be exercised as is.

The arithmetic differs from the GPU's in rounding only (nvcc contracts ``a * b + c`` into
fused multiply-adds, g++ for a generic x86-64 does not), so comparisons use tolerances of a
few ulps of the dtype, not equality.

Also here: :func:`compile_ptx`, which runs ``nvcc --ptx`` on a source where nvcc exists,
so that tests can check that the device compiler accepts it and inspect the PTX it emits.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HostKernel", "compile_host", "compile_ptx", "host_compiler", "nvcc", "ptx_function"]

_PRELUDE = r"""
#include <cmath>
#include <cstddef>
#include <utility>
#include <type_traits>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };
static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
template <typename T> static inline T __ldg(const T* p) { return *p; }
using std::expm1; using std::exp; using std::fabs; using std::log1p;
"""

_LAUNCHER = r"""
namespace host_emulation {
template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
}
template <typename... A>
void launch(void (*kernel)(A...), const unsigned* grid, const unsigned* block, void** args) {
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    for (unsigned bz = 0; bz < grid[2]; ++bz)
    for (unsigned by = 0; by < grid[1]; ++by)
    for (unsigned bx = 0; bx < grid[0]; ++bx)
    for (unsigned tz = 0; tz < block[2]; ++tz)
    for (unsigned ty = 0; ty < block[1]; ++ty)
    for (unsigned tx = 0; tx < block[0]; ++tx) {
        blockIdx = {bx, by, bz};
        threadIdx = {tx, ty, tz};
        call(kernel, args, std::index_sequence_for<A...>{});
    }
}
}  // namespace host_emulation
"""

_SCALAR_TYPES = {
    np.dtype(np.int64): ctypes.c_longlong,
    np.dtype(np.int32): ctypes.c_int,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}


def host_compiler() -> str | None:
    """Path of the host C++ compiler (``g++`` or ``c++``), or None."""
    return shutil.which("g++") or shutil.which("c++")


def nvcc() -> str | None:
    """Path of ``nvcc`` (``PATH`` or ``/usr/local/cuda/bin``), or None."""
    return shutil.which("nvcc") or (str(Path("/usr/local/cuda/bin/nvcc")) if Path("/usr/local/cuda/bin/nvcc").exists()
                                    else None)


class HostKernel:
    """One ``extern "C"`` kernel of a host-compiled source, launched like a CuPy kernel."""

    def __init__(self, library: ctypes.CDLL, name: str):
        self.name = name
        self._launch = getattr(library, f"host_launch_{name}")
        self._launch.restype = None
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.POINTER(ctypes.c_void_p)]

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
        dims = [(tuple(int(v) for v in d) + (1, 1))[:3] for d in (grid, block)]
        keep = []  # ctypes objects the argument pointers point to, alive until the call returns
        for arg in args:
            if isinstance(arg, np.ndarray):
                if not arg.flags.c_contiguous:
                    raise ValueError(f"argument arrays must be C-contiguous, got strides {arg.strides}")
                keep.append(ctypes.c_void_p(arg.ctypes.data))
            elif isinstance(arg, np.generic) and arg.dtype in _SCALAR_TYPES:
                keep.append(_SCALAR_TYPES[arg.dtype](arg.item()))
            else:
                raise TypeError(f"kernel arguments must be numpy arrays or sized numpy scalars, got {arg!r}")
        pointers = (ctypes.c_void_p * max(len(keep), 1))(*[ctypes.addressof(k) for k in keep])
        self._launch((ctypes.c_uint * 3)(*dims[0]), (ctypes.c_uint * 3)(*dims[1]), pointers)


def _kernel_names(source: str) -> list[str]:
    return re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(', source)


def compile_host(source: str, build_dir: Path | None = None) -> dict[str, HostKernel]:
    """Compile a CUDA kernel source for the CPU; return its ``extern "C"`` kernels by name."""
    if "__syncthreads" in source or "__shared__" in source:
        raise ValueError("kernels with shared memory or barriers cannot be run one thread after another")
    compiler = host_compiler()
    if compiler is None:
        raise RuntimeError("no host C++ compiler (g++ or c++) on PATH")
    names = _kernel_names(source)
    if not names:
        raise ValueError('no `extern "C" __global__ void` kernel in the source')
    launchers = "".join(
        f'extern "C" void host_launch_{n}(const unsigned* g, const unsigned* b, void** a) '
        f"{{ host_emulation::launch(&{n}, g, b, a); }}\n"
        for n in names
    )
    text = _PRELUDE + source + _LAUNCHER + launchers
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    build_dir = Path(build_dir or tempfile.mkdtemp(prefix="cuda_host_"))
    src, lib = build_dir / f"kernels_{digest}.cpp", build_dir / f"kernels_{digest}.so"
    if not lib.exists():
        src.write_text(text)
        done = subprocess.run([compiler, "-std=c++14", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"host compilation failed:\n{done.stderr}")
    library = ctypes.CDLL(str(lib))
    return {n: HostKernel(library, n) for n in names}


def compile_ptx(source: str, arch: str = "sm_90", build_dir: Path | None = None) -> str:
    """PTX of ``source`` from ``nvcc --ptx`` (the device compiler's verdict on the source)."""
    compiler = nvcc()
    if compiler is None:
        raise RuntimeError("nvcc not found")
    build_dir = Path(build_dir or tempfile.mkdtemp(prefix="cuda_ptx_"))
    src, out = build_dir / "kernels.cu", build_dir / "kernels.ptx"
    src.write_text(source)
    done = subprocess.run([compiler, "--ptx", f"-arch={arch}", "-std=c++14", "-o", str(out), str(src)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"nvcc failed:\n{done.stderr}")
    return out.read_text()


def ptx_function(ptx: str, name: str) -> str:
    """The body of one ``.entry`` in a PTX text (from its name to the next entry)."""
    start = ptx.index(f".entry {name}(")
    following = ptx.find(".entry ", start + 1)
    return ptx[start:] if following < 0 else ptx[start:following]
