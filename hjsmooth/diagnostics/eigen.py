"""The extreme eigenvalues of a network's Hessian: thick-restart Lanczos on Hessian-vector products."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from hjsmooth.diagnostics._problem import LossFn, LossProblem, evaluation_mode
from hjsmooth.diagnostics._progress import progress_bar
from hjsmooth.diagnostics._rng import torch_generator
from hjsmooth.diagnostics.hvp import HessianOperator
from hjsmooth.diagnostics.lanczos import WHICH, extreme_eigenpairs
from hjsmooth.diagnostics.result import HessianEigenpairs

__all__ = ["hessian_eigenvalues", "ConvergenceWarning", "default_tolerance"]


class ConvergenceWarning(UserWarning):
    """An iterative diagnostic stopped at its iteration limit before meeting its tolerance."""


def default_tolerance(dtype: torch.dtype) -> float:
    """``sqrt(eps)`` of ``dtype``: 1.5e-8 in float64, 3.5e-4 in float32."""
    return math.sqrt(float(torch.finfo(dtype).eps))


def hessian_eigenvalues(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Any,
    k: int = 1,
    which: str = "largest",
    *,
    tol: float | None = None,
    max_iter: int = 500,
    basis_size: int | None = None,
    eigenvectors: bool = False,
    rng: Any = None,
    progress: bool = True,
) -> HessianEigenpairs:
    r"""The ``k`` largest (or smallest) eigenvalues of the Hessian of the full-data loss at the model's weights.

    The Hessian :math:`H = \nabla^2 f(x)` of :math:`f(x) = \sum_b (n_b/N)\,\ell(\text{model}_x(\text{inputs}_b),
    \text{targets}_b)` is never formed: thick-restart Lanczos with full reorthogonalisation
    (:func:`hjsmooth.diagnostics.lanczos.extreme_eigenpairs`) needs only products :math:`Hv`, each one
    double-backward pass over the data.  Memory: ``basis_size + k`` vectors of the ``d`` parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated in ``eval()`` mode (restored afterwards); its parameters are not changed.
    loss_fn : callable
        ``loss_fn(outputs, targets)``, the mean over the batch.
    data : batch or iterable of batches
        ``(inputs, targets)`` or an iterable of them; batches are weighted by their size.  One batch
        is fastest (its gradient graph is built once and reused by every product).
    k : int
        Number of eigenvalues, ``1 <= k <= d``.
    which : {"largest", "smallest"}
        Algebraically largest (sharpest directions) or smallest (most negative) eigenvalues.
    tol : float, optional
        A pair counts as converged when ``|H y - lambda y| <= tol * |lambda_max|`` (then the eigenvalue
        error is at most that, and about its square over the gap to the next eigenvalue).
        Default ``sqrt(eps)`` of the model's dtype.
    max_iter : int
        Most Hessian-vector products.  Pairs not converged by then are returned with
        ``converged=False`` and a :class:`ConvergenceWarning`.
    basis_size : int, optional
        Most Lanczos vectors kept, ``k < basis_size <= d``; default ``min(d, max(2 k + 1, 20))``.
    eigenvectors : bool
        Also return the eigenvectors (lists of parameter-shaped tensors).
    rng : None, int, torch.Generator or numpy.random.Generator
        Source of the start vector (SPEC 7: None is fresh entropy, an int a seed).
    progress : bool
        Show a progress bar when the work lasts over two seconds.

    Returns
    -------
    HessianEigenpairs
        ``.eigenvalues`` (float64 numpy), ``.eigenvectors``, ``.residuals``, ``.converged``, ``.matvecs``.

    Examples
    --------
    >>> import torch
    >>> from hjsmooth.diagnostics import hessian_eigenvalues
    >>> model = torch.nn.Linear(3, 1).double()
    >>> x, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 1, dtype=torch.float64)
    >>> top = hessian_eigenvalues(model, torch.nn.functional.mse_loss, (x, y), k=2, rng=0)
    >>> top.eigenvalues.shape
    (2,)
    """
    from hjsmooth.validation import check_choice, check_positive

    problem = LossProblem(model, loss_fn, data)
    d = problem.dim
    k = problem.check_count(k, "k")
    which = check_choice(which, "which", WHICH)
    tol = default_tolerance(problem.dtype) if tol is None else check_positive(tol, "tol")
    max_iter = problem.check_count(max_iter, "max_iter", minimum=k, maximum=10**9)
    if basis_size is None:
        basis_size = min(d, max(2 * k + 1, 20))
    else:
        basis_size = problem.check_count(basis_size, "basis_size", minimum=min(k + 1, d))
    gen = torch_generator(rng, problem.device)

    def random_vector() -> torch.Tensor:
        return torch.randn(d, generator=gen, device=problem.device, dtype=problem.dtype)

    with evaluation_mode(model):
        problem.check()
        hvp = HessianOperator(problem)
        with progress_bar(max_iter, f"Hessian eigenvalues ({which} {k})", progress) as bar:
            pairs = extreme_eigenpairs(
                hvp,
                random_vector(),
                k,
                which,
                tol,
                max_iter,
                basis_size,
                random_vector,
                vectors=eigenvectors,
                progress=bar,
            )
    if not pairs.converged.all():
        warnings.warn(
            f"hessian_eigenvalues: {int((~pairs.converged).sum())} of {k} eigenvalues did not reach "
            f"tol={tol:.3g} within max_iter={max_iter} Hessian-vector products (largest residual "
            f"{pairs.residuals.max():.3g}); raise `max_iter` or `tol`",
            ConvergenceWarning,
            stacklevel=2,
        )
    vectors = None if pairs.vectors is None else [problem.space.unflatten(v.clone()) for v in pairs.vectors]
    return HessianEigenpairs(
        eigenvalues=pairs.values,
        eigenvectors=vectors,
        residuals=pairs.residuals,
        converged=pairs.converged,
        which=which,
        matvecs=pairs.matvecs,
        restarts=pairs.restarts,
        dimension=d,
    )
