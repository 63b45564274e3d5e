"""A fused numba step for the first-order Hamilton-Jacobi scheme on CPU (numpy) arrays.

One forward-Euler step of the operator of :class:`hjsmooth.solvers.hj.HamiltonJacobiOperator`
with ``accuracy="first"`` and no advection shift,

    u_new = u + dt * ( -sum_k H_hat(p-_k, p+_k) + nu sum_k (u_{i-1} - 2 u_i + u_{i+1})_k / h_k^2 ),
    p-_k = (u_i - u_{i-1}) / h_k,   p+_k = (u_{i+1} - u_i) / h_k,

for the Godunov, Engquist-Osher and global Lax-Friedrichs numerical Hamiltonians of
``|p|^2 / 2`` (:mod:`hjsmooth.solvers.hamiltonians`), in one parallel pass over the grid
instead of the dozen full-grid temporaries of the array code.  Ghost nodes are formed on
the fly from the boundary condition exactly as :func:`hjsmooth.solvers.boundary.pad_axis`
fills them (``"dirichlet"`` pads like ``"extrapolate"``, and the kernel then writes the held
values on the faces, as :func:`hjsmooth.solvers.boundary.dirichlet_hold` would).

The same call then computes, in a second parallel pass over the new field, the CFL rates
``rate_k = max_i (dH_hat/dp- - dH_hat/dp+)`` per axis that the next step needs (Godunov:
``max(max(p-,0), -min(p+,0))``; Engquist-Osher: ``max(p-,0) - min(p+,0)``; Lax-Friedrichs:
``max(|p-|, |p+|)``, which is also its ``alpha_k``).

Every node is computed with the same floating-point operations, in the same order and in
the array's dtype, as the array code, so on numpy float32 and float64 arrays the step is
bitwise equal to ``forward_euler(u, dt, operator.rhs, project)`` (LLVM does not contract or
reorder without fast-math, which is off).  Rows (lines along the last axis) run in parallel
under ``numba.prange``; each node and each per-row maximum is independent of the others, so
the result does not depend on the number of threads.  1D, 2D and 3D grids are viewed as
3D arrays ``(n0, n1, n2)`` with leading axes of length 1; one compiled function per dtype.

Only the per-node helpers are inlined at the numba level (``inline="always"``); the per-line
ones are ordinary calls.  Inlining everything made the compilation take about four minutes
per dtype on a 2-core machine (about 20 s as it is) for a step roughly 1.4x faster.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["NUMBA_SCHEMES", "numba_available", "numba_rates", "numba_first_order_step", "rate_sum"]

NUMBA_SCHEMES = ("godunov", "engquist_osher", "lax_friedrichs")
_SCHEME_CODES = {"godunov": 0, "engquist_osher": 1, "lax_friedrichs": 2}
_BC_CODES = {"extrapolate": 0, "dirichlet": 0, "neumann": 1, "periodic": 2}
# layout of the parameter vector (in the array's dtype, so that float32 stays float32)
_HALF, _TWO, _DT, _NU, _H, _HH, _ALPHA, _NEG_INF = 0, 1, 2, 3, 4, 7, 10, 13
_N_PARAMS = 14


def numba_available(u: Any, scheme: str, accuracy: str, shift: Any) -> bool:
    """True where the fused CPU kernel applies: a numpy float32/float64 array, first order, no shift."""
    if accuracy != "first" or shift is not None or scheme not in NUMBA_SCHEMES:
        return False
    return isinstance(u, np.ndarray) and u.dtype in (np.float32, np.float64) and 1 <= u.ndim <= 3


@numba.njit(inline="always")
def _nanmax(a, b):  # pragma: no cover - compiled
    """``numpy.maximum`` for scalars: NaN if either is NaN."""
    return a if (a > b or a != a) else b


@numba.njit(inline="always")
def _neighbour(i, n, bc, high):  # pragma: no cover - compiled
    """(index, extrapolated) of the neighbour of node ``i`` of an axis of ``n`` nodes.

    ``extrapolated``: the ghost is ``c + (c - u[index])`` (linear extrapolation)."""
    if high:
        if i < n - 1:
            return i + 1, False
        if bc == 2:
            return 1, False
        return n - 2, bc == 0
    if i > 0:
        return i - 1, False
    if bc == 2:
        return n - 2, False
    return 1, bc == 0


@numba.njit(inline="always")
def _flux(c, lo, hi, h, half, alpha, scheme):  # pragma: no cover - compiled
    """``(H_hat(p-, p+), rate at this node)`` of one axis, as hamiltonians.flux_and_rate computes it."""
    pm = (c - lo) / h
    pp = (hi - c) / h
    if scheme == 2:
        mean = half * (pm + pp)
        return half * mean * mean - half * alpha * (pp - pm), _nanmax(abs(pm), abs(pp))
    left = half * (pm + abs(pm))
    right = half * (pp - abs(pp))
    if scheme == 0:
        return half * _nanmax(left * left, right * right), _nanmax(left, -right)
    return half * (left * left + right * right), left - right


@numba.njit
def _line_neighbours(i0, i1, n0, n1, bc):  # pragma: no cover - compiled
    """Row indices and extrapolation flags of the axis-0 and axis-1 neighbours of line (i0, i1)."""
    a0lo, e0lo = _neighbour(i0, n0, bc, False)
    a0hi, e0hi = _neighbour(i0, n0, bc, True)
    a1lo, e1lo = _neighbour(i1, n1, bc, False)
    a1hi, e1hi = _neighbour(i1, n1, bc, True)
    return a0lo, e0lo, a0hi, e0hi, a1lo, e1lo, a1hi, e1hi


@numba.njit(inline="always")
def _ghost(u, c, a, b, j, ext):  # pragma: no cover - compiled
    v = u[a, b, j]
    return c + (c - v) if ext else v


@numba.njit(inline="always")
def _rate_term(c, lo, hi, h, half, zero, scheme):  # pragma: no cover - compiled
    """The node's contribution to the axis rate, before the division by ``h`` for Godunov and
    Lax-Friedrichs: ``max(c - lo, c - hi)`` and ``max(|c - lo|, |hi - c|)``.  Rounding is monotone,
    so ``max_i fl(x_i / h) = fl(max_i x_i / h)`` and dividing the line's maximum once gives the
    array code's ``max`` of ``max(p-+, -p+-)`` and of ``max(|p-|, |p+|)`` exactly.  Engquist-Osher's
    ``max(p-, 0) - min(p+, 0)`` is formed per node, as in the array code."""
    if scheme == 0:
        return _nanmax(c - lo, c - hi)
    if scheme == 2:
        return _nanmax(abs(c - lo), abs(hi - c))
    _, r = _flux(c, lo, hi, h, half, zero, scheme)
    return r


@numba.njit
def _axis_max(u, i0, i1, alo, blo, dlo, elo, ahi, bhi, dhi, ehi, start, stop, h, half, zero, scheme, m):
    # pragma: no cover - compiled
    """``max(m, max_j _rate_term)`` over ``j = start .. stop-1`` of line (i0, i1), where the node's
    neighbours are ``u[alo, blo, j + dlo]`` and ``u[ahi, bhi, j + dhi]`` (extrapolated ghosts if
    ``elo`` / ``ehi``).  Four accumulators, so that the maximum is not one serial chain."""
    ma = m
    mb = m
    mc = m
    md = m
    j = start
    while j + 3 < stop:
        c = u[i0, i1, j]
        ma = _nanmax(ma, _rate_term(c, _ghost(u, c, alo, blo, j + dlo, elo), _ghost(u, c, ahi, bhi, j + dhi, ehi),
                                    h, half, zero, scheme))
        c = u[i0, i1, j + 1]
        mb = _nanmax(mb, _rate_term(c, _ghost(u, c, alo, blo, j + 1 + dlo, elo),
                                    _ghost(u, c, ahi, bhi, j + 1 + dhi, ehi), h, half, zero, scheme))
        c = u[i0, i1, j + 2]
        mc = _nanmax(mc, _rate_term(c, _ghost(u, c, alo, blo, j + 2 + dlo, elo),
                                    _ghost(u, c, ahi, bhi, j + 2 + dhi, ehi), h, half, zero, scheme))
        c = u[i0, i1, j + 3]
        md = _nanmax(md, _rate_term(c, _ghost(u, c, alo, blo, j + 3 + dlo, elo),
                                    _ghost(u, c, ahi, bhi, j + 3 + dhi, ehi), h, half, zero, scheme))
        j += 4
    while j < stop:
        c = u[i0, i1, j]
        ma = _nanmax(ma, _rate_term(c, _ghost(u, c, alo, blo, j + dlo, elo), _ghost(u, c, ahi, bhi, j + dhi, ehi),
                                    h, half, zero, scheme))
        j += 1
    return _nanmax(_nanmax(ma, mb), _nanmax(mc, md))


@numba.njit(cache=True, parallel=True, fastmath=False)
def _rates_kernel(u, params, bc, scheme, ndim, rates):  # pragma: no cover - compiled
    """``rates[k] = max`` over the nodes of the axis-``k`` rate of ``u`` (3D view; last ``ndim`` axes real)."""
    n0, n1, n2 = u.shape
    half = params[_HALF]
    zero = params[_HALF] - params[_HALF]
    h0, h1, h2 = params[_H], params[_H + 1], params[_H + 2]
    lines = n0 * n1
    partial = np.empty((lines, 3), dtype=u.dtype)
    for line in numba.prange(lines):
        i0 = line // n1
        i1 = line - i0 * n1
        a0lo, e0lo, a0hi, e0hi, a1lo, e1lo, a1hi, e1hi = _line_neighbours(i0, i1, n0, n1, bc)
        m0 = params[_NEG_INF]
        m1 = m0
        if ndim == 3:
            m0 = _axis_max(u, i0, i1, a0lo, i1, 0, e0lo, a0hi, i1, 0, e0hi, 0, n2, h0, half, zero, scheme, m0)
        if ndim >= 2:
            m1 = _axis_max(u, i0, i1, i0, a1lo, 0, e1lo, i0, a1hi, 0, e1hi, 0, n2, h1, half, zero, scheme, m1)
        m2 = _axis_max(u, i0, i1, i0, i1, -1, False, i0, i1, 1, False, 1, n2 - 1, h2, half, zero, scheme,
                       params[_NEG_INF])
        for j in (0, n2 - 1):
            c = u[i0, i1, j]
            jlo, elo = _neighbour(j, n2, bc, False)
            jhi, ehi = _neighbour(j, n2, bc, True)
            m2 = _nanmax(m2, _rate_term(c, _ghost(u, c, i0, i1, jlo, elo), _ghost(u, c, i0, i1, jhi, ehi),
                                        h2, half, zero, scheme))
        partial[line, 0] = m0
        partial[line, 1] = m1
        partial[line, 2] = m2
    for k in range(3):
        m = partial[0, k]
        for line in range(1, lines):
            m = _nanmax(m, partial[line, k])
        if scheme == 0:  # max(p-+, -p+-) >= 0 at every node
            m = _nanmax(m / params[_H + k], zero)
        elif scheme == 2:
            m = m / params[_H + k]
        rates[k] = m


@numba.njit(inline="always")
def _node(u, i0, i1, j, c, jlo, elo, jhi, ehi, a0lo, e0lo, a0hi, e0hi, a1lo, e1lo, a1hi, e1hi,
          params, scheme, ndim, viscous):  # pragma: no cover - compiled
    """``u + dt * L(u)`` at one node, in the operation order of HamiltonJacobiOperator.evaluate."""
    half = params[_HALF]
    two = params[_TWO]
    lo2 = _ghost(u, c, i0, i1, jlo, elo)
    hi2 = _ghost(u, c, i0, i1, jhi, ehi)
    f2, _ = _flux(c, lo2, hi2, params[_H + 2], half, params[_ALPHA + 2], scheme)
    t2 = (lo2 - two * c + hi2) / params[_HH + 2]
    if ndim == 1:
        rhs = -f2
        lap = t2
    else:
        lo1 = _ghost(u, c, i0, a1lo, j, e1lo)
        hi1 = _ghost(u, c, i0, a1hi, j, e1hi)
        f1, _ = _flux(c, lo1, hi1, params[_H + 1], half, params[_ALPHA + 1], scheme)
        t1 = (lo1 - two * c + hi1) / params[_HH + 1]
        if ndim == 2:
            rhs = -f1 - f2
            lap = t1 + t2
        else:
            lo0 = _ghost(u, c, a0lo, i1, j, e0lo)
            hi0 = _ghost(u, c, a0hi, i1, j, e0hi)
            f0, _ = _flux(c, lo0, hi0, params[_H], half, params[_ALPHA], scheme)
            t0 = (lo0 - two * c + hi0) / params[_HH]
            rhs = -f0 - f1 - f2
            lap = t0 + t1 + t2
    if viscous:
        rhs = rhs + params[_NU] * lap
    return c + params[_DT] * rhs


@numba.njit(cache=True, parallel=True, fastmath=False)
def _step_kernel(u, out, params, bc, scheme, ndim, viscous, held, hold):  # pragma: no cover - compiled
    """``out = u + dt L(u)`` (3D view); with ``hold``, the face nodes of the real axes take ``held``."""
    n0, n1, n2 = u.shape
    lines = n0 * n1
    for line in numba.prange(lines):
        i0 = line // n1
        i1 = line - i0 * n1
        if hold and ((ndim == 3 and (i0 == 0 or i0 == n0 - 1)) or (ndim >= 2 and (i1 == 0 or i1 == n1 - 1))):
            for j in range(n2):
                out[i0, i1, j] = held[i0, i1, j]
        else:
            _step_line(u, out, i0, i1, n0, n1, n2, params, bc, scheme, ndim, viscous, held, hold)


@numba.njit
def _step_line(u, out, i0, i1, n0, n1, n2, params, bc, scheme, ndim, viscous, held, hold):  # pragma: no cover
    """The new values of the line (i0, i1) along the last axis (not a face line of a held boundary)."""
    a0lo, e0lo, a0hi, e0hi, a1lo, e1lo, a1hi, e1hi = _line_neighbours(i0, i1, n0, n1, bc)
    # the two end nodes of the line, with their ghosts
    for j in (0, n2 - 1):
        if hold:
            out[i0, i1, j] = held[i0, i1, j]
        else:
            jlo, elo = _neighbour(j, n2, bc, False)
            jhi, ehi = _neighbour(j, n2, bc, True)
            out[i0, i1, j] = _node(u, i0, i1, j, u[i0, i1, j], jlo, elo, jhi, ehi, a0lo, e0lo, a0hi, e0hi,
                                   a1lo, e1lo, a1hi, e1hi, params, scheme, ndim, viscous)
    for j in range(1, n2 - 1):
        out[i0, i1, j] = _node(u, i0, i1, j, u[i0, i1, j], j - 1, False, j + 1, False, a0lo, e0lo, a0hi, e0hi,
                               a1lo, e1lo, a1hi, e1hi, params, scheme, ndim, viscous)


def _view3(a: np.ndarray) -> np.ndarray:
    return a.reshape((1,) * (3 - a.ndim) + a.shape)


def _params(dtype: Any, spacing: tuple[float, ...], dt: float, nu: float, alpha: Any) -> np.ndarray:
    """The kernel's scalars in ``dtype``, padded for the 3D view (the leading axes are unused)."""
    pad = 3 - len(spacing)
    h = (1.0,) * pad + tuple(float(s) for s in spacing)
    params = np.zeros(_N_PARAMS, dtype=dtype)
    params[_HALF], params[_TWO], params[_DT], params[_NU], params[_NEG_INF] = 0.5, 2.0, dt, nu, -np.inf
    params[_H:_H + 3] = h
    params[_HH:_HH + 3] = [s * s for s in h]  # ``h * h`` in Python floats, as derivatives.laplacian forms it
    if alpha is not None:
        params[_ALPHA + pad:_ALPHA + 3] = alpha
    return params


def numba_rates(u: np.ndarray, spacing: tuple[float, ...], bc: str, scheme: str) -> np.ndarray:
    """Per-axis CFL rates ``max_i (dH_hat/dp- - dH_hat/dp+)`` of ``u``, an array of ``u``'s dtype.

    Equal to the ``rate`` of :func:`hjsmooth.solvers.hamiltonians.flux_and_rate` on each axis
    (for Lax-Friedrichs also its ``alpha_k``).
    """
    u3 = _view3(np.ascontiguousarray(u))
    rates = np.empty(3, dtype=u.dtype)
    _rates_kernel(u3, _params(u.dtype, spacing, 0.0, 0.0, None), _BC_CODES[bc], _SCHEME_CODES[scheme], u.ndim,
                  rates)
    return rates[3 - u.ndim:].copy()


def rate_sum(rates: np.ndarray, spacing: tuple[float, ...]) -> float:
    """``sum_k rate_k / h_k`` as HamiltonJacobiOperator.evaluate accumulates it (in the rates' dtype)."""
    rate = 0.0
    for r, h in zip(rates, spacing):
        rate = rate + r / h
    return float(rate)


def numba_first_order_step(u: np.ndarray, dt: float, spacing: tuple[float, ...], nu: float, bc: str, scheme: str,
                           rates: np.ndarray, held: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One fused step ``u + dt L(u)`` and the CFL rates of the result.

    Parameters
    ----------
    u : numpy.ndarray, float32 or float64, 1 to 3 dimensions
        The state (for ``bc="periodic"`` with node ``N-1`` equal to node ``0`` on every axis).
    dt : float
        Time step.
    spacing : tuple of float
        ``h_k`` per axis.
    nu : float
        Viscosity ``1/(2 beta)``; ``0`` for none.
    bc : {"extrapolate", "periodic", "neumann", "dirichlet"}
        Ghost rule (see :mod:`hjsmooth.solvers.boundary`).
    scheme : {"godunov", "engquist_osher", "lax_friedrichs"}
        Numerical Hamiltonian.
    rates : numpy.ndarray
        :func:`numba_rates` of ``u`` (Lax-Friedrichs uses them as ``alpha_k``).
    held : numpy.ndarray or None
        For ``bc="dirichlet"``, the values the face nodes are held at (``u``'s shape).

    Returns
    -------
    (u_new, rates_new) : the new state (a new array) and :func:`numba_rates` of it.
    """
    u = np.ascontiguousarray(u)
    out = np.empty_like(u)
    params = _params(u.dtype, spacing, dt, nu, rates)
    hold = held is not None
    held3 = _view3(np.ascontiguousarray(held, dtype=u.dtype)) if hold else np.empty((1, 1, 1), dtype=u.dtype)
    u3, out3 = _view3(u), _view3(out)
    bc_code, scheme_code = _BC_CODES[bc], _SCHEME_CODES[scheme]
    _step_kernel(u3, out3, params, bc_code, scheme_code, u.ndim, nu > 0.0, held3, hold)
    new_rates = np.empty(3, dtype=u.dtype)
    _rates_kernel(out3, params, bc_code, scheme_code, u.ndim, new_rates)
    return out, new_rates[3 - u.ndim:].copy()
