"""Trivialized-SGD (thesis Algorithm 1, section 2.3.3): a fixed random field, annealed away."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._base import SmoothingWrapper
from hjsmooth.optim._checks import check_count, check_nonnegative_float
from hjsmooth.validation import check_positive

__all__ = ["TrivializedSGD", "field_factor"]


def field_factor(step: int, tau0: float, neurons: int, weights: int) -> float:
    r"""The annealing factor of Algorithm 1: ``(1 + 2 tau_i / N)^{1/2}``, ``tau_i = n (e^{-i/tau0} - 1/2)``.

    ``n`` = ``neurons``, ``N`` = ``weights``.  With ``n = N`` it is ``sqrt(2) e^{-i/(2 tau0)}``.
    The factor is clipped at 0 where ``1 + 2 tau_i / N < 0`` (only possible for ``n > N``).
    """
    tau = neurons * (math.exp(-step / tau0) - 0.5)
    return math.sqrt(max(1.0 + 2.0 * tau / weights, 0.0))


class TrivializedSGD(SmoothingWrapper):
    r"""Add an annealed, *fixed* random field to the gradient (thesis Algorithm 1).

    At construction ``h ~ J sqrt(p (p - 2)) N(0, I)`` is drawn once (``p`` layers,
    ``J`` the coupling); step ``i`` hands the base optimizer

    .. math:: \nabla f(x) + \Big(1 + \frac{2 \tau_i}{N}\Big)^{1/2} h,
              \qquad \tau_i = n\,(e^{-i/\tau_0} - 1/2),

    so the field starts strong (a trivial landscape with few critical points) and vanishes.
    ``p.grad`` holds that perturbed gradient after the step.

    Parameters
    ----------
    params : iterable
        Parameters or param groups.
    lr : float
        Learning rate of the base optimizer.
    coupling : float
        ``J`` (thesis: ``1e-3`` or ``1e-4``).
    tau0 : float
        Annealing time ``tau_0`` in steps (thesis: 500 or 1000).
    layers : int, optional
        ``p`` (``>= 3``); default: the number of parameter tensors with two or more
        dimensions (weight matrices and kernels), at least 3.
    neurons, weights : int, optional
        ``n`` and ``N`` of Algorithm 1; default: both the number of weights (then the
        factor is ``sqrt(2) e^{-i/(2 tau0)}``).
    base_optimizer : type
        Default ``torch.optim.SGD``; ``torch.optim.Adam`` as in the thesis' MNIST runs.
    generator : torch.Generator, optional
        Draws ``h`` (saved, with ``h`` itself, in ``state_dict``).
    **base_kwargs
        ``momentum``, ``nesterov``, ``weight_decay``... for the base optimizer.

    ``step(closure=None)``: with a closure, it is called once (under ``enable_grad``);
    without one, the gradients already in ``p.grad`` are used.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        coupling: float = 1e-3,
        tau0: float = 500.0,
        layers: int | None = None,
        neurons: int | None = None,
        weights: int | None = None,
        base_optimizer: type[Optimizer] = torch.optim.SGD,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(coupling=check_nonnegative_float(coupling, "coupling"), tau0=check_positive(tau0, "tau0"))
        super().__init__(params, base_optimizer, defaults, generator=generator, foreach=foreach,
                         lr=check_nonnegative_float(lr, "lr"), **base_kwargs)
        all_params = self._params()
        n_weights = sum(p.numel() for p in all_params)
        if layers is None:
            layers = max(sum(1 for p in all_params if p.dim() >= 2), 3)
        self.layers = check_count(layers, "layers", minimum=3)
        self.neurons = check_count(neurons if neurons is not None else n_weights, "neurons")
        self.weights = check_count(weights if weights is not None else n_weights, "weights")
        with torch.no_grad():
            for group in self.param_groups:
                scale = group["coupling"] * math.sqrt(self.layers * (self.layers - 2))
                for p in group["params"]:
                    h = torch.zeros_like(p)
                    F.add_noise_([h], scale, self.generator_for(p.device))
                    self.state[p]["field"] = h

    def factor(self) -> list[float]:
        """The current annealing factor of each group."""
        return [field_factor(self.outer_step, g["tau0"], self.neurons, self.weights) for g in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            loss = self._call(closure, lambda: f"step {self.outer_step}")
        for group, c in zip(self.param_groups, self.factor()):
            params = [p for p in group["params"] if p.grad is not None]
            if not params or c == 0.0:
                continue
            fields = [self.state[p]["field"] for p in params]
            grads = [p.grad for p in params]
            if self._use_foreach(params):
                torch._foreach_add_(grads, fields, alpha=c)
            else:
                for g_, h in zip(grads, fields):
                    g_.add_(h, alpha=c)
        self.base_optimizer.step()
        self.stats = {"field_factor": self.factor()[0] if self.param_groups else 0.0}
        self.outer_step += 1
        return loss
