"""A fused GPU step for the explicit Scharfetter-Gummel Fokker-Planck scheme (CuPy raw kernel).

One forward-Euler step ``rho + dt L rho`` of the operator of
:class:`hjsmooth.solvers.scharfetter_gummel.FokkerPlanckOperator` when all its links run
along the axes (no mixed-derivative links, i.e. a diagonal diffusion), for every boundary
condition.  For node ``P`` and axis ``k``

    (L rho)_P = -A_P rho_P + sum_k [ -(F_k[P] rho_P - B_k[P] rho_{P+e_k})
                                     + (F_k[P-e_k] rho_{P-e_k} - B_k[P-e_k] rho_P) ],

``F_k``/``B_k`` the forward/backward rates of the link ``P -> P + e_k`` and ``A`` the
absorption rate; a term is dropped where its link leaves the box (periodic links wrap).
The eager array path makes several full-grid temporaries per link; this kernel reads
``rho`` and the rates once and writes the result once.  The rates are packed once per
operator into full-grid arrays (:func:`packed_rates`, zero where a link would leave the
box), so the kernel indexes every array like ``rho``.  Launch geometry as in
:mod:`hjsmooth.solvers._cuda_launch`; the boundary kind and the presence of absorption
are template parameters.
"""

from __future__ import annotations

from typing import Any

from hjsmooth.backend import array_namespace, device, from_cupy, is_cuda, is_cupy_array, to_cupy

from ._cuda_launch import cuda_source, launch_config, raw_kernel

__all__ = [
    "axis_links_only",
    "rates_like",
    "cuda_fp_supports",
    "packed_rates",
    "kernel_source",
    "kernel_name",
    "kernel_arguments",
    "fused_fp_step",
    "CudaFPStepper",
]

_BODY = r"""
// net inflow into P along one axis, added to acc in the array code's order (out-flow, then in-flow)
template <typename T, int PERIODIC>
__device__ __forceinline__ T add_axis(T acc, const T* __restrict__ rho, const T* __restrict__ fw,
                                      const T* __restrict__ bw, long long idx, int i, int n, long long s, T r) {
    long long next = idx + s, prev = idx - s;
    bool has_next = i < n - 1, has_prev = i > 0;
    if (PERIODIC) {
        if (!has_next) next = idx - (long long)(n - 1) * s;
        if (!has_prev) prev = idx + (long long)(n - 1) * s;
        has_next = true;
        has_prev = true;
    }
    if (has_next) acc -= fw[idx] * r - bw[idx] * rho[next];
    if (has_prev) acc += fw[prev] * rho[prev] - bw[prev] * r;
    return acc;
}

template <typename T, int PERIODIC, int ABSORB>
__device__ void fp_strips(const T* __restrict__ rho, T* __restrict__ out, const T* __restrict__ absorption,
                          const T* __restrict__ f0, const T* __restrict__ b0, const T* __restrict__ f1,
                          const T* __restrict__ b1, const T* __restrict__ f2, const T* __restrict__ b2,
                          int n0, int n1, int n2, int rows, T dt) {
    const long long s1 = n2;
    const long long s0 = (long long)n1 * n2;
    for_each_strip(n0, n1, n2, rows, [&](int i0, int i2, int start, int stop) {
        for (int i1 = start; i1 < stop; ++i1) {
            const long long idx = (long long)i0 * s0 + (long long)i1 * s1 + i2;
            const T r = rho[idx];
            T acc = ABSORB ? -absorption[idx] * r : (T)0;
            if (n0 > 1) acc = add_axis<T, PERIODIC>(acc, rho, f0, b0, idx, i0, n0, s0, r);
            if (n1 > 1) acc = add_axis<T, PERIODIC>(acc, rho, f1, b1, idx, i1, n1, s1, r);
            acc = add_axis<T, PERIODIC>(acc, rho, f2, b2, idx, i2, n2, 1, r);
            out[idx] = r + dt * acc;
        }
    });
}
"""

_ENTRY = r"""
extern "C" __global__ void {name}(const {T}* __restrict__ rho, {T}* __restrict__ out,
        const {T}* __restrict__ absorption, const {T}* __restrict__ f0, const {T}* __restrict__ b0,
        const {T}* __restrict__ f1, const {T}* __restrict__ b1, const {T}* __restrict__ f2,
        const {T}* __restrict__ b2, int n0, int n1, int n2, int rows, {T} dt) {{
    fp_strips<{T}, {periodic}, {absorb}>(rho, out, absorption, f0, b0, f1, b1, f2, b2, n0, n1, n2, rows, dt);
}}
"""


def kernel_name(dtype_name: str, periodic: bool, absorb: bool) -> str:
    """Entry point for one dtype (``"float32"``/``"float64"``), boundary kind and absorption."""
    return f"fp_step_{dtype_name}_p{int(periodic)}_a{int(absorb)}"


def kernel_source(*entries: tuple[str, bool, bool]) -> str:
    """CUDA source with one entry point per ``(dtype_name, periodic, absorb)`` in ``entries``."""
    return cuda_source(
        _BODY,
        _ENTRY,
        [dict(name=kernel_name(d, p, a), dtype=d, periodic=int(p), absorb=int(a)) for d, p, a in entries],
        strips=True,
    )


def axis_links_only(operator: Any) -> bool:
    """True if every link of the operator runs along an axis (a diagonal diffusion)."""
    d = operator.grid.ndim
    return len(operator.links) == d and all(
        link.direction == tuple(1 if i == k else 0 for i in range(d)) for k, link in enumerate(operator.links)
    )


def rates_like(operator: Any, rho: Any) -> bool:
    """True if the operator's rates live on ``rho``'s backend and device, in its dtype."""
    xp, where = array_namespace(rho), str(device(rho))
    return all(
        array_namespace(link.forward) is xp and str(device(link.forward)) == where and link.forward.dtype == rho.dtype
        for link in operator.links
    )


def cuda_fp_supports(operator: Any, rho: Any) -> bool:
    """True where the fused kernel applies: axis links only, ``rho`` a CUDA float array of the rates' dtype."""
    if not is_cuda(rho) or str(rho.dtype).rsplit(".", 1)[-1] not in ("float32", "float64"):
        return False
    # rates of another backend, device or dtype: the array code says what is wrong
    return axis_links_only(operator) and rates_like(operator, rho)


def packed_rates(operator: Any) -> tuple[Any, ...]:
    """``(F_0, B_0, ..., F_{d-1}, B_{d-1})`` of an axis-links-only operator as arrays of the grid's shape.

    Periodic rates already have that shape; otherwise the link ``P -> P + e_k`` is stored at
    ``P`` and the last layer along ``k`` (no link) holds zeros.  Any backend (array API).
    """
    if not axis_links_only(operator):
        raise ValueError("packed rates exist only for operators whose links all run along the axes")
    packed = []
    for link in operator.links:
        for rate in (link.forward, link.backward):
            if operator.bc == "periodic":
                packed.append(rate)
                continue
            xp = array_namespace(rate)
            full = xp.zeros(operator.grid.shape, dtype=rate.dtype, device=device(rate))
            full[link.source] = rate
            packed.append(full)
    return tuple(packed)


def kernel_arguments(
    rho: Any,
    out: Any,
    absorption: Any | None,
    rates: tuple[Any, ...],
    dims: tuple[int, int, int],
    rows: int,
    dt: float,
    scalar: Any,
    index: Any,
) -> tuple[Any, ...]:
    """The argument tuple of one launch: rates padded in front to three axes (unused slots get ``rho``)."""
    pad = 3 - len(rates) // 2
    slots = (rho, rho) * pad + tuple(rates)
    return (
        rho,
        out,
        rho if absorption is None else absorption,
        *slots,
        *(index(n) for n in dims),
        index(rows),
        scalar(dt),
    )


def fused_fp_step(
    rho: Any,
    dt: float,
    periodic: bool,
    absorption: Any | None,
    rates: tuple[Any, ...],
    rows: int = 1,
    out: Any | None = None,
) -> Any:
    """``rho + dt L rho`` in one kernel; ``rates`` (from :func:`packed_rates`) and ``absorption`` are
    contiguous CuPy arrays on ``rho``'s device, converted once per operator; ``out`` (optional) receives
    the result.  Returns ``rho``'s array type."""
    import cupy

    cu = cupy.ascontiguousarray(to_cupy(rho))
    dtype_name = cu.dtype.name
    grid, block, dims = launch_config(tuple(cu.shape), rows)
    out = cupy.empty_like(cu) if out is None else out
    absorb = absorption is not None
    args = kernel_arguments(cu, out, absorption, rates, dims, rows, dt, cu.dtype.type, cupy.int32)
    entry = (dtype_name, bool(periodic), absorb)
    raw_kernel(kernel_source(entry), kernel_name(*entry))(grid, block, args)
    return out if is_cupy_array(rho) else from_cupy(out, rho)


class CudaFPStepper:
    """Forward-Euler steps on a CUDA array, one fused kernel each, the rates packed and moved to
    CuPy once per solve and two result buffers allocated once."""

    def __init__(self, operator: Any, like: Any, rows: int = 1):
        import cupy

        self.cupy = cupy
        self.like = like
        self.rates = tuple(cupy.ascontiguousarray(to_cupy(r)) for r in packed_rates(operator))
        self.absorption = None if operator.absorption is None else cupy.ascontiguousarray(to_cupy(operator.absorption))
        self.periodic = operator.bc == "periodic"
        self.rows = rows
        self.buffers: list[Any] = []

    def start(self, rho: Any) -> Any:
        cu = self.cupy.ascontiguousarray(to_cupy(rho))
        self.buffers = [cu.copy(), self.cupy.empty_like(cu)]
        return self.buffers[0]

    def read(self, state: Any) -> Any:
        return state.copy() if is_cupy_array(self.like) else from_cupy(state.copy(), self.like)

    def step(self, state: Any, dt: float) -> Any:
        out = self.buffers[1] if state is self.buffers[0] else self.buffers[0]
        return fused_fp_step(state, float(dt), self.periodic, self.absorption, self.rates, self.rows, out=out)
