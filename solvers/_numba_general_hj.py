"""Fused numba stages of the Hamilton-Jacobi schemes for a general Hamiltonian on the CPU.

The operator is that of :class:`hjsmooth.solvers.general_hj.GeneralHJOperator`,

    L(u) = -H_hat(x, p-, p+) + nu Laplacian u,

with the Lax-Friedrichs variants or Godunov's flux (:mod:`hjsmooth.solvers.hamiltonians`) over
the one-sided slopes of the first-order, ENO2 or WENO5 stencil.  ``H`` is evaluated node by node,
either as

* the user's numba-compiled twin ``compiled(x, p)`` (``x``, ``p`` 1-D arrays of length ``ndim``;
  the ``"compiled"`` kind), or
* linear forms ``H(x, p) = g(x).p + sum_m s_m |v_m(x).p|`` read from fields on the grid (the
  ``"forms"`` kind: the Hamiltonian of control- and disturbance-affine dynamics,
  :mod:`hjsmooth.solvers.reachability`).

The bounds ``alpha_k`` of the dissipation are constants, fields of the grid's shape (the forms'
bounds), or estimated at every node by central differences of ``H`` at the node's slopes
``p-``, ``p+`` and their mean, as the array code estimates them.  Global Lax-Friedrichs with an
estimated bound needs the largest estimate over the grid before its flux is known: its pass keeps
``-H(x, mean) + nu Laplacian u`` and ``(p+_k - p-_k) / 2`` apart, and a second pass combines them.

Every Runge-Kutta method runs in Butcher form (an SSP method is converted,
:func:`hjsmooth.solvers.runge_kutta.butcher_form`): ``L`` of every stage goes to a buffer of its
own and :func:`hjsmooth.solvers._numba_hj.butcher_combine` forms the next stage.  The buffers,
their ghost layers and the boundary rules are those of :mod:`hjsmooth.solvers._numba_hj`; the
stencils are its :func:`~hjsmooth.solvers._numba_hj.line_slopes`.  Results agree with the array
code to rounding.  The kernel of the linear forms is compiled once and cached on disk; a compiled
``H`` is compiled into its own kernel once per process (seconds): numba keys a cache by the
function it was given, which another process need not be able to import.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from hjsmooth.backend import from_numpy, is_numpy_array, to_numpy

from ._numba_hj import (
    WENO_CONSTANTS,
    bc_codes,
    butcher_combine,
    fill_ghosts,
    float_grid,
    line_slopes,
    padded_shape,
    row,
    viscous_terms,
)
from .boundary import check_ghost_width
from .derivatives import WENO_EPS
from .general_hj import BOUND_SAFETY
from .kernels import ACCURACY_CODES, SCHEME_CODES, numba_threads
from .runge_kutta import butcher_form

__all__ = ["NumbaGeneralHJStepper", "numba_general_supports", "numba_general_stepper"]

_GODUNOV, _LAX_FRIEDRICHS = SCHEME_CODES["godunov"], SCHEME_CODES["lax_friedrichs"]
_COMPILED, _FORMS = 0, 1  # how H is evaluated
_CONSTANT, _FIELD, _ESTIMATED = 0, 1, 2  # where the bounds come from
_FLUX, _SPLIT = 0, 1  # passes: the whole of L, or L's parts for global Lax-Friedrichs with estimates


def _bound_kind(op: Any) -> int | None:
    """How the operator's bounds are known, or ``None`` when the fused kernel cannot use them."""
    if op.constant_bound is not None:
        return _CONSTANT
    if op.field_bound is not None:
        return _FIELD
    return _ESTIMATED if op.hamiltonian.bound is None else None


def numba_general_supports(case: Any, like: Any) -> bool:
    """True where these kernels apply to ``case`` (an :class:`hjsmooth.solvers.hj_stepping.HJCase` of a
    :class:`~hjsmooth.solvers.general_hj.GeneralHJOperator`): float32/float64, 1 to 3 axes, an ``H``
    given as linear forms (with bounds) or with a compiled twin, depending on neither time nor value,
    bounds that are numbers, fields or estimated, and for Godunov a constant minimiser."""
    op = case.operator
    h = op.hamiltonian
    if not float_grid(like) or (h.forms is None and h.compiled is None):
        return False
    if h.time_dependent or h.value_dependent or _bound_kind(op) is None:
        return False
    if op.scheme == "godunov" and not all(isinstance(m, float) for m in op.minimizer):
        return False
    return h.forms is None or _bound_kind(op) != _ESTIMATED  # linear forms come with their bounds


def numba_general_stepper(case: Any, like: Any) -> NumbaGeneralHJStepper:
    """The registry's factory: a :class:`NumbaGeneralHJStepper` for ``case`` on arrays like ``like``."""
    held = case.project.held if case.operator.bc[0] == "dirichlet" else None
    return NumbaGeneralHJStepper(case.operator, like, held)


@numba.njit(cache=True)
def _constants(c):  # pragma: no cover - compiled
    """The WENO constants (an array in the data's dtype) as the tuple the stencils take."""
    return (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15], c[16])


@numba.njit(fastmath={"contract"}, error_model="numpy")
def _compiled_row(out, h, x, p, rows, first, n2, real, a0, a1):  # pragma: no cover - compiled
    """``out[j] = h(x_j, p_j)`` along a line, ``p_j`` from ``rows[first:3, j]`` (node by node; ``x``
    and ``p`` are the thread's vectors of length ``ndim``)."""
    if first == 0:
        x[0] = real[0, a0]
    if first <= 1:
        x[1 - first] = real[1, a1]
    last = 2 - first
    for j in range(n2):
        x[last] = real[2, j]
        for k in range(first, 3):
            p[k - first] = rows[k, j]
        out[j] = h(x, p)


@numba.njit(fastmath={"contract"}, error_model="numpy")
def _forms_row(out, rows, first, n2, forms_g, forms_v, signs, a0, a1):  # pragma: no cover - compiled
    """``out[j] = g.p_j + sum_m s_m |v_m.p_j|`` along a line (fields at the line's nodes)."""
    zero = out[0] - out[0]
    for j in range(n2):
        out[j] = zero
    for k in range(first, 3):
        g = forms_g[k, a0, a1]
        q = rows[k]
        for j in range(n2):
            out[j] += g[j] * q[j]
    dot = rows[3]
    for m in range(signs.shape[0]):
        for j in range(n2):
            dot[j] = zero
        for k in range(first, 3):
            v = forms_v[m, k, a0, a1]
            q = rows[k]
            for j in range(n2):
                dot[j] += v[j] * q[j]
        sign = signs[m]
        for j in range(n2):
            out[j] += sign * abs(dot[j])


@numba.njit(fastmath={"contract"}, error_model="numpy")
def _hamiltonian_row(out, h, x, p, rows, first, n2, real, forms_g, forms_v, signs, a0, a1):  # pragma: no cover
    """``H`` at the slope vectors ``rows[first:3]`` of a line: the linear forms for ``h = None`` (a branch
    numba prunes while compiling, so that this specialisation takes no function and is cached on
    disk), else the compiled ``h``."""
    if h is None:
        _forms_row(out, rows, first, n2, forms_g, forms_v, signs, a0, a1)
    else:
        _compiled_row(out, h, x, p, rows, first, n2, real, a0, a1)


@numba.njit(fastmath={"contract"}, error_model="numpy")
def _line_pass(
    line,
    h,
    u,
    out,
    split,
    scheme,
    bound_kind,
    mode,
    tube,
    ndim,
    order,
    real,
    inv_h,
    inv_h2,
    inv_scale,
    back,
    minimizer,
    constant_alpha,
    alpha_field,
    forms_g,
    forms_v,
    signs,
    nu,
    safety,
    root,
    consts,
    scratch,
    vectors,
    line_rates,
    line_alphas,
):  # pragma: no cover - compiled
    """Interior line ``line`` of padded ``u`` (ghost width ``order``) in one of two passes.

    ``_FLUX``: ``out = L(u)`` (with ``tube``, ``min(L(u), 0)``) and ``line_rates[line]`` the largest
    ``sum_k alpha_k / h_k`` of the line.  ``_SPLIT`` (global Lax-Friedrichs, estimated bounds):
    ``out = -H(x, mean) + nu Laplacian u``, ``split[k] = (p+_k - p-_k) / 2`` and
    ``line_alphas[line, k]`` the largest estimate of ``|dH/dp_k|`` on the line.  ``real[k, i]`` is
    coordinate ``k`` of interior index ``i`` along axis ``k`` (3D view).  The rows of
    ``scratch[thread]``: ``0..2`` the slope vectors at which ``H`` is evaluated, ``3`` scratch,
    ``4..9`` ``p-_k``, ``p+_k``, ``10..12`` the bounds, ``13`` ``H``, ``14`` the rate, ``15`` scratch."""
    w = order
    g0 = w if ndim == 3 else 0
    g1 = w if ndim >= 2 else 0
    n1 = u.shape[1] - 2 * g1
    n2 = u.shape[2] - 2 * w
    kc = _constants(consts)
    zero = consts[0] - consts[0]
    half = consts[10] + consts[10]
    one = consts[0]
    first = 3 - ndim
    l0 = line // n1
    i0 = l0 + g0
    i1 = line - l0 * n1 + g1
    a0 = i0 - g0
    a1 = i1 - g1
    rows = scratch[numba.get_thread_id()]
    x = vectors[numba.get_thread_id(), 0, :ndim]
    p = vectors[numba.get_thread_id(), 1, :ndim]
    dst = out[i0, i1, w : w + n2]
    for j in range(n2):
        dst[j] = zero
    for axis in range(first, 3):
        line_slopes(
            rows[4 + axis],
            rows[7 + axis],
            u,
            i0,
            i1,
            w,
            n2,
            axis,
            order,
            inv_h[axis],
            inv_scale[axis],
            back[axis],
            consts[17],
            kc,
        )
        if nu != zero:
            viscous_terms(dst, u, i0, i1, w, n2, axis, order, nu, inv_h2[axis], kc)
    # the bounds of every node of the line
    for axis in range(first, 3):
        alpha = rows[10 + axis]
        if bound_kind == _CONSTANT:
            c = constant_alpha[axis]
            for j in range(n2):
                alpha[j] = c
        elif bound_kind == _FIELD:
            field = alpha_field[axis, a0, a1]
            for j in range(n2):
                alpha[j] = field[j]
        else:
            for j in range(n2):
                alpha[j] = zero
    if bound_kind == _ESTIMATED:  # central differences of H at p-, p+ and their mean, node by node
        hp = rows[13]
        hm = rows[14]
        for sample in range(3):
            for axis in range(first, 3):
                target = rows[axis]
                pm = rows[4 + axis]
                pp = rows[7 + axis]
                for j in range(n2):
                    target[j] = pm[j] if sample == 0 else (pp[j] if sample == 1 else half * (pm[j] + pp[j]))
            for axis in range(first, 3):
                step = rows[3]
                target = rows[axis]
                centre = rows[15]
                for j in range(n2):
                    centre[j] = target[j]
                    magnitude = abs(target[j])
                    step[j] = root * (magnitude if magnitude > one else one)
                    target[j] = centre[j] + step[j]
                _hamiltonian_row(hp, h, x, p, rows, first, n2, real, forms_g, forms_v, signs, a0, a1)
                for j in range(n2):
                    target[j] = centre[j] - step[j]
                _hamiltonian_row(hm, h, x, p, rows, first, n2, real, forms_g, forms_v, signs, a0, a1)
                alpha = rows[10 + axis]
                for j in range(n2):
                    target[j] = centre[j]
                    d = abs(hp[j] - hm[j]) / (step[j] + step[j])
                    alpha[j] = d if (d > alpha[j] or d != d) else alpha[j]
        for axis in range(first, 3):
            alpha = rows[10 + axis]
            for j in range(n2):
                alpha[j] = safety * alpha[j]
    # H at the mean slopes, or at Godunov's
    for axis in range(first, 3):
        target = rows[axis]
        pm = rows[4 + axis]
        pp = rows[7 + axis]
        if scheme == _GODUNOV:
            centre = minimizer[axis]
            for j in range(n2):
                left = pm[j] - centre
                right = pp[j] - centre
                left = left if left > zero else zero
                right = right if right < zero else zero
                target[j] = centre + (left if left >= -right else right)
        else:
            for j in range(n2):
                target[j] = half * (pm[j] + pp[j])
    value = rows[13]
    _hamiltonian_row(value, h, x, p, rows, first, n2, real, forms_g, forms_v, signs, a0, a1)
    for j in range(n2):
        dst[j] -= value[j]
    if mode == _SPLIT:
        for axis in range(first, 3):
            part = split[axis, i0, i1, w : w + n2]
            pm = rows[4 + axis]
            pp = rows[7 + axis]
            alpha = rows[10 + axis]
            m = zero
            for j in range(n2):
                part[j] = half * (pp[j] - pm[j])
                a = alpha[j]
                m = a if (a > m or a != a) else m
            line_alphas[line, axis] = m
        return
    speed = rows[14]
    for j in range(n2):
        speed[j] = zero
    for axis in range(first, 3):
        alpha = rows[10 + axis]
        scale = inv_h[axis]
        if scheme != _GODUNOV:
            pm = rows[4 + axis]
            pp = rows[7 + axis]
            for j in range(n2):
                dst[j] += half * alpha[j] * (pp[j] - pm[j])
        for j in range(n2):
            speed[j] += alpha[j] * scale
    if tube:
        for j in range(n2):
            dst[j] = dst[j] if dst[j] < zero else zero
    largest = zero
    for j in range(n2):
        r = speed[j]
        largest = r if (r > largest or r != r) else largest
    line_rates[line] = largest


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")
def _forms_pass(
    u,
    out,
    split,
    scheme,
    bound_kind,
    mode,
    tube,
    ndim,
    order,
    real,
    inv_h,
    inv_h2,
    inv_scale,
    back,
    minimizer,
    constant_alpha,
    alpha_field,
    forms_g,
    forms_v,
    signs,
    nu,
    safety,
    root,
    consts,
    scratch,
    vectors,
    line_rates,
    line_alphas,
):  # pragma: no cover - compiled
    """One parallel pass of :func:`_line_pass` over the interior lines with ``H`` as linear forms
    (compiled once and cached on disk)."""
    g0 = order if ndim == 3 else 0
    g1 = order if ndim >= 2 else 0
    lines = (u.shape[0] - 2 * g0) * (u.shape[1] - 2 * g1)
    for line in numba.prange(lines):
        _line_pass(
            line,
            None,
            u,
            out,
            split,
            scheme,
            bound_kind,
            mode,
            tube,
            ndim,
            order,
            real,
            inv_h,
            inv_h2,
            inv_scale,
            back,
            minimizer,
            constant_alpha,
            alpha_field,
            forms_g,
            forms_v,
            signs,
            nu,
            safety,
            root,
            consts,
            scratch,
            vectors,
            line_rates,
            line_alphas,
        )


@numba.njit(parallel=True, fastmath={"contract"}, error_model="numpy")
def _compiled_pass(
    h,
    u,
    out,
    split,
    scheme,
    bound_kind,
    mode,
    tube,
    ndim,
    order,
    real,
    inv_h,
    inv_h2,
    inv_scale,
    back,
    minimizer,
    constant_alpha,
    alpha_field,
    forms_g,
    forms_v,
    signs,
    nu,
    safety,
    root,
    consts,
    scratch,
    vectors,
    line_rates,
    line_alphas,
):  # pragma: no cover - compiled
    """The same pass with the user's compiled ``h``.  Never cached on disk: numba would key the cache
    by the function, which another process may not be able to import; it compiles once per ``h``
    and process."""
    g0 = order if ndim == 3 else 0
    g1 = order if ndim >= 2 else 0
    lines = (u.shape[0] - 2 * g0) * (u.shape[1] - 2 * g1)
    for line in numba.prange(lines):
        _line_pass(
            line,
            h,
            u,
            out,
            split,
            scheme,
            bound_kind,
            mode,
            tube,
            ndim,
            order,
            real,
            inv_h,
            inv_h2,
            inv_scale,
            back,
            minimizer,
            constant_alpha,
            alpha_field,
            forms_g,
            forms_v,
            signs,
            nu,
            safety,
            root,
            consts,
            scratch,
            vectors,
            line_rates,
            line_alphas,
        )


@numba.njit(parallel=True, fastmath={"contract"}, error_model="numpy")
def _add_split(out, split, alpha, tube, ndim, w):  # pragma: no cover - compiled
    """``out += sum_k alpha_k split[k]`` on the interior (with ``tube``, then ``min(out, 0)``)."""
    g0 = w if ndim == 3 else 0
    g1 = w if ndim >= 2 else 0
    n1 = out.shape[1] - 2 * g1
    n2 = out.shape[2] - 2 * w
    lines = (out.shape[0] - 2 * g0) * n1
    for line in numba.prange(lines):
        l0 = line // n1
        i0 = l0 + g0
        i1 = line - l0 * n1 + g1
        dst = out[i0, i1, w : w + n2]
        for axis in range(3 - ndim, 3):
            a = alpha[axis]
            part = split[axis, i0, i1, w : w + n2]
            for j in range(n2):
                dst[j] += a * part[j]
        if tube:
            zero = a - a
            for j in range(n2):
                dst[j] = dst[j] if dst[j] < zero else zero


@numba.njit(parallel=True)
def _largest_differences(u, ndim, w, partial, out):  # pragma: no cover - compiled
    """``out[k] = max |u_{i+1} - u_i|`` along axis ``k`` over the interior lines (ghost differences included)."""
    g0 = w if ndim == 3 else 0
    g1 = w if ndim >= 2 else 0
    n1 = u.shape[1] - 2 * g1
    n2 = u.shape[2] - 2 * w
    lines = (u.shape[0] - 2 * g0) * n1
    for line in numba.prange(lines):
        l0 = line // n1
        i0 = l0 + g0
        i1 = line - l0 * n1 + g1
        for axis in range(3 - ndim, 3):
            c = row(u, i0, i1, w, n2, axis, 0)
            hi = row(u, i0, i1, w, n2, axis, 1)
            m = c[0] - c[0]
            for j in range(n2):
                d = abs(hi[j] - c[j])
                m = d if (d > m or d != d) else m
            partial[axis, line] = m
    for axis in range(3 - ndim, 3):
        m = partial[axis, 0]
        for line in range(1, lines):
            d = partial[axis, line]
            m = d if (d > m or d != d) else m
        out[axis] = m


class NumbaGeneralHJStepper:
    """Marches ``u_t = L(u)`` of a general Hamiltonian in Butcher form, in place on padded buffers.

    Parameters
    ----------
    operator : GeneralHJOperator
        Its ``hamiltonian`` has ``forms`` or a ``compiled`` twin.
    like : array
        The initial state (numpy or CPU torch, float32 or float64, 1 to 3 axes).
    held : array or None
        For ``bc="dirichlet"``, the values the face nodes are held at.
    """

    def __init__(self, operator: Any, like: Any, held: Any | None = None):
        self.like = like
        host = to_numpy(like)
        self.dtype = host.dtype
        self.shape = tuple(host.shape)
        self.ndim = host.ndim
        self.operator = operator
        hamiltonian = operator.hamiltonian
        self.order = ACCURACY_CODES[operator.accuracy]
        w = self.order
        for n, name in zip(self.shape, operator.bc):
            check_ghost_width(n, w, name)
        self.bc = bc_codes(operator.bc, self.ndim)
        self.method = butcher_form(operator.method)
        self.scheme = SCHEME_CODES[operator.scheme]
        self.bound_kind = _bound_kind(operator)
        self.kind = _FORMS if hamiltonian.forms is not None else _COMPILED
        self.function = None if self.kind == _FORMS else hamiltonian.compiled
        self.mode = _SPLIT if (self.bound_kind == _ESTIMATED and self.scheme == _LAX_FRIEDRICHS) else _FLUX
        self.tube = bool(operator.nonincreasing)
        padded = padded_shape(self.shape, w)
        self.view3 = (1,) * (3 - self.ndim) + self.shape
        self.interior = tuple(slice(w, -w) if axis >= 3 - self.ndim else slice(None) for axis in range(3))
        dt = self.dtype
        self.buffers = [np.zeros(padded, dtype=dt) for _ in range(3)]
        self.slopes = np.zeros((self.method.stage_count, *padded), dtype=dt)
        self.split = np.zeros((3, *padded) if self.mode == _SPLIT else (3, 1, 1, 1), dtype=dt)
        threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        self.scratch = np.zeros((threads, 16, padded[2]), dtype=dt)
        self.vectors = np.zeros((threads, 2, 3), dtype=dt)  # x and p of one node
        lines = padded[0] * padded[1]
        self.line_rates = np.zeros(lines, dtype=dt)
        self.line_alphas = np.zeros((lines, 3), dtype=dt)
        self.partial = np.zeros((3, lines), dtype=dt)
        self.largest = np.zeros(3, dtype=dt)
        pad = 3 - self.ndim
        spacing = (1.0,) * pad + operator.spacing
        self.inv_h = np.array([1.0 / s for s in spacing], dtype=dt)
        self.inv_h2 = np.array([1.0 / (s * s) for s in spacing], dtype=dt)
        self.inv_scale = np.ones(3, dtype=dt)
        self.back = np.ones(3, dtype=dt)
        longest = max(padded)
        self.real = np.zeros((3, longest), dtype=dt)
        for axis, coordinates in enumerate(operator.grid.axes):
            self.real[pad + axis, : coordinates.size] = coordinates
        self.minimizer = np.zeros(3, dtype=dt)
        if operator.scheme == "godunov":
            self.minimizer[pad:] = operator.minimizer
        self.constant_alpha = np.zeros(3, dtype=dt)
        if self.bound_kind == _CONSTANT:
            self.constant_alpha[pad:] = operator.constant_bound
        self.alpha_field = (
            np.stack(
                [
                    np.asarray(to_numpy(a), dtype=dt).reshape(self.view3)
                    for a in ((np.zeros(self.shape),) * pad + tuple(operator.field_bound))
                ]
            )
            if self.bound_kind == _FIELD
            else np.zeros((3, 1, 1, 1), dtype=dt)
        )
        forms = hamiltonian.forms
        if forms is not None:
            zeros = (np.zeros(self.shape),) * pad
            self.forms_g = np.stack([np.asarray(a, dtype=dt).reshape(self.view3) for a in zeros + tuple(forms.drift)])
            self.forms_v = (
                np.stack(
                    [
                        np.stack([np.asarray(a, dtype=dt).reshape(self.view3) for a in zeros + tuple(v)])
                        for v in forms.vectors
                    ]
                )
                if forms.vectors
                else np.zeros((0, 3, 1, 1, 1), dtype=dt)
            )
            self.signs = np.asarray(forms.signs, dtype=dt)
        else:
            self.forms_g = np.zeros((3, 1, 1, 1), dtype=dt)
            self.forms_v = np.zeros((0, 3, 1, 1, 1), dtype=dt)
            self.signs = np.zeros(0, dtype=dt)
        eps = float(np.finfo(dt).eps)
        self.root = dt.type(eps ** (1.0 / 3.0))
        self.safety = dt.type(BOUND_SAFETY)
        self.nu = dt.type(operator.nu)
        self.consts = np.array((*WENO_CONSTANTS, WENO_EPS), dtype=dt)
        self.hold = held is not None
        self.held = (
            np.ascontiguousarray(to_numpy(held), dtype=dt).reshape(self.view3)
            if self.hold
            else np.zeros((1, 1, 1), dtype=dt)
        )
        self.ghost_params = np.zeros(24 + len(WENO_CONSTANTS), dtype=dt)  # fill_ghosts reads its counts from here
        self.ghost_params[24:] = WENO_CONSTANTS
        self.weights = np.zeros(self.method.stage_count, dtype=np.float64)
        self.threads = numba_threads(host.size)
        self._rhs_of: Any = None
        self._largest_float = float(np.finfo(dt).max)

    # -- state handling -------------------------------------------------------------------------------
    def start(self, u: Any) -> np.ndarray:
        state = self.buffers[0]
        state[self.interior] = np.asarray(to_numpy(u), dtype=self.dtype).reshape(self.view3)
        self._ghosts(state)
        self._rhs_of = None
        return state

    def read(self, state: np.ndarray) -> Any:
        values = state[self.interior].reshape(self.shape).copy()
        return values if is_numpy_array(self.like) else from_numpy(values, self.like)

    def _ghosts(self, u: np.ndarray) -> None:
        fill_ghosts(u, self.ndim, self.bc, self.held, self.hold, self.order, self.ghost_params)

    # -- L and its rate ------------------------------------------------------------------------------
    def _scale(self, u: np.ndarray) -> None:
        """WENO5: the inverse of the largest difference per axis (as the thesis kernels scale)."""
        if self.order != 3:
            return
        _largest_differences(u, self.ndim, self.order, self.partial, self.largest)
        for axis in range(3 - self.ndim, 3):
            m = float(self.largest[axis])
            inverse = 1.0 / m if m > 0 else 1.0
            inverse = inverse if inverse <= self._largest_float else self._largest_float
            self.inv_scale[axis] = inverse
            self.back[axis] = 1.0 / self.inv_scale[axis]

    def _evaluate(self, u: np.ndarray, out: np.ndarray) -> float:
        """``L(u)`` into ``out``; returns ``max_x sum_k alpha_k / h_k``."""
        self._scale(u)
        arguments = (
            u,
            out,
            self.split,
            self.scheme,
            self.bound_kind,
            self.mode,
            self.tube,
            self.ndim,
            self.order,
            self.real,
            self.inv_h,
            self.inv_h2,
            self.inv_scale,
            self.back,
            self.minimizer,
            self.constant_alpha,
            self.alpha_field,
            self.forms_g,
            self.forms_v,
            self.signs,
            self.nu,
            self.safety,
            self.root,
            self.consts,
            self.scratch,
            self.vectors,
            self.line_rates,
            self.line_alphas,
        )
        if self.function is None:
            _forms_pass(*arguments)
        else:
            _compiled_pass(self.function, *arguments)
        if self.mode == _SPLIT:
            alpha = np.zeros(3, dtype=self.dtype)
            alpha[3 - self.ndim :] = self.line_alphas.max(axis=0)[3 - self.ndim :]
            if np.isnan(self.line_alphas).any():
                return math.nan
            _add_split(out, self.split, alpha, self.tube, self.ndim, self.order)
            return float(np.sum(alpha * self.inv_h))
        rates = self.line_rates
        return float(rates.max()) if not np.isnan(rates).any() else math.nan

    def stable_dt(self, state: np.ndarray) -> float:
        """The CFL step at ``state`` (``L(state)`` is kept for the first stage of the step)."""
        with self.threads:
            rate = self._evaluate(state, self.slopes[0])
        self._rhs_of = state
        return self.operator.step_for_rate(rate)

    # -- the step -------------------------------------------------------------------------------------
    def step(self, state: np.ndarray, dt: float) -> np.ndarray:
        with self.threads:
            return self._step(state, dt)

    def _step(self, state: np.ndarray, dt: float) -> np.ndarray:
        stage, final = [b for b in self.buffers if b is not state]
        for k, row_k in enumerate(self.method.a):
            if k == 0:
                if self._rhs_of is not state:
                    self._evaluate(state, self.slopes[0])
                continue
            self.weights[:k] = row_k
            butcher_combine(stage, state, self.slopes, self.weights, k, dt, self.ndim, self.order)
            self._ghosts(stage)
            self._evaluate(stage, self.slopes[k])
        count = self.method.stage_count
        self.weights[:count] = self.method.b
        butcher_combine(final, state, self.slopes, self.weights, count, dt, self.ndim, self.order)
        self._ghosts(final)
        self._rhs_of = None
        return final
