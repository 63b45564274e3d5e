"""Exact solution of the inviscid Hamilton-Jacobi equation on a grid (Hopf-Lax formula)."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hjsmooth.backend import (
    array_namespace,
    device,
    from_cupy,
    from_numpy,
    to_cupy,
    to_numpy,
)
from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_choice, check_grid, check_time

from .kernels import build

__all__ = [
    "hopf_lax",
    "hopf_lax_prox",
    "HopfLaxSolution",
    "EnvelopeEngine",
    "numba_envelope",
    "cuda_envelope",
    "brute_force_envelope",
]

_METHODS = ("auto", "envelope", "brute_force")
_BRUTE_FORCE_BUDGET = 1 << 22  # entries of the largest temporary (rows x points x points) block
_SUBGRID_DEGREES = {"quadratic": 2, "cubic": 3, "quartic": 4}
_NEWTON_STEPS = 2  # after the quadratic start: one already reaches rounding on smooth f (see _refine_lines)


def hopf_lax(
    f: Any,
    grid: Grid,
    t: float,
    *,
    method: str = "auto",
    subgrid: str | None = None,
) -> Any:
    r"""Solve the inviscid Hamilton-Jacobi equation exactly on the grid by the Hopf-Lax formula.

    The viscosity solution of (4.15)

    .. math:: u_t = -\tfrac12 |\nabla u|^2, \qquad u(x, 0) = f(x),

    is the inf-convolution (4.16) :math:`u(x, t) = \min_y f(y) + |x - y|^2 / (2t)`.  Here the
    minimum runs over the **grid points** ``y`` of the window ``[grid.lower, grid.upper]``
    (or, with ``subgrid``, also between them over a local interpolant of ``f``) and ``u``
    is returned at the grid points ``x``.

    Edge of the grid: ``f`` is taken as ``+inf`` outside the window (a state constraint),
    so ``u`` equals the Hopf-Lax solution on the whole space only where the minimiser
    ``prox(x)`` stays inside the window, i.e. at distance ``t |grad f|`` from ``x``; near
    the edge ``u`` is larger.  Restricting ``y`` to grid points makes ``u`` exact at grid
    resolution: for ``f`` with ``f'' <= C`` it exceeds the continuous minimum by at most
    ``(C + 1/t) |h|^2 / 8``.

    Method: ``|x - y|^2`` is a sum over axes, so the ``d``-dimensional minimum is ``d``
    one-dimensional transforms applied along each axis in turn.  In 1D the minimum of
    ``f(y_q) + (p - q)^2 h^2 / (2t)`` over ``q`` is the lower envelope of ``n`` parabolas
    (Felzenszwalb-Huttenlocher), ``O(n)`` per line, so the whole transform is
    ``O(d N)`` for ``N`` grid points.  It runs as a numba kernel for numpy and CPU torch
    (parallel over lines), as a CuPy raw kernel (one GPU thread per line) for CuPy arrays
    and, when CuPy is installed, for CUDA torch tensors.  Any other array-API array
    (e.g. CUDA torch without CuPy) uses the chunked brute-force minimum, ``O(n^2)`` per
    line, which ``method="brute_force"`` also selects.  Float32 input stays float32 in memory
    and in the result (the CPU kernel evaluates each crossing point in double precision; the
    GPU kernel works in the array's precision throughout).

    Parameters
    ----------
    f : array of shape ``grid.shape``
        Initial value, numpy, torch or CuPy, float32 or float64 (integers become float64).
    grid : Grid
        The grid ``f`` lives on.
    t : float
        Time, ``t >= 0``.  ``t = 0`` returns a copy of ``f``.
    method : {"auto", "envelope", "brute_force"}
        ``"auto"`` (the lower envelope wherever a kernel exists for the array, else brute
        force), ``"envelope"`` (fail if no kernel exists) or ``"brute_force"``.
    subgrid : {None, "quadratic", "cubic", "quartic"}
        Opt-in refinement between the grid points, for smooth ``f``.  ``None`` (default)
        minimises over the grid points only, as described above.  Otherwise every 1D pass
        ``v(x_p) = min_q g_q + (x_p - y_q)^2 / (2t)`` is followed by a local step: around the
        grid minimiser ``y_j``, ``g`` is replaced by its interpolant of degree 2, 3 or 4
        through 3, 4 or 5 consecutive nodes (shifted inside the window at its ends), and
        ``P(y) + (x_p - y)^2 / (2t)`` is minimised over ``y`` in ``[y_{j-1}, y_{j+1}]`` cut to
        the window: in closed form for ``"quadratic"`` (the vertex of the parabola through
        the three discrete totals), by two safeguarded Newton steps from that vertex for
        the others.  Each pass keeps ``min(refined, grid minimum)``, so the result is
        never above the ``subgrid=None`` result.  For ``f`` smooth enough that the
        minimiser is unique and ``f'' + 1/t`` stays positive near it, the error is
        ``O(|h|^3)``, ``O(|h|^4)``, ``O(|h|^5)`` respectively (tested in 1D and 2D), and
        ``u`` is exact up to rounding for quadratic ``f`` (in any dimension).  For numpy
        and CPU torch a compiled kernel follows each envelope (its cost is in
        docs/benchmarks.md); other arrays run the same steps as array-API operations after the
        envelope or GPU kernel, so every backend has it.  Float32 stays float32 (the
        CPU kernel computes in double, the array-API path in float32), and its error
        is then about ``1e-7 |u|``.  It is opt-in because it gives up the exact
        statements above for non-smooth ``f``: an interpolant of a rough or kinked
        ``f`` can undershoot, so ``u`` may drop below ``min f`` (tested), and the
        comparison principle (``f <= g`` implies ``u_f <= u_g``) and the semiconcavity
        bound ``1/t`` are no longer guaranteed; near kinks and shocks the error is only
        that of the grid minimum or worse.

    Returns
    -------
    u : array
        ``u(., t)`` on the grid, same backend, device and dtype as ``f``.
        :func:`hopf_lax_prox` also returns the proximal point.

    Notes
    -----
    Limits: ``t = 0`` returns a copy of ``f``.  Whenever ``min_k h_k^2 / (2t)`` exceeds
    ``max f - min f`` no grid point other than ``x`` can compete, so ``u = f`` exactly (and
    ``prox(x) = x``); this is returned directly, so a ``t`` far below the grid's
    resolution (down to ``5e-324``) gives ``f`` rather than ``inf - inf``.  With
    ``subgrid`` the same holds once ``min_k h_k^2 / (2t)`` exceeds ``(max f - min f) / eps``,
    where the subgrid correction ``~ t |grad f|^2 / 2`` is below rounding.  Large ``t``
    is fine: ``u`` tends to ``min f`` over the window.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-2.0, 2.0, 401)
    >>> u = hs.hopf_lax(g.axes[0] ** 2 / 2, g, t=1.0)   # = x^2 / 4 up to h^2 terms
    >>> bool(np.abs(u - g.axes[0] ** 2 / 4).max() < 1e-4)
    True
    >>> u = hs.hopf_lax(g.axes[0] ** 2 / 2, g, t=1.0, subgrid="quadratic")  # exact for quadratic f
    >>> bool(np.abs(u - g.axes[0] ** 2 / 4).max() < 1e-13)
    True
    """
    return _hopf_lax(f, grid, t, method, subgrid, want_prox=False)[0]


@dataclass(frozen=True)
class HopfLaxSolution:
    """The Hopf-Lax solution on the grid with its proximal point (:func:`hopf_lax_prox`).

    Attributes
    ----------
    values : array of ``grid.shape``
        ``u(., t)``, as :func:`hopf_lax` returns it.
    prox : array of shape ``(grid.ndim, *grid.shape)``
        ``prox(x) = argmin_y f(y) + |x - y|^2 / (2t)``; ``grad u(x) = (x - prox(x)) / t`` (4.18).
    """

    values: Any
    prox: Any


def hopf_lax_prox(
    f: Any,
    grid: Grid,
    t: float,
    *,
    method: str = "auto",
    subgrid: str | None = None,
) -> HopfLaxSolution:
    r"""The Hopf-Lax solution of :func:`hopf_lax` together with the proximal point.

    Arguments are those of :func:`hopf_lax`, and ``values`` equals its result.

    ``prox(x) = argmin_y f(y) + |x - y|^2 / (2t)`` is an array of shape
    ``(grid.ndim, *grid.shape)`` holding the coordinates of the minimising grid point, on
    ``f``'s backend, device and dtype; then ``grad u(x) = (x - prox(x)) / t`` (4.18).  Where
    the minimiser is not unique, ``prox`` is one of the minimisers (which one depends on
    the method).  With ``subgrid``, ``prox`` is the refined minimiser, off the grid
    (``O(|h|^k)`` accurate for degree ``k`` and smooth ``f``): each pass's minimiser is read
    at the later passes' fractional minimisers by tensor-product interpolation of the same
    degree.  At ``t = 0``, and wherever ``u = f`` exactly because ``t`` is below the grid's
    resolution (see :func:`hopf_lax`), ``prox(x) = x``.

    Returns
    -------
    HopfLaxSolution
        ``values`` and ``prox``.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-2.0, 2.0, 401)
    >>> sol = hs.hopf_lax_prox(g.axes[0] ** 2 / 2, g, t=1.0)
    >>> bool(np.abs(sol.prox[0] - g.axes[0] / 2).max() <= g.spacing[0] / 2)   # prox of x^2/2 is x/2
    True
    """
    u, prox = _hopf_lax(f, grid, t, method, subgrid, want_prox=True)
    return HopfLaxSolution(u, prox)


def _hopf_lax(f: Any, grid: Any, t: Any, method: Any, subgrid: Any, want_prox: bool) -> tuple[Any, Any | None]:
    """Validate, then ``(u, prox)`` (``prox`` only if ``want_prox``, else ``None``)."""
    grid = check_grid(grid)
    f = as_field(f, "f", grid.shape)
    t = check_time(t)
    method = check_choice(method, "method", _METHODS)
    degree = _check_subgrid(subgrid)
    xp = array_namespace(f)
    if t == 0.0 or _prox_is_identity(f, grid, t, degree):
        u = xp.asarray(f, copy=True)
        return u, (xp.stack(grid.coords_like(f), axis=0) if want_prox else None)

    engine = _envelope_engine(f, method)
    work = engine.to_work(f)
    with engine.context(work):
        u, prox_index = _transform(work, grid, t, engine, want_prox, degree)
        u = engine.contiguous(u)
    back = engine.back
    u = back(u, f)
    if not want_prox:
        return u, None
    wxp = array_namespace(work)
    assert prox_index is not None  # _transform tracks the minimisers when want_prox
    coords = [grid.lower[k] + wxp.astype(prox_index[k], wxp.float64) * grid.spacing[k] for k in range(grid.ndim)]
    prox = back(wxp.astype(wxp.stack(coords, axis=0), work.dtype), f)
    return u, prox


def _prox_is_identity(f: Any, grid: Grid, t: float, degree: int) -> bool:
    """Whether ``u = f`` exactly because ``t`` is below the grid's resolution.

    On the grid (``degree = 0``): when ``c = min_k h_k^2 / (2t) > max f - min f``, any grid
    point other than ``x`` costs at least ``min f + c > max f >= f(x)``, so ``y = x`` is the
    unique minimiser.  With a subgrid interpolant the minimiser moves off ``x`` by about
    ``t |grad f|`` and lowers ``u`` by about ``t |grad f|^2 / 2``; for ``c > (max f - min f) / eps``
    that is below the rounding of ``f`` (for ``f`` resolved by the grid, ``|grad f| h`` of the
    order of its range), while the interpolation would subtract numbers of size ``c`` and
    return noise: ``f`` is the answer to rounding.  Below either threshold the transforms
    would also overflow to ``inf - inf`` for a subnormal ``t``.
    """
    with np.errstate(over="ignore", divide="ignore"):
        cost = min(h * h for h in grid.spacing) / (2.0 * t)
    xp = array_namespace(f)
    spread = float(xp.max(f)) - float(xp.min(f))
    if degree:
        spread = spread / float(np.finfo(np.float64).eps)
    return cost > spread


def _check_subgrid(subgrid: Any) -> int:
    """Degree of the local interpolant named by ``subgrid`` (0 for ``None``: grid points only)."""
    if subgrid is None:
        return 0
    if isinstance(subgrid, str) and subgrid in _SUBGRID_DEGREES:
        return _SUBGRID_DEGREES[subgrid]
    valid = ", ".join(["None", *map(repr, _SUBGRID_DEGREES)])
    raise ValueError(f"unknown `subgrid` {subgrid!r}; valid values are {valid}")


@dataclass(frozen=True)
class EnvelopeEngine:
    """One engine of the 1D lower envelope ``min_q w[q] + c (p - q)^2`` over every line of an axis.

    ``envelope(lines, c, track)`` transforms a 2D array of lines (rows, or with ``columns`` the
    columns, so that a GPU thread per line reads coalesced memory); ``refine(lines, env, arg, c,
    degree)`` is a compiled subgrid refinement or ``None`` (then :func:`_refine_lines` runs);
    ``to_work``/``back`` move the data to the engine's arrays and back to the input's kind.
    """

    name: str
    envelope: Callable[..., tuple[Any, Any]]
    to_work: Callable[[Any], Any] = field(default=lambda a: a)
    back: Callable[[Any, Any], Any] = field(default=lambda a, like: a)
    columns: bool = False
    refine: Callable[..., tuple[Any, Any]] | None = None

    def context(self, work: Any) -> Any:
        """The CUDA device of ``work`` for the GPU engine, else nothing."""
        if self.name != "cuda":
            return contextlib.nullcontext()
        import cupy

        return cupy.cuda.Device(work.device.id)

    def contiguous(self, u: Any) -> Any:
        if self.name != "cuda":
            return u
        import cupy

        return cupy.ascontiguousarray(u)


def numba_envelope(case: Any = None, like: Any = None) -> EnvelopeEngine:
    """The registry's ``"numba"`` engine: the compiled sweep and refinement of ``_lower_envelope``."""
    from ._lower_envelope import lower_envelope_rows, refine_rows

    def refine(lines: Any, env: Any, arg: Any, c: float, degree: int) -> tuple[Any, Any]:
        k = min(degree, lines.shape[-1] - 1)
        return refine_rows(lines, env, arg, c, k, _inverse_vandermonde(k), _NEWTON_STEPS)

    return EnvelopeEngine(
        "numba", lambda lines, c, track: lower_envelope_rows(lines, c, track=track), to_numpy, from_numpy, refine=refine
    )


def cuda_envelope(case: Any = None, like: Any = None) -> EnvelopeEngine:
    """The registry's ``"cuda"`` engine: one GPU thread per line (:mod:`hjsmooth.solvers._cuda_kernels`)."""
    from ._cuda_kernels import lower_envelope_columns

    return EnvelopeEngine(
        "cuda", lambda lines, c, track: lower_envelope_columns(lines, c, track=track), to_cupy, from_cupy, columns=True
    )


def brute_force_envelope(case: Any = None, like: Any = None) -> EnvelopeEngine:
    """The registry's ``"array"`` engine: the brute-force minimum over blocks, any backend."""
    return EnvelopeEngine("brute_force", _brute_force_rows)


def _envelope_engine(f: Any, method: str) -> EnvelopeEngine:
    """The engine for ``f``, from the stepper registry of :mod:`hjsmooth.solvers.kernels`
    (``method="brute_force"`` takes the array engine, ``"envelope"`` refuses it)."""
    if method == "brute_force":
        return build("lower_envelope", f, engine="array")[1]
    engine, worker = build("lower_envelope", f)
    if engine == "array" and method == "envelope":
        raise ValueError(
            f"`method` 'envelope' has no kernel for {type(f).__name__} on device {device(f)}; "
            "use method='auto' or 'brute_force'"
        )
    return worker


def _transform(
    work: Any, grid: Grid, t: float, engine: EnvelopeEngine, track: bool, degree: int = 0
) -> tuple[Any, list[Any] | None]:
    """Apply the 1D transform along every axis; return ``u`` and, if ``track``, the prox indices.

    With ``degree > 0`` every pass is refined between the grid points (:func:`_refine_lines`)
    and the prox "indices" are fractional positions in index units.
    """
    argmins = []
    u = work
    for axis in range(grid.ndim):
        c = grid.spacing[axis] ** 2 / (2.0 * t)
        u, argmin = _axis_pass(u, axis, c, engine, track, degree)
        argmins.append(argmin)
    if not track:
        return u, None
    if degree:
        return u, _resolve_prox_positions(argmins, grid.shape, degree)
    return u, _resolve_prox_indices(argmins, grid.shape)


def _axis_pass(
    w: Any, axis: int, c: float, engine: EnvelopeEngine, track: bool, degree: int = 0
) -> tuple[Any, Any | None]:
    """``min_q w[..., q, ...] + c (p - q)^2`` along ``axis``, with the minimising ``q`` if ``track``.

    With ``degree > 0`` the minimum also runs between the grid points, over a local
    interpolant of ``w`` (:func:`_refine_lines`), and the minimiser is a fractional ``q``.
    """
    xp = array_namespace(w)
    n = w.shape[axis]
    need_arg = track or degree > 0
    line_axis = 0 if engine.columns else -1
    moved = xp.moveaxis(w, axis, line_axis)
    lines = xp.reshape(moved, (n, -1) if engine.columns else (-1, n))
    env, arg = engine.envelope(lines, c, need_arg)
    if degree and engine.refine is not None:
        env, arg = engine.refine(lines, env, arg, c, degree)
    elif degree:
        env, arg = _refine_lines(lines, env, arg, c, degree, line_axis)

    def restore(a: Any) -> Any:
        return xp.moveaxis(xp.reshape(a, moved.shape), line_axis, axis)

    return restore(env), (restore(arg) if track else None)


def _inverse_vandermonde(k: int) -> np.ndarray:
    """Maps the values at the nodes ``m - k/2`` (``m = 0 .. k``) to the monomial coefficients."""
    return np.linalg.inv(np.vander(np.arange(k + 1) - k / 2.0, increasing=True))


def _lagrange_weights(u: Any, k: int) -> list[Any]:
    """Weights of the values at the nodes ``0, 1, .., k`` of the degree-``k`` interpolant at ``u``."""
    weights = []
    for m in range(k + 1):
        w = None
        for node in range(k + 1):
            if node != m:
                factor = (u - node) / float(m - node)
                w = factor if w is None else w * factor
        weights.append(w if w is not None else u * 0 + 1)
    return weights


def _refine_lines(values: Any, env: Any, arg: Any, c: float, degree: int, axis: int) -> tuple[Any, Any]:
    r"""Lower ``env`` to the minimum between the grid points of a local interpolant, along ``axis``.

    In index units (``y = y_0 + q h``) the pass computes ``env[p] = min_q T_q`` with the
    discrete totals ``T_q = g_q + c (p - q)^2``, ``g = values``, ``c = h^2 / (2t)``,
    minimised at the grid index ``j = arg[p]``.  Near ``j``, ``g`` is replaced by its
    interpolant ``P`` of degree ``k = degree`` through ``k + 1`` consecutive nodes; since
    the cost is itself quadratic in ``q``, ``T(q) = P(q) + c (p - q)^2`` is exactly the
    interpolant of degree ``k`` of the totals ``T_q`` at those nodes.  ``T`` is minimised
    over ``q`` in ``[j - 1, j + 1]`` cut to ``[0, n - 1]`` (the window):

    * start: ``T`` through ``j - 1, j, j + 1`` (the nodes ``0, 1, 2`` or ``n - 3 .. n - 1``
      at the ends) is a parabola whose curvature is ``>= 0`` because ``T_j`` is the least
      of the three; its vertex, clipped to the window, is the ``"quadratic"`` minimiser;
    * cubic and quartic: ``T`` through ``j - 2 .. j + 1`` or ``j - 1 .. j + 2`` (on the side
      of the quadratic vertex), or ``j - 2 .. j + 2``, shifted inside the window, and
      ``_NEWTON_STEPS`` Newton steps on ``T'(q) = 0`` from the quadratic vertex, each
      skipped where ``T'' <= 0`` and clipped to the window.  Near a smooth minimum
      ``T`` is a parabola up to ``O(h)`` relative terms: the start is ``e = O(h)`` cells
      from the minimiser, a step takes ``e`` to ``O(h e^2)`` and the value's error is
      ``T'' e^2 = O(h^2 e^2)``, so one step already leaves ``O(h^8)``; the second is margin.

    The result is ``min(T(q), env)`` (never above the grid minimum), with the position ``q``
    where ``T(q)`` is lower and ``j`` elsewhere.  Returns ``(env, position)``, the
    position in ``values``' float dtype.  Needs ``n >= 3`` (as every :class:`Grid` axis has).
    """
    xp = array_namespace(values)
    dtype = values.dtype
    n = values.shape[axis]
    k = min(degree, n - 1)
    j = xp.astype(arg, xp.int64)
    jf = xp.astype(j, dtype)
    shape = [1] * values.ndim
    shape[axis] = n
    p = xp.reshape(xp.arange(n, dtype=dtype, device=device(values)), tuple(shape))
    lo = xp.astype(xp.clip(j - 1, 0, n - 1), dtype)
    hi = xp.astype(xp.clip(j + 1, 0, n - 1), dtype)

    def totals(start: Any, count: int) -> list[Any]:
        out = []
        for m in range(count):
            node = start + m
            d = p - xp.astype(node, dtype)
            out.append(xp.take_along_axis(values, node, axis=axis) + c * (d * d))
        return out

    start = xp.clip(j - 1, 0, n - 3)
    t0, t1, t2 = totals(start, 3)
    centre = xp.astype(start, dtype) + 1.0
    a1 = 0.5 * (t2 - t0)
    a2 = 0.5 * (t2 + t0) - t1
    convex = a2 > 0
    vertex = centre - a1 / (2.0 * xp.where(convex, a2, xp.ones_like(a2)))
    q = xp.clip(xp.where(convex, vertex, jf), lo, hi)
    coeffs = [t1, a1, a2]
    if k >= 3:
        start = xp.where(q >= jf, j - 1, j - 2) if k == 3 else j - 2
        start = xp.clip(start, 0, n - 1 - k)
        nodes = totals(start, k + 1)
        centre = xp.astype(start, dtype) + k / 2.0
        inverse = _inverse_vandermonde(k)
        coeffs = [sum(float(inverse[i, m]) * nodes[m] for m in range(k + 1)) for i in range(k + 1)]
        for _ in range(_NEWTON_STEPS):
            z = q - centre
            d1 = _poly_derivative(coeffs, z, 1)
            d2 = _poly_derivative(coeffs, z, 2)
            ok = d2 > 0
            q = xp.clip(xp.where(ok, q - d1 / xp.where(ok, d2, xp.ones_like(d2)), q), lo, hi)
    total = _poly_derivative(coeffs, q - centre, 0)
    better = total < env
    return xp.where(better, total, env), xp.where(better, q, jf)


def _poly_derivative(coeffs: list[Any], z: Any, order: int) -> Any:
    """The ``order``-th derivative of ``sum_i coeffs[i] z^i`` at ``z`` (Horner)."""
    terms = [coeffs[i] * float(math.perm(i, order)) if order else coeffs[i] for i in range(order, len(coeffs))]
    out = terms[-1]
    for term in reversed(terms[:-1]):
        out = out * z + term
    return out


def _brute_force_rows(rows: Any, c: float, track: bool) -> tuple[Any, Any | None]:
    """``min_q rows[r, q] + c (p - q)^2`` by direct minimisation, in chunks of bounded size.

    ``O(n^2)`` per row with plain array-API operations, so it runs on any backend and
    device; it is also the reference the fast kernels are tested against.  Ties go to
    the smallest ``q``.
    """
    xp = array_namespace(rows)
    n_rows, n = rows.shape
    dev = device(rows)
    index = xp.arange(n, dtype=xp.float64, device=dev)
    rows_per_chunk = max(1, _BRUTE_FORCE_BUDGET // (n * n))
    points_per_chunk = min(n, max(1, _BRUTE_FORCE_BUDGET // (rows_per_chunk * n)))
    env_blocks, arg_blocks = [], []
    for r0 in range(0, n_rows, rows_per_chunk):
        block = rows[r0 : r0 + rows_per_chunk, :]
        env_parts, arg_parts = [], []
        for p0 in range(0, n, points_per_chunk):
            p = index[p0 : p0 + points_per_chunk]
            cost = xp.astype(c * (p[:, None] - index[None, :]) ** 2, rows.dtype)
            total = block[:, None, :] + cost[None, :, :]
            env_parts.append(xp.min(total, axis=-1))
            if track:
                arg_parts.append(xp.astype(xp.argmin(total, axis=-1), xp.int64))
        env_blocks.append(xp.concat(env_parts, axis=1))
        if track:
            arg_blocks.append(xp.concat(arg_parts, axis=1))
    env = xp.concat(env_blocks, axis=0)
    return env, (xp.concat(arg_blocks, axis=0) if track else None)


def _flat_index_parts(xp: Any, shape: tuple[int, ...], dev: Any) -> tuple[list[int], list[Any]]:
    """Row-major strides of ``shape`` and, per axis ``k``, its index ``0 .. n_k - 1`` broadcast along ``k``."""
    ndim = len(shape)
    strides = [int(np.prod(shape[k + 1 :])) for k in range(ndim)]
    own_index = [
        xp.reshape(xp.arange(shape[k], dtype=xp.int64, device=dev), tuple(-1 if j == k else 1 for j in range(ndim)))
        for k in range(ndim)
    ]
    return strides, own_index


def _resolve_prox_indices(argmins: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Turn the per-pass argmin indices into the grid indices of the joint minimiser.

    Pass ``a`` minimised over ``y_a`` at points whose axes ``< a`` hold output coordinates
    ``x_k`` and whose axes ``> a`` hold the later passes' variables ``y_k``.  The last pass
    gives ``y_{d-1}(x)`` directly; going backwards, ``y_a(x)`` is pass ``a``'s argmin read at
    ``(x_0, .., x_a, y_{a+1}(x), .., y_{d-1}(x))``.
    """
    xp = array_namespace(argmins[0])
    dev = device(argmins[0])
    ndim = len(shape)
    strides, own_index = _flat_index_parts(xp, shape, dev)
    resolved: list[Any] = [None] * ndim
    resolved[ndim - 1] = xp.astype(argmins[ndim - 1], xp.int64)
    for a in range(ndim - 2, -1, -1):
        flat = xp.zeros(shape, dtype=xp.int64, device=dev)
        for k in range(ndim):
            flat = flat + (own_index[k] if k <= a else resolved[k]) * strides[k]
        picked = xp.take(xp.reshape(xp.astype(argmins[a], xp.int64), (-1,)), xp.reshape(flat, (-1,)), axis=0)
        resolved[a] = xp.reshape(picked, shape)
    return resolved


def _resolve_prox_positions(positions: list[Any], shape: tuple[int, ...], degree: int) -> list[Any]:
    """:func:`_resolve_prox_indices` for fractional per-pass minimisers.

    Pass ``a``'s minimiser ``y_a`` is known at the grid points of the axes ``> a`` and has
    to be read at the fractional ``y_{a+1}(x), .., y_{d-1}(x)``: it is interpolated there
    by the tensor product of Lagrange interpolants of degree ``degree`` (fewer on short
    axes), on the ``degree + 1`` nodes per axis around each position, and clipped to the
    window (an interpolant of a rough minimiser field can overshoot it).
    """
    xp = array_namespace(positions[0])
    dev = device(positions[0])
    dtype = positions[0].dtype
    ndim = len(shape)
    strides, own_index = _flat_index_parts(xp, shape, dev)
    resolved: list[Any] = [None] * ndim
    resolved[ndim - 1] = positions[ndim - 1]
    for a in range(ndim - 2, -1, -1):
        base = xp.zeros(shape, dtype=xp.int64, device=dev)
        for k in range(a + 1):
            base = base + own_index[k] * strides[k]
        stencils = []
        for b in range(a + 1, ndim):
            k = min(degree, shape[b] - 1)
            y = resolved[b]
            start = xp.clip(xp.astype(xp.floor(y - (k - 1) / 2.0), xp.int64), 0, shape[b] - 1 - k)
            weights = _lagrange_weights(y - xp.astype(start, dtype), k)
            stencils.append([(start + m, weights[m]) for m in range(k + 1)])
        flat_a = xp.reshape(positions[a], (-1,))
        total = xp.zeros(shape, dtype=dtype, device=dev)
        for picks in itertools.product(*stencils):
            flat, weight = base, None
            for (index, w), b in zip(picks, range(a + 1, ndim)):
                flat = flat + index * strides[b]
                weight = w if weight is None else weight * w
            total = total + weight * xp.reshape(xp.take(flat_a, xp.reshape(flat, (-1,)), axis=0), shape)
        # for a smooth minimiser the interpolant stays inside; for a rough one it may overshoot
        resolved[a] = xp.clip(total, 0.0, float(shape[a] - 1))
    return resolved
