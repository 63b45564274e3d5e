"""The dense coupling tensor of the p-spin model, folded into matrices that BLAS contracts.

The Hamiltonian (2.4) only sees the symmetrised couplings ``S = sym(J)`` (the mean of ``J``
over the ``p!`` permutations of its axes).  Contracting ``S`` with ``r`` copies of ``sigma`` is a
sum over ordered index tuples; since ``S`` is symmetric it equals the sum over *multisets*
``m = {i_1 <= ... <= i_r}`` weighted by the number of orderings of ``m``::

    sum_{i_1..i_r} S[a, i_1..i_r] sigma_{i_1}..sigma_{i_r}
        = sum_m  mult(m) S[a, m] prod_l sigma_{m_l}  = (phi_r(sigma) @ W_r)[a],

with ``phi_r(sigma)[m] = prod_l sigma_{m_l}`` (one column gather per factor) and
``W_r[m, a] = mult(m) S[a, m]``.  For a batch of configurations this is one matrix product, and
the multisets cut the work by about ``r!`` against the full ``N^r`` contraction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, device, from_numpy, is_torch_array

__all__ = ["symmetrise", "MultisetTable", "multiset_table"]


def symmetrise(couplings: np.ndarray) -> np.ndarray:
    """The mean of ``couplings`` over all permutations of its axes (a symmetric tensor)."""
    p = couplings.ndim
    out = np.zeros_like(couplings)
    for perm in itertools.permutations(range(p)):
        out += np.transpose(couplings, perm)
    return out / math.factorial(p)


@dataclass(frozen=True)
class MultisetTable:
    """The multisets of size ``r`` of ``{0..n-1}`` and the folded couplings ``W_r``.

    ``columns`` is a tuple of ``r`` integer index arrays (the ``l``-th entry of every multiset),
    ``weights`` the matrix ``W_r`` of shape ``(multisets, n ** (p - r))``.
    """

    columns: tuple[Any, ...]
    weights: Any

    def contract(self, sigma: Any) -> Any:
        """``phi_r(sigma) @ W_r`` for ``sigma`` of shape ``(batch, n)``."""
        xp = array_namespace(sigma)
        if not self.columns:
            return xp.ones((sigma.shape[0], 1), dtype=sigma.dtype, device=device(sigma)) @ self.weights
        # gather whole rows of sigma^T (contiguous copies), then one BLAS product with the transposed view
        spins = _contiguous(xp.permute_dims(sigma, (1, 0)))
        phi = xp.take(spins, self.columns[0], axis=0)
        for col in self.columns[1:]:
            phi = phi * xp.take(spins, col, axis=0)
        return xp.permute_dims(phi, (1, 0)) @ self.weights

    def like(self, sigma: Any) -> MultisetTable:
        """The same table on ``sigma``'s backend, device and dtype."""
        weights = from_numpy(self.weights, sigma)
        if is_torch_array(sigma):
            import torch

            columns = tuple(torch.as_tensor(c, device=sigma.device) for c in self.columns)
        else:
            columns = self.columns
        return MultisetTable(columns, weights)


def _contiguous(x: Any) -> Any:
    """``x`` in row-major memory order (numpy and torch; other arrays as they are)."""
    if is_torch_array(x):
        return x.contiguous()
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x)
    return x


def _multisets(n: int, r: int) -> np.ndarray:
    """All sorted ``r``-tuples of ``{0..n-1}`` (multisets), shape ``(C(n + r - 1, r), r)``."""
    if r == 0:
        return np.zeros((1, 0), dtype=np.int64)
    flat = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations_with_replacement(range(n), r)), dtype=np.int64
    )
    return flat.reshape(-1, r)


def _orderings(index: np.ndarray) -> np.ndarray:
    """The number of distinct orderings of each sorted row: ``r! / prod_v c_v!``."""
    r = index.shape[1]
    # the rank of each entry within its run of equal values: the product of ranks is prod_v c_v!
    ranks = np.ones(index.shape[0], dtype=np.float64)
    for k in range(r):
        ranks *= np.sum(index[:, : k + 1] == index[:, k : k + 1], axis=1)
    return math.factorial(r) / ranks


def multiset_table(symmetric: np.ndarray, r: int) -> MultisetTable:
    """Fold the symmetric tensor ``symmetric`` (order ``p``) for contractions with ``r <= p`` copies of sigma."""
    n, p = symmetric.shape[0], symmetric.ndim
    index = _multisets(n, r)
    flat = np.ravel_multi_index(tuple(index.T), (n,) * r) if r else np.zeros(1, dtype=np.int64)
    lead = symmetric.reshape(n ** (p - r), n**r)
    weights = np.ascontiguousarray((lead[:, flat] * _orderings(index)).T)
    return MultisetTable(tuple(np.ascontiguousarray(index[:, k]) for k in range(r)), weights)
