r"""The HEAT optimizer: gradient descent on the heat-smoothed loss (thesis (4.28), (4.43)).

``v_t = 1/(2 beta) Laplacian v``, ``v(., 0) = f``, so ``v(x, gamma) = E f(x + eps)`` with
``eps ~ N(0, (gamma/beta) I)`` and ``grad v(x, gamma) = E grad f(x + eps)``.  One outer
step draws ``L`` perturbations, calls the closure at each ``x + eps_i`` (a fresh minibatch
each), and hands the base optimizer

.. math:: g = \frac{1}{L} \sum_{i=1}^{L} \nabla f(x + \varepsilon_i).

Perturbation scale
------------------
``perturbation="absolute"`` (the thesis): ``eps_i ~ N(0, gamma noise I)``, the same
standard deviation ``sqrt(gamma noise)`` for every weight.  ``perturbation="filter"``
(default): the standard deviation of the perturbation of filter ``j`` of a parameter
(its slice ``p[j]`` along the first dimension: an output channel of a convolution, a
row of a linear layer; a one-dimensional parameter is one filter) is
``sqrt(gamma noise)`` times the root mean square of that filter's weights at ``x``, as
filter-normalised directions are built for loss-landscape plots.  ``gamma`` is then a
*relative* variance (``gamma = 0.01``: 10 % of each filter's scale), so one default fits
networks of any scale; in the absolute form a scale that exceeds the weights' turns every
perturbed network into a random one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._base import Closure, SmoothingWrapper
from hjsmooth.optim._checks import check_choice, check_count, check_nonnegative_float, check_scope, resolve
from hjsmooth.optim.local_entropy import _sgd_foreach, _sgd_kwargs

__all__ = ["Heat", "HeatWrapper", "HEAT_DEFAULTS", "filter_scales"]

#: Defaults of HEAT (measured on the project's tasks: docs/optimizers.md).
HEAT_DEFAULTS: dict[str, Any] = dict(gamma=0.01, L=1, noise=1.0, perturbation="filter")
HEAT_OUTER: dict[str, Any] = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
PERTURBATIONS = ("filter", "absolute")

_CHECKS = {
    "gamma": check_scope,
    "L": check_count,
    "noise": check_nonnegative_float,
    "perturbation": check_choice(PERTURBATIONS),
}


def filter_scales(p: torch.Tensor) -> torch.Tensor:
    """Root mean square of each filter of ``p``, broadcastable against ``p``'s real view.

    A filter is a slice along the first dimension when the (real view of the) parameter
    has two or more dimensions; a one-dimensional parameter (a bias) is a single filter.
    A complex parameter is its real view, as everywhere in ``hjsmooth.optim``.
    """
    r = F.real(p)
    if r.dim() >= 2:
        rows = r.reshape(r.shape[0], -1)
        rms = torch.linalg.vector_norm(rows, dim=1).div_(math.sqrt(rows.shape[1]))
        return rms.reshape((r.shape[0],) + (1,) * (r.dim() - 1))
    return (torch.linalg.vector_norm(r) / math.sqrt(max(r.numel(), 1))).reshape((1,) * r.dim())


@dataclass
class _GroupStep:
    group: dict[str, Any]
    params: list[torch.Tensor]       # every trainable parameter (perturbed)
    points: list[torch.Tensor]       # their real views
    anchors: list[torch.Tensor]      # x
    scales: list[torch.Tensor] | None  # per-filter RMS of x ("filter"), or None ("absolute")
    std: float                       # sqrt(gamma noise)
    L: int
    sums: list[torch.Tensor] | None = None  # running sum of the gradients of the taking-part parameters
    taking_part: list[int] = field(default_factory=list)
    gamma: float = math.nan
    foreach: bool = False


class HeatWrapper(SmoothingWrapper):
    r"""Wrap a ``torch.optim`` optimizer so that it descends the heat-smoothed loss ``v(., gamma)``.

    See the module docstring for the equation and the two perturbation scales.  Momentum
    and weight decay are the base optimizer's (outer update); nothing else persists
    between steps.  ``step`` returns the mean of the ``L`` perturbed losses, the estimate
    of ``v(x, gamma)`` (HEAT never evaluates ``x`` itself).  ``stats``: ``loss`` (that
    mean), ``inner_loss`` (the same), ``grad_norm`` (``|g|``), ``gamma``.

    Parameters
    ----------
    params, base_optimizer, **base_kwargs
        As for :class:`~hjsmooth.optim.LocalEntropy`.
    gamma : float or callable
        The PDE time (> 0) or a schedule of the outer step: the perturbation variance is
        ``gamma noise`` (``"absolute"``) or ``gamma noise`` times each filter's mean square
        (``"filter"``).
    L : int
        Perturbations (closure calls) per outer step, ``>= 1``.
    noise : float
        ``1/beta`` (``noise = 0``: plain minibatch SGD averaged over ``L`` minibatches).
    perturbation : {"filter", "absolute"}
        The scale of the perturbations (module docstring).
    freeze_bn : torch.nn.Module, optional
        The model whose BatchNorm running statistics only the first perturbed evaluation
        of each outer step may update.  Default: the statistics follow every evaluation.
    generator : torch.Generator, optional
        Source of the perturbations, saved in ``state_dict``.
    """

    hyperparameters = _CHECKS

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer],
        gamma: float | Any = HEAT_DEFAULTS["gamma"],
        L: int = HEAT_DEFAULTS["L"],
        noise: float = HEAT_DEFAULTS["noise"],
        *,
        perturbation: str = HEAT_DEFAULTS["perturbation"],
        freeze_bn: torch.nn.Module | None = None,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        base_foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(gamma=gamma, L=L, noise=noise, perturbation=perturbation)
        super().__init__(params, base_optimizer, defaults, generator=generator, foreach=foreach, freeze_bn=freeze_bn,
                         base_foreach=foreach if base_foreach is None else base_foreach, **base_kwargs)

    def _needs_generator(self) -> bool:
        return any(g["noise"] > 0 for g in self.param_groups)

    def _group_step(self, group: dict[str, Any]) -> _GroupStep | None:
        params = [p for p in group["params"] if p.requires_grad]
        if not params:
            return None
        gamma = resolve(group["gamma"], self.outer_step, "gamma")
        anchors = [F.real(self._scratch_for(p, ("anchor",))["anchor"]) for p in params]
        points = F.reals(params)
        foreach = self._use_foreach(params)
        F.copy_(anchors, points, foreach)
        scales = [filter_scales(p) for p in params] if group["perturbation"] == "filter" else None
        return _GroupStep(group=group, params=params, points=points, anchors=anchors, scales=scales,
                          std=math.sqrt(gamma * group["noise"]), L=group["L"], gamma=gamma, foreach=foreach)

    def _perturb(self, w: _GroupStep) -> None:
        """Place the parameters at ``x + eps``, ``eps = std xi`` (times each filter's RMS), one pass each.

        ``xi`` is one flat standard normal vector per (device, dtype), drawn from the
        generator in the order of the parameters.
        """
        gen = self.generator_for(w.params[0].device)
        for (device, dtype), idx in F.buckets(w.points).items():
            sizes = [w.points[i].numel() for i in idx]
            flat = torch.randn(sum(sizes), generator=gen, device=gen.device, dtype=dtype)
            if flat.device != device:
                flat = flat.to(device)
            for xi, i in zip(torch.split(flat, sizes), idx):
                xi = xi.view_as(w.points[i])
                if w.scales is None:
                    torch.add(w.anchors[i], xi, alpha=w.std, out=w.points[i])
                else:
                    torch.addcmul(w.anchors[i], xi, w.scales[i], value=w.std, out=w.points[i])

    def _smoothed_gradient(self, closure: Closure, bn_after: list[Any]) -> Any:
        work = [w for g in self.param_groups if (w := self._group_step(g)) is not None]
        n_eval = max((g["L"] for g in self.param_groups), default=1)
        outer = self.outer_step
        raws: list[Any] = []
        losses: list[float] = []
        norm_sq = 0.0
        try:
            for i in range(n_eval):
                for w in work:
                    if i < w.L and w.std > 0:
                        self._perturb(w)
                    elif i == w.L:
                        F.copy_(w.points, w.anchors, w.foreach)
                raw, value = self._evaluate(closure, (), lambda: f"perturbed evaluation {i + 1} of {n_eval} "
                                                                 f"(outer step {outer})")
                raws.append(raw)
                losses.append(value)
                if i == 0:
                    bn_after.extend(self._bn.snapshot())
                    for w in work:
                        taking = set(map(id, self._trainable(w.group)))
                        w.taking_part = [j for j, p in enumerate(w.params) if id(p) in taking]
                active = [w for w in work if i < w.L]
                grads = [self._grads([w.params[j] for j in w.taking_part]) for w in active]
                norm_sq = self._check_grads([g for gs in grads for g in gs], lambda: (
                    f"perturbed evaluation {i + 1} of {n_eval} (outer step {outer})"))
                for w, g in zip(active, grads):
                    if w.L == 1:  # the gradient in p.grad is the average already
                        continue
                    if w.sums is None:
                        w.sums = [gi.clone() for gi in g]
                    elif w.foreach:
                        torch._foreach_add_(w.sums, g)
                    else:
                        for s_, gi in zip(w.sums, g):
                            s_.add_(gi)
        finally:
            for w in work:
                F.copy_(w.points, w.anchors, w.foreach)
        grads_out: list[torch.Tensor] = []
        for w in work:
            params = [w.params[j] for j in w.taking_part]
            if w.L == 1:
                grads_out += [p.grad for p in params]
            else:
                grads_out += F.set_grads_(params, w.sums or [], 1.0 / w.L, w.foreach)
        mean = sum(losses) / len(losses)
        one_eval = all(w.L == 1 for w in work)
        self.stats = {"loss": mean, "inner_loss": mean,
                      "grad_norm": math.sqrt(norm_sq) if one_eval else F.global_norm(grads_out),
                      "gamma": work[0].gamma if work else float("nan")}
        return _mean_like(raws, mean)


def _mean_like(raws: list[Any], mean: float) -> Any:
    """The mean of the closure's losses, as a detached tensor if the closure returned tensors."""
    first = raws[0]
    if isinstance(first, torch.Tensor):
        return torch.stack([r.detach().reshape(()) for r in raws]).mean()
    return mean


class Heat(HeatWrapper):
    """HEAT (thesis (4.43)): :class:`HeatWrapper` over SGD with Nesterov momentum.

    ``x <- SGD step with g = (1/L) sum_i grad f(x + eps_i)``.  Every argument has a default
    (docs/optimizers.md); the thesis' setting is :func:`hjsmooth.optim.recipes.heat_section_4_6`.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = HEAT_OUTER["lr"],
        gamma: float | Any = HEAT_DEFAULTS["gamma"],
        L: int = HEAT_DEFAULTS["L"],
        noise: float = HEAT_DEFAULTS["noise"],
        momentum: float = HEAT_OUTER["momentum"],
        nesterov: bool = HEAT_OUTER["nesterov"],
        weight_decay: float = HEAT_OUTER["weight_decay"],
        *,
        perturbation: str = HEAT_DEFAULTS["perturbation"],
        freeze_bn: torch.nn.Module | None = None,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, torch.optim.SGD, gamma, L, noise, perturbation=perturbation, freeze_bn=freeze_bn,
                         generator=generator, foreach=foreach, base_foreach=_sgd_foreach(foreach),
                         **_sgd_kwargs(lr, momentum, nesterov, weight_decay))
