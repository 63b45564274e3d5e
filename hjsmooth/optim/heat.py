"""The HEAT optimizer: gradient descent on the heat-smoothed loss (thesis (4.28), (4.43))."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._base import Closure, SmoothingWrapper
from hjsmooth.optim._checks import check_count, check_nonnegative_float, check_scope, resolve, sgd_kwargs

__all__ = ["Heat", "HeatWrapper"]


class HeatWrapper(SmoothingWrapper):
    r"""Wrap a ``torch.optim`` optimizer so that it descends the heat-smoothed loss ``v(., gamma)``.

    ``v_t = 1/(2 beta) Laplacian v``, ``v(., 0) = f``, so ``v(x, gamma) = E f(x + eps)`` with
    ``eps ~ N(0, (gamma/beta) I)`` and ``grad v(x, gamma) = E grad f(x + eps)``.  One outer
    step draws ``L`` perturbations, calls the closure at each ``x + eps_i`` (a fresh
    minibatch each), and hands the base optimizer

    .. math:: g = \frac{1}{L} \sum_{i=1}^{L} \nabla f(x + \varepsilon_i),
              \qquad \varepsilon_i \sim N(0, \gamma\, \texttt{noise}\, I)

    (thesis (4.43), whose variance is ``gamma``: ``noise = 1/beta = 1``).  Momentum and
    weight decay are the base optimizer's (outer update); nothing else persists between
    steps.  ``stats``: ``loss`` (first perturbed evaluation), ``inner_loss`` (mean),
    ``grad_norm`` (|g|), ``gamma``.

    Parameters
    ----------
    params, base_optimizer, **base_kwargs
        As for :class:`~hjsmooth.optim.LocalEntropy`.
    gamma : float or callable
        The PDE time (> 0) or a schedule of the outer step.
    L : int
        Perturbations (closure calls) per outer step, ``>= 1``.
    noise : float
        ``1/beta``; the perturbation variance is ``gamma * noise`` (``noise = 0`` gives
        plain minibatch SGD averaged over ``L`` minibatches).
    generator : torch.Generator, optional
        Source of the perturbations, saved in ``state_dict``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer],
        gamma: float | Any,
        L: int = 20,
        noise: float = 1.0,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(gamma=check_scope(gamma, "gamma"), L=check_count(L, "L"),
                        noise=check_nonnegative_float(noise, "noise"))
        super().__init__(params, base_optimizer, defaults, generator=generator, foreach=foreach, **base_kwargs)
        for group in self.param_groups:
            check_scope(group["gamma"], "gamma")
            check_count(group["L"], "L")
            check_nonnegative_float(group["noise"], "noise")

    def _smoothed_gradient(self, closure: Closure) -> float:
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            if not params:
                continue
            gamma = resolve(group["gamma"], self.outer_step, "gamma")
            anchors, sums, eps = [], [], []
            for p in params:
                st = self.state[p]
                if "anchor" not in st:
                    st["anchor"] = torch.empty_like(p)
                    st["grad_sum"] = torch.zeros_like(p)
                    st["perturbation"] = torch.zeros_like(p)
                anchors.append(st["anchor"])
                sums.append(st["grad_sum"])
                eps.append(st["perturbation"])
            foreach = self._use_foreach(params)
            F.copy_(anchors, params, foreach)
            F.zero_(sums, foreach)
            work.append(dict(group=group, params=params, anchors=anchors, sums=sums, eps=eps,
                             scale=math.sqrt(gamma * group["noise"]), gamma=gamma, foreach=foreach))
        n_eval = max((w["group"]["L"] for w in work), default=1)
        losses: list[float] = []
        try:
            for i in range(n_eval):
                for w in work:  # place the parameters at x + eps_i
                    if i < w["group"]["L"]:
                        F.zero_(w["eps"], w["foreach"])
                        if w["scale"] > 0:
                            F.add_noise_(w["eps"], w["scale"], self.generator_for(w["params"][0].device))
                        F.add_into_(w["params"], w["anchors"], w["eps"], w["foreach"])
                    else:
                        F.copy_(w["params"], w["anchors"], w["foreach"])
                losses.append(self._call(
                    closure, lambda: f"perturbed evaluation {i + 1} of {n_eval} (outer step {self.outer_step})"))
                for w in work:
                    if i < w["group"]["L"]:
                        grads = F.grads_or_zeros(w["params"])
                        if w["foreach"]:
                            torch._foreach_add_(w["sums"], grads)
                        else:
                            for s, g in zip(w["sums"], grads):
                                s.add_(g)
        finally:
            for w in work:
                F.copy_(w["params"], w["anchors"], w["foreach"])
        grads_out: list[torch.Tensor] = []
        for w in work:
            grads_out += F.set_grads_(w["params"], w["sums"], 1.0 / w["group"]["L"], w["foreach"])
        self.stats = {
            "loss": losses[0],
            "inner_loss": sum(losses) / len(losses),
            "grad_norm": F.global_norm(grads_out),
            "gamma": work[0]["gamma"] if work else float("nan"),
        }
        return losses[0]


class Heat(HeatWrapper):
    """HEAT (thesis (4.43)): :class:`HeatWrapper` over SGD with Nesterov momentum.

    ``x <- SGD step with g = (1/L) sum_i grad f(x + eps_i)``, ``eps_i ~ N(0, gamma noise I)``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        gamma: float | Any,
        L: int = 20,
        noise: float = 1.0,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, torch.optim.SGD, gamma, L=L, noise=noise, generator=generator, foreach=foreach,
                         **sgd_kwargs(lr, momentum, nesterov, weight_decay))
