"""A fused GPU step for the first-order viscous Hamilton-Jacobi scheme (CuPy raw kernel).

One forward-Euler step of ``u_t = -sum_k H_hat(p-_k, p+_k) + nu sum_k D_k^2 u`` (the
operator of :class:`hjsmooth.solvers.hj.HamiltonJacobiOperator` with ``accuracy="first"``,
no advection shift) reads ``u`` once and writes the new field once: each thread owns a
strip of ``rows`` nodes along the middle axis, loads their neighbours (ghost nodes are
formed in registers from the boundary condition, exactly as
:func:`hjsmooth.solvers.boundary.pad_axis` fills them) and applies the Godunov or global
Lax-Friedrichs Hamiltonian and the 3-point Laplacian.  The eager array path needs a dozen
full-grid temporaries per step.

Layout and launch (:mod:`hjsmooth.solvers._cuda_launch`): the array is seen as
``(n0, n1, n2)`` with ``n2`` contiguous; threads run along axis 2, the launch grid over
strips of axis 1 and over axis 0.  No index is recovered by division: an earlier 1D launch
that did ``idx / n2`` and ``idx % n2`` in 64-bit arithmetic (long emulated instruction
sequences on a GPU) reached a third of the copy bandwidth where a division-free Laplacian
reached 63% (docs/benchmarks.md).  Along a strip the axis-1
neighbours rotate through registers, so each node is loaded once from memory by its strip.
The scheme and the boundary code are template parameters, one compiled kernel per
combination actually used.

The CFL rate that the step needs is computed separately: for Godunov and Lax-Friedrichs
it is ``sum_k max_i |u_{i+1} - u_i| / h_k^2`` exactly (the ghost differences repeat interior
ones for every boundary condition), which :func:`axis_slopes` returns.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Any

from hjsmooth.backend import array_namespace, from_cupy, is_cupy_array, is_torch_array, to_cupy

from ._cuda_launch import C_TYPES, STRIP_TRAVERSAL, launch_config, raw_kernel

__all__ = ["fused_available", "axis_slopes", "fused_first_order_step", "kernel_source", "kernel_name",
           "kernel_arguments", "FUSED_SCHEMES", "ROWS_PER_THREAD"]

FUSED_SCHEMES = ("godunov", "lax_friedrichs")
_BC_CODES = {"extrapolate": 0, "dirichlet": 0, "neumann": 1, "periodic": 2}
_SCHEME_CODES = {"godunov": 0, "lax_friedrichs": 1}
ROWS_PER_THREAD = 1  # strip length along axis 1; benchmarks/bench_gpu.py sweeps it

_BODY = r"""
template <typename T, int BC>
__device__ __forceinline__ T low_ghost(const T* __restrict__ u, long long idx, int n, long long s, T c, T next) {
    if (BC == 2) return u[idx + (long long)(n - 2) * s];   // periodic: node n-1 is node 0
    if (BC == 1) return next;                               // neumann: mirror about the end node
    return c + (c - next);                                  // extrapolate / dirichlet: linear
}

template <typename T, int BC>
__device__ __forceinline__ T high_ghost(const T* __restrict__ u, long long idx, int n, long long s, T c, T prev) {
    if (BC == 2) return u[idx - (long long)(n - 2) * s];
    if (BC == 1) return prev;
    return c + (c - prev);
}

template <typename T, int SCHEME>
__device__ __forceinline__ T axis_term(T lo, T c, T hi, T inv_h, T nu, T alpha) {
    const T pm = (c - lo) * inv_h;
    const T pp = (hi - c) * inv_h;
    T flux;
    if (SCHEME == 0) {
        const T a = pm > (T)0 ? pm : (T)0;
        const T b = pp < (T)0 ? pp : (T)0;
        const T a2 = a * a, b2 = b * b;
        flux = (T)0.5 * (a2 > b2 ? a2 : b2);
    } else {
        const T mean = (T)0.5 * (pm + pp);
        flux = (T)0.5 * mean * mean - (T)0.5 * alpha * (pp - pm);
    }
    return -flux + nu * ((hi - c) - (c - lo)) * inv_h * inv_h;
}

// the term of an axis whose neighbours are loaded here (not carried in registers)
template <typename T, int BC, int SCHEME>
__device__ __forceinline__ T loaded_axis_term(const T* __restrict__ u, long long idx, int i, int n, long long s,
                                              T c, T inv_h, T nu, T alpha) {
    const T prev = i > 0 ? u[idx - s] : (T)0;
    const T next = i < n - 1 ? u[idx + s] : (T)0;
    const T lo = i > 0 ? prev : low_ghost<T, BC>(u, idx, n, s, c, next);
    const T hi = i < n - 1 ? next : high_ghost<T, BC>(u, idx, n, s, c, prev);
    return axis_term<T, SCHEME>(lo, c, hi, inv_h, nu, alpha);
}

template <typename T, int BC, int SCHEME>
__device__ void hj_strips(const T* __restrict__ u, T* __restrict__ out, int n0, int n1, int n2, int rows,
                          T ih0, T ih1, T ih2, T a0, T a1, T a2, T nu, T dt) {
    const long long s1 = n2;
    const long long s0 = (long long)n1 * n2;
    for_each_strip(n0, n1, n2, rows, [&](int i0, int i2, int start, int stop) {
        long long idx = (long long)i0 * s0 + (long long)start * s1 + i2;
        T c = u[idx];
        T prev = start > 0 ? u[idx - s1] : (T)0;
        T next = start < n1 - 1 ? u[idx + s1] : (T)0;
        for (int i1 = start; i1 < stop; ++i1) {
            // axes summed in the array's order (0, 1, 2), as the array code sums them
            T acc = (T)0;
            if (n0 > 1) acc += loaded_axis_term<T, BC, SCHEME>(u, idx, i0, n0, s0, c, ih0, nu, a0);
            if (n1 > 1) {
                const T lo = i1 > 0 ? prev : low_ghost<T, BC>(u, idx, n1, s1, c, next);
                const T hi = i1 < n1 - 1 ? next : high_ghost<T, BC>(u, idx, n1, s1, c, prev);
                acc += axis_term<T, SCHEME>(lo, c, hi, ih1, nu, a1);
            }
            acc += loaded_axis_term<T, BC, SCHEME>(u, idx, i2, n2, 1, c, ih2, nu, a2);
            out[idx] = c + dt * acc;
            prev = c;
            c = next;
            idx += s1;
            if (i1 + 1 < stop) next = i1 + 2 < n1 ? u[idx + s1] : (T)0;
        }
    });
}
"""

_ENTRY = r"""
extern "C" __global__ void {name}(const {T}* __restrict__ u, {T}* __restrict__ out, int n0, int n1, int n2,
        int rows, {T} ih0, {T} ih1, {T} ih2, {T} a0, {T} a1, {T} a2, {T} nu, {T} dt) {{
    hj_strips<{T}, {bc}, {scheme}>(u, out, n0, n1, n2, rows, ih0, ih1, ih2, a0, a1, a2, nu, dt);
}}
"""


def kernel_name(dtype_name: str, bc: str, scheme: str) -> str:
    """Name of the entry point for one dtype (``"float32"``/``"float64"``), boundary code and scheme."""
    return f"hj_step_{dtype_name}_bc{_BC_CODES[bc]}_s{_SCHEME_CODES[scheme]}"


@lru_cache(maxsize=None)
def kernel_source(*entries: tuple[str, str, str]) -> str:
    """CUDA source with one entry point per ``(dtype_name, bc, scheme)`` in ``entries``."""
    return STRIP_TRAVERSAL + _BODY + "".join(
        _ENTRY.format(name=kernel_name(dtype_name, bc, scheme), T=C_TYPES[dtype_name], bc=_BC_CODES[bc],
                      scheme=_SCHEME_CODES[scheme])
        for dtype_name, bc, scheme in entries
    )


def kernel_arguments(u: Any, out: Any, dims: tuple[int, int, int], rows: int, dt: float, spacing: tuple[float, ...],
                     nu: float, slopes: list[float], scalar: Any, index: Any) -> tuple[Any, ...]:
    """The argument tuple of one launch; ``scalar``/``index`` make the float and int scalars."""
    pad = 3 - len(spacing)
    inv_h = [0.0] * pad + [1.0 / h for h in spacing]
    alpha = [0.0] * pad + list(slopes)
    return (u, out, *(index(n) for n in dims), index(rows), *(scalar(v) for v in inv_h),
            *(scalar(a) for a in alpha), scalar(nu), scalar(dt))


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


def fused_first_order_step(u: Any, dt: float, spacing: tuple[float, ...], nu: float, bc: str, scheme: str,
                           slopes: list[float], rows: int = ROWS_PER_THREAD) -> Any:
    """``u + dt L(u)`` for the first-order operator, in one kernel; ``slopes`` from :func:`axis_slopes`
    (the Lax-Friedrichs ``alpha_k``; unused by Godunov).  Returns the input's array type."""
    import cupy

    cu = cupy.ascontiguousarray(to_cupy(u))
    dtype_name = "float32" if cu.dtype == cupy.float32 else "float64"
    cu = cu if cu.dtype.name == dtype_name else cu.astype(dtype_name)
    grid, block, dims = launch_config(tuple(cu.shape), rows)
    out = cupy.empty_like(cu)
    kernel = raw_kernel(kernel_source((dtype_name, bc, scheme)), kernel_name(dtype_name, bc, scheme))
    kernel(grid, block, kernel_arguments(cu, out, dims, rows, dt, spacing, nu, slopes, cu.dtype.type, cupy.int32))
    return out if is_cupy_array(u) else from_cupy(out, u)
