"""Numba kernel: the 1D lower envelope of parabolas along the rows of a 2D array.

For every row ``f`` of length ``n`` the kernel computes, for every ``p = 0 .. n-1``,

    d[p] = min_{q = 0 .. n-1}  f[q] + c (p - q)^2,        c = h^2 / (2 t) > 0,

which is the 1D Hopf-Lax transform ``min_y f(y) + |x - y|^2 / (2t)`` on a uniform grid of
spacing ``h``, restricted to the grid points ``y`` of the row (Felzenszwalb and
Huttenlocher, "Distance transforms of sampled functions", 2012, generalised to a weight
``c``).  The envelope is built in one left-to-right sweep that keeps a stack of the
parabolas that are lowest somewhere, and read off in a second sweep: ``O(n)`` per row.

Parabolas ``q`` and ``v < q`` cross at the abscissa

    s = (q + v) / 2 + (f[q] - f[v]) / (2 c (q - v)),

written this way (rather than as a difference of ``f + c q^2``) so that no large term
cancels.  Ties go to the parabola with the smaller index: a point ``p`` exactly at a
crossing is given to the parabola on its left, so ``argmin`` is *a* minimiser, not
necessarily the first or the last of several.

Rows are independent and run in parallel (``prange``); each keeps its own scratch stack.

:func:`refine_rows` is the optional subgrid step of ``hopf_lax(..., subgrid=...)`` for the
same rows: the minimum of a local interpolant between the grid points, element by element.
It is the compiled twin of the array-API ``_refine_lines`` in ``hopf_lax.py`` (which the GPU
and brute-force paths use, and whose docstring gives the method); both do the same
operations in the same order, and the tests hold them equal.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["lower_envelope_rows", "refine_rows"]


@numba.njit(cache=True, parallel=True, fastmath=False)
def _envelope_kernel(values, c, out, argmin, track):  # pragma: no cover - compiled
    n_rows, n = values.shape
    for r in numba.prange(n_rows):
        stack = np.empty(n, dtype=np.int64)
        cross = np.empty(n + 1, dtype=np.float64)
        top = 0
        stack[0] = 0
        cross[0] = -np.inf
        cross[1] = np.inf
        for q in range(1, n):
            fq = values[r, q]
            while True:
                v = stack[top]
                s = 0.5 * (q + v) + (fq - values[r, v]) / (2.0 * c * (q - v))
                if top > 0 and s <= cross[top]:
                    top -= 1
                else:
                    break
            if s <= cross[top]:
                # only possible with top == 0: parabola q is lowest everywhere so far
                stack[0] = q
                cross[1] = np.inf
            else:
                top += 1
                stack[top] = q
                cross[top] = s
                cross[top + 1] = np.inf
        k = 0
        for p in range(n):
            while cross[k + 1] < p:
                k += 1
            v = stack[k]
            out[r, p] = values[r, v] + c * (p - v) * (p - v)
            if track:
                argmin[r, p] = v


def lower_envelope_rows(values: np.ndarray, c: float, *, track: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Lower envelope ``d[r, p] = min_q values[r, q] + c (p - q)^2`` of every row.

    Parameters
    ----------
    values : numpy.ndarray, shape (rows, n), float32 or float64
        The rows; made C-contiguous if they are not.
    c : float
        The weight ``h^2 / (2t)``, positive.
    track : bool
        Also return the minimising index ``q`` of every entry.

    Returns
    -------
    envelope : numpy.ndarray of ``values``' shape and dtype
    argmin : numpy.ndarray of int64, or None when ``track`` is False
    """
    values = np.ascontiguousarray(values)
    out = np.empty_like(values)
    argmin = np.empty(values.shape if track else (0, 0), dtype=np.int64)
    _envelope_kernel(values, float(c), out, argmin, bool(track))
    return out, (argmin if track else None)


@numba.njit(cache=True, parallel=True, fastmath=False)
def _refine_kernel(values, env, arg, c, k, inverse, newton_steps, out, pos):  # pragma: no cover - compiled
    n_rows, n = values.shape
    for r in numba.prange(n_rows):
        coeffs = np.empty(k + 1, dtype=np.float64)
        totals = np.empty(k + 1, dtype=np.float64)
        for p in range(n):
            j = arg[r, p]
            lo = float(max(j - 1, 0))
            hi = float(min(j + 1, n - 1))
            start = min(max(j - 1, 0), n - 3)
            d = float(p - start)
            t0 = values[r, start] + c * (d * d)
            d = float(p - start - 1)
            t1 = values[r, start + 1] + c * (d * d)
            d = float(p - start - 2)
            t2 = values[r, start + 2] + c * (d * d)
            centre = start + 1.0
            a1 = 0.5 * (t2 - t0)
            a2 = 0.5 * (t2 + t0) - t1
            q = centre - a1 / (2.0 * a2) if a2 > 0 else float(j)
            q = min(max(q, lo), hi)
            if k == 2:
                z = q - centre
                total = (a2 * z + a1) * z + t1
            else:
                if k == 3:
                    start = j - 1 if q >= j else j - 2
                else:
                    start = j - 2
                start = min(max(start, 0), n - 1 - k)
                for m in range(k + 1):
                    d = float(p - start - m)
                    totals[m] = values[r, start + m] + c * (d * d)
                for i in range(k + 1):
                    acc = inverse[i, 0] * totals[0]
                    for m in range(1, k + 1):
                        acc += inverse[i, m] * totals[m]
                    coeffs[i] = acc
                centre = start + k / 2.0
                for _ in range(newton_steps):
                    z = q - centre
                    d1 = k * coeffs[k]
                    for i in range(k - 1, 0, -1):
                        d1 = d1 * z + i * coeffs[i]
                    d2 = k * (k - 1) * coeffs[k]
                    for i in range(k - 1, 1, -1):
                        d2 = d2 * z + i * (i - 1) * coeffs[i]
                    if d2 > 0:
                        q = min(max(q - d1 / d2, lo), hi)
                z = q - centre
                total = coeffs[k]
                for i in range(k - 1, -1, -1):
                    total = total * z + coeffs[i]
            if total < env[r, p]:
                out[r, p] = total
                pos[r, p] = q
            else:
                out[r, p] = env[r, p]
                pos[r, p] = j


def refine_rows(
    values: np.ndarray,
    env: np.ndarray,
    argmin: np.ndarray,
    c: float,
    degree: int,
    inverse: np.ndarray,
    newton_steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Subgrid refinement of :func:`lower_envelope_rows`' result, row by row.

    Parameters
    ----------
    values : numpy.ndarray, shape (rows, n), n >= 3
        The rows the envelope was taken of.
    env, argmin : numpy.ndarray
        :func:`lower_envelope_rows`' envelope and argmin (``track=True``) of ``values``.
    c : float
        The weight ``h^2 / (2t)``.
    degree : int
        2, 3 or 4: the degree of the local interpolant (at most ``n - 1``).
    inverse : numpy.ndarray, shape (degree + 1, degree + 1)
        Inverse Vandermonde matrix of the nodes ``m - degree / 2``, ``m = 0 .. degree``
        (monomial coefficients from values); unused for degree 2.
    newton_steps : int
        Newton steps after the quadratic start (degrees 3 and 4).

    Returns
    -------
    envelope : numpy.ndarray of ``values``' shape and dtype
        ``min(refined minimum, env)``, evaluated in double precision.
    position : numpy.ndarray of ``values``' shape and dtype
        The fractional minimising index (``argmin`` where the refinement does not lower ``env``).
    """
    values = np.ascontiguousarray(values)
    out = np.empty_like(values)
    pos = np.empty_like(values)
    inverse = np.ascontiguousarray(inverse, dtype=np.float64)
    _refine_kernel(
        values,
        np.ascontiguousarray(env),
        np.ascontiguousarray(argmin),
        float(c),
        int(degree),
        inverse,
        int(newton_steps),
        out,
        pos,
    )
    return out, pos
