"""The methods compared: how each is built, what one outer step costs, and where its search looks.

Each :class:`Method` has a documented setting (the library's defaults or the thesis' recipe, tried first by
the search) and a search space around it.  ``cost(hp)`` is the number of minibatch gradients one outer step
evaluates (2 for SAM and ASAM, ``L`` for Entropy-SGD...); ``replicas(hp)`` the number of replicas that could
run in parallel (Elastic-SGD, Parle).  ``build`` returns a :class:`Runner`: the optimizer, one outer step, and
the model to evaluate (the weight average for SGD-EMA and SWA, the master for the replicated methods).
SAM and ASAM are pytorch-optimizer's ``SAM``, not code of this study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hjsmooth.demos.study.search import Choice, LogUniform

__all__ = [
    "Method",
    "Runner",
    "METHODS",
    "NAMES",
    "SMOOTHING",
    "COMPETITORS",
    "scope_schedule",
    "swa_cycle_lr",
    "replicated_optimizer",
]

Draw = Callable[..., tuple[Any, Any]]

#: Scoping options of the search: the scope is constant, or decays exponentially to a tenth of its start
#: over the run (thesis 3.2.3: ``gamma_k = gamma_0 (1 - gamma_1)^k``).
SCOPINGS = ("constant", "decay10")
#: SWA's learning rate in its averaging phase: constant (after a one-epoch anneal) or cyclic (Izmailov et al.)
SWA_SCHEDULES = ("constant", "cyclic")


@dataclass
class Runner:
    """An optimizer, a function doing one outer step (returning the minibatch loss), and the model to evaluate."""

    optimizer: Any
    step: Callable[[], float]
    eval_model: Callable[[], Any]
    #: the outer step from which the runner sets the learning rate itself (SWA's phase); None: never
    own_lr_from: int | None = None


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


def _plain_runner(
    model: Any,
    loss_fn: Callable[..., Any],
    draw: Draw,
    optimizer: Any,
    eval_model: Callable[[], Any] | None = None,
    after: Callable[[], None] | None = None,
) -> Runner:
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


def _replicated_runner(
    model: Any, loss_fn: Callable[..., Any], draw: Draw, optimizer: Any, n: int, parallel: bool
) -> Runner:
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

    def build(
        self,
        model: Any,
        loss_fn: Callable[..., Any],
        draw: Draw,
        hp: Mapping[str, Any],
        generator: Any,
        outer_steps: int,
        parallel: bool = False,
        epoch_steps: int = 1,
    ) -> Runner:
        """The :class:`Runner` of this method at ``hp`` for ``outer_steps`` steps (``epoch_steps`` steps of
        one minibatch make an effective epoch: SWA's averaging period)."""
        return self.builder(model, loss_fn, draw, dict(hp), generator, outer_steps, parallel, epoch_steps)


# ----------------------------------------------------------------------------------------------- builders
def _sgd(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    import torch

    opt = torch.optim.SGD(
        model.parameters(), lr=hp["lr"], momentum=0.9, nesterov=True, weight_decay=hp.get("weight_decay", 0.0)
    )
    return _plain_runner(model, loss_fn, draw, opt)


def _sgd_ema(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    opt = torch.optim.SGD(
        model.parameters(), lr=hp["lr"], momentum=0.9, nesterov=True, weight_decay=hp.get("weight_decay", 0.0)
    )
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(hp["ema_decay"]))
    return _plain_runner(
        model, loss_fn, draw, opt, eval_model=lambda: average, after=lambda: average.update_parameters(model)
    )


def _adam(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp.get("weight_decay", 0.0))
    return _plain_runner(model, loss_fn, draw, opt)


def _sam(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps, adaptive=False):  # noqa: ANN001, ARG001
    """pytorch-optimizer's ``SAM`` over Nesterov SGD: two gradients of one minibatch per step (at ``x``, then at
    ``x + e``, ``e`` the ascent step of radius ``rho``; ``adaptive``: ASAM's element-wise scaling by ``|x|``)."""
    import torch
    from pytorch_optimizer import SAM

    opt = SAM(
        model.parameters(),
        torch.optim.SGD,
        rho=hp["rho"],
        adaptive=adaptive,
        lr=hp["lr"],
        momentum=0.9,
        nesterov=True,
        weight_decay=hp.get("weight_decay", 0.0),
    )

    def step() -> float:
        xb, yb = draw()

        def closure() -> Any:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            return loss

        loss = closure()  # the first gradient, at x
        opt.step(closure)  # ascend to x + e, the second gradient there, back to x, the SGD step
        return float(loss.detach())

    return Runner(opt, step, lambda: model)


def _asam(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001
    return _sam(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps, adaptive=True)


def swa_cycle_lr(step: int, period: int, high: float) -> float:
    """The cyclic SWA learning rate of Izmailov et al. (2018): within each cycle of ``period`` steps it falls
    linearly from ``high`` to ``high / 10``, reaching ``high / 10`` at the cycle's last step (``step`` counts
    from the start of the SWA phase)."""
    t = (step % period + 1) / period
    return (1.0 - t) * high + t * high / 10.0


def _swa(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    """SGD, then from ``swa_start`` of the run a constant SWA learning rate (``torch.optim.swa_utils.SWALR``,
    annealed over one effective epoch) or a cyclic one (:func:`swa_cycle_lr`), the weights averaged by an
    ``AveragedModel`` once per effective epoch (at the end of each cycle) and at the last step; BatchNorm
    statistics are recomputed by ``update_bn`` (on an epoch of minibatches drawn with ``generator``, not from
    the training stream) before the average is evaluated.  Before the first average the SGD weights are."""
    import torch
    from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

    opt = torch.optim.SGD(
        model.parameters(), lr=hp["lr"], momentum=0.9, nesterov=True, weight_decay=hp.get("weight_decay", 0.0)
    )
    start = min(outer_steps - 1, int(round(hp["swa_start"] * outer_steps)))
    period = max(1, int(epoch_steps))
    average = AveragedModel(model)
    state: dict[str, Any] = {"k": 0, "scheduler": None, "averaged": 0, "bn_current": True}

    def step() -> float:
        k = state["k"]
        if k >= start and hp["swa_schedule"] == "cyclic":
            for group in opt.param_groups:
                group["lr"] = swa_cycle_lr(k - start, period, hp["swa_lr"])
        elif k == start:  # constant: anneal from the current learning rate to swa_lr
            state["scheduler"] = SWALR(opt, swa_lr=hp["swa_lr"], anneal_epochs=period, anneal_strategy="cos")
        xb, yb = draw()
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        if k >= start:
            if (k - start + 1) % period == 0 or k == outer_steps - 1:
                average.update_parameters(model)
                state["averaged"] += 1
                state["bn_current"] = False
            if state["scheduler"] is not None:
                state["scheduler"].step()
        state["k"] = k + 1
        return float(loss.detach())

    def eval_model() -> Any:
        if not state["averaged"]:
            return model
        if not state["bn_current"]:
            update_bn((draw(generator=generator)[0] for _ in range(period)), average)
            state["bn_current"] = True
        return average

    return Runner(opt, step, eval_model, own_lr_from=start)


def _library(
    cls: Any, params: Any, hp: Mapping[str, Any], outer_steps: int, scoped: tuple[str, ...] = (), **extra: Any
) -> Any:
    """``cls(params, **hp, **extra)``, the scopes in ``scoped`` turned into schedules (``scoping`` is no argument)."""
    kwargs = {k: v for k, v in hp.items() if k != "scoping"}
    for name in scoped:
        kwargs[name] = scope_schedule(hp[name], hp.get("scoping", "constant"), outer_steps)
    return cls(params, **kwargs, **extra)


#: The replicated methods: their class in hjsmooth.optim and the hyper-parameters that their scoping schedules.
_REPLICATED = {"Elastic-SGD": ("ElasticSGD", ("rho",)), "Parle": ("Parle", ("gamma", "rho"))}


def replicated_optimizer(name: str, params: Any, hp: Mapping[str, Any], outer_steps: int, **extra: Any) -> Any:
    """Elastic-SGD or Parle (``name``) at ``hp`` for ``outer_steps`` outer steps, scoped as the study scopes
    them; ``extra`` goes to the constructor (``generator``, ``distributed=True``...)."""
    import hjsmooth.optim as ho

    if name not in _REPLICATED:
        raise ValueError(f"`name` must be one of {tuple(_REPLICATED)}, got {name!r}")
    cls_name, scoped = _REPLICATED[name]
    return _library(getattr(ho, cls_name), params, hp, outer_steps, scoped, **extra)


def _entropy_sgd(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.EntropySGD, model.parameters(), hp, outer_steps, ("gamma",), generator=generator)
    return _smoothing_runner(model, loss_fn, draw, opt)


def _hj(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.HJ, model.parameters(), hp, outer_steps, ("gamma",))
    return _smoothing_runner(model, loss_fn, draw, opt)


def _heat(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    import hjsmooth.optim as ho

    opt = _library(ho.Heat, model.parameters(), hp, outer_steps, generator=generator)
    return _smoothing_runner(model, loss_fn, draw, opt)


def _elastic(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    opt = replicated_optimizer("Elastic-SGD", model.parameters(), hp, outer_steps)
    return _replicated_runner(model, loss_fn, draw, opt, hp["n"], parallel)


def _parle(model, loss_fn, draw, hp, generator, outer_steps, parallel, epoch_steps):  # noqa: ANN001, ARG001
    opt = replicated_optimizer("Parle", model.parameters(), hp, outer_steps, generator=generator)
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
_PARLE = {
    **_defaults("Parle", "lr", "gamma", "rho", "L", "inner_lr", "noise", "weight_decay"),
    "n": _REPLICAS,
    "scoping": "constant",
}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "SGD",
            {"lr": 0.1, "weight_decay": 0.0},
            {"lr": _LR(0.1), "weight_decay": _WD},
            _sgd,
            source="Nesterov momentum 0.9, lr 0.1 (the thesis' baseline)",
        ),
        Method(
            "SGD-EMA",
            {"lr": 0.1, "weight_decay": 0.0, "ema_decay": 0.995},
            {"lr": _LR(0.1), "weight_decay": _WD, "ema_decay": Choice((0.99, 0.995, 0.999))},
            _sgd_ema,
            source="SGD as above, evaluated at an exponential moving average of its weights "
            "(torch.optim.swa_utils.AveragedModel)",
        ),
        Method(
            "SWA",
            {"lr": 0.1, "weight_decay": 0.0, "swa_lr": 0.05, "swa_start": 0.75, "swa_schedule": "constant"},
            {
                "lr": _LR(0.1),
                "weight_decay": _WD,
                "swa_lr": _LR(0.05),
                "swa_start": Choice((0.5, 0.75, 0.9)),
                "swa_schedule": Choice(SWA_SCHEDULES),
            },
            _swa,
            source="SGD as above, then from 75 % of the budget stochastic weight averaging (Izmailov et al. 2018): "
            "SWA lr 0.05 (torch.optim.swa_utils.SWALR, or cyclic), AveragedModel once per epoch, update_bn",
        ),
        Method(
            "Adam",
            {"lr": 1e-3, "weight_decay": 0.0},
            {"lr": _LR(1e-3), "weight_decay": _WD},
            _adam,
            source="torch.optim.Adam defaults",
        ),
        Method(
            "SAM",
            {"lr": 0.1, "weight_decay": 0.0, "rho": 0.05},
            {"lr": _LR(0.1), "weight_decay": _WD, "rho": _LR(0.05)},
            _sam,
            cost_of=lambda hp: 2,
            source="pytorch_optimizer.SAM (Foret et al. 2021) over SGD with Nesterov 0.9, rho 0.05 (the paper's "
            "default); two gradients of one minibatch per step",
        ),
        Method(
            "ASAM",
            {"lr": 0.1, "weight_decay": 0.0, "rho": 0.5},
            {"lr": _LR(0.1), "weight_decay": _WD, "rho": _LR(0.5)},
            _asam,
            cost_of=lambda hp: 2,
            source="pytorch_optimizer.SAM(adaptive=True) (ASAM, Kwon et al. 2021) over SGD with Nesterov 0.9, "
            "rho 0.5 (the paper's CIFAR-10 setting); two gradients per step",
        ),
        Method(
            "Entropy-SGD",
            _ENTROPY,
            {
                "lr": _LR(_ENTROPY["lr"]),
                "gamma": _SCOPE,
                "inner_lr": _INNER_LR,
                "noise": Choice((0.0, 1e-5, 1e-4)),
                "weight_decay": _WD,
                "scoping": Choice(SCOPINGS),
            },
            _entropy_sgd,
            cost_of=lambda hp: hp["L"],
            source="hjsmooth.optim.EntropySGD at its defaults (Nesterov 0.9 in both loops, inner buffer kept); "
            "the search adds the thesis' Langevin noise and scoping",
        ),
        Method(
            "HJ",
            _HJ,
            {
                "lr": LogUniform(0.25, 2.0),
                "gamma": _SCOPE,
                "inner_lr": _INNER_LR,
                "weight_decay": _WD,
                "scoping": Choice(SCOPINGS),
            },
            _hj,
            cost_of=lambda hp: hp["L"],
            source="hjsmooth.optim.HJ at its defaults (x <- y_L)",
        ),
        Method(
            "HEAT",
            _HEAT,
            {"lr": _LR(_HEAT["lr"]), "gamma": LogUniform(1e-3, 0.1), "L": Choice((1, 5)), "weight_decay": _WD},
            _heat,
            cost_of=lambda hp: hp["L"],
            source="hjsmooth.optim.Heat at its defaults (filter-relative perturbation); the search adds the "
            "average over L = 5 perturbations",
        ),
        Method(
            "Elastic-SGD",
            _ELASTIC,
            {"lr": _LR(_ELASTIC["lr"]), "rho": _SCOPE, "weight_decay": _WD, "scoping": Choice(SCOPINGS)},
            _elastic,
            cost_of=lambda hp: hp["n"],
            replicas_of=lambda hp: hp["n"],
            source="hjsmooth.optim.ElasticSGD at its defaults (2 replicas)",
        ),
        Method(
            "Parle",
            _PARLE,
            {
                "lr": _LR(_PARLE["lr"]),
                "gamma": _SCOPE,
                "rho": _SCOPE,
                "inner_lr": _INNER_LR,
                "weight_decay": _WD,
                "scoping": Choice(SCOPINGS),
            },
            _parle,
            cost_of=lambda hp: hp["n"] * hp["L"],
            replicas_of=lambda hp: hp["n"],
            source="hjsmooth.optim.Parle at its defaults (2 replicas); scoping as in the thesis' 5.3.2 "
            "decays both gamma and rho",
        ),
    )
}

#: The method names in the order of the tables.
NAMES: tuple[str, ...] = tuple(METHODS)

#: The optimizers of this library in the study, and the flat-minimum methods users would pick instead.
SMOOTHING: tuple[str, ...] = ("Entropy-SGD", "HJ", "HEAT", "Elastic-SGD", "Parle")
COMPETITORS: tuple[str, ...] = ("SAM", "ASAM", "SWA")
