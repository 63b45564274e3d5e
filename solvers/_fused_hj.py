"""A fused GPU step for the first-order viscous Hamilton-Jacobi scheme (CuPy raw kernel).

One forward-Euler step of ``u_t = -sum_k H_hat(p-_k, p+_k) + nu sum_k D_k^2 u`` (the
operator of :class:`hjsmooth.solvers.hj.HamiltonJacobiOperator` with ``accuracy="first"``,
no advection shift) reads ``u`` once and writes the new field once: each thread owns a
node, loads its ``2 d`` neighbours (ghost nodes are formed in registers from the boundary
condition, exactly as :func:`hjsmooth.solvers.boundary.pad_axis` fills them) and applies
the Godunov or global Lax-Friedrichs Hamiltonian and the 3-point Laplacian.  The eager
array path needs a dozen full-grid temporaries per step; this one runs at the memory
roofline (see docs/benchmarks.md).

The CFL rate that the step needs is computed separately: for Godunov and Lax-Friedrichs
it is ``sum_k max_i |u_{i+1} - u_i| / h_k^2`` exactly (the ghost differences repeat interior
ones for every boundary condition), which :func:`axis_slopes` returns.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Any

from hjsmooth.backend import array_namespace, from_cupy, is_cupy_array, is_torch_array, to_cupy

__all__ = ["fused_available", "axis_slopes", "fused_first_order_step", "FUSED_SCHEMES"]

FUSED_SCHEMES = ("godunov", "lax_friedrichs")
_BC_CODES = {"extrapolate": 0, "dirichlet": 0, "neumann": 1, "periodic": 2}
_SCHEME_CODES = {"godunov": 0, "lax_friedrichs": 1}

_SOURCE = r"""
template <typename T>
__device__ __forceinline__ T ghost_low(const T* u, long long idx, long long i, long long n, long long s, T c, int bc) {
    if (i > 0) return u[idx - s];
    if (bc == 2) return u[idx + (n - 2) * s];   // periodic: node n-1 is node 0
    if (bc == 1) return u[idx + s];             // neumann: mirror about the end node
    return c + (c - u[idx + s]);                // extrapolate / dirichlet: linear
}

template <typename T>
__device__ __forceinline__ T ghost_high(const T* u, long long idx, long long i, long long n, long long s, T c, int bc) {
    if (i < n - 1) return u[idx + s];
    if (bc == 2) return u[idx - (n - 2) * s];
    if (bc == 1) return u[idx - s];
    return c + (c - u[idx - s]);
}

template <typename T>
__device__ __forceinline__ T axis_term(const T* u, long long idx, long long i, long long n, long long s, T c,
                                       T inv_h, T nu, int bc, int scheme, T alpha) {
    T lo = ghost_low<T>(u, idx, i, n, s, c, bc);
    T hi = ghost_high<T>(u, idx, i, n, s, c, bc);
    T pm = (c - lo) * inv_h;
    T pp = (hi - c) * inv_h;
    T flux;
    if (scheme == 0) {
        T a = pm > (T)0 ? pm : (T)0;
        T b = pp < (T)0 ? pp : (T)0;
        T a2 = a * a, b2 = b * b;
        flux = (T)0.5 * (a2 > b2 ? a2 : b2);
    } else {
        T mean = (T)0.5 * (pm + pp);
        flux = (T)0.5 * mean * mean - (T)0.5 * alpha * (pp - pm);
    }
    return -flux + nu * ((hi - c) - (c - lo)) * inv_h * inv_h;
}

template <typename T>
__device__ void step(const T* u, T* out, long long n0, long long n1, long long n2,
                     T ih0, T ih1, T ih2, T a0, T a1, T a2, T nu, T dt, int bc, int scheme) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = n0 * n1 * n2;
    if (idx >= total) return;
    long long i2 = idx % n2;
    long long rest = idx / n2;
    long long i1 = rest % n1;
    long long i0 = rest / n1;
    T c = u[idx];
    T acc = axis_term<T>(u, idx, i0, n0, n1 * n2, c, ih0, nu, bc, scheme, a0);
    if (n1 > 1) acc += axis_term<T>(u, idx, i1, n1, n2, c, ih1, nu, bc, scheme, a1);
    if (n2 > 1) acc += axis_term<T>(u, idx, i2, n2, 1, c, ih2, nu, bc, scheme, a2);
    out[idx] = c + dt * acc;
}

extern "C" __global__ void hj_step_f32(const float* u, float* out, long long n0, long long n1, long long n2,
        float ih0, float ih1, float ih2, float a0, float a1, float a2, float nu, float dt, int bc, int scheme) {
    step<float>(u, out, n0, n1, n2, ih0, ih1, ih2, a0, a1, a2, nu, dt, bc, scheme);
}

extern "C" __global__ void hj_step_f64(const double* u, double* out, long long n0, long long n1, long long n2,
        double ih0, double ih1, double ih2, double a0, double a1, double a2, double nu, double dt, int bc, int scheme) {
    step<double>(u, out, n0, n1, n2, ih0, ih1, ih2, a0, a1, a2, nu, dt, bc, scheme);
}
"""

_BLOCK = 256


def fused_available(u: Any, scheme: str, accuracy: str, shift: Any) -> bool:
    """True where the fused kernel applies: a CUDA array, CuPy importable, first order, no shift."""
    if accuracy != "first" or shift is not None or scheme not in FUSED_SCHEMES:
        return False
    if not (is_cupy_array(u) or (is_torch_array(u) and u.device.type == "cuda")):
        return False
    return importlib.util.find_spec("cupy") is not None


def axis_slopes(u: Any, spacing: tuple[float, ...]) -> list[float]:
    """``max_i |u_{i+1} - u_i| / h_k`` per axis, as Python floats (one reduction per axis)."""
    xp = array_namespace(u)
    return [float(xp.max(xp.abs(xp.diff(u, axis=k)))) / h for k, h in enumerate(spacing)]


@lru_cache(maxsize=None)
def _module(dtype_name: str):  # noqa: ANN202 - a compiled cupy.RawKernel, built once per dtype
    import cupy

    return cupy.RawModule(code=_SOURCE, options=("--std=c++14",)).get_function(f"hj_step_{dtype_name}")


def fused_first_order_step(u: Any, dt: float, spacing: tuple[float, ...], nu: float, bc: str, scheme: str,
                           slopes: list[float]) -> Any:
    """``u + dt L(u)`` for the first-order operator, in one kernel; ``slopes`` from :func:`axis_slopes`
    (the Lax-Friedrichs ``alpha_k``; unused by Godunov).  Returns the input's array type."""
    import cupy

    cu = to_cupy(u)
    if cu.dtype == cupy.float32:
        kernel, scalar = _module("f32"), cupy.float32
    else:
        kernel, scalar = _module("f64"), cupy.float64
    cu = cupy.ascontiguousarray(cu)
    shape = tuple(cu.shape) + (1,) * (3 - cu.ndim)
    inv_h = [1.0 / h for h in spacing] + [0.0] * (3 - len(spacing))
    alpha = list(slopes) + [0.0] * (3 - len(slopes))
    out = cupy.empty_like(cu)
    grid_size = (cu.size + _BLOCK - 1) // _BLOCK
    kernel(
        (grid_size,),
        (_BLOCK,),
        (cu, out, cupy.int64(shape[0]), cupy.int64(shape[1]), cupy.int64(shape[2]),
         *(scalar(v) for v in inv_h), *(scalar(a) for a in alpha), scalar(nu), scalar(dt),
         cupy.int32(_BC_CODES[bc]), cupy.int32(_SCHEME_CODES[scheme])),
    )
    return out if is_cupy_array(u) else from_cupy(out, u)
