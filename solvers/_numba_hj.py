"""Fused numba stages of the Hamilton-Jacobi schemes on the CPU (numpy arrays, CPU torch tensors).

The semi-discrete operator is that of :class:`hjsmooth.solvers.hj.HamiltonJacobiOperator`
with a three-point stencil (``accuracy="first"``) and no advection shift,

    L(u)_i = -sum_k H_hat(p-_k, p+_k) + nu sum_k (u_{i-e_k} - 2 u_i + u_{i+e_k}) / h_k^2,
    p-_k = (u_i - u_{i-e_k}) / h_k,   p+_k = (u_{i+e_k} - u_i) / h_k,

with the Godunov, Lax-Friedrichs, Engquist-Osher or hybrid numerical Hamiltonian
(:mod:`hjsmooth.solvers.hamiltonians`; codes from :data:`hjsmooth.solvers.kernels.SCHEME_CODES`).
A strong-stability-preserving Runge-Kutta step in Shu-Osher form,

    u_k = a_k u^n + b_k (u_{k-1} + c_k dt L(u_{k-1})),   u_0 = u^n,   u^{n+1} = u_s,

(:data:`hjsmooth.solvers.runge_kutta.SSP_METHODS`) runs as one parallel pass over the grid per
stage, on three buffers padded by one ghost node per axis that are allocated once per solve
(:class:`NumbaHJStepper`): nothing is allocated per step.  The ghosts are filled after every
stage from the boundary condition, as :func:`hjsmooth.solvers.boundary.pad_axis` fills them
(Dirichlet nodes are reset to their held values first), so the stencil loops run without a
branch over lines of the contiguous axis and numba/LLVM vectorises them.  Grids of 1 to 3
axes are seen as 3D arrays ``(n0, n1, n2)`` with leading axes of length 1 (and no ghosts).

Before each step :meth:`NumbaHJStepper.stable_dt` finds, in one read-only pass, the CFL rates
``rate_k = max_i (dH_hat/dp- - dH_hat/dp+)`` per axis (for Lax-Friedrichs also its
``alpha_k``; for the hybrid flux its largest added dissipation) from the slopes of the
current state, from which the step follows.  A NaN anywhere reaches the rates, so a blow-up
is reported rather than marched through.

The arithmetic is that of the array code up to the order in which the axis terms are
summed: results agree with it to a few units of rounding, not bitwise.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from hjsmooth.backend import from_numpy, is_numpy_array, to_numpy

from .kernels import BC_CODES, SCHEME_CODES, numba_threads

__all__ = ["NumbaHJStepper", "NUMBA_SCHEMES", "numba_supports"]

NUMBA_SCHEMES = tuple(SCHEME_CODES)
_GODUNOV, _LAX_FRIEDRICHS, _ENGQUIST_OSHER, _HYBRID = (SCHEME_CODES[s] for s in
                                                       ("godunov", "lax_friedrichs", "engquist_osher", "hybrid"))
_EXTRAPOLATE, _NEUMANN, _PERIODIC = BC_CODES["extrapolate"], BC_CODES["neumann"], BC_CODES["periodic"]
# layout of the parameter vector (in the array's dtype, so that float32 stays float32)
_HALF, _NU, _INV_H, _INV_H2, _LIMIT, _ALPHA, _A, _B, _CDT = 0, 1, 2, 5, 8, 11, 14, 15, 16
_N_PARAMS = 17


def numba_supports(u: Any, scheme: str, accuracy: str, shift: Any) -> bool:
    """True where these kernels apply: float32/float64, 1 to 3 axes, three-point stencil, no shift."""
    if accuracy != "first" or shift is not None or scheme not in NUMBA_SCHEMES:
        return False
    return str(u.dtype).rsplit(".", 1)[-1] in ("float32", "float64") and 1 <= u.ndim <= 3


@numba.njit(cache=True, fastmath={"contract"})
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
    c = u[i0, i1, 1:n2 + 1]
    if axis == 2:
        return u[i0, i1, 0:n2], c, u[i0, i1, 2:n2 + 2]
    if axis == 1:
        return u[i0, i1 - 1, 1:n2 + 1], c, u[i0, i1 + 1, 1:n2 + 1]
    return u[i0 - 1, i1, 1:n2 + 1], c, u[i0 + 1, i1, 1:n2 + 1]


@numba.njit(cache=True)
def _bits_max(bits, n):  # pragma: no cover - compiled
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
            partial_bits[axis, line] = _bits_max(line_bits[line], n2)
    for axis in range(3 - ndim, 3):
        rate_bits[axis] = _bits_max(partial_bits[axis], lines)


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
        acc = out[i0, i1, 1:n2 + 1]
        for j in range(n2):
            acc[j] = zero
        for axis in range(3 - ndim, 3):
            lo, c, hi = _line(u, i0, i1, g0, g1, n2, axis)
            _axis_terms(acc, lo, c, hi, n2, scheme, p[_INV_H + axis], p[_INV_H2 + axis], nu, p[_LIMIT + axis],
                        p[_ALPHA + axis], half, zero)
        c = u[i0, i1, 1:n2 + 1]
        if a != zero:
            c0 = u0[i0, i1, 1:n2 + 1]
            for j in range(n2):
                acc[j] = a * c0[j] + b * (c[j] + cdt * acc[j])
        else:
            for j in range(n2):
                acc[j] = b * (c[j] + cdt * acc[j])


@numba.njit(cache=True)
def _fill_ghosts(u, ndim, bc, held, hold):  # pragma: no cover - compiled
    """Ghost nodes of every real axis from the boundary rule (after holding Dirichlet faces)."""
    g0 = 1 if ndim == 3 else 0
    g1 = 1 if ndim >= 2 else 0
    m0, m1, m2 = u.shape
    if hold:  # the face nodes of the real axes take their held values
        n0 = m0 - 2 * g0
        n1 = m1 - 2 * g1
        n2 = m2 - 2
        for i0 in range(n0):
            for i1 in range(n1):
                face = (g0 == 1 and (i0 == 0 or i0 == n0 - 1)) or (g1 == 1 and (i1 == 0 or i1 == n1 - 1))
                for j in range(n2):
                    if face or j == 0 or j == n2 - 1:
                        u[i0 + g0, i1 + g1, j + 1] = held[i0, i1, j]
    for axis in range(3 - ndim, 3):
        n = u.shape[axis] - 2
        for a in range(m0 if axis != 0 else 1):
            for b in range(m1 if axis != 1 else 1):
                for c in range(m2 if axis != 2 else 1):
                    if axis == 0:
                        first, second, last, before = u[1, b, c], u[2, b, c], u[n, b, c], u[n - 1, b, c]
                    elif axis == 1:
                        first, second, last, before = u[a, 1, c], u[a, 2, c], u[a, n, c], u[a, n - 1, c]
                    else:
                        first, second, last, before = u[a, b, 1], u[a, b, 2], u[a, b, n], u[a, b, n - 1]
                    if bc == _PERIODIC:  # node n-1 is node 0
                        low, high = before, second
                    elif bc == _NEUMANN:
                        low, high = second, before
                    else:
                        low, high = first + (first - second), last + (last - before)
                    if axis == 0:
                        u[0, b, c], u[n + 1, b, c] = low, high
                    elif axis == 1:
                        u[a, 0, c], u[a, n + 1, c] = low, high
                    else:
                        u[a, b, 0], u[a, b, n + 1] = low, high


def _padded_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    full = (1,) * (3 - len(shape)) + tuple(int(n) for n in shape)
    return tuple(n + 2 if axis >= 3 - len(shape) else n for axis, n in enumerate(full))  # type: ignore[return-value]


class NumbaHJStepper:
    """Marches ``u_t = L(u)`` with an SSP Runge-Kutta method, in place on preallocated padded buffers.

    The state handed to :func:`hjsmooth.solvers.stepping.march` is one of the three buffers;
    :meth:`read` copies its interior out as an array of the input's type, device and dtype.

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
    """

    def __init__(self, like: Any, spacing: tuple[float, ...], nu: float, bc: str, scheme: str, method: Any,
                 step_for_rate: Any, held: Any | None = None):
        self.like = like
        host = to_numpy(like)
        self.dtype = host.dtype
        self.shape = tuple(host.shape)
        self.ndim = host.ndim
        self.scheme = SCHEME_CODES[scheme]
        self.bc = BC_CODES[bc]
        self.method = method
        self.step_for_rate = step_for_rate
        padded = _padded_shape(self.shape)
        self.buffers = [np.zeros(padded, dtype=self.dtype) for _ in range(3)]
        self.view3 = (1,) * (3 - self.ndim) + self.shape
        self.interior = tuple(slice(1, -1) if axis >= 3 - self.ndim else slice(None) for axis in range(3))
        self.hold = held is not None
        self.held = (np.ascontiguousarray(to_numpy(held), dtype=self.dtype).reshape(self.view3) if self.hold
                     else np.zeros((1, 1, 1), dtype=self.dtype))
        pad = 3 - self.ndim
        h = (1.0,) * pad + tuple(float(s) for s in spacing)
        self.params = np.zeros(_N_PARAMS, dtype=self.dtype)
        self.params[_HALF], self.params[_NU] = 0.5, nu
        self.params[_INV_H:_INV_H + 3] = [1.0 / s for s in h]
        self.params[_INV_H2:_INV_H2 + 3] = [1.0 / (s * s) for s in h]
        self.params[_LIMIT:_LIMIT + 3] = [2.0 * nu / s for s in h]
        self.spacing = tuple(float(s) for s in spacing)
        lines = padded[0] * padded[1]
        bits = np.uint32 if self.dtype == np.float32 else np.uint64
        self.line_rates = np.zeros((lines, padded[2]), dtype=self.dtype)
        self.partial_bits = np.zeros((3, lines), dtype=bits)
        self.rate_bits = np.zeros(3, dtype=bits)
        self._scratch = (self.line_rates, self.line_rates.view(bits), self.partial_bits, self.rate_bits)
        self.rates = np.zeros(3, dtype=self.dtype)
        self._rates_of: Any = None  # the buffer whose rates (Lax-Friedrichs: alpha) are in place
        self.threads = numba_threads(host.size)

    # -- state handling -------------------------------------------------------------------------------
    def start(self, u: Any) -> np.ndarray:
        """Copy ``u`` into the first buffer (with its ghosts); the returned buffer is the state."""
        state = self.buffers[0]
        state[self.interior] = np.asarray(to_numpy(u), dtype=self.dtype).reshape(self.view3)
        self._ghosts(state)
        return state

    def read(self, state: np.ndarray) -> Any:
        """The interior of ``state`` as a new array of the input's type, device and dtype."""
        values = state[self.interior].reshape(self.shape).copy()
        return values if is_numpy_array(self.like) else from_numpy(values, self.like)

    def _ghosts(self, u: np.ndarray) -> None:
        _fill_ghosts(u, self.ndim, self.bc, self.held, self.hold)

    def _others(self, state: np.ndarray) -> list[np.ndarray]:
        return [b for b in self.buffers if b is not state]

    # -- the two callables of march ---------------------------------------------------------------------
    def axis_rates(self, state: np.ndarray) -> np.ndarray:
        """Per-axis CFL rates ``max_i (dH_hat/dp- - dH_hat/dp+)`` of ``state`` (a view of an internal
        buffer; copy to keep): ``max |D| / h`` for Godunov and Lax-Friedrichs, ``max(max |D| - 2 nu, 0) / h``
        for the hybrid scheme (``D`` the differences along the axis), per node for Engquist-Osher."""
        _rates_kernel(state, self.params, self.scheme, self.ndim, *self._scratch)
        largest = self.rate_bits.view(self.dtype)
        for axis in range(3 - self.ndim, 3):
            m = largest[axis]
            if self.scheme == _HYBRID:
                excess = m - self.params[_LIMIT + axis] / self.params[_INV_H + axis]
                m = excess if (excess > 0 or excess != excess) else excess - excess
            self.rates[axis] = m * self.params[_INV_H + axis]
        return self.rates[3 - self.ndim:]

    def _prepare_alpha(self, state: np.ndarray) -> None:
        rates = self.axis_rates(state)
        self.params[_ALPHA + 3 - self.ndim:_ALPHA + 3] = rates

    def stable_dt(self, state: np.ndarray) -> float:
        """The CFL step at ``state`` (from one read-only pass over it)."""
        with self.threads:
            return self._stable_dt(state)

    def _stable_dt(self, state: np.ndarray) -> float:
        rates = self.axis_rates(state)
        if self.scheme == _LAX_FRIEDRICHS:  # the flux of the first stage uses alpha = these rates
            self.params[_ALPHA + 3 - self.ndim:_ALPHA + 3] = rates
        self._rates_of = state
        rate = 0.0
        for r, h in zip(rates, self.spacing):
            rate = rate + float(r) / h
        return self.step_for_rate(rate)

    def step(self, state: np.ndarray, dt: float) -> np.ndarray:
        """One Runge-Kutta step of size ``dt`` from ``state``; returns the buffer holding the result."""
        with self.threads:
            return self._step(state, dt)

    def _step(self, state: np.ndarray, dt: float) -> np.ndarray:
        if self.scheme == _LAX_FRIEDRICHS and self._rates_of is not state:
            self._prepare_alpha(state)
        self._rates_of = None
        current = state
        others = self._others(state)
        for k, (a, b, c) in enumerate(self.method.stages):
            out = others[k % 2]
            if k > 0 and self.scheme == _LAX_FRIEDRICHS:
                self._prepare_alpha(current)
            self.params[_A], self.params[_B], self.params[_CDT] = a, b, c * dt
            _stage_kernel(current, state, out, self.params, self.scheme, self.ndim)
            self._ghosts(out)
            current = out
        return current
