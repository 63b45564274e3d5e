"""Trivialized-SGD (thesis Algorithm 1, section 2.3.3): a fixed random field, annealed away."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._base import SmoothingWrapper
from hjsmooth.optim._checks import check_count, check_nonnegative_float
from hjsmooth.optim.local_entropy import _sgd_foreach
from hjsmooth.validation import check_positive

__all__ = ["TrivializedSGD", "field_factor", "TRIVIALIZED_DEFAULTS"]

#: Defaults of Trivialized-SGD (thesis 2.3.3: ``J = 1e-3`` or ``1e-4``, ``tau0 = 500`` or 1000) and of its SGD base.
TRIVIALIZED_DEFAULTS: dict[str, Any] = dict(coupling=1e-4, tau0=500.0)
SGD_BASE: dict[str, Any] = dict(lr=0.1, momentum=0.9, nesterov=True)


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

    Parameters
    ----------
    params : iterable
        Parameters or param groups.
    base_optimizer : type
        Default ``torch.optim.SGD`` (with ``lr=0.1, momentum=0.9, nesterov=True`` unless
        given); ``torch.optim.Adam`` as in the thesis' MNIST runs.
    coupling : float
        ``J`` (thesis: ``1e-3`` or ``1e-4``), per param group.
    tau0 : float
        Annealing time ``tau_0`` in steps (thesis: 500 or 1000), per param group.
    layers : int, optional
        ``p`` (``>= 3``); default: the number of parameter tensors with two or more
        dimensions (weight matrices and kernels), at least 3.
    neurons, weights : int, optional
        ``n`` and ``N`` of Algorithm 1; default: both the number of weights (then the
        factor is ``sqrt(2) e^{-i/(2 tau0)}``).
    generator : torch.Generator, optional
        Draws ``h`` (``h`` is saved in ``state_dict``).
    **base_kwargs
        ``lr``, ``momentum``, ``nesterov``, ``weight_decay``... for the base optimizer.

    Notes
    -----
    ``step(closure=None)``: with a closure, it is called once (under ``enable_grad``) and
    what it returned is returned; without one, the gradients already in ``p.grad`` are used
    (and left as they were).  A NaN or infinite gradient raises
    :class:`~hjsmooth.optim.NonFiniteError` before anything moves.
    """

    hyperparameters = {"coupling": check_nonnegative_float, "tau0": check_positive}

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer] = torch.optim.SGD,
        coupling: float = TRIVIALIZED_DEFAULTS["coupling"],
        tau0: float = TRIVIALIZED_DEFAULTS["tau0"],
        layers: int | None = None,
        neurons: int | None = None,
        weights: int | None = None,
        *,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        base_foreach = foreach
        if base_optimizer is torch.optim.SGD:
            momentum = base_kwargs.get("momentum", SGD_BASE["momentum"])
            base_kwargs = {
                **SGD_BASE,
                "nesterov": bool(momentum) and not base_kwargs.get("dampening", 0),
                **base_kwargs,
            }
            base_foreach = _sgd_foreach(foreach)
        super().__init__(
            params,
            base_optimizer,
            dict(coupling=coupling, tau0=tau0),
            generator=generator,
            foreach=foreach,
            base_foreach=base_foreach,
            **base_kwargs,
        )
        all_params = self._params()
        n_weights = sum(p.numel() for p in all_params)
        if layers is None:
            layers = max(sum(1 for p in all_params if p.dim() >= 2), 3)
        self.layers = check_count(layers, "layers", minimum=3)
        self.neurons = check_count(neurons if neurons is not None else n_weights, "neurons")
        self.weights = check_count(weights if weights is not None else n_weights, "weights")
        for group in self.param_groups:
            self._draw_fields(group)

    def _attach_group(self, param_group: dict[str, Any]) -> None:
        super()._attach_group(param_group)
        if "layers" in self.__dict__:  # a group added after construction
            self._draw_fields(self.param_groups[-1])

    @torch.no_grad()
    def _draw_fields(self, group: dict[str, Any]) -> None:
        scale = group["coupling"] * math.sqrt(self.layers * (self.layers - 2))
        for p in group["params"]:
            h = torch.zeros_like(p)
            ops.add_noise_([ops.real(h)], scale, self.generator_for(p.device))
            self.state[p]["field"] = h

    def factor(self) -> list[float]:
        """The current annealing factor of each group."""
        return [field_factor(self.outer_step, g["tau0"], self.neurons, self.weights) for g in self.param_groups]

    def _calls_per_outer(self) -> int:
        return 1

    def _begin(self) -> bool:
        self._work = [(g, self._trainable(g), c) for g, c in zip(self.param_groups, self.factor())]
        return any(params for _, params, _ in self._work)

    def _consume(self, position: int) -> bool:
        work = self._work
        self._check_grads([ops.real(p.grad) for _, params, _ in work for p in params])
        taking: list[torch.Tensor] = []
        fields: list[torch.Tensor] = []
        for _, params, c in work:
            if not params:
                continue
            out = [self._scratch_for(p, ("gradient",))["gradient"] for p in params]
            foreach = self._use_foreach(params)
            ops.copy_(out, [p.grad for p in params], foreach)
            if c != 0.0:
                ops.add_(out, [self.state[p]["field"] for p in params], c, foreach)
            taking += params
            fields += out
        self._apply_base(taking, fields)
        self.stats = {"field_factor": work[0][2] if work else 0.0}
        self._work = None
        return True
