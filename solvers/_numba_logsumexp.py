"""The exact per-entry log-sum-exp of :mod:`hjsmooth.solvers.cole_hopf` as a parallel numba loop (CPU arrays).

For every requested entry ``i``: ``log sum_q exp(log_k0[rows[i], q] + lines_t[cols[i], q])``, shifted
by its largest term so that nothing overflows and the largest term is exactly ``1``; ``O(n)`` scalar
work per entry and no temporaries.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from hjsmooth.backend import array_namespace, device, is_numpy_array

__all__ = ["numba_logsumexp", "logsumexp_entries"]


def logsumexp_entries(log_k0: Any, lines_t: Any, rows: Any, cols: Any) -> Any:
    """The entries for numpy arrays or CPU torch tensors (read as numpy), in ``lines_t``'s kind and dtype."""
    xp = array_namespace(lines_t)
    as_np = (lambda a: a) if is_numpy_array(lines_t) else (lambda a: a.detach().numpy())
    out = np.empty(rows.shape[0], dtype=np.float64)
    _logsumexp_entries_kernel(
        np.ascontiguousarray(as_np(log_k0)),
        np.ascontiguousarray(as_np(lines_t)),
        np.ascontiguousarray(as_np(rows), dtype=np.int64),
        np.ascontiguousarray(as_np(cols), dtype=np.int64),
        out,
    )
    return xp.astype(xp.asarray(out, device=device(lines_t)), lines_t.dtype)


def numba_logsumexp(case: Any = None, like: Any = None) -> Any:
    """The registry's ``"numba"`` engine of ``"log_sum_exp"``: :func:`logsumexp_entries`."""
    return logsumexp_entries


@numba.njit(cache=True, parallel=True)
def _logsumexp_entries_kernel(log_k0, lines_t, rows, cols, out):  # pragma: no cover - compiled
    n = log_k0.shape[1]
    for i in numba.prange(rows.shape[0]):
        p = rows[i]
        line = cols[i]
        peak = -np.inf
        for q in range(n):
            a = np.float64(log_k0[p, q]) + np.float64(lines_t[line, q])
            if a > peak:
                peak = a
        acc = 0.0
        for q in range(n):
            d = np.float64(log_k0[p, q]) + np.float64(lines_t[line, q]) - peak
            if d > -746.0:  # exp(d) underflows to 0 below this
                acc += np.exp(d)
        out[i] = peak + np.log(acc)
