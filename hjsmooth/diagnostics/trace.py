"""The trace of a network's Hessian (its Laplacian) by Hutchinson's estimator, optionally deflated."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hjsmooth.diagnostics._problem import LossFn, LossProblem, evaluation_mode
from hjsmooth.diagnostics._progress import progress_bar
from hjsmooth.diagnostics._rng import torch_generator
from hjsmooth.diagnostics.hvp import HessianOperator
from hjsmooth.diagnostics.lanczos import lanczos_basis
from hjsmooth.diagnostics.result import TraceEstimate

__all__ = ["hessian_trace", "rademacher"]

MIN_SAMPLES_FOR_TOL = 10


def rademacher(d: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``d`` independent signs ``+-1`` on ``like``'s device and dtype."""
    bits = torch.randint(0, 2, (d,), generator=generator, device=like.device)
    return bits.to(like.dtype).mul_(2).sub_(1)


def hessian_trace(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Any,
    samples: int = 100,
    *,
    deflation: int = 0,
    tol: float | None = None,
    rng: Any = None,
    progress: bool = True,
) -> TraceEstimate:
    r"""Hutchinson's estimate of the Hessian's trace :math:`\operatorname{tr} H = \Delta f(x)`, with its standard error.

    :math:`\operatorname{tr} H = E[z^T H z]` for Rademacher vectors :math:`z` (independent signs), so
    the mean of ``samples`` quadratic forms is unbiased and its standard error is their standard
    deviation over ``sqrt(samples)``.  One Hessian-vector product per sample.

    With ``deflation = m > 0``, ``m`` Lanczos steps from a random vector first build an orthonormal
    basis ``V`` of a Krylov space, which captures the largest eigen-directions; then

    .. math::  \operatorname{tr} H = \operatorname{tr}(V^T H V) + E[z^T P H P z], \qquad P = I - V V^T,

    the first term exact (the Lanczos matrix ``T``), the second estimated as above.  The estimate stays
    unbiased (``V`` is independent of the ``z``) and its variance drops by the share of
    ``|H|_F^2`` carried by the top eigenvalues, which for a trained network is most of it.  Costs
    ``m`` extra products and ``m d`` memory.

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hessian_eigenvalues`.
    samples : int
        Rademacher vectors, ``>= 2``.
    deflation : int
        Lanczos vectors projected out first, ``0 <= deflation <= d``.
    tol : float, optional
        Stop early, after at least 10 samples, once ``stderr <= tol * |estimate|``.
    rng : None, int, torch.Generator or numpy.random.Generator
        Source of the random vectors (SPEC 7).
    progress : bool
        Show a progress bar when the work lasts over two seconds.

    Returns
    -------
    TraceEstimate
        ``.estimate``, ``.stderr``, ``.values``, ``.deflated``, ``.samples``, ``.matvecs``.
    """
    from hjsmooth.validation import check_count, check_positive

    problem = LossProblem(model, loss_fn, data)
    d = problem.dim
    samples = check_count(samples, "samples", 2)
    deflation = problem.check_count(deflation, "deflation", minimum=0)
    tol = None if tol is None else check_positive(tol, "tol")
    gen = torch_generator(rng, problem.device)
    like = problem.space.params[0]
    with evaluation_mode(model):
        problem.check()
        hvp = HessianOperator(problem)
        with progress_bar(deflation + samples, "Hessian trace", progress) as bar:
            exact, V = 0.0, None
            if deflation > 0:
                basis = lanczos_basis(
                    hvp, torch.randn(d, generator=gen, device=like.device, dtype=like.dtype), deflation, progress=bar
                )
                exact, V = float(np.trace(basis.tridiagonal)), basis.vectors
            values: list[float] = []
            for _ in range(samples):
                z = rademacher(d, gen, like)
                if V is not None:
                    z = z - V.T @ (V @ z)
                values.append(float(z @ hvp(z)))
                bar.update(1)
                n = len(values)
                if tol is not None and n >= MIN_SAMPLES_FOR_TOL:
                    mean, err = np.mean(values), np.std(values, ddof=1) / math.sqrt(n)
                    if err <= tol * abs(exact + mean):
                        break
    arr = np.asarray(values)
    return TraceEstimate(
        estimate=exact + float(arr.mean()),
        stderr=float(arr.std(ddof=1) / math.sqrt(len(arr))),
        samples=len(arr),
        values=arr,
        deflated=exact,
        deflation=0 if V is None else V.shape[0],
        matvecs=hvp.matvecs,
    )
