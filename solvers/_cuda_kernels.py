"""CuPy raw kernels for the exact grid solvers (imported only when CuPy is).

``lower_envelope_columns`` is the GPU twin of
:func:`hjsmooth.solvers._lower_envelope.lower_envelope_rows`: the same
Felzenszwalb-Huttenlocher sweep, ``d[p] = min_q f[q] + c (p - q)^2``, run by one thread
per line.  The lines are the *columns* of an ``(n, lines)`` C-contiguous array, so at every
step of the sweep neighbouring threads read and write neighbouring addresses (the
transformed axis is put first by the caller).  The stack of each thread (int32 indices, the
values under them, and the crossing abscissae) lives in global memory with the same
column layout.  All arithmetic is done in the array's precision (``float`` or ``double``).
"""

from __future__ import annotations

from typing import Any

from ._cuda_launch import cuda_source, raw_kernel

__all__ = ["lower_envelope_columns", "kernel_source", "THREADS"]

_BODY = r"""
template <typename T>
__device__ void lower_envelope(const T* __restrict__ f, T* __restrict__ out, long long* __restrict__ argmin,
                               int* __restrict__ stack, T* __restrict__ stack_val, T* __restrict__ cross,
                               const long long n, const long long lines, const T c, const T inf, const int track)
{
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= lines) return;
    const T half = (T)0.5;
    const T two_c = (T)2 * c;
    long long top = 0;
    stack[j] = 0;
    stack_val[j] = f[j];
    cross[j] = -inf;
    cross[lines + j] = inf;
    for (long long q = 1; q < n; ++q) {
        const T fq = f[q * lines + j];
        T s;
        while (true) {
            const long long v = stack[top * lines + j];
            const T fv = stack_val[top * lines + j];
            s = half * (T)(q + v) + (fq - fv) / (two_c * (T)(q - v));
            if (top > 0 && s <= cross[top * lines + j]) { --top; } else { break; }
        }
        if (s <= cross[top * lines + j]) {
            stack[j] = (int)q;
            stack_val[j] = fq;
            cross[lines + j] = inf;
        } else {
            ++top;
            stack[top * lines + j] = (int)q;
            stack_val[top * lines + j] = fq;
            cross[top * lines + j] = s;
            cross[(top + 1) * lines + j] = inf;
        }
    }
    long long k = 0;
    for (long long p = 0; p < n; ++p) {
        while (cross[(k + 1) * lines + j] < (T)p) ++k;
        const long long v = stack[k * lines + j];
        const T d = (T)(p - v);
        out[p * lines + j] = stack_val[k * lines + j] + c * d * d;
        if (track) argmin[p * lines + j] = v;
    }
}
"""

_ENTRY = r"""
extern "C" __global__ void {name}(const {T}* __restrict__ f, {T}* __restrict__ out, long long* __restrict__ argmin,
        int* __restrict__ stack, {T}* __restrict__ stack_val, {T}* __restrict__ cross, const long long n,
        const long long lines, const {T} c, const {T} inf, const int track) {{
    lower_envelope<{T}>(f, out, argmin, stack, stack_val, cross, n, lines, c, inf, track);
}}
"""

THREADS = 32  # small blocks: a few thousand lines still spread over every SM


def kernel_source(*dtype_names: str) -> str:
    """CUDA source of ``lower_envelope_<dtype_name>`` for each of ``"float32"``, ``"float64"`` given."""
    return cuda_source(_BODY, _ENTRY, [dict(name=f"lower_envelope_{d}", dtype=d) for d in dtype_names])


def lower_envelope_columns(values: Any, c: float, *, track: bool = False) -> tuple[Any, Any | None]:
    """Lower envelope ``d[p, j] = min_q values[q, j] + c (p - q)^2`` of every column, on the GPU.

    Parameters
    ----------
    values : cupy.ndarray, shape (n, lines), float32 or float64
        Made C-contiguous if it is not.
    c : float
        The weight ``h^2 / (2t)``, positive.
    track : bool
        Also return the minimising index ``q`` of every entry (int64).

    Returns
    -------
    envelope : cupy.ndarray of ``values``' shape and dtype
    argmin : cupy.ndarray of int64, or None when ``track`` is False
    """
    import cupy

    values = cupy.ascontiguousarray(values)
    n, lines = values.shape
    dtype = values.dtype
    out = cupy.empty_like(values)
    argmin = cupy.empty((n, lines) if track else (1,), dtype=cupy.int64)
    stack = cupy.empty((n, lines), dtype=cupy.int32)
    stack_val = cupy.empty((n, lines), dtype=dtype)
    cross = cupy.empty((n + 1, lines), dtype=dtype)
    blocks = (lines + THREADS - 1) // THREADS
    scalars = (cupy.int64(n), cupy.int64(lines), dtype.type(c), dtype.type(float("inf")), cupy.int32(track))
    name = f"lower_envelope_{dtype.name}"
    raw_kernel(kernel_source(dtype.name), name)(
        (blocks,), (THREADS,), (values, out, argmin, stack, stack_val, cross, *scalars)
    )
    return out, (argmin if track else None)
