"""Lanczos with full reorthogonalisation for a symmetric operator known only through its products.

Given ``matvec(v) = A v`` on flat torch vectors, Lanczos builds an orthonormal basis ``V`` of the
Krylov space ``span(v, A v, A^2 v, ...)`` and the projected matrix ``T = V^T A V`` (tridiagonal, or
"arrowhead" after a thick restart).  Every new vector is orthogonalised against the whole basis,
twice (classical Gram-Schmidt with one refinement: "twice is enough"), so the basis stays
orthonormal to rounding and no ghost eigenvalues appear.  ``T`` is stored as the inner products
``V^T A v_j`` themselves, so it is the Rayleigh quotient ``V^T A V`` to rounding, also after a restart.

* :func:`extreme_eigenpairs`: the ``k`` largest or smallest eigenpairs by thick-restart Lanczos
  (Wu and Simon 2000): the basis holds at most ``basis_size`` vectors; when it is full, the best
  Ritz vectors are kept and the others dropped.  Memory ``O(basis_size * d)``.
* :func:`lanczos_basis`: ``steps`` plain Lanczos steps from a given vector, for stochastic Lanczos
  quadrature (the Ritz values and the squared first components of ``T``'s eigenvectors are the
  nodes and weights of the Gauss quadrature of the start vector's spectral measure) and for
  deflating a trace estimate.

Both work on the vectors' device and dtype; ``T`` and the Ritz values are float64 numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["RitzPairs", "LanczosBasis", "extreme_eigenpairs", "lanczos_basis", "WHICH"]

MatVec = Callable[[torch.Tensor], torch.Tensor]
WHICH = ("largest", "smallest")


@dataclass(frozen=True)
class RitzPairs:
    """Approximate eigenpairs of ``A`` from :func:`extreme_eigenpairs`.

    Attributes
    ----------
    values : numpy.ndarray, shape ``(k,)``
        Ritz values, largest first (``which="largest"``) or smallest first.
    vectors : torch.Tensor of shape ``(k, d)`` or None
        The unit Ritz vectors, when asked for.
    residuals : numpy.ndarray, shape ``(k,)``
        ``|A y_i - theta_i y_i|`` for each pair (from the Lanczos relation, no extra product).
    converged : numpy.ndarray of bool, shape ``(k,)``
        ``residuals <= tol * ||A||``, ``||A||`` estimated by the largest ``|theta|`` seen.
    matvecs : int
        Products with ``A``.
    restarts : int
        Thick restarts.
    """

    values: np.ndarray
    vectors: torch.Tensor | None
    residuals: np.ndarray
    converged: np.ndarray
    matvecs: int
    restarts: int


@dataclass(frozen=True)
class LanczosBasis:
    """``m`` orthonormal Lanczos vectors ``V`` (rows, ``(m, d)``) and ``T = V^T A V`` (``(m, m)``).

    ``coupling`` is the norm of the part of ``A v_m`` outside the basis; zero when the basis spans
    an invariant subspace (then ``m`` may be smaller than the steps asked for).
    """

    vectors: torch.Tensor
    tridiagonal: np.ndarray
    coupling: float

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss quadrature nodes (Ritz values) and weights (squared first components), weights summing to 1."""
        nodes, vecs = np.linalg.eigh(self.tridiagonal)
        return nodes, vecs[0, :] ** 2


def _orthogonalize(w: torch.Tensor, basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` minus its projection on the rows of ``basis`` (two passes), and the coefficients removed."""
    h = basis @ w
    w = w - basis.T @ h
    h2 = basis @ w
    return w - basis.T @ h2, h + h2


def _breakdown(beta: float, scale: float, eps: float) -> bool:
    """Whether the new direction is rounding noise: the basis spans an invariant subspace."""
    return beta <= 100.0 * eps * max(scale, np.finfo(np.float64).tiny)


def _expand(
    matvec: MatVec, V: torch.Tensor, T: np.ndarray, j: int, scale: float, eps: float
) -> tuple[torch.Tensor, float, float]:
    """One Lanczos step at column ``j``: fill ``T[:j+1, j]``, return the new direction, its norm and the scale."""
    w = matvec(V[j])
    scale = max(scale, float(torch.linalg.vector_norm(w)))
    w, h = _orthogonalize(w, V[: j + 1])
    col = h.detach().double().cpu().numpy()
    T[: j + 1, j] = col
    T[j, : j + 1] = col
    return w, float(torch.linalg.vector_norm(w)), scale


def lanczos_basis(matvec: MatVec, start: torch.Tensor, steps: int, progress: Any = None) -> LanczosBasis:
    """``steps`` Lanczos steps with full reorthogonalisation from ``start`` (stops early at an invariant subspace).

    Parameters
    ----------
    matvec : callable
        ``v -> A v`` for flat vectors, ``A`` symmetric.
    start : torch.Tensor, shape ``(d,)``
        Nonzero start vector (normalised here).
    steps : int
        Number of products, ``1 <= steps <= d``.
    progress : tqdm bar, optional
        Advanced by one per product.
    """
    d = start.numel()
    eps = float(torch.finfo(start.dtype).eps)
    V = start.new_zeros((steps + 1, d))
    V[0] = start / torch.linalg.vector_norm(start)
    T = np.zeros((steps + 1, steps + 1))
    scale, beta, m = 0.0, 0.0, steps
    for j in range(steps):
        w, beta, scale = _expand(matvec, V, T, j, scale, eps)
        if progress is not None:
            progress.update(1)
        if j + 1 == d or _breakdown(beta, scale, eps):
            m, beta = j + 1, 0.0
            break
        V[j + 1] = w / beta
        T[j + 1, j] = T[j, j + 1] = beta
    return LanczosBasis(vectors=V[:m], tridiagonal=T[:m, :m].copy(), coupling=beta)


def _ritz(T: np.ndarray, j: int, beta: float, sign: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ritz values (best first), their eigenvectors in ``T`` and residuals ``|beta s_j|``."""
    theta, S = np.linalg.eigh(T[:j, :j])
    order = np.argsort(sign * theta, kind="stable")
    theta, S = theta[order], S[:, order]
    return theta, S, np.abs(beta * S[j - 1, :])


def extreme_eigenpairs(
    matvec: MatVec,
    start: torch.Tensor,
    k: int,
    which: str,
    tol: float,
    max_matvecs: int,
    basis_size: int,
    random_vector: Callable[[], torch.Tensor],
    vectors: bool = False,
    progress: Any = None,
) -> RitzPairs:
    """The ``k`` largest (or smallest) eigenpairs of a symmetric ``A`` by thick-restart Lanczos.

    A Ritz pair ``(theta, y)`` is converged when ``|A y - theta y| <= tol * ||A||`` (``||A||``
    estimated by the largest ``|theta|``); then ``|theta - lambda| <= |A y - theta y|`` for some
    eigenvalue ``lambda``, and ``|A y - theta y|^2 / gap`` when the eigenvalue is isolated.  The
    iteration stops when the ``k`` wanted pairs are converged or after ``max_matvecs`` products.

    When the Krylov space becomes invariant (an eigenvalue of multiplicity above one, or ``A`` of low
    rank), its Ritz pairs are exact: those among the ``k`` best so far are locked, and Lanczos starts
    again from ``random_vector()`` orthogonal to them, until an invariant block adds nothing to the
    ``k`` best.  So repeated eigenvalues are found with their multiplicity.

    Parameters
    ----------
    matvec : callable
        ``v -> A v`` on flat vectors of length ``d``.
    start : torch.Tensor, shape ``(d,)``
        Nonzero start vector.
    k : int
        Number of eigenpairs, ``1 <= k <= d``.
    which : {"largest", "smallest"}
        Algebraically largest or smallest eigenvalues.
    tol : float
        Relative residual tolerance (see above).
    max_matvecs : int
        Most products with ``A``, at least ``basis_size``.
    basis_size : int
        Most Lanczos vectors held besides the locked ones, ``k < basis_size <= d`` (or ``basis_size == d``).
    random_vector : callable
        ``() -> v``, a fresh random vector of length ``d`` (see above).
    vectors : bool
        Also return the Ritz vectors.
    progress : tqdm bar, optional
        Advanced by one per product.
    """
    d = start.numel()
    m = basis_size
    eps = float(torch.finfo(start.dtype).eps)
    sign = -1.0 if which == "largest" else 1.0
    V = start.new_zeros((m + 1, d))
    T = np.zeros((m + 1, m + 1))
    locked_values: list[float] = []
    locked_vectors: list[torch.Tensor] = []
    matvecs = restarts = 0
    scale = 0.0

    def deflated(w: torch.Tensor) -> torch.Tensor:
        if locked_vectors:
            w, _ = _orthogonalize(w, torch.stack(locked_vectors))
        return w

    def result(theta: np.ndarray, S: np.ndarray, residuals: np.ndarray, j: int) -> RitzPairs:
        values = np.concatenate([np.asarray(locked_values), theta])
        res = np.concatenate([np.zeros(len(locked_values)), residuals])
        best = np.argsort(sign * values, kind="stable")[:k]
        anorm = max(float(np.abs(values).max()), np.finfo(np.float64).tiny)
        Y = None
        if vectors:
            active = torch.as_tensor(S.T, dtype=V.dtype, device=V.device) @ V[:j]
            every = torch.cat([torch.stack(locked_vectors), active]) if locked_vectors else active
            Y = every[torch.as_tensor(best, device=V.device)]
            Y = Y / torch.linalg.vector_norm(Y, dim=1, keepdim=True)
        return RitzPairs(
            values=values[best],
            vectors=Y,
            residuals=res[best],
            converged=res[best] <= tol * anorm,
            matvecs=matvecs,
            restarts=restarts,
        )

    w = deflated(start)
    V[0] = w / torch.linalg.vector_norm(w)
    j = 0
    while True:
        w = matvec(V[j])
        matvecs += 1
        if progress is not None:
            progress.update(1)
        scale = max(scale, float(torch.linalg.vector_norm(w)))
        w, h = _orthogonalize(deflated(w), V[: j + 1])
        col = h.detach().double().cpu().numpy()
        T[: j + 1, j] = col
        T[j, : j + 1] = col
        beta = float(torch.linalg.vector_norm(w))
        j += 1
        invariant = j + len(locked_vectors) == d or _breakdown(beta, scale, eps)
        if invariant:
            beta = 0.0
        T[j, j - 1] = T[j - 1, j] = beta
        theta, S, residuals = _ritz(T, j, beta, sign)
        anorm = max(float(np.abs(theta).max()), *(abs(v) for v in locked_values), np.finfo(np.float64).tiny)
        # beta bounds every residual of the block: below the tolerance the block is invariant to it
        invariant = invariant or beta <= tol * anorm
        pooled = np.concatenate([np.asarray(locked_values), theta])
        top = np.argsort(sign * pooled, kind="stable")[:k]  # ties go to locked pairs (listed first)
        kth = pooled[top[-1]]  # the k-th best value so far
        if invariant:
            # every Ritz pair of this block is exact: lock those among the k best, or stop if none is
            fresh = [int(i) - len(locked_values) for i in top if i >= len(locked_values)]
            if j + len(locked_vectors) == d or not fresh or matvecs >= max_matvecs:
                return result(theta, S, residuals, j)
            new = torch.as_tensor(S[:, fresh].T, dtype=V.dtype, device=V.device) @ V[:j]
            locked_values.extend(theta[fresh].tolist())
            locked_vectors.extend(new / torch.linalg.vector_norm(new, dim=1, keepdim=True))
            if len(locked_values) > k:  # keep the k best locked pairs only
                best = np.argsort(sign * np.asarray(locked_values), kind="stable")[:k]
                locked_values = [locked_values[i] for i in best]
                locked_vectors = [locked_vectors[i] for i in best]
            w = deflated(random_vector().to(V))
            V.zero_()
            T[:] = 0.0
            V[0] = w / torch.linalg.vector_norm(w)
            j = 0
            continue
        wanted = [i for i in range(len(theta)) if sign * theta[i] <= sign * kth]
        settled = residuals[0] <= tol * anorm and all(residuals[i] <= tol * anorm for i in wanted)
        if (settled and len(theta) + len(locked_values) >= k) or matvecs >= max_matvecs:
            return result(theta, S, residuals, j)
        V[j] = w / beta
        if j < m:
            continue
        # thick restart: keep the best Ritz vectors and the residual direction
        keep_n = min(k + (j - k) // 2, j - 1)
        kept = torch.as_tensor(S[:, :keep_n].T, dtype=V.dtype, device=V.device) @ V[:j]
        residual_direction = V[j].clone()
        V.zero_()
        V[:keep_n] = kept
        V[keep_n] = residual_direction
        arrow = beta * S[j - 1, :keep_n]
        T[:] = 0.0
        T[np.arange(keep_n), np.arange(keep_n)] = theta[:keep_n]
        T[keep_n, :keep_n] = arrow
        T[:keep_n, keep_n] = arrow
        j = keep_n
        restarts += 1
