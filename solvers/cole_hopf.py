r"""Exact solutions of the viscous Hamilton-Jacobi and heat equations on a grid.

Both are Gaussian convolutions, done as a Riemann sum over the grid window and
separably, one axis at a time: along axis ``k`` the 1D kernel is the ``n_k x n_k``
matrix ``K[p, q] = exp(-(p - q)^2 a) / theta(a)``, ``a = h_k^2 / (2 s)``, the Gaussian of
variance ``s`` sampled at the nodes and divided by its sum over the whole lattice,
``theta(a) = sum_{m in Z} exp(-a m^2)`` (a Jacobi theta value), and one pass is one dense
matrix product ``K @ lines`` over all lines of that axis at once (BLAS / cuBLAS speed,
``O(n_k)`` work per point).

Why ``theta``: a resolved kernel (``sqrt(s) >~ h``) has ``theta = sqrt(2 pi s) / h`` up to
``2 exp(-2 pi^2 s / h^2)`` (Poisson summation), so ``K`` is the Riemann sum
``h G_s((p - q) h)`` to that relative accuracy (below ``5e-9`` once ``sqrt(s) >= h``, and it
removes the leading aliasing error for smooth data).  A kernel narrower than the grid has
``theta -> 1`` and ``K -> I``: as ``t / beta`` falls below the grid's resolution, ``heat``
and ``local_entropy`` tend to ``f`` (and ``local_entropy`` to the grid's Hopf-Lax value as
``beta`` grows), where the unnormalised Riemann sum ``h G_s(0) = h / sqrt(2 pi s)`` would
amplify ``f`` without bound.  Everything depending on ``s`` is computed from ``log t -
log beta``, so no variance overflows or underflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, device
from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_beta, check_grid, check_time

from .hopf_lax import hopf_lax, hopf_lax_prox
from .kernels import build

__all__ = ["local_entropy", "local_entropy_mean", "LocalEntropySolution", "heat"]

_EXACT_BUDGET = 1 << 22  # entries of the largest temporary of the exact (per-entry) log-sum-exp
_SAFETY = 4.0  # margin on the underflow threshold of the fast pass
_LOG_A_CAP = 690.0  # a = h^2 / (2 s) above exp(690) ~ 1e300: exp(-a) is 0, the kernel is the identity


def local_entropy(f: Any, grid: Grid, t: float, beta: float) -> Any:
    r"""Local Entropy: the exact solution of the viscous Hamilton-Jacobi equation on the grid.

    Solves (4.1)

    .. math:: u_t = -\tfrac12 |\nabla u|^2 + \tfrac{1}{2\beta} \Delta u, \qquad u(x, 0) = f(x),

    by the Cole-Hopf formula (4.11), :math:`u = -\beta^{-1} \log (G_{t/\beta} * e^{-\beta f})`,
    with the convolution taken as the normalised Riemann sum over the grid window
    (see the module docstring),

    .. math:: u(x) = -\frac1\beta \log \sum_{y} K(x, y)\, e^{-\beta f(y)}, \qquad
              K(x, y) = \prod_k \frac{e^{-(x_k - y_k)^2 / (2 s)}}{\theta_k}, \quad s = t / \beta,

    (``y`` the grid points), in the log domain.  Edge of the grid: ``f`` is ``+inf`` outside
    the window, so ``u`` matches the solution on the whole space only where the Gibbs
    measure ``rho_1(y; x) ∝ exp(-beta f(y) - beta |x - y|^2 / (2t))`` puts no mass outside.

    Limits: ``t = 0`` returns a copy of ``f``; ``beta = inf`` is the inviscid limit and returns
    :func:`hopf_lax` exactly.  When the kernel's width ``sqrt(t / beta)`` is at least about the
    spacing ``h`` the sum is spectrally accurate; as it falls below the grid's resolution
    ``u`` tends to ``f`` (at ``sqrt(t/beta) = h/4`` the weight of a neighbour is ``e^{-8}``), and
    as ``beta`` grows with ``t`` fixed ``u`` tends to the grid's Hopf-Lax value, the gap
    ``-(1/beta) log(1 + R) + (1/beta) sum_k log theta_k`` closing exponentially fast
    (``R`` the relative weight of the non-minimal grid points).  Huge ``t / beta`` is fine in
    the log domain; if ``u`` itself overflows (``beta`` so small that ``log(window / sqrt(s)) / beta``
    exceeds the float range) ``FloatingPointError`` names ``beta``.

    Method: with ``w = -beta (f - min f)``, each axis pass computes
    ``w_new(x) = log sum_y K(x, y) exp(w(y))`` along one axis by shifting every line by its
    maximum ``m``, one matrix product ``S = K0 @ exp(w - m)`` with ``K0 = exp(-(x - y)^2 / (2s)) <= 1``,
    and ``w_new = log S + m - log theta``.

    Accuracy: every term ``K0[p, q] exp(w_q - m) <= 1`` that the product computes with less
    than full relative precision lies below the smallest normal number ``tiny`` (absolute error
    ``< tiny``); all other terms carry relative error ``~eps``, so ``|S_computed - S| <= n eps S + n tiny``
    and ``log S`` is accurate to ``~n eps`` wherever ``S >= 4 n tiny / eps``.  The entries below that
    threshold (where ``beta`` times the variation of ``f`` is large) are recomputed exactly by a
    per-entry max-shifted log-sum-exp, whose largest term is ``1`` (a parallel numba loop on the
    CPU, chunked array operations elsewhere; ``O(n)`` scalar work per entry, so a pass where most
    entries need it costs more than the matrix product, see docs/benchmarks.md).  The result stays finite and
    accurate for any ``beta (max f - min f)`` that the dtype can hold (tested to ``1e6`` in float64).

    Parameters
    ----------
    f : array of shape ``grid.shape``
        Initial value (the loss), numpy, torch or CuPy, float32 or float64.
    grid : Grid
        The grid ``f`` lives on.
    t : float
        Time (the scope ``gamma``), ``t >= 0``.  ``t = 0`` returns a copy of ``f``.
    beta : float
        Inverse temperature, ``0 < beta <= inf``.

    Returns
    -------
    u : array
        ``u(., t)`` on the grid, same backend, device and dtype as ``f``.
        :func:`local_entropy_mean` also returns the mean ``<y>(x)`` of ``rho_1``.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-6.0, 6.0, 601)
    >>> x = g.axes[0]
    >>> u = hs.local_entropy(x ** 2 / 2, g, t=1.0, beta=2.0)   # Example 4.12
    >>> inside = np.abs(x) <= 3.0                               # away from the window's edge
    >>> bool(np.abs(u - (x ** 2 / 4 + np.log(2.0) / 4))[inside].max() < 1e-10)
    True
    """
    return _local_entropy(f, grid, t, beta, want_mean=False)[0]


@dataclass(frozen=True)
class LocalEntropySolution:
    """Local Entropy on the grid with the mean of its Gibbs measure (:func:`local_entropy_mean`).

    Attributes
    ----------
    values : array of ``grid.shape``
        ``u(., t)``, as :func:`local_entropy` returns it.
    mean : array of shape ``(grid.ndim, *grid.shape)``
        ``<y>(x)``, the mean of ``rho_1(y; x) ∝ exp(-beta (f(y) + |x - y|^2 / (2t)))`` over the
        grid; ``grad u(x) = (x - <y>(x)) / t`` (4.12).
    """

    values: Any
    mean: Any


def local_entropy_mean(f: Any, grid: Grid, t: float, beta: float) -> LocalEntropySolution:
    r"""Local Entropy (:func:`local_entropy`) together with ``<y>(x)``, the mean of ``rho_1(.; x)``.

    Arguments are those of :func:`local_entropy`, and ``values`` equals its result.  ``mean`` has
    shape ``(grid.ndim, *grid.shape)`` on ``f``'s backend, device and dtype, and
    ``grad u(x) = (x - <y>(x)) / t`` (4.12), exactly for the quadrature as a function of ``x``.
    It costs ``d (d + 1) / 2`` extra axis passes and is accurate to about
    ``eps beta (max f - min f)`` times the window's width (a ratio of two sums whose logs carry
    that absolute error).  At ``t = 0`` the mean is ``x``; at ``beta = inf`` it is the proximal
    point of :func:`hopf_lax_prox`.

    Returns
    -------
    LocalEntropySolution
        ``values`` and ``mean``.
    """
    u, mean = _local_entropy(f, grid, t, beta, want_mean=True)
    return LocalEntropySolution(u, mean)


def _local_entropy(f: Any, grid: Any, t: Any, beta: Any, want_mean: bool) -> tuple[Any, Any | None]:
    """Validate, then ``(u, mean)`` (``mean`` only if ``want_mean``, else ``None``)."""
    grid = check_grid(grid)
    f = as_field(f, "f", grid.shape)
    t = check_time(t)
    beta = check_beta(beta)
    xp = array_namespace(f)
    if t == 0.0:
        u = xp.asarray(f, copy=True)
        return u, (xp.stack(grid.coords_like(f), axis=0) if want_mean else None)
    if math.isinf(beta):
        if not want_mean:
            return hopf_lax(f, grid, t), None
        solution = hopf_lax_prox(f, grid, t)
        return solution.values, solution.prox

    log_s = math.log(t) - math.log(beta)
    f_min = xp.min(f)
    w = -beta * (f - f_min)
    kernels = [_log_gaussian_kernel(grid, k, log_s, f) for k in range(grid.ndim)]
    log_z = w
    partial = []  # log_z after passes 0 .. k-1, needed for the mean
    for k, (log_k0, log_scale) in enumerate(kernels):
        partial.append(log_z)
        log_z = _log_kernel_pass(log_z, k, log_k0, log_scale)
    with np.errstate(over="ignore"):
        u = f_min - log_z / beta
    if not bool(xp.all(xp.isfinite(u))):
        raise FloatingPointError(
            f"local_entropy overflows for `beta`={beta!r} and `t`={t!r}: u ~ log(window / sqrt(t/beta)) / beta "
            f"exceeds the float range; raise `beta`"
        )
    if not want_mean:
        return u, None

    coords = []
    for k in range(grid.ndim):
        log_k0, log_scale = kernels[k]
        length = grid.upper[k] - grid.lower[k]
        weight = (grid.axes[k] - grid.lower[k]) / length  # in [0, 1]
        with np.errstate(divide="ignore"):
            log_weight = _to_like(np.log(weight), f)
        log_num = _log_kernel_pass(partial[k], k, log_k0 + log_weight[None, :], log_scale)
        for j in range(k + 1, grid.ndim):
            log_num = _log_kernel_pass(log_num, j, *kernels[j])
        ratio = xp.clip(xp.exp(log_num - log_z), 0.0, 1.0)
        coords.append(grid.lower[k] + length * ratio)
    return u, xp.stack(coords, axis=0)


def heat(f: Any, grid: Grid, t: float, beta: float) -> Any:
    r"""Exact heat flow on the grid: ``v = G_{t/beta} * f``.

    Solves (4.28) :math:`v_t = \tfrac{1}{2\beta} \Delta v`, ``v(., 0) = f``, whose solution is the
    convolution with the Gaussian of variance ``t / beta`` per coordinate, taken as the Riemann sum
    over the grid window, ``v(x) = sum_y h^d G_{t/beta}(x - y) f(y)``, one axis at a time (one matrix
    product per axis).  Edge of the grid: ``f`` is taken as ``0`` outside the window, so mass that
    diffuses out of the window is lost; ``v`` matches the solution on the whole space where
    ``f`` is negligible within a few standard deviations ``sqrt(t / beta)`` of the edge.
    The kernel is the Gaussian sampled at the nodes divided by its sum over the whole lattice
    (see the module docstring): spectrally accurate when ``sqrt(t / beta)`` is at least about the
    spacing, and tending to the identity, so ``v -> f``, as ``sqrt(t / beta)`` falls below the
    grid's resolution (never an amplification).  A huge ``t / beta`` spreads ``f`` over the whole
    line: ``v`` tends to ``0`` (computed in the log domain, no overflow).

    Parameters
    ----------
    f : array of shape ``grid.shape``
        Initial value, numpy, torch or CuPy, float32 or float64.
    grid : Grid
        The grid ``f`` lives on.
    t : float
        Time, ``t >= 0``.
    beta : float
        Inverse temperature, ``0 < beta <= inf``.  ``beta = inf`` or ``t = 0`` returns a copy of ``f``.

    Returns
    -------
    v : array
        ``v(., t)`` on the grid, same backend, device and dtype as ``f``.
    """
    grid = check_grid(grid)
    f = as_field(f, "f", grid.shape)
    t = check_time(t)
    beta = check_beta(beta)
    xp = array_namespace(f)
    if t == 0.0 or math.isinf(beta):
        return xp.asarray(f, copy=True)
    log_s = math.log(t) - math.log(beta)
    v = f
    for k in range(grid.ndim):
        log_k0, log_scale = _log_gaussian_kernel(grid, k, log_s, f)
        kernel = xp.exp(log_k0 + log_scale)
        v = _matmul_along(kernel, v, k)
    return v


def _to_like(values: np.ndarray, like: Any) -> Any:
    """Float64 numpy ``values`` as an array on ``like``'s backend and device, in ``like``'s dtype."""
    xp = array_namespace(like)
    return xp.astype(xp.asarray(values, device=device(like)), like.dtype)


def _log_gaussian_kernel(grid: Grid, axis: int, log_s: float, like: Any) -> tuple[Any, float]:
    """``log K0[p, q] = -(p - q)^2 a`` along ``axis``, ``a = h^2 / (2 s)``, and ``-log theta(a)``.

    ``K0 <= 1`` with ones on the diagonal; the normalised 1D kernel is ``K = K0 / theta(a)``,
    ``theta(a) = sum_{m in Z} exp(-a m^2)`` (see :func:`_log_lattice_sum`).  ``s`` enters as
    ``log s``, so a variance that would overflow or underflow does not.  Built on ``like``'s
    device in float64 (the squared index difference is exact) and rounded once to
    ``like``'s dtype.
    """
    xp = array_namespace(like)
    n = grid.shape[axis]
    h = grid.spacing[axis]
    log_a = 2.0 * math.log(h) - math.log(2.0) - log_s
    a = math.exp(min(log_a, _LOG_A_CAP))  # beyond the cap every off-diagonal weight is 0 anyway
    index = xp.arange(n, dtype=xp.float64, device=device(like))
    squared = (index[:, None] - index[None, :]) ** 2
    with np.errstate(over="ignore"):
        log_k0 = -squared * a
    return xp.astype(log_k0, like.dtype), -_log_lattice_sum(log_a)


def _log_lattice_sum(log_a: float) -> float:
    """``log theta(a)``, ``theta(a) = sum_{m in Z} exp(-a m^2)``, for ``a = exp(log_a) > 0`` of any size.

    For ``a >= pi`` the direct sum ``1 + 2 sum_{m >= 1} exp(-a m^2)`` converges at once; below,
    the Poisson (Jacobi) dual ``theta(a) = sqrt(pi / a) theta(pi^2 / a)`` does, and its
    logarithm ``(log pi - log a) / 2 + log theta(pi^2 / a)`` is taken from ``log a`` so that
    neither a tiny nor a huge ``a`` overflows.
    """
    if log_a >= math.log(math.pi):
        a, prefix = math.exp(min(log_a, _LOG_A_CAP)), 0.0
    else:
        a, prefix = math.pi**2 * math.exp(min(-log_a, _LOG_A_CAP)), 0.5 * (math.log(math.pi) - log_a)
    # a >= pi here: terms exp(-a m^2) <= exp(-pi m^2) fall below 1e-20 of the first by m = 5
    tail = sum(math.exp(-a * m * m) for m in range(1, 7))
    return prefix + math.log1p(2.0 * tail)


def _matmul_along(kernel: Any, w: Any, axis: int) -> Any:
    """``sum_q kernel[p, q] w[..., q, ...]`` along ``axis`` as one matrix product."""
    xp = array_namespace(w)
    n = w.shape[axis]
    moved = xp.moveaxis(w, axis, 0)
    out = kernel @ xp.reshape(moved, (n, -1))
    return xp.moveaxis(xp.reshape(out, moved.shape), 0, axis)


def _log_kernel_pass(w: Any, axis: int, log_k0: Any, log_scale: float) -> Any:
    """``log_scale + log sum_q exp(log_k0[p, q] + w[..., q, ...])`` along ``axis``.

    ``log_k0 <= 0`` (entries may be ``-inf``).  Fast path: one matrix product per pass with
    every line shifted by its maximum; entries whose sum falls below the underflow threshold
    are recomputed by :func:`_exact_logsumexp`.
    """
    xp = array_namespace(w)
    n = w.shape[axis]
    moved = xp.moveaxis(w, axis, 0)
    lines = xp.reshape(moved, (n, -1))
    shift = xp.max(lines, axis=0)
    sums = xp.exp(log_k0) @ xp.exp(lines - shift[None, :])
    finfo = np.finfo(np.float32 if w.dtype == xp.float32 else np.float64)
    threshold = _SAFETY * n * float(finfo.smallest_normal) / float(finfo.eps)
    accurate = sums >= threshold
    out = xp.log(xp.where(accurate, sums, xp.ones_like(sums))) + shift[None, :]
    rows, cols = xp.nonzero(~accurate)
    if rows.shape[0] > 0:
        out[rows, cols] = _exact_logsumexp(log_k0, lines, rows, cols)
    out = out + log_scale
    return xp.moveaxis(xp.reshape(out, moved.shape), 0, axis)


def _exact_logsumexp(log_k0: Any, lines: Any, rows: Any, cols: Any) -> Any:
    """``log sum_q exp(log_k0[rows[i], q] + lines[q, cols[i]])`` for every ``i``, each max-shifted.

    CPU arrays (numpy, CPU torch, viewed as numpy) run a parallel numba loop, ``O(n)`` per
    entry and no temporaries; other backends run the same sum vectorised over chunks of
    entries with bounded memory (the stepper registry's ``"log_sum_exp"`` row decides).
    """
    xp = array_namespace(lines)
    lines_t = xp.permute_dims(lines, (1, 0))  # line-major, so each entry reads contiguous memory
    return build("log_sum_exp", lines)[1](log_k0, lines_t, rows, cols)


def chunked_logsumexp(case: Any = None, like: Any = None) -> Any:
    """The registry's ``"array"`` engine of ``"log_sum_exp"``: :func:`_exact_logsumexp_chunked`."""
    return _exact_logsumexp_chunked


def _exact_logsumexp_chunked(log_k0: Any, lines_t: Any, rows: Any, cols: Any) -> Any:
    """``log sum_q exp(log_k0[rows[i], q] + lines_t[cols[i], q])``, vectorised over chunks of entries."""
    xp = array_namespace(lines_t)
    n = lines_t.shape[1]
    count = rows.shape[0]
    chunk = max(1, _EXACT_BUDGET // n)
    parts = []
    for start in range(0, count, chunk):
        terms = xp.take(log_k0, rows[start : start + chunk], axis=0) + xp.take(
            lines_t, cols[start : start + chunk], axis=0
        )
        peak = xp.max(terms, axis=1)
        parts.append(peak + xp.log(xp.sum(xp.exp(terms - peak[:, None]), axis=1)))
    return xp.concat(parts, axis=0)
