"""The heat-smoothed loss and Local Entropy at a network's weights, by Monte Carlo."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

from hjsmooth.diagnostics._problem import LossFn, LossProblem, evaluation_mode
from hjsmooth.diagnostics._progress import progress_bar
from hjsmooth.diagnostics._rng import torch_generator
from hjsmooth.diagnostics.evaluate import PointLosses
from hjsmooth.diagnostics.result import SmoothedLoss

__all__ = ["smoothed_loss", "heat_estimate", "viscous_estimate", "KINDS"]

KINDS = ("heat", "viscous")


def heat_estimate(values: np.ndarray) -> tuple[float, float]:
    """``(mean, std / sqrt(n))`` of the losses at the perturbed weights."""
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def viscous_estimate(values: np.ndarray, beta: float) -> tuple[float, float]:
    r"""``u = -(1/beta) log mean exp(-beta f_s)`` by log-sum-exp, and its delta-method standard error.

    With :math:`w_s = e^{-\beta (f_s - \min f)}` and :math:`\bar w` their mean,
    :math:`\operatorname{se}(u) = \operatorname{std}(w) / (\beta \bar w \sqrt n)`.
    """
    n = len(values)
    a = -beta * values
    u = -(float(logsumexp(a)) - math.log(n)) / beta
    w = np.exp(a - a.max())
    return u, float(w.std(ddof=1) / (beta * w.mean() * math.sqrt(n)))


def smoothed_loss(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Any,
    t: float,
    beta: float,
    kind: str = "heat",
    samples: int = 100,
    *,
    rng: Any = None,
    vectorize: bool | None = None,
    progress: bool = True,
) -> SmoothedLoss:
    r"""The PDE-smoothed full-data loss at the model's weights ``x``, by Monte Carlo over Gaussian perturbations.

    With :math:`z \sim N(0, I_d)` over the trainable parameters (the library's conventions,
    ``docs/conventions.md``):

    * ``kind="heat"``: the heat equation :math:`v_t = \frac{1}{2\beta}\Delta v`,
      :math:`v(x, t) = E f(x + \sqrt{t/\beta}\, z)`;
    * ``kind="viscous"``: the viscous Hamilton-Jacobi equation
      :math:`u_t = -\frac12|\nabla u|^2 + \frac{1}{2\beta}\Delta u` by Cole-Hopf, i.e. Local Entropy
      :math:`u(x, t) = -\frac1\beta \log E \exp(-\beta f(x + \sqrt{t/\beta}\, z))`.

    Both exceed ``f(x)`` by an amount that grows with the curvature around ``x`` (on a quadratic
    :math:`f = \frac12 (w-a)^T H (w-a) + f_*`, heat adds :math:`t \operatorname{tr} H / (2\beta)` and
    Local Entropy at ``w = a`` adds :math:`\log\det(I + tH)/(2\beta)`): a wide minimum rises less.
    Local Entropy is at most the heat value (Jensen).  Each sample costs one full-data loss evaluation.

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hessian_eigenvalues`.
    t : float
        PDE time (the scope ``gamma``), ``>= 0``; the perturbations have variance ``t / beta``.
    beta : float
        Inverse temperature, ``> 0``; ``inf`` is allowed for ``"heat"`` (no perturbation).
    kind : {"heat", "viscous"}
        Which smoothing.
    samples : int
        Gaussian perturbations, ``>= 2``.
    rng : None, int, torch.Generator or numpy.random.Generator
        Source of the perturbations (SPEC 7).
    vectorize : bool, optional
        Evaluate several points per call with ``torch.func.vmap`` (True) or one at a time (False);
        default: time both on the first points and keep the faster (vmap wins for small models).
    progress : bool
        Show a progress bar when the work lasts over two seconds.

    Returns
    -------
    SmoothedLoss
        ``.estimate``, ``.stderr``, ``.loss`` (``f(x)``), ``.values``.
    """
    from hjsmooth.validation import check_beta, check_choice, check_count, check_time

    t = check_time(t)
    beta = check_beta(beta)
    kind = check_choice(kind, "kind", KINDS)
    if kind == "viscous" and math.isinf(beta):
        raise ValueError(
            "`beta` must be finite for kind='viscous' (beta = inf is the Hopf-Lax limit, which "
            "Gaussian sampling does not reach)"
        )
    samples = check_count(samples, "samples", 2)
    problem = LossProblem(model, loss_fn, data)
    gen = torch_generator(rng, problem.device)
    x = problem.space.current()
    scale = math.sqrt(t / beta)

    def make_chunk(start: int, stop: int) -> torch.Tensor:
        z = torch.randn((stop - start, problem.dim), generator=gen, device=problem.device, dtype=problem.dtype)
        return x + scale * z

    with evaluation_mode(model):
        loss = problem.check()
        evaluate = PointLosses(problem, vectorize=vectorize)
        with progress_bar(samples, f"smoothed loss ({kind})", progress) as bar:
            values = evaluate(make_chunk, samples, progress=bar)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"the loss is not finite at {int((~np.isfinite(values)).sum())} of {samples} perturbed "
            f"weights; lower `t` / raise `beta` (perturbation scale sqrt(t/beta) = {scale:.3g})"
        )
    estimate, stderr = heat_estimate(values) if kind == "heat" else viscous_estimate(values, beta)
    return SmoothedLoss(
        estimate=estimate, stderr=stderr, loss=loss, kind=kind, t=t, beta=beta, samples=samples, values=values
    )
