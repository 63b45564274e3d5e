r"""The HEAT optimizer: gradient descent on the heat-smoothed loss (thesis (4.28), (4.43)).

``v_t = 1/(2 beta) Laplacian v``, ``v(., 0) = f``, so ``v(x, gamma) = E f(x + eps)`` with
``eps ~ N(0, (gamma/beta) I)`` and ``grad v(x, gamma) = E grad f(x + eps)``.  One outer
step is ``L`` calls: each consumes the minibatch gradient taken at ``x + eps_i`` (the
parameters hold that point between calls), and the last hands the base optimizer

.. math:: g = \frac{1}{L} \sum_{i=1}^{L} \nabla f(x + \varepsilon_i),

then draws the perturbation of the next call.  The first gradient of a run is taken at the
weights as they are (no perturbation has been placed yet).

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

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._base import SmoothingWrapper, finite_mean, mean_loss
from hjsmooth.optim._checks import check_count, check_nonnegative_float, check_scope, choice_check, resolve
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
    "perturbation": choice_check(PERTURBATIONS),
}


def filter_scales(p: torch.Tensor) -> torch.Tensor:
    """Root mean square of each filter of ``p``, broadcastable against ``p``'s real view.

    A filter is a slice along the first dimension when the (real view of the) parameter
    has two or more dimensions; a one-dimensional parameter (a bias) is a single filter.
    A complex parameter is its real view, as everywhere in ``hjsmooth.optim``.
    """
    r = ops.real(p)
    if r.dim() >= 2:
        rows = r.reshape(r.shape[0], -1)
        rms = torch.linalg.vector_norm(rows, dim=1).div_(math.sqrt(rows.shape[1]))
        return rms.reshape((r.shape[0],) + (1,) * (r.dim() - 1))
    return (torch.linalg.vector_norm(r) / math.sqrt(max(r.numel(), 1))).reshape((1,) * r.dim())


@dataclass
class _HeatGroup:
    """One param group's perturbations in the current outer step."""

    group: dict[str, Any]
    params: list[torch.Tensor]  # the parameters perturbed: requires_grad
    points: list[torch.Tensor]  # their real views, where the gradients are taken
    anchors: list[torch.Tensor]  # x (real views)
    scales: list[torch.Tensor] | None  # per-filter RMS of x ("filter"), or None ("absolute")
    std: float  # sqrt(gamma noise)
    L: int
    gamma: float
    foreach: bool
    taking: list[int] = field(default_factory=list)  # indices (into params) of those with a gradient
    sums: list[torch.Tensor] | None = None  # running sum of their gradients (L > 1)


class HeatWrapper(SmoothingWrapper):
    r"""Wrap a ``torch.optim`` optimizer so that it descends the heat-smoothed loss ``v(., gamma)``.

    See the module docstring for the equation and the two perturbation scales.  Momentum
    and weight decay are the base optimizer's (outer update).  Between calls the
    parameters hold the perturbed point ``x + eps`` where the next gradient is to be taken;
    ``with opt.at_anchor():`` puts ``x`` into them.  ``step_outer(closure)`` returns the
    mean of the ``L`` perturbed losses, the estimate of ``v(x, gamma)`` (HEAT never
    evaluates ``x`` itself).  ``stats`` after an outer step: ``loss`` (that mean, NaN
    without closures), ``inner_loss`` (the same), ``grad_norm`` (``|g|``), ``gamma``.

    Parameters
    ----------
    params, base_optimizer, **base_kwargs
        As for :class:`~hjsmooth.optim.LocalEntropy`.
    gamma : float or callable
        The PDE time (> 0) or a schedule of the outer step: the perturbation variance is
        ``gamma noise`` (``"absolute"``) or ``gamma noise`` times each filter's mean square
        (``"filter"``).
    L : int
        Perturbations (calls, minibatch gradients) per outer step, ``>= 1``.
    noise : float
        ``1/beta`` (``noise = 0``: plain minibatch SGD averaged over ``L`` minibatches).
    perturbation : {"filter", "absolute"}
        The scale of the perturbations (module docstring).
    freeze_bn : torch.nn.Module, optional
        The model whose BatchNorm running statistics only the first call of each outer step
        may update.  Default: the statistics follow every call.
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
        self._placed = False
        self._before_first: list[torch.Tensor] | None = None
        super().__init__(
            params,
            base_optimizer,
            defaults,
            generator=generator,
            foreach=foreach,
            freeze_bn=freeze_bn,
            base_foreach=foreach if base_foreach is None else base_foreach,
            **base_kwargs,
        )

    def _needs_generator(self) -> bool:
        return any(g["noise"] > 0 for g in self.param_groups)

    def _calls_per_outer(self) -> int:
        return (
            max((w.L for w in self._work), default=1)
            if self._work
            else max((g["L"] for g in self.param_groups), default=1)
        )

    def _heat_group(self, group: dict[str, Any], step: int, params: list[torch.Tensor]) -> _HeatGroup:
        """A group's perturbations for outer step ``step`` around the anchors in its scratch tensors."""
        gamma = resolve(group["gamma"], step, "gamma")
        anchors = [ops.real(self._scratch_for(p, ("anchor",))["anchor"]) for p in params]
        scales = (
            [filter_scales(self._scratch[p]["anchor"]) for p in params] if group["perturbation"] == "filter" else None
        )
        return _HeatGroup(
            group=group,
            params=params,
            points=ops.reals(params),
            anchors=anchors,
            scales=scales,
            std=math.sqrt(gamma * group["noise"]),
            L=group["L"],
            gamma=gamma,
            foreach=self._use_foreach(params),
        )

    def _anchor_here(self, step: int) -> list[_HeatGroup]:
        """Anchor every group at the parameters' current values (``x``) for outer step ``step``."""
        groups = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            if params:
                for p in params:
                    self._scratch_for(p, ("anchor",))["anchor"].copy_(p)
                groups.append(self._heat_group(group, step, params))
        return groups

    def _perturb(self, w: _HeatGroup) -> None:
        """Place the parameters at ``x + eps``, ``eps = std xi`` (times each filter's RMS), one pass each.

        ``xi`` is one flat standard normal vector per (device, dtype), drawn from the
        generator in the order of the parameters.
        """
        if w.std == 0.0:
            ops.copy_(w.points, w.anchors, w.foreach)
            return
        gen = self.generator_for(w.params[0].device)
        for (device, dtype), idx in ops.buckets(w.points).items():
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

    def _current_work(self) -> list[_HeatGroup]:
        """The placed perturbations; after a load, rebuilt from the anchors and gradient sums saved."""
        if self._work is None:
            self._work = []
            for group in self.param_groups:
                params = [p for p in group["params"] if "anchor" in self._scratch.get(p, {})]
                if params:
                    w = self._heat_group(group, self.outer_step, params)
                    w.taking = [i for i, p in enumerate(params) if "gradient_sum" in self._scratch[p]]
                    if self.position > 0 and self._calls_per_outer() > 1 and w.taking:
                        w.sums = [ops.real(self._scratch[params[i]]["gradient_sum"]) for i in w.taking]
                    self._work.append(w)
        return self._work

    def _begin(self) -> bool:
        work = self._current_work() if self._placed else self._anchor_here(self.outer_step)
        self._work = work
        self._placed = True
        taking_any = False
        for w in work:
            trainable = {id(p) for p in self._trainable(w.group)}
            w.taking = [i for i, p in enumerate(w.params) if id(p) in trainable]
            w.sums = None
            taking_any = taking_any or bool(w.taking)
        return taking_any

    def _consume(self, position: int) -> bool:
        work = self._current_work()
        calls = max(w.L for w in work)
        active = [w for w in work if position < w.L and w.taking]
        grads = [self._grads([w.params[j] for j in w.taking]) for w in active]
        norm_sq = self._check_grads([g for gs in grads for g in gs])
        for w, g in zip(active, grads):
            if calls == 1:  # the gradient is the average already
                continue
            if w.sums is None:
                w.sums = [ops.real(self._scratch_for(w.params[j], ("gradient_sum",))["gradient_sum"]) for j in w.taking]
                ops.copy_(w.sums, g, w.foreach)
            else:
                ops.add_(w.sums, g, 1.0, w.foreach)
        if position < calls - 1:
            for w in work:
                if position + 1 < w.L:
                    self._perturb(w)
                elif position + 1 == w.L:
                    ops.copy_(w.points, w.anchors, w.foreach)
            return False
        params: list[torch.Tensor] = []
        averaged: list[torch.Tensor] = []
        for w in work:
            ops.copy_(w.points, w.anchors, w.foreach)
            taking = [w.params[j] for j in w.taking]
            if not taking:
                continue
            if calls == 1:  # a copy: the base optimizer may write into what it is given
                out = [self._scratch_for(p, ("gradient_sum",))["gradient_sum"] for p in taking]
                ops.copy_(ops.reals(out), self._grads(taking), w.foreach)
            else:
                out = [self._scratch[p]["gradient_sum"] for p in taking]
                ops.scale_(ops.reals(out), 1.0 / w.L, w.foreach)
            params += taking
            averaged += out
        grad_norm = math.sqrt(norm_sq) if calls == 1 else ops.global_norm(ops.reals(averaged))
        self._apply_base(params, averaged)
        mean = finite_mean(self._losses)
        self.stats = {"loss": mean, "inner_loss": mean, "grad_norm": grad_norm, "gamma": work[0].gamma}
        self._work = self._anchor_here(self.outer_step + 1)
        self._place_first()
        return True

    def _place_first(self) -> None:
        """Draw the first perturbation of an outer step, keeping the generators' state to draw it again."""
        if self._generators is None and self._needs_generator():
            params = self._params()
            self.generator_for(params[0].device if params else torch.device("cpu"))
        self._before_first = [g.get_state() for g in self._generators] if self._generators else None
        for w in self._current_work():
            self._perturb(w)

    def _abort(self) -> None:
        """Back to the first evaluation point of the outer step: ``x`` plus its first perturbation, drawn again."""
        if self._placed:
            work = self._current_work()
            if self._before_first is not None and self._generators:
                for g, state in zip(self._generators, self._before_first):
                    g.set_state(state)
                for w in work:
                    self._perturb(w)
            else:  # the run's first outer step: its first gradient was taken at x itself
                for w in work:
                    ops.copy_(w.points, w.anchors, w.foreach)
                self._placed = False
                self._work = None

    def _outer_loss(self, losses: list[Any]) -> Any:
        return mean_loss(losses)

    def _anchor_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if not self._placed:
            return []
        return [(p, self._scratch[p]["anchor"]) for w in self._current_work() for p in w.params]

    def _live_scratch(self) -> dict[torch.Tensor, dict[str, torch.Tensor]]:
        if not self._placed:
            return {}
        out = {}
        for w in self._current_work():
            summed = self.position > 0 and self._calls_per_outer() > 1
            taking = {id(w.params[j]) for j in w.taking} if summed else set()
            for p in w.params:
                keys = ("anchor", "gradient_sum") if id(p) in taking else ("anchor",)
                out[p] = {k: self._scratch[p][k] for k in keys}
        return out

    def _after_load(self) -> None:
        self._placed = any("anchor" in st for st in self._scratch.values())

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        if self._placed and self._before_first is not None:
            sd["first_draw"] = self._before_first
        return sd

    def _pop_extra_state(self, state_dict: dict[str, Any]) -> Any:
        return state_dict.pop("first_draw", None), super()._pop_extra_state(state_dict)

    def _load_extra_state(self, extra: Any) -> None:
        first, rest = extra
        super()._load_extra_state(rest)
        self._before_first = [t.clone() for t in first] if first is not None else None


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
        super().__init__(
            params,
            torch.optim.SGD,
            gamma,
            L,
            noise,
            perturbation=perturbation,
            freeze_bn=freeze_bn,
            generator=generator,
            foreach=foreach,
            base_foreach=_sgd_foreach(foreach),
            **_sgd_kwargs(lr, momentum, nesterov, weight_decay),
        )
