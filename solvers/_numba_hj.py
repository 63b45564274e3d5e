"""Fused numba stages of the Hamilton-Jacobi schemes on the CPU (numpy arrays, CPU torch tensors).

The semi-discrete operator is that of :class:`hjsmooth.solvers.hj.HamiltonJacobiOperator`
without an advection shift,

    L(u)_i = -sum_k H_hat(p-_k, p+_k) + nu sum_k (D_k^2 u)_i,

with the Godunov, Lax-Friedrichs, Engquist-Osher or hybrid numerical Hamiltonian
(:mod:`hjsmooth.solvers.hamiltonians`; codes from :data:`hjsmooth.solvers.kernels.SCHEME_CODES`)
and one-sided slopes ``p-_k, p+_k`` of the accuracy's stencil
(:mod:`hjsmooth.solvers.derivatives`; codes from :data:`hjsmooth.solvers.kernels.ACCURACY_CODES`,
the stencil's ghost width ``w``):

* ``"first"`` (``w = 1``): ``p- = (u_i - u_{i-1}) / h``, ``p+ = (u_{i+1} - u_i) / h``;
* ``"eno2"`` (``w = 2``): those corrected by ``+-1/2`` the second difference of smaller
  magnitude among the two candidate stencils, over ``h``;
* ``"weno5"`` (``w = 3``): Jiang-Peng WENO5 on the five backward (forward) differences,
  computed on the differences divided by their largest magnitude along the axis with the
  relative regularisation ``eps = 1e-6`` of :mod:`hjsmooth.solvers.derivatives` (so flat
  data gives the optimal weights, never ``0/0``), and the fourth-order five-point Laplacian.

A strong-stability-preserving Runge-Kutta step in Shu-Osher form,

    u_k = a_k u^n + b_k (u_{k-1} + c_k dt L(u_{k-1})),   u_0 = u^n,   u^{n+1} = u_s,

(:data:`hjsmooth.solvers.runge_kutta.SSP_METHODS`) runs as one parallel pass over the grid per
stage; a method in Butcher form (WENO5's fifth-order ``"rk5"``, ENO2/WENO5 only) evaluates
``L`` of every stage into a buffer of its own (:func:`butcher_combine` forms the next stage).
Each pass works on buffers padded by ``w`` ghost nodes per axis that are allocated once per solve
(:class:`NumbaHJStepper`): nothing is allocated per step.  The ghosts are filled after every
stage from the boundary condition, as :func:`hjsmooth.solvers.boundary.pad_axis` fills them
(Dirichlet nodes are reset to their held values first), so the stencil loops run without a
branch over lines of the contiguous axis and numba/LLVM vectorises them.  Grids of 1 to 3
axes are seen as 3D arrays ``(n0, n1, n2)`` with leading axes of length 1 (and no ghosts).

Before each step :meth:`NumbaHJStepper.stable_dt` finds, in one read-only pass, the CFL rates
``rate_k = max_i (dH_hat/dp- - dH_hat/dp+)`` per axis (for Lax-Friedrichs also its
``alpha_k``; for the hybrid flux its largest added dissipation) from the slopes of the
current state, from which the step follows.  For the three-point stencil these are functions
of ``max |u_{i+1} - u_i|`` per axis; for ENO2 and WENO5 they come from the reconstructed
slopes, so that pass also forms ``L(u^n)`` into a fourth buffer, and the first stage only
combines it; later stages are one fused pass each.  Lax-Friedrichs, whose flux needs the
global ``alpha`` of the slopes of each stage, runs every ENO2/WENO5 stage as that pass, which
keeps the two parts of ``L`` apart (``-1/2 mean^2 + nu D^2 u`` and ``(p+ - p-)/2`` per axis),
and a combine with the ``alpha`` it found.  WENO5 first finds the largest ``|u_{i+1} - u_i|``
per axis (a read-only pass) for its scale.  A NaN anywhere reaches the rates, so a blow-up
is reported rather than marched through.

The arithmetic is that of the array code up to the order in which terms are summed and
factors grouped: results agree with it to a few units of rounding, not bitwise.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from hjsmooth.backend import from_numpy, is_numpy_array, to_numpy

from .boundary import check_ghost_width
from .derivatives import WENO_EPS
from .hamiltonians import SCHEMES, three_point_rate
from .kernels import ACCURACY_CODES, BC_CODES, SCHEME_CODES, numba_threads
from .runge_kutta import ButcherMethod

__all__ = [
    "NumbaHJStepper",
    "NUMBA_SCHEMES",
    "numba_supports",
    "numba_stepper",
    "fill_ghosts",
    "butcher_combine",
    "padded_shape",
    "bc_codes",
    "line_slopes",
    "row",
    "line_index",
    "bits_max",
    "weno_constants",
    "WENO_CONSTANTS",
    "float_grid",
    "viscous_terms",
]

NUMBA_SCHEMES = SCHEMES
_GODUNOV, _LAX_FRIEDRICHS, _ENGQUIST_OSHER, _HYBRID = (
    SCHEME_CODES[s] for s in ("godunov", "lax_friedrichs", "engquist_osher", "hybrid")
)
_EXTRAPOLATE, _NEUMANN, _PERIODIC = BC_CODES["extrapolate"], BC_CODES["neumann"], BC_CODES["periodic"]
_FIRST, _ENO2, _WENO5 = ACCURACY_CODES["first"], ACCURACY_CODES["eno2"], ACCURACY_CODES["weno5"]
# layout of the parameter vector (in the array's dtype, so that float32 stays float32)
_HALF, _NU, _INV_H, _INV_H2, _LIMIT, _ALPHA, _A, _B, _CDT = 0, 1, 2, 5, 8, 11, 14, 15, 16
_INV_SCALE, _BACK, _EPS = 17, 20, 23  # WENO5: 1 / max |u_{i+1} - u_i| per axis, its inverse, eps
#: the constants of the ENO2/WENO5 stencils, stored in the parameter vector from ``_K`` on so that
#: the kernels compute in the array's dtype (a float64 literal would promote float32 arithmetic)
WENO_CONSTANTS = (
    1.0,
    2.0,
    3.0,
    4.0,
    1 / 3,
    7 / 6,
    11 / 6,
    1 / 6,
    5 / 6,
    13 / 12,
    0.25,
    0.1,
    0.6,
    0.3,
    16.0,
    30.0,
    1 / 12,
)
_K = 24
_N_PARAMS = _K + len(WENO_CONSTANTS)
# rows of the per-thread scratch of the ENO2/WENO5 kernels: p-, p+ and the rate of one line
_PM, _PP, _RATE = 0, 1, 2


def float_grid(u: Any) -> bool:
    """A float32/float64 array of 1 to 3 axes (what every fused CPU kernel takes)."""
    return str(u.dtype).rsplit(".", 1)[-1] in ("float32", "float64") and 1 <= u.ndim <= 3


def numba_supports(case: Any, like: Any) -> bool:
    """True where these kernels apply to ``case`` (an :class:`hjsmooth.solvers.hj_stepping.HJCase` of
    the thesis' operator): float32/float64, 1 to 3 axes, no shift, any scheme, stencil and boundary
    conditions, SSP methods, and Butcher-form methods with ENO2/WENO5."""
    op = case.operator
    if op.accuracy not in ACCURACY_CODES or op.shift is not None or op.scheme not in NUMBA_SCHEMES:
        return False
    if isinstance(op.method, ButcherMethod) and op.accuracy == "first":
        return False
    return float_grid(like)


def numba_stepper(case: Any, like: Any) -> NumbaHJStepper:
    """The registry's factory: a :class:`NumbaHJStepper` for ``case`` on arrays like ``like``."""
    op = case.operator
    held = case.project.held if op.bc[0] == "dirichlet" else None
    return NumbaHJStepper(like, op.spacing, op.nu, op.bc, op.scheme, op.method, op.step_for_rate, held, op.accuracy)


def bc_codes(bc: Any, ndim: int) -> np.ndarray:
    """The ghost-rule codes of the three axes of the padded 3D view (leading fake axes: 0)."""
    names = (bc,) * ndim if isinstance(bc, str) else tuple(bc)
    return np.array([0] * (3 - ndim) + [BC_CODES[b] for b in names], dtype=np.int64)


# ------------------------------------------------------------------------------------------- rows
@numba.njit(cache=True)
def row(u, i0, i1, w, n2, axis, k):  # pragma: no cover - compiled
    """The interior of line ``(i0, i1)`` shifted by ``k`` nodes along ``axis`` (padded 3D ``u``, ghost ``w``)."""
    if axis == 2:
        return u[i0, i1, w + k : w + k + n2]
    if axis == 1:
        return u[i0, i1 + k, w : w + n2]
    return u[i0 + k, i1, w : w + n2]


@numba.njit(cache=True)
def line_index(line, n1, g0, g1):  # pragma: no cover - compiled
    """Padded indices ``(i0, i1)`` of interior line number ``line`` (``n1`` interior lines per plane)."""
    l0 = line // n1
    return l0 + g0, line - l0 * n1 + g1


# ------------------------------------------------------------------------------ three-point stencil
@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _axis_terms(acc, lo, c, hi, n, scheme, inv_h, inv_h2, nu, limit, alpha, half, zero):  # pragma: no cover
    """``acc[j] += -H_hat(p-, p+) + nu (lo - 2 c + hi) / h^2`` along one line (rows ``lo``, ``c``, ``hi``)."""
    two = half + half + half + half
    if scheme == _GODUNOV:
        for j in range(n):
            pm = (c[j] - lo[j]) * inv_h
            pp = (hi[j] - c[j]) * inv_h
            left = pm if pm > zero else zero
            right = pp if pp < zero else zero
            ll = left * left
            rr = right * right
            acc[j] += nu * ((lo[j] - two * c[j] + hi[j]) * inv_h2) - half * (ll if ll > rr else rr)
    elif scheme == _ENGQUIST_OSHER:
        for j in range(n):
            pm = (c[j] - lo[j]) * inv_h
            pp = (hi[j] - c[j]) * inv_h
            left = pm if pm > zero else zero
            right = pp if pp < zero else zero
            acc[j] += nu * ((lo[j] - two * c[j] + hi[j]) * inv_h2) - half * (left * left + right * right)
    elif scheme == _LAX_FRIEDRICHS:
        for j in range(n):
            pm = (c[j] - lo[j]) * inv_h
            pp = (hi[j] - c[j]) * inv_h
            mean = half * (pm + pp)
            acc[j] += nu * ((lo[j] - two * c[j] + hi[j]) * inv_h2) - (half * mean * mean - half * alpha * (pp - pm))
    else:  # hybrid: central where max(|p-|, |p+|) <= 2 nu / h, local Lax-Friedrichs dissipation beyond
        for j in range(n):
            pm = (c[j] - lo[j]) * inv_h
            pp = (hi[j] - c[j]) * inv_h
            mean = half * (pm + pp)
            am = abs(pm)
            ap = abs(pp)
            excess = (am if am > ap else ap) - limit
            theta = excess if excess > zero else zero
            acc[j] += nu * ((lo[j] - two * c[j] + hi[j]) * inv_h2) - (half * mean * mean - half * theta * (pp - pm))


@numba.njit(cache=True)
def _engquist_osher_rates(r, lo, c, hi, n, zero):  # pragma: no cover - compiled
    """``r[j] = max(p-, 0) - min(p+, 0)`` times ``h``; the selects drop a NaN, so
    ``(dm - dm) + (dp - dp)`` (zero unless a difference is NaN or infinite) carries it."""
    for j in range(n):
        dm = c[j] - lo[j]
        dp = hi[j] - c[j]
        r[j] = ((dm if dm > zero else zero) - (dp if dp < zero else zero)) + ((dm - dm) + (dp - dp))


@numba.njit(cache=True)
def _line(u, i0, i1, g0, g1, n2, axis):  # pragma: no cover - compiled
    """Rows ``(lo, c, hi)`` of the interior of line ``(i0, i1)`` and its neighbours along ``axis``."""
    c = u[i0, i1, 1 : n2 + 1]
    if axis == 2:
        return u[i0, i1, 0:n2], c, u[i0, i1, 2 : n2 + 2]
    if axis == 1:
        return u[i0, i1 - 1, 1 : n2 + 1], c, u[i0, i1 + 1, 1 : n2 + 1]
    return u[i0 - 1, i1, 1 : n2 + 1], c, u[i0 + 1, i1, 1 : n2 + 1]


@numba.njit(cache=True)
def bits_max(bits, n):  # pragma: no cover - compiled
    """The largest of ``n`` bit patterns.  For floats ``>= +0`` that is the float maximum, and a NaN
    (its pattern lies above that of ``+inf``, whatever its sign bit) wins; an integer maximum
    vectorises without fast-math, where a float one does not."""
    m = bits[0]
    for j in range(1, n):
        b = bits[j]
        m = b if b > m else m
    return m


@numba.njit(cache=True, parallel=True)
def _rates_kernel(u, p, scheme, ndim, line_rates, line_bits, partial_bits, rate_bits):  # pragma: no cover
    """``rate_bits[k]``: the bit pattern of the largest rate contribution along axis ``k`` of padded
    ``u`` (3D view, the last ``ndim`` axes real), in units of slope times ``h``.

    Godunov, Lax-Friedrichs and the hybrid scheme need only ``max |u_{i+1} - u_i|`` (their rates
    are functions of it, see :meth:`NumbaHJStepper.axis_rates`): every ghost difference repeats
    an interior one, up to sign, for every boundary rule.  Engquist-Osher's
    ``max(p-,0) - min(p+,0)`` is formed per node."""
    g0 = 1 if ndim == 3 else 0
    g1 = 1 if ndim >= 2 else 0
    n1 = u.shape[1] - 2 * g1
    n2 = u.shape[2] - 2
    zero = p[_HALF] - p[_HALF]
    lines = (u.shape[0] - 2 * g0) * n1
    for line in numba.prange(lines):
        l0 = line // n1
        i0 = l0 + g0
        i1 = line - l0 * n1 + g1
        r = line_rates[line]
        for axis in range(3 - ndim, 3):
            lo, c, hi = _line(u, i0, i1, g0, g1, n2, axis)
            if scheme == _ENGQUIST_OSHER:
                _engquist_osher_rates(r, lo, c, hi, n2, zero)
            else:
                for j in range(n2):
                    r[j] = abs(hi[j] - c[j])
            partial_bits[axis, line] = bits_max(line_bits[line], n2)
    for axis in range(3 - ndim, 3):
        rate_bits[axis] = bits_max(partial_bits[axis], lines)


# --------------------------------------------------------------------------- ENO2 and WENO5 stencils
@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def eno2_slopes(pm, pp, u, i0, i1, w, n2, axis, inv_h, half):  # pragma: no cover - compiled
    """ENO2 ``p-``, ``p+`` along one line: the first difference corrected by ``+-1/2`` the second
    difference of smaller magnitude among the two candidate stencils, over ``h``."""
    m2 = row(u, i0, i1, w, n2, axis, -2)
    m1 = row(u, i0, i1, w, n2, axis, -1)
    c = row(u, i0, i1, w, n2, axis, 0)
    p1 = row(u, i0, i1, w, n2, axis, 1)
    p2 = row(u, i0, i1, w, n2, axis, 2)
    two = half + half + half + half
    for j in range(n2):
        d_lo = m2[j] - two * m1[j] + c[j]
        d_c = m1[j] - two * c[j] + p1[j]
        d_hi = c[j] - two * p1[j] + p2[j]
        left = d_lo if abs(d_lo) <= abs(d_c) else d_c
        right = d_c if abs(d_c) <= abs(d_hi) else d_hi
        pm[j] = ((c[j] - m1[j]) + half * left) * inv_h
        pp[j] = ((p1[j] - c[j]) - half * right) * inv_h


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _weno5_value(v1, v2, v3, v4, v5, eps, k):  # pragma: no cover - compiled
    """Jiang-Peng WENO5 value from five consecutive (scaled) differences, with one division
    (``k``: :data:`WENO_CONSTANTS` in the data's dtype).

    The weights ``w_k / (s_k + eps)^2`` normalised to sum one are ``w_k t_l t_m / sum`` with
    ``t = (s + eps)^2``; on differences of magnitude at most one ``t`` lies in ``[eps^2, 1.2e3]``."""
    two, three, four = k[1], k[2], k[3]
    phi1 = v1 * k[4] - v2 * k[5] + v3 * k[6]
    phi2 = v3 * k[8] + v4 * k[4] - v2 * k[7]
    phi3 = v3 * k[4] + v4 * k[8] - v5 * k[7]
    a = v1 - two * v2 + v3
    b = v1 - four * v2 + three * v3
    s1 = k[9] * (a * a) + k[10] * (b * b) + eps
    a = v2 - two * v3 + v4
    b = v2 - v4
    s2 = k[9] * (a * a) + k[10] * (b * b) + eps
    a = v3 - two * v4 + v5
    b = three * v3 - four * v4 + v5
    s3 = k[9] * (a * a) + k[10] * (b * b) + eps
    t1 = s1 * s1
    t2 = s2 * s2
    t3 = s3 * s3
    w1 = k[11] * (t2 * t3)
    w2 = k[12] * (t1 * t3)
    w3 = k[13] * (t1 * t2)
    return (w1 * phi1 + w2 * phi2 + w3 * phi3) / (w1 + w2 + w3)


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def weno5_slopes(pm, pp, u, i0, i1, w, n2, axis, inv_h, inv_scale, back, eps, k):  # pragma: no cover - compiled
    """WENO5 ``p-``, ``p+`` along one line, on the differences times ``inv_scale`` (``back`` undoes it)."""
    m3 = row(u, i0, i1, w, n2, axis, -3)
    m2 = row(u, i0, i1, w, n2, axis, -2)
    m1 = row(u, i0, i1, w, n2, axis, -1)
    c = row(u, i0, i1, w, n2, axis, 0)
    p1 = row(u, i0, i1, w, n2, axis, 1)
    p2 = row(u, i0, i1, w, n2, axis, 2)
    p3 = row(u, i0, i1, w, n2, axis, 3)
    out = back * inv_h
    for j in range(n2):
        d_m2 = (m2[j] - m3[j]) * inv_scale  # d_k = u_{i+k} - u_{i+k-1}, k = -2 .. 3
        d_m1 = (m1[j] - m2[j]) * inv_scale
        d_0 = (c[j] - m1[j]) * inv_scale
        d_1 = (p1[j] - c[j]) * inv_scale
        d_2 = (p2[j] - p1[j]) * inv_scale
        d_3 = (p3[j] - p2[j]) * inv_scale
        pm[j] = _weno5_value(d_m2, d_m1, d_0, d_1, d_2, eps, k) * out
        pp[j] = _weno5_value(d_3, d_2, d_1, d_0, d_m1, eps, k) * out


@numba.njit(cache=True)
def weno_constants(p):  # pragma: no cover - compiled
    """:data:`WENO_CONSTANTS` as a tuple of scalars of the data's dtype."""
    return (
        p[_K],
        p[_K + 1],
        p[_K + 2],
        p[_K + 3],
        p[_K + 4],
        p[_K + 5],
        p[_K + 6],
        p[_K + 7],
        p[_K + 8],
        p[_K + 9],
        p[_K + 10],
        p[_K + 11],
        p[_K + 12],
        p[_K + 13],
        p[_K + 14],
        p[_K + 15],
        p[_K + 16],
    )


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def line_slopes(pm, pp, u, i0, i1, w, n2, axis, order, inv_h, inv_scale, back, eps, k):  # pragma: no cover
    """One-sided slopes ``p-``, ``p+`` of one line along ``axis`` of padded ``u`` (ghost ``w``) with the
    stencil ``order`` (1: first differences, 2: ENO2, 3: WENO5 on the differences times ``inv_scale``;
    ``k``: :data:`WENO_CONSTANTS` in the data's dtype)."""
    if order == _FIRST:
        lo = row(u, i0, i1, w, n2, axis, -1)
        c = row(u, i0, i1, w, n2, axis, 0)
        hi = row(u, i0, i1, w, n2, axis, 1)
        for j in range(n2):
            pm[j] = (c[j] - lo[j]) * inv_h
            pp[j] = (hi[j] - c[j]) * inv_h
    elif order == _ENO2:
        eno2_slopes(pm, pp, u, i0, i1, w, n2, axis, inv_h, k[0] * k[10] * k[1])
    else:
        weno5_slopes(pm, pp, u, i0, i1, w, n2, axis, inv_h, inv_scale, back, eps, k)


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _slope_rows(scratch, u, i0, i1, w, n2, axis, order, p):  # pragma: no cover - compiled
    """The rows ``p-``, ``p+`` of one line along ``axis`` into ``scratch[_PM]``, ``scratch[_PP]``."""
    if order == _ENO2:
        eno2_slopes(scratch[_PM], scratch[_PP], u, i0, i1, w, n2, axis, p[_INV_H + axis], p[_HALF])
    else:
        weno5_slopes(
            scratch[_PM],
            scratch[_PP],
            u,
            i0,
            i1,
            w,
            n2,
            axis,
            p[_INV_H + axis],
            p[_INV_SCALE + axis],
            p[_BACK + axis],
            p[_EPS],
            weno_constants(p),
        )


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _flux_terms(acc, pm, pp, n, scheme, alpha, half, zero):  # pragma: no cover - compiled
    """``acc[j] -= H_hat(p-, p+)`` (Godunov, Lax-Friedrichs with ``alpha``, Engquist-Osher)."""
    if scheme == _GODUNOV:
        for j in range(n):
            left = pm[j] if pm[j] > zero else zero
            right = pp[j] if pp[j] < zero else zero
            ll = left * left
            rr = right * right
            acc[j] -= half * (ll if ll > rr else rr)
    elif scheme == _ENGQUIST_OSHER:
        for j in range(n):
            left = pm[j] if pm[j] > zero else zero
            right = pp[j] if pp[j] < zero else zero
            acc[j] -= half * (left * left + right * right)
    else:
        for j in range(n):
            mean = half * (pm[j] + pp[j])
            acc[j] -= half * mean * mean - half * alpha * (pp[j] - pm[j])


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def viscous_terms(acc, u, i0, i1, w, n2, axis, order, nu, inv_h2, k):  # pragma: no cover - compiled
    """``acc[j] += nu (D^2 u)_j``: five points for WENO5, three otherwise (``k``: :data:`WENO_CONSTANTS`)."""
    lo = row(u, i0, i1, w, n2, axis, -1)
    c = row(u, i0, i1, w, n2, axis, 0)
    hi = row(u, i0, i1, w, n2, axis, 1)
    if order == _WENO5:
        lo2 = row(u, i0, i1, w, n2, axis, -2)
        hi2 = row(u, i0, i1, w, n2, axis, 2)
        scale = nu * inv_h2 * k[16]
        sixteen, thirty = k[14], k[15]
        for j in range(n2):
            acc[j] += scale * (sixteen * (lo[j] + hi[j]) - thirty * c[j] - (lo2[j] + hi2[j]))
    else:
        scale = nu * inv_h2
        two = k[1]
        for j in range(n2):
            acc[j] += scale * (lo[j] - two * c[j] + hi[j])


@numba.njit(cache=True)
def _slope_rates(r, pm, pp, n, scheme, zero):  # pragma: no cover - compiled
    """``r[j]``: the rate contribution of the slopes at node ``j`` (``>= +0``, or NaN carried as in
    :func:`_engquist_osher_rates`): Godunov ``max(p-+, -p+-)``, Engquist-Osher ``p-+ - p+-``
    (``+``/``-`` parts), Lax-Friedrichs ``max(|p-|, |p+|)``."""
    for j in range(n):
        a = pm[j]
        b = pp[j]
        carry = (a - a) + (b - b)
        if scheme == _LAX_FRIEDRICHS:
            x = abs(a)
            y = abs(b)
        else:
            x = a if a > zero else zero
            y = zero - (b if b < zero else zero)
            if scheme == _ENGQUIST_OSHER:
                x = x + y
                y = zero
        r[j] = (x if x > y else y) + carry


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _high_order_line(acc, split, scratch, u, i0, i1, w, n2, axis, order, scheme, p, want_flux):  # pragma: no cover
    """Slopes of one line along ``axis`` into ``scratch``; with ``want_flux`` also add the axis'
    terms ``-H_hat + nu D^2 u`` of ``L(u)`` to ``acc``, except for Lax-Friedrichs, whose flux
    ``1/2 mean^2 - alpha (p+ - p-) / 2`` needs the global ``alpha`` of these very slopes: there
    ``-1/2 mean^2 + nu D^2 u`` goes to ``acc`` and ``(p+ - p-) / 2`` to the line ``split``."""
    _slope_rows(scratch, u, i0, i1, w, n2, axis, order, p)
    if want_flux:
        half = p[_HALF]
        zero = half - half
        pm, pp = scratch[_PM], scratch[_PP]
        if scheme == _LAX_FRIEDRICHS:
            for j in range(n2):
                mean = half * (pm[j] + pp[j])
                acc[j] -= half * mean * mean
                split[j] = half * (pp[j] - pm[j])
        else:
            _flux_terms(acc, pm, pp, n2, scheme, zero, half, zero)
        if p[_NU] != zero:
            viscous_terms(acc, u, i0, i1, w, n2, axis, order, p[_NU], p[_INV_H2 + axis], weno_constants(p))


# ------------------------------------------------------------------------------------------ stages
@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def _stage_kernel(u, u0, out, p, scheme, ndim):  # pragma: no cover - compiled
    """``out = a u0 + b (u + c dt L(u))`` on the interior (``a``, ``b``, ``c dt`` from ``p``)."""
    g0 = 1 if ndim == 3 else 0
    g1 = 1 if ndim >= 2 else 0
    n0 = u.shape[0] - 2 * g0
    n1 = u.shape[1] - 2 * g1
    n2 = u.shape[2] - 2
    half = p[_HALF]
    zero = half - half
    nu = p[_NU]
    a = p[_A]
    b = p[_B]
    cdt = p[_CDT]
    for line in numba.prange(n0 * n1):
        i0 = line // n1 + g0
        i1 = line - (line // n1) * n1 + g1
        acc = out[i0, i1, 1 : n2 + 1]
        for j in range(n2):
            acc[j] = zero
        for axis in range(3 - ndim, 3):
            lo, c, hi = _line(u, i0, i1, g0, g1, n2, axis)
            _axis_terms(
                acc,
                lo,
                c,
                hi,
                n2,
                scheme,
                p[_INV_H + axis],
                p[_INV_H2 + axis],
                nu,
                p[_LIMIT + axis],
                p[_ALPHA + axis],
                half,
                zero,
            )
        c = u[i0, i1, 1 : n2 + 1]
        if a != zero:
            c0 = u0[i0, i1, 1 : n2 + 1]
            for j in range(n2):
                acc[j] = a * c0[j] + b * (c[j] + cdt * acc[j])
        else:
            for j in range(n2):
                acc[j] = b * (c[j] + cdt * acc[j])


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _combine_line(dst, lu, u, u0, i0, i1, w, n2, p, zero):  # pragma: no cover - compiled
    """``dst = a u0 + b (u + c dt lu)`` along one line (``dst`` may be ``lu``)."""
    a = p[_A]
    b = p[_B]
    cdt = p[_CDT]
    c = u[i0, i1, w : w + n2]
    if a != zero:
        c0 = u0[i0, i1, w : w + n2]
        for j in range(n2):
            dst[j] = a * c0[j] + b * (c[j] + cdt * lu[j])
    else:
        for j in range(n2):
            dst[j] = b * (c[j] + cdt * lu[j])


# passes of the ENO2/WENO5 kernel
_LARGEST, _RATES, _RATES_RHS, _STAGE, _COMBINE = 0, 1, 2, 3, 4


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")
def _high_order_kernel(
    u, u0, lu, out, split, p, scheme, ndim, order, mode, scratch, line_rates, line_bits, partial_bits, rate_bits
):  # pragma: no cover - compiled
    """One parallel pass over the interior lines of padded ``u`` (ghost width ``order``) with the
    ENO2 or WENO5 stencil (one kernel for all passes, so that numba compiles one parallel loop):

    ``_LARGEST``
        ``rate_bits[k]``: the bit pattern of ``max |u_{i+1} - u_i|`` along axis ``k`` (the ghost
        differences repeat interior ones, up to sign and rounding): WENO5's scale.
    ``_RATES`` / ``_RATES_RHS``
        ``rate_bits[k]``: the largest rate contribution of the slopes along axis ``k`` (slope
        units); ``_RATES_RHS`` also writes ``L(u)`` into ``out`` (for Lax-Friedrichs its parts
        without ``alpha``: ``out`` and ``split[k]``, see :func:`_high_order_line`).
    ``_STAGE``
        ``out = a u0 + b (u + c dt L(u))`` (``a``, ``b``, ``c dt`` from ``p``; not Lax-Friedrichs).
    ``_COMBINE``
        the same with ``L = lu`` already formed, for Lax-Friedrichs ``lu + sum_k alpha_k split[k]``.
    """
    w = order
    g0 = w if ndim == 3 else 0
    g1 = w if ndim >= 2 else 0
    n1 = u.shape[1] - 2 * g1
    n2 = u.shape[2] - 2 * w
    zero = p[_HALF] - p[_HALF]
    lines = (u.shape[0] - 2 * g0) * n1
    split_parts = scheme == _LAX_FRIEDRICHS
    for line in numba.prange(lines):
        i0, i1 = line_index(line, n1, g0, g1)
        dst = out[i0, i1, w : w + n2]
        r = line_rates[line]
        if mode == _LARGEST:
            for axis in range(3 - ndim, 3):
                c = row(u, i0, i1, w, n2, axis, 0)
                hi = row(u, i0, i1, w, n2, axis, 1)
                for j in range(n2):
                    r[j] = abs(hi[j] - c[j])
                partial_bits[axis, line] = bits_max(line_bits[line], n2)
        elif mode == _COMBINE:
            src = lu[i0, i1, w : w + n2]
            if split_parts:
                for j in range(n2):
                    dst[j] = src[j]
                for axis in range(3 - ndim, 3):
                    alpha = p[_ALPHA + axis]
                    part = split[axis, i0, i1, w : w + n2]
                    for j in range(n2):
                        dst[j] += alpha * part[j]
                src = dst
            _combine_line(dst, src, u, u0, i0, i1, w, n2, p, zero)
        else:
            rows = scratch[numba.get_thread_id()]
            flux = mode == _RATES_RHS or mode == _STAGE
            if flux:
                for j in range(n2):
                    dst[j] = zero
            for axis in range(3 - ndim, 3):
                parts = split[axis, i0, i1, w : w + n2] if (split_parts and mode == _RATES_RHS) else rows[_RATE]
                _high_order_line(dst, parts, rows, u, i0, i1, w, n2, axis, order, scheme, p, flux)
                if mode != _STAGE:
                    _slope_rates(r, rows[_PM], rows[_PP], n2, scheme, zero)
                    partial_bits[axis, line] = bits_max(line_bits[line], n2)
            if mode == _STAGE:
                _combine_line(dst, dst, u, u0, i0, i1, w, n2, p, zero)
    if mode != _STAGE and mode != _COMBINE:
        for axis in range(3 - ndim, 3):
            rate_bits[axis] = bits_max(partial_bits[axis], lines)


@numba.njit(cache=True)
def fill_ghosts(u, ndim, bcs, held, hold, w, p):  # pragma: no cover - compiled
    """The ``w`` ghost nodes at both ends of every real axis from the boundary rule (after holding
    the Dirichlet faces; ``bcs`` the rule code of every axis of the 3D view), as
    :func:`hjsmooth.solvers.boundary.pad_axis` forms them (the ghost
    counts ``k = 2 .. w`` of the linear extrapolation taken from ``p``, in the data's dtype)."""
    g0 = w if ndim == 3 else 0
    g1 = w if ndim >= 2 else 0
    m0, m1, m2 = u.shape
    if hold:  # the face nodes of the real axes take their held values
        n0 = m0 - 2 * g0
        n1 = m1 - 2 * g1
        n2 = m2 - 2 * w
        for i0 in range(n0):
            for i1 in range(n1):
                face = (g0 > 0 and (i0 == 0 or i0 == n0 - 1)) or (g1 > 0 and (i1 == 0 or i1 == n1 - 1))
                for j in range(n2):
                    if face or j == 0 or j == n2 - 1:
                        u[i0 + g0, i1 + g1, j + w] = held[i0, i1, j]
    for axis in range(3 - ndim, 3):
        bc = bcs[axis]
        lo = w  # the first and last interior index along the axis
        hi = u.shape[axis] - w - 1
        for a in range(m0 if axis != 0 else 1):
            for b in range(m1 if axis != 1 else 1):
                for c in range(m2 if axis != 2 else 1):
                    for k in range(1, w + 1):
                        if bc == _PERIODIC:  # node n-1 is node 0
                            src_lo, src_hi = hi - k, lo + k
                        else:  # Neumann: the mirror images; extrapolation: the end nodes and their neighbours
                            src_lo, src_hi = lo + k, hi - k
                        if axis == 0:
                            low, high = u[src_lo, b, c], u[src_hi, b, c]
                            first, last = u[lo, b, c], u[hi, b, c]
                        elif axis == 1:
                            low, high = u[a, src_lo, c], u[a, src_hi, c]
                            first, last = u[a, lo, c], u[a, hi, c]
                        else:
                            low, high = u[a, b, src_lo], u[a, b, src_hi]
                            first, last = u[a, b, lo], u[a, b, hi]
                        if bc != _PERIODIC and bc != _NEUMANN:
                            if k == 1:
                                slope_lo, slope_hi = first - low, last - high
                                low, high = first + slope_lo, last + slope_hi
                            else:
                                count = p[_K + k - 1]
                                low, high = first + count * slope_lo, last + count * slope_hi
                        if axis == 0:
                            u[lo - k, b, c], u[hi + k, b, c] = low, high
                        elif axis == 1:
                            u[a, lo - k, c], u[a, hi + k, c] = low, high
                        else:
                            u[a, b, lo - k], u[a, b, hi + k] = low, high


@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def butcher_combine(out, u0, slopes, weights, count, dt, ndim, w):  # pragma: no cover - compiled
    """``out = u0 + dt sum_{j < count} weights[j] slopes[j]`` on the interior of padded 3D arrays."""
    g0 = w if ndim == 3 else 0
    g1 = w if ndim >= 2 else 0
    n1 = u0.shape[1] - 2 * g1
    n2 = u0.shape[2] - 2 * w
    lines = (u0.shape[0] - 2 * g0) * n1
    for line in numba.prange(lines):
        l0 = line // n1
        i0 = l0 + g0
        i1 = line - l0 * n1 + g1
        dst = out[i0, i1, w : w + n2]
        src = u0[i0, i1, w : w + n2]
        for j in range(n2):
            dst[j] = src[j]
        for k in range(count):
            c = weights[k] * dt
            if c != 0:
                part = slopes[k, i0, i1, w : w + n2]
                for j in range(n2):
                    dst[j] += c * part[j]


def padded_shape(shape: tuple[int, ...], width: int) -> tuple[int, int, int]:
    full = (1,) * (3 - len(shape)) + tuple(int(n) for n in shape)
    return tuple(n + 2 * width if axis >= 3 - len(shape) else n for axis, n in enumerate(full))  # type: ignore


class NumbaHJStepper:
    """Marches ``u_t = L(u)`` with an SSP Runge-Kutta method, in place on preallocated padded buffers.

    The state handed to :func:`hjsmooth.solvers.stepping.march` is one of the three state
    buffers; :meth:`read` copies its interior out as an array of the input's type, device and
    dtype.  ENO2 and WENO5 also keep ``L(u^n)`` from the rates pass in a fourth buffer (with
    Lax-Friedrichs, its ``alpha``-free part and ``(p+ - p-)/2`` per axis in three more), and
    three rows per numba thread for the slopes of a line.

    Parameters
    ----------
    like : array
        The initial state (numpy or CPU torch, float32 or float64, 1 to 3 axes).
    spacing : tuple of float
        ``h_k`` per axis.
    nu : float
        Viscosity ``1/(2 beta)``.
    bc : str
        Boundary condition (:data:`hjsmooth.solvers.kernels.BC_CODES`).
    scheme : str
        Numerical Hamiltonian (:data:`hjsmooth.solvers.kernels.SCHEME_CODES`).
    method : SSPMethod
        The Runge-Kutta method (:mod:`hjsmooth.solvers.runge_kutta`).
    step_for_rate : callable
        ``step_for_rate(sum_k rate_k / h_k)``: the step the solver allows at that rate.
    held : array or None
        For ``bc="dirichlet"``, the values the face nodes are held at.
    accuracy : str
        The stencil (:data:`hjsmooth.solvers.kernels.ACCURACY_CODES`): ``"first"``, ``"eno2"``
        or ``"weno5"``.
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
        held: Any | None = None,
        accuracy: str = "first",
    ):
        self.like = like
        host = to_numpy(like)
        self.dtype = host.dtype
        self.shape = tuple(host.shape)
        self.ndim = host.ndim
        self.scheme = SCHEME_CODES[scheme]
        self.scheme_name = scheme
        names = (bc,) * self.ndim if isinstance(bc, str) else tuple(bc)
        self.bc = bc_codes(names, self.ndim)
        self.order = ACCURACY_CODES[accuracy]
        width = self.order
        for n, name in zip(self.shape, names):
            check_ghost_width(n, width, name)
        self.method = method
        self.butcher = isinstance(method, ButcherMethod)
        if self.butcher and self.order == _FIRST:
            raise ValueError("a Butcher-form method runs on the ENO2/WENO5 kernels only")
        self.step_for_rate = step_for_rate
        padded = padded_shape(self.shape, width)
        high = self.order != _FIRST
        self.buffers = [np.zeros(padded, dtype=self.dtype) for _ in range(3)]
        # L of every stage of a Butcher-form method; L(u^n) of the rates pass is the first
        self.stage_slopes = np.zeros((len(method.b), *padded) if self.butcher else (1, 1, 1, 1), dtype=self.dtype)
        self.rhs = (
            self.stage_slopes[0] if self.butcher else np.zeros(padded if high else (1, 1, 1), dtype=self.dtype)
        )  # L(u^n) of the rates pass
        self.weights = np.zeros(max(len(getattr(method, "b", ())), 1), dtype=np.float64)
        split = high and self.scheme == _LAX_FRIEDRICHS  # Lax-Friedrichs' (p+ - p-) / 2 per axis
        self.split = np.zeros((3, *padded) if split else (3, 1, 1, 1), dtype=self.dtype)
        threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        self.scratch = np.zeros((threads, 3, padded[2]) if high else (1, 3, 1), dtype=self.dtype)
        self.view3 = (1,) * (3 - self.ndim) + self.shape
        self.interior = tuple(slice(width, -width) if axis >= 3 - self.ndim else slice(None) for axis in range(3))
        self.hold = held is not None
        self.held = (
            np.ascontiguousarray(to_numpy(held), dtype=self.dtype).reshape(self.view3)
            if self.hold
            else np.zeros((1, 1, 1), dtype=self.dtype)
        )
        pad = 3 - self.ndim
        h = (1.0,) * pad + tuple(float(s) for s in spacing)
        self.params = np.zeros(_N_PARAMS, dtype=self.dtype)
        self.params[_HALF], self.params[_NU], self.params[_EPS] = 0.5, nu, WENO_EPS
        self.params[_INV_H : _INV_H + 3] = [1.0 / s for s in h]
        self.params[_INV_H2 : _INV_H2 + 3] = [1.0 / (s * s) for s in h]
        self.params[_LIMIT : _LIMIT + 3] = [2.0 * nu / s for s in h]
        self.params[_K:] = WENO_CONSTANTS
        self.params[_INV_SCALE : _INV_SCALE + 3] = 1.0
        self.params[_BACK : _BACK + 3] = 1.0
        self.spacing = tuple(float(s) for s in spacing)
        lines = padded[0] * padded[1]
        bits = np.uint32 if self.dtype == np.float32 else np.uint64
        self.line_rates = np.zeros((lines, padded[2]), dtype=self.dtype)
        self.partial_bits = np.zeros((3, lines), dtype=bits)
        self.rate_bits = np.zeros(3, dtype=bits)
        self._scratch = (self.line_rates, self.line_rates.view(bits), self.partial_bits, self.rate_bits)
        self.rates = np.zeros(3, dtype=self.dtype)
        self._largest = float(np.finfo(self.dtype).max)
        # the buffers whose WENO5 scales / Lax-Friedrichs alphas / L(u) are in place (identity)
        self._scaled_of: Any = None
        self._rates_of: Any = None
        self._rhs_of: Any = None
        self.threads = numba_threads(host.size)

    # -- state handling -------------------------------------------------------------------------------
    def start(self, u: Any) -> np.ndarray:
        """Copy ``u`` into the first buffer (with its ghosts); the returned buffer is the state."""
        state = self.buffers[0]
        state[self.interior] = np.asarray(to_numpy(u), dtype=self.dtype).reshape(self.view3)
        self._ghosts(state)
        self._scaled_of = self._rates_of = self._rhs_of = None
        return state

    def read(self, state: np.ndarray) -> Any:
        """The interior of ``state`` as a new array of the input's type, device and dtype."""
        values = state[self.interior].reshape(self.shape).copy()
        return values if is_numpy_array(self.like) else from_numpy(values, self.like)

    def _ghosts(self, u: np.ndarray) -> None:
        fill_ghosts(u, self.ndim, self.bc, self.held, self.hold, self.order, self.params)

    def _others(self, state: np.ndarray) -> list[np.ndarray]:
        return [b for b in self.buffers if b is not state]

    # -- rates ----------------------------------------------------------------------------------------
    def _pass(self, u: np.ndarray, mode: int, u0: np.ndarray | None = None, out: np.ndarray | None = None) -> None:
        """One pass of :func:`_high_order_kernel` over ``u`` (ENO2/WENO5)."""
        _high_order_kernel(
            u,
            u if u0 is None else u0,
            self.rhs,
            self.rhs if out is None else out,
            self.split,
            self.params,
            self.scheme,
            self.ndim,
            self.order,
            mode,
            self.scratch,
            *self._scratch,
        )

    def _scale(self, state: np.ndarray) -> None:
        """WENO5: the inverse of the largest ``|u_{i+1} - u_i|`` per axis (1 for a flat axis; the
        largest finite number where the inverse overflows) and its inverse, into the parameters."""
        if self.order != _WENO5 or self._scaled_of is state:
            return
        self._pass(state, _LARGEST)
        largest = self.rate_bits.view(self.dtype)
        for axis in range(3 - self.ndim, 3):
            m = float(largest[axis])
            inverse = 1.0 / m if m > 0 else 1.0
            inverse = inverse if inverse <= self._largest else self._largest
            self.params[_INV_SCALE + axis] = inverse
            self.params[_BACK + axis] = 1.0 / self.params[_INV_SCALE + axis]
        self._scaled_of = state

    def axis_rates(self, state: np.ndarray, want_rhs: bool = False) -> np.ndarray:
        """Per-axis CFL rates ``max_i (dH_hat/dp- - dH_hat/dp+)`` of ``state`` (a view of an internal
        buffer; copy to keep).  Three-point stencil: ``max |D| / h`` for Godunov and Lax-Friedrichs,
        ``max(max |D| - 2 nu, 0) / h`` for the hybrid scheme (``D`` the differences along the axis),
        per node for Engquist-Osher.  ENO2/WENO5: from the reconstructed slopes, per node (and,
        with ``want_rhs``, ``L(state)`` into :attr:`rhs`)."""
        if self.order != _FIRST:
            self._scale(state)
            self._pass(state, _RATES_RHS if want_rhs else _RATES, out=self.rhs)
            largest = self.rate_bits.view(self.dtype)
            self.rates[3 - self.ndim :] = largest[3 - self.ndim :]
            return self.rates[3 - self.ndim :]
        _rates_kernel(state, self.params, self.scheme, self.ndim, *self._scratch)
        largest = self.rate_bits.view(self.dtype)
        for axis in range(3 - self.ndim, 3):
            slope = largest[axis] * self.params[_INV_H + axis]
            if self.scheme != _ENGQUIST_OSHER:  # its rates were formed node by node, exactly
                slope = three_point_rate(self.scheme_name, slope, self.params[_LIMIT + axis])
            self.rates[axis] = slope
        return self.rates[3 - self.ndim :]

    def _prepare_alpha(self, state: np.ndarray) -> None:
        """Lax-Friedrichs: ``alpha_k`` of ``state`` into the parameters."""
        if self._rates_of is not state:
            self.params[_ALPHA + 3 - self.ndim : _ALPHA + 3] = self.axis_rates(state)
            self._rates_of = state

    def stable_dt(self, state: np.ndarray) -> float:
        """The CFL step at ``state`` (from one read-only pass over it)."""
        with self.threads:
            return self._stable_dt(state)

    def _stable_dt(self, state: np.ndarray) -> float:
        rates = self._evaluate(state)
        rate = 0.0
        for r, h in zip(rates, self.spacing):
            rate = rate + float(r) / h
        return self.step_for_rate(rate)

    def _evaluate(self, state: np.ndarray) -> np.ndarray:
        """The rates of ``state``; for Lax-Friedrichs also its ``alpha``, for ENO2/WENO5 also ``L(state)``
        (or its Lax-Friedrichs parts) in :attr:`rhs` and :attr:`split`."""
        high = self.order != _FIRST
        rates = self.axis_rates(state, want_rhs=high)
        if self.scheme == _LAX_FRIEDRICHS:  # the flux of a stage from ``state`` uses alpha = these rates
            self.params[_ALPHA + 3 - self.ndim : _ALPHA + 3] = rates
            self._rates_of = state
        self._rhs_of = state if high else None
        return rates

    # -- the step -------------------------------------------------------------------------------------
    def step(self, state: np.ndarray, dt: float) -> np.ndarray:
        """One Runge-Kutta step of size ``dt`` from ``state``; returns the buffer holding the result."""
        with self.threads:
            return self._step(state, dt)

    def _step(self, state: np.ndarray, dt: float) -> np.ndarray:
        if self.butcher:
            return self._butcher_step(state, dt)
        current = state
        others = self._others(state)
        split = self.scheme == _LAX_FRIEDRICHS
        for k, (a, b, c) in enumerate(self.method.stages):
            out = others[k % 2]
            if self.order != _FIRST and (split or (k == 0 and self._rhs_of is state)):
                # L(current) (Lax-Friedrichs: its parts and alpha) from the rates pass, then one combine
                if self._rhs_of is not current:
                    self._evaluate(current)
                self.params[_A], self.params[_B], self.params[_CDT] = a, b, c * dt
                self._pass(current, _COMBINE, u0=state, out=out)
            else:
                self.params[_A], self.params[_B], self.params[_CDT] = a, b, c * dt
                self._scale(current)
                if split:
                    self._prepare_alpha(current)
                if self.order == _FIRST:
                    _stage_kernel(current, state, out, self.params, self.scheme, self.ndim)
                else:
                    self._pass(current, _STAGE, u0=state, out=out)
            self._ghosts(out)
            current = out
            # ``out`` holds new values: nothing computed from an earlier content of it stays valid
            self._scaled_of = self._scaled_of if self._scaled_of is not out else None
            self._rates_of = self._rates_of if self._rates_of is not out else None
            self._rhs_of = self._rhs_of if self._rhs_of is not out else None
        self._rhs_of = None
        return current

    def _stage_slope(self, current: np.ndarray, k: int) -> None:
        """``L(current)`` into :attr:`stage_slopes` ``[k]`` (Lax-Friedrichs: its parts and ``alpha``, then the sum)."""
        out = self.stage_slopes[k]
        cached = k == 0 and self._rhs_of is current  # the rates pass of stable_dt left it in stage_slopes[0]
        if not cached:
            self._scale(current)
            self._pass(current, _RATES_RHS, out=out)
        if self.scheme == _LAX_FRIEDRICHS:
            if not cached:
                self.params[_ALPHA + 3 - self.ndim : _ALPHA + 3] = self.rate_bits.view(self.dtype)[3 - self.ndim :]
            self.params[_A], self.params[_B], self.params[_CDT] = 0.0, 1.0, 1.0
            # out = 0 + 1 (0 + 1 (parts + sum_k alpha_k split_k)): L itself
            _high_order_kernel(
                self._zero(),
                current,
                out,
                out,
                self.split,
                self.params,
                self.scheme,
                self.ndim,
                self.order,
                _COMBINE,
                self.scratch,
                *self._scratch,
            )

    def _zero(self) -> np.ndarray:
        """A zero buffer of the padded shape (the ``u`` of a combine that forms ``L`` alone)."""
        if not hasattr(self, "_zeros"):
            self._zeros = np.zeros_like(self.buffers[0])
        return self._zeros

    def _butcher_step(self, state: np.ndarray, dt: float) -> np.ndarray:
        """One step of a Butcher-form method: ``L`` of every stage into its own buffer."""
        stage, final = self._others(state)
        for k, row_k in enumerate(self.method.a):
            if k == 0:
                current = state
            else:
                self.weights[:k] = row_k
                butcher_combine(stage, state, self.stage_slopes, self.weights, k, dt, self.ndim, self.order)
                self._ghosts(stage)
                self._scaled_of = self._scaled_of if self._scaled_of is not stage else None
                self._rhs_of = self._rhs_of if self._rhs_of is not stage else None
                current = stage
            self._stage_slope(current, k)
        self.weights[: len(self.method.b)] = self.method.b
        butcher_combine(final, state, self.stage_slopes, self.weights, len(self.method.b), dt, self.ndim, self.order)
        self._ghosts(final)
        self._scaled_of = self._scaled_of if self._scaled_of is not final else None
        self._rates_of = None
        self._rhs_of = None
        return final
