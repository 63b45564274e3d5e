"""The methods compared: how each is built, what one outer step costs, and where its search looks.

Each :class:`Method` has a documented setting (the library's defaults or the thesis' recipe, tried first by
the search) and a search space around it.  ``cost(hp)`` is the number of minibatch gradients one outer step
evaluates; ``replicas(hp)`` the number of replicas that could run in parallel (Elastic-SGD, Parle).
``build`` returns a :class:`Runner`: the optimizer, one outer step, and the model to evaluate (the weight
average for SGD-EMA, the master for the replicated methods).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hjsmooth.demos.study.search import Choice, LogUniform

__all__ = ["Method", "Runner", "METHODS", "NAMES", "scope_schedule"]

Draw = Callable[..., tuple[Any, Any]]

#: Scoping options of the search: the scope is constant, or decays exponentially to a tenth of its start
#: over the run (thesis 3.2.3: ``gamma_k = gamma_0 (1 - gamma_1)^k``).
SCOPINGS = ("constant", "decay10")


@dataclass
class Runner:
    """An optimizer, a function doing one outer step (returning the minibatch loss), and the model to evaluate."""

    optimizer: Any
    step: Callable[[], float]
    eval_model: Callable[[], Any]


def scope_schedule(initial: float, scoping: str, outer_steps: int) -> Any:
    """``initial`` (``"constant"``) or ``schedules.exponential`` reaching ``initial / 10`` at the last step."""
    from hjsmooth.optim import schedules

    if scoping == "constant":
        return float(initial)
    if scoping == "decay10":
        rate = 1.0 - 0.1 ** (1.0 / max(1, outer_steps - 1))
        return schedules.exponential(initial, rate)
    raise ValueError(f"unknown `scoping` {scoping!r}; valid values are {SCOPINGS}")


def _closure(model: Any, loss_fn: Callable[..., Any], draw: Draw, optimizer: Any) -> Callable[..., Any]:
    def closure(*_replica: int) -> Any:
        xb, yb = draw()
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        return loss

    return closure


def _plain_runner(model: Any, loss_fn: Callable[..., Any], draw: Draw, optimizer: Any,
                  eval_model: Callable[[], Any] | None = None, after: Callable[[], None] | None = None) -> Runner:
    closure = _closure(model, loss_fn, draw, optimizer)

    def step() -> float:
        loss = closure()
        optimizer.step()
        if after is not None:
            after()
        return float(loss.detach())

    return Runner(optimizer, step, eval_model or (lambda: model))


def _loss_value(loss: Any) -> float:
    """The loss an optimizer's ``step`` returned, as a float (a tensor is detached first)."""
    return float(loss.detach()) if hasattr(loss, "detach") else float(loss)


def _smoothing_runner(model: Any, loss_fn: Callable[..., Any], draw: Draw, optimizer: Any) -> Runner:
    closure = _closure(model, loss_fn, draw, optimizer)
    return Runner(optimizer, lambda: _loss_value(optimizer.step_outer(closure)), lambda: model)


def _replicated_runner(model: Any, loss_fn: Callable[..., Any], draw: Draw, optimizer: Any, n: int,
                       parallel: bool) -> Runner:
    if parallel:
        from hjsmooth.optim import ReplicaBatches

        batches = ReplicaBatches(model, loss_fn, lambda: draw(n))
        return Runner(optimizer, lambda: _loss_value(optimizer.step_outer(batches)), lambda: model)
    return _smoothing_runner(model, loss_fn, draw, optimizer)


@dataclass(frozen=True)
class Method:
    """One optimizer of the study (see the module docstring)."""

    name: str
    documented: Mapping[str, Any]
    space: Mapping[str, LogUniform | Choice]
    builder: Callable[..., Runner] = field(repr=False)
    cost_of: Callable[[Mapping[str, Any]], int] = field(default=lambda hp: 1, repr=False)
    replicas_of: Callable[[Mapping[str, Any]], int] = field(default=lambda hp: 1, repr=False)
    source: str = ""

    def cost(self, hp: Mapping[str, Any]) -> int:
        return int(self.cost_of(hp))

    def replicas(self, hp: Mapping[str, Any]) -> int:
        return int(self.replicas_of(hp))

    def build(self, model: Any, loss_fn: Callable[..., Any], draw: Draw, hp: Mapping[str, Any], generator: Any,
              outer_steps: int, parallel: bool = False) -> Runner:
        return self.builder(model, loss_fn, draw, dict(hp), generator, outer_steps, parallel)


# ----------------------------------------------------------------------------------------------- builders
def _sgd(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=0.9, nesterov=True,
                          weight_decay=hp.get("weight_decay", 0.0))
    return _plain_runner(model, loss_fn, draw, opt)


def _sgd_ema(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=0.9, nesterov=True,
                          weight_decay=hp.get("weight_decay", 0.0))
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(hp["ema_decay"]))
    return _plain_runner(model, loss_fn, draw, opt, eval_model=lambda: average,
                         after=lambda: average.update_parameters(model))


def _adam(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp.get("weight_decay", 0.0))
    return _plain_runner(model, loss_fn, draw, opt)


def _library(cls: Any, params: Any, hp: Mapping[str, Any], outer_steps: int, scoped: tuple[str, ...] = (),
             **extra: Any) -> Any:
    """``cls(params, **hp, **extra)`` with the scopes in ``scoped`` turned into schedules (``scoping`` is no argument)."""
    kwargs = {k: v for k, v in hp.items() if k != "scoping"}
    for name in scoped:
        kwargs[name] = scope_schedule(hp[name], hp.get("scoping", "constant"), outer_steps)
    return cls(params, **kwargs, **extra)


def _entropy_sgd(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.EntropySGD, model.parameters(), hp, outer_steps, ("gamma",), generator=generator)
    return _smoothing_runner(model, loss_fn, draw, opt)


def _hj(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.HJ, model.parameters(), hp, outer_steps, ("gamma",))
    return _smoothing_runner(model, loss_fn, draw, opt)


def _heat(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.Heat, model.parameters(), hp, outer_steps, generator=generator)
    return _smoothing_runner(model, loss_fn, draw, opt)


def _elastic(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.ElasticSGD, model.parameters(), hp, outer_steps, ("rho",))
    return _replicated_runner(model, loss_fn, draw, opt, hp["n"], parallel)


def _parle(model, loss_fn, draw, hp, generator, outer_steps, parallel):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.Parle, model.parameters(), hp, outer_steps, ("gamma", "rho"), generator=generator)
    return _replicated_runner(model, loss_fn, draw, opt, hp["n"], parallel)


def _defaults(cls_name: str, *names: str) -> dict[str, Any]:
    """The library's defaults of ``hjsmooth.optim.<cls_name>`` for ``names`` (read from its signature)."""
    import inspect

    import hjsmooth.optim as ho

    parameters = inspect.signature(getattr(ho, cls_name)).parameters
    return {name: parameters[name].default for name in names}


_LR = lambda centre: LogUniform(centre / 4.0, centre * 4.0)  # noqa: E731
_WD = Choice((0.0, 1e-4, 5e-4))
_SCOPE = LogUniform(0.1, 10.0)
_INNER_LR = LogUniform(0.03, 0.3)
_REPLICAS = 2  # ElasticSGD's and Parle's default in one process

_ENTROPY = {**_defaults("EntropySGD", "lr", "gamma", "L", "inner_lr", "noise", "weight_decay"), "scoping": "constant"}
_HJ = {**_defaults("HJ", "lr", "gamma", "L", "inner_lr", "weight_decay"), "scoping": "constant"}
_HEAT = _defaults("Heat", "lr", "gamma", "L", "noise", "weight_decay")
_ELASTIC = {**_defaults("ElasticSGD", "lr", "rho", "weight_decay"), "n": _REPLICAS, "scoping": "constant"}
_PARLE = {**_defaults("Parle", "lr", "gamma", "rho", "L", "inner_lr", "noise", "weight_decay"), "n": _REPLICAS,
          "scoping": "constant"}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("SGD", {"lr": 0.1, "weight_decay": 0.0}, {"lr": _LR(0.1), "weight_decay": _WD}, _sgd,
               source="Nesterov momentum 0.9, lr 0.1 (the thesis' baseline)"),
        Method("SGD-EMA", {"lr": 0.1, "weight_decay": 0.0, "ema_decay": 0.995},
               {"lr": _LR(0.1), "weight_decay": _WD, "ema_decay": Choice((0.99, 0.995, 0.999))}, _sgd_ema,
               source="SGD as above, evaluated at an exponential moving average of its weights "
                      "(torch.optim.swa_utils.AveragedModel)"),
        Method("Adam", {"lr": 1e-3, "weight_decay": 0.0}, {"lr": _LR(1e-3), "weight_decay": _WD}, _adam,
               source="torch.optim.Adam defaults"),
        Method("Entropy-SGD", _ENTROPY,
               {"lr": _LR(_ENTROPY["lr"]), "gamma": _SCOPE, "inner_lr": _INNER_LR,
                "noise": Choice((0.0, 1e-5, 1e-4)), "weight_decay": _WD, "scoping": Choice(SCOPINGS)},
               _entropy_sgd, cost_of=lambda hp: hp["L"],
               source="hjsmooth.optim.EntropySGD at its defaults (Nesterov 0.9 in both loops, inner buffer kept); "
                      "the search adds the thesis' Langevin noise and scoping"),
        Method("HJ", _HJ,
               {"lr": LogUniform(0.25, 2.0), "gamma": _SCOPE, "inner_lr": _INNER_LR, "weight_decay": _WD,
                "scoping": Choice(SCOPINGS)},
               _hj, cost_of=lambda hp: hp["L"], source="hjsmooth.optim.HJ at its defaults (x <- y_L)"),
        Method("HEAT", _HEAT,
               {"lr": _LR(_HEAT["lr"]), "gamma": LogUniform(1e-3, 0.1), "L": Choice((1, 5)), "weight_decay": _WD},
               _heat, cost_of=lambda hp: hp["L"],
               source="hjsmooth.optim.Heat at its defaults (filter-relative perturbation); the search adds the "
                      "average over L = 5 perturbations"),
        Method("Elastic-SGD", _ELASTIC,
               {"lr": _LR(_ELASTIC["lr"]), "rho": _SCOPE, "weight_decay": _WD, "scoping": Choice(SCOPINGS)},
               _elastic, cost_of=lambda hp: hp["n"], replicas_of=lambda hp: hp["n"],
               source="hjsmooth.optim.ElasticSGD at its defaults (2 replicas)"),
        Method("Parle", _PARLE,
               {"lr": _LR(_PARLE["lr"]), "gamma": _SCOPE, "rho": _SCOPE, "inner_lr": _INNER_LR, "weight_decay": _WD,
                "scoping": Choice(SCOPINGS)},
               _parle, cost_of=lambda hp: hp["n"] * hp["L"], replicas_of=lambda hp: hp["n"],
               source="hjsmooth.optim.Parle at its defaults (2 replicas); scoping as in the thesis' 5.3.2 "
                      "decays both gamma and rho"),
    )
}

#: The method names in the order of the tables.
NAMES: tuple[str, ...] = tuple(METHODS)
