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
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["lower_envelope_rows"]


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
