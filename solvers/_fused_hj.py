"""A fused GPU stage of the three-point viscous Hamilton-Jacobi schemes (CuPy raw kernel).

One Runge-Kutta stage ``out = a u0 + b (u + c dt L(u))`` of
``L(u) = -sum_k H_hat(p-_k, p+_k) + nu sum_k D_k^2 u`` (the operator of
:class:`hjsmooth.solvers.hj.HamiltonJacobiOperator` with ``accuracy="first"``, no advection
shift; forward Euler is ``a = 0, b = c = 1``) reads ``u`` and ``u0`` once and writes the new
field once: each thread owns a strip of ``rows`` nodes along the middle axis, loads their
neighbours (ghost nodes are formed in registers from the boundary condition, exactly as
:func:`hjsmooth.solvers.boundary.pad_axis` fills them) and applies the Godunov, global
Lax-Friedrichs, Engquist-Osher or hybrid Hamiltonian (codes from
:data:`hjsmooth.solvers.kernels.SCHEME_CODES`, shared with the numba kernels) and the
3-point Laplacian.  The eager array path needs a dozen full-grid temporaries per step.

Layout and launch (:mod:`hjsmooth.solvers._cuda_launch`): the array is seen as
``(n0, n1, n2)`` with ``n2`` contiguous; threads run along axis 2, the launch grid over
strips of axis 1 and over axis 0.  No index is recovered by division (64-bit division and
remainder are long emulated instruction sequences on a GPU).  Along a strip the axis-1
neighbours rotate through registers, so each node is loaded once from memory by its strip.
The scheme and the boundary code are template parameters, one compiled kernel per
combination actually used.

The CFL rate that the step needs is computed separately from ``s_k = max_i |u_{i+1} - u_i| / h_k``
(:func:`axis_slopes`; the ghost differences repeat interior ones for every boundary
condition): for Godunov and Lax-Friedrichs ``sum_k s_k / h_k`` exactly, for the hybrid
scheme ``sum_k max(s_k - 2 nu / h_k, 0) / h_k`` exactly, for Engquist-Osher the bound
``sum_k 2 s_k / h_k`` (see :func:`cfl_rate`).
"""

from __future__ import annotations

from typing import Any

from hjsmooth.backend import array_namespace, from_cupy, is_cuda, is_cupy_array, to_cupy

from ._cuda_launch import cuda_source, launch_config, raw_kernel
from .hamiltonians import SCHEMES, three_point_rate
from .kernels import BC_CODES, SCHEME_CODES
from .runge_kutta import SSPMethod

__all__ = [
    "cuda_supports",
    "cuda_stepper",
    "axis_slopes",
    "cfl_rate",
    "fused_stage",
    "kernel_source",
    "kernel_name",
    "kernel_arguments",
    "FUSED_SCHEMES",
    "ROWS_PER_THREAD",
    "CudaHJStepper",
]

FUSED_SCHEMES = SCHEMES
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

// SCHEME: 0 Godunov, 1 global Lax-Friedrichs (alpha), 2 Engquist-Osher, 3 hybrid (limit = 2 nu / h)
template <typename T, int SCHEME>
__device__ __forceinline__ T axis_term(T lo, T c, T hi, T inv_h, T nu, T alpha, T limit) {
    const T pm = (c - lo) * inv_h;
    const T pp = (hi - c) * inv_h;
    T flux;
    if (SCHEME == 0 || SCHEME == 2) {
        const T a = pm > (T)0 ? pm : (T)0;
        const T b = pp < (T)0 ? pp : (T)0;
        const T a2 = a * a, b2 = b * b;
        flux = SCHEME == 0 ? (T)0.5 * (a2 > b2 ? a2 : b2) : (T)0.5 * (a2 + b2);
    } else {
        T theta = alpha;
        if (SCHEME == 3) {
            const T am = pm < (T)0 ? -pm : pm;
            const T ap = pp < (T)0 ? -pp : pp;
            const T excess = (am > ap ? am : ap) - limit;
            theta = excess > (T)0 ? excess : (T)0;
        }
        const T mean = (T)0.5 * (pm + pp);
        flux = (T)0.5 * mean * mean - (T)0.5 * theta * (pp - pm);
    }
    return -flux + nu * ((hi - c) - (c - lo)) * inv_h * inv_h;
}

// the term of an axis whose neighbours are loaded here (not carried in registers)
template <typename T, int BC, int SCHEME>
__device__ __forceinline__ T loaded_axis_term(const T* __restrict__ u, long long idx, int i, int n, long long s,
                                              T c, T inv_h, T nu, T alpha, T limit) {
    const T prev = i > 0 ? u[idx - s] : (T)0;
    const T next = i < n - 1 ? u[idx + s] : (T)0;
    const T lo = i > 0 ? prev : low_ghost<T, BC>(u, idx, n, s, c, next);
    const T hi = i < n - 1 ? next : high_ghost<T, BC>(u, idx, n, s, c, prev);
    return axis_term<T, SCHEME>(lo, c, hi, inv_h, nu, alpha, limit);
}

template <typename T, int BC, int SCHEME>
__device__ void hj_strips(const T* __restrict__ u, const T* __restrict__ u0, T* __restrict__ out, int n0, int n1,
                          int n2, int rows, T ih0, T ih1, T ih2, T a0, T a1, T a2, T l0, T l1, T l2, T nu,
                          T wa, T wb, T cdt) {
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
            if (n0 > 1) acc += loaded_axis_term<T, BC, SCHEME>(u, idx, i0, n0, s0, c, ih0, nu, a0, l0);
            if (n1 > 1) {
                const T lo = i1 > 0 ? prev : low_ghost<T, BC>(u, idx, n1, s1, c, next);
                const T hi = i1 < n1 - 1 ? next : high_ghost<T, BC>(u, idx, n1, s1, c, prev);
                acc += axis_term<T, SCHEME>(lo, c, hi, ih1, nu, a1, l1);
            }
            acc += loaded_axis_term<T, BC, SCHEME>(u, idx, i2, n2, 1, c, ih2, nu, a2, l2);
            const T stage = wb * (c + cdt * acc);
            out[idx] = wa != (T)0 ? wa * u0[idx] + stage : stage;  // u0 is not read by Euler stages
            prev = c;
            c = next;
            idx += s1;
            if (i1 + 1 < stop) next = i1 + 2 < n1 ? u[idx + s1] : (T)0;
        }
    });
}
"""

_ENTRY = r"""
extern "C" __global__ void {name}(const {T}* __restrict__ u, const {T}* __restrict__ u0, {T}* __restrict__ out,
        int n0, int n1, int n2, int rows, {T} ih0, {T} ih1, {T} ih2, {T} a0, {T} a1, {T} a2, {T} l0, {T} l1, {T} l2,
        {T} nu, {T} wa, {T} wb, {T} cdt) {{
    hj_strips<{T}, {bc}, {scheme}>(u, u0, out, n0, n1, n2, rows, ih0, ih1, ih2, a0, a1, a2, l0, l1, l2, nu, wa, wb,
                                   cdt);
}}
"""


def kernel_name(dtype_name: str, bc: str, scheme: str) -> str:
    """Name of the entry point for one dtype (``"float32"``/``"float64"``), boundary code and scheme."""
    return f"hj_step_{dtype_name}_bc{BC_CODES[bc]}_s{SCHEME_CODES[scheme]}"


def kernel_source(*entries: tuple[str, str, str]) -> str:
    """CUDA source with one entry point per ``(dtype_name, bc, scheme)`` in ``entries``."""
    return cuda_source(
        _BODY,
        _ENTRY,
        [
            dict(name=kernel_name(d, bc, scheme), dtype=d, bc=BC_CODES[bc], scheme=SCHEME_CODES[scheme])
            for d, bc, scheme in entries
        ],
        strips=True,
    )


def kernel_arguments(
    u: Any,
    u0: Any,
    out: Any,
    dims: tuple[int, int, int],
    rows: int,
    spacing: tuple[float, ...],
    nu: float,
    slopes: list[float],
    stage: tuple[float, float, float],
    scalar: Any,
    index: Any,
) -> tuple[Any, ...]:
    """The argument tuple of one launch of ``out = a u0 + b (u + cdt L(u))``, ``stage = (a, b, cdt)``;
    ``slopes`` are the Lax-Friedrichs ``alpha_k``; ``scalar``/``index`` make the float and int scalars."""
    pad = 3 - len(spacing)
    inv_h = [0.0] * pad + [1.0 / h for h in spacing]
    alpha = [0.0] * pad + list(slopes)
    limit = [0.0] * pad + [2.0 * nu / h for h in spacing]
    return (
        u,
        u0,
        out,
        *(index(n) for n in dims),
        index(rows),
        *(scalar(v) for v in inv_h),
        *(scalar(a) for a in alpha),
        *(scalar(v) for v in limit),
        scalar(nu),
        *(scalar(w) for w in stage),
    )


def cuda_supports(case: Any, like: Any) -> bool:
    """True where the fused kernel applies to ``case`` (an :class:`hjsmooth.solvers.hj_stepping.HJCase`
    of the thesis' operator): a CUDA array of float32/float64, three-point stencil, no shift, one
    boundary condition for all axes, an SSP method."""
    op = case.operator
    if op.accuracy != "first" or op.shift is not None or op.scheme not in FUSED_SCHEMES:
        return False
    if len(set(op.bc)) != 1 or not isinstance(op.method, SSPMethod):
        return False
    return is_cuda(like) and str(like.dtype).rsplit(".", 1)[-1] in ("float32", "float64")


def cuda_stepper(case: Any, like: Any) -> CudaHJStepper:
    """The registry's factory: a :class:`CudaHJStepper` for ``case`` on arrays like ``like``."""
    op = case.operator
    return CudaHJStepper(like, op.spacing, op.nu, op.bc[0], op.scheme, op.method, op.step_for_rate, case.project)


def axis_slopes(u: Any, spacing: tuple[float, ...]) -> list[float]:
    """``max_i |u_{i+1} - u_i| / h_k`` per axis, as Python floats (one reduction per axis)."""
    xp = array_namespace(u)
    return [float(xp.max(xp.abs(xp.diff(u, axis=k)))) / h for k, h in enumerate(spacing)]


def cfl_rate(slopes: list[float], spacing: tuple[float, ...], nu: float, scheme: str) -> float:
    """``sum_k rate_k / h_k`` from the :func:`axis_slopes` (exact but for Engquist-Osher, a bound)."""
    return sum(three_point_rate(scheme, s, 2.0 * nu / h) / h for s, h in zip(slopes, spacing))


def fused_stage(
    u: Any,
    u0: Any,
    out: Any,
    stage: tuple[float, float, float],
    spacing: tuple[float, ...],
    nu: float,
    bc: str,
    scheme: str,
    slopes: list[float],
    rows: int = ROWS_PER_THREAD,
) -> Any:
    """``out = a u0 + b (u + cdt L(u))`` in one kernel, for contiguous CuPy arrays of one dtype."""
    import cupy

    dtype_name = u.dtype.name
    grid, block, dims = launch_config(tuple(u.shape), rows)
    kernel = raw_kernel(kernel_source((dtype_name, bc, scheme)), kernel_name(dtype_name, bc, scheme))
    kernel(grid, block, kernel_arguments(u, u0, out, dims, rows, spacing, nu, slopes, stage, u.dtype.type, cupy.int32))
    return out


class CudaHJStepper:
    """Marches ``u_t = L(u)`` on a CUDA array with an SSP method, one fused kernel per stage.

    Three CuPy buffers are allocated once per solve and rotated; ``project`` (the Dirichlet
    hold, or the identity) is applied after every stage.  Arguments as for
    :class:`hjsmooth.solvers._numba_hj.NumbaHJStepper`.
    """

    def __init__(
        self,
        like: Any,
        spacing: tuple[float, ...],
        nu: float,
        bc: str,
        scheme: str,
        method: Any,
        step_for_rate: Any,
        project: Any,
        rows: int = ROWS_PER_THREAD,
    ):
        import cupy

        self.like = like
        self.cupy = cupy
        self.spacing, self.nu, self.bc, self.scheme = tuple(float(h) for h in spacing), nu, bc, scheme
        self.method, self.step_for_rate, self.project, self.rows = method, step_for_rate, project, rows
        self.buffers: list[Any] = []
        self._slopes: tuple[Any, list[float]] | None = None

    def start(self, u: Any) -> Any:
        cu = self.cupy.ascontiguousarray(to_cupy(self.project(u)))
        self.buffers = [cu.copy(), self.cupy.empty_like(cu), self.cupy.empty_like(cu)]
        return self.buffers[0]

    def read(self, state: Any) -> Any:
        return state.copy() if is_cupy_array(self.like) else from_cupy(state.copy(), self.like)

    def _slopes_of(self, u: Any) -> list[float]:
        if self._slopes is None or self._slopes[0] is not u:
            self._slopes = (u, axis_slopes(u, self.spacing))
        return self._slopes[1]

    def stable_dt(self, state: Any) -> float:
        return self.step_for_rate(cfl_rate(self._slopes_of(state), self.spacing, self.nu, self.scheme))

    def step(self, state: Any, dt: float) -> Any:
        others = [b for b in self.buffers if b is not state]
        current = state
        for k, (a, b, c) in enumerate(self.method.stages):
            out = others[k % 2]
            slopes = self._slopes_of(current) if self.scheme == "lax_friedrichs" else [0.0] * len(self.spacing)
            fused_stage(
                current, state, out, (a, b, c * dt), self.spacing, self.nu, self.bc, self.scheme, slopes, self.rows
            )
            projected = self.project(out)
            if projected is not out:
                out[...] = projected
            current = out
        return current
