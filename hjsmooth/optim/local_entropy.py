"""Local Entropy optimizers: the ``LocalEntropy`` wrapper, ``EntropySGD`` and ``HJ``.

They descend Local Entropy ``f_gamma = u(., gamma)``, the solution at time ``gamma`` of
the viscous Hamilton-Jacobi equation ``u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u``
with ``u(., 0) = f`` (thesis (4.1), (3.10)).  Its gradient is

    grad f_gamma(x) = (x - <y>) / gamma,

``<y>`` the mean of ``rho(y) ∝ exp(-beta (f(y) + |x - y|^2 / (2 gamma)))``, which an inner
Langevin loop estimates (thesis Algorithm 2, (4.39)-(4.41); :mod:`._inner`).  ``HJ`` is
the inviscid limit ``beta = inf``: no noise, last iterate, so ``<y>`` is the proximal
point and the step is the gradient of the Hopf-Lax solution, ``(x - prox_{gamma f}(x)) / gamma``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._base import SmoothingWrapper, finite_mean
from hjsmooth.optim._checks import (
    INNER_CHECKS,
    check_flag,
    check_lr,
    check_nonnegative_float,
    check_scope,
    resolve,
    warn_if_unstable,
)
from hjsmooth.optim._inner import InnerLoop, InnerLoopGroups, InnerSettings

__all__ = ["LocalEntropy", "EntropySGD", "HJ", "LOCAL_ENTROPY_DEFAULTS", "HJ_DEFAULTS", "HJ_OUTER"]

#: Defaults of the Local Entropy family (measured on the project's tasks: docs/optimizers.md).
LOCAL_ENTROPY_DEFAULTS: dict[str, Any] = dict(
    gamma=1.0,
    L=5,
    inner_lr=0.1,
    noise=0.0,
    alpha=0.75,
    inner_momentum=0.9,
    inner_nesterov=True,
    coupling_in_momentum=False,
    keep_inner_buffer=True,
    scale_by_gamma=True,
)
#: The outer SGD step of EntropySGD and HJ (on x - <y>: ``lr = 1`` without momentum would be x <- <y>).
ENTROPY_SGD_OUTER: dict[str, Any] = dict(lr=0.3, momentum=0.9, nesterov=True, weight_decay=0.0)
#: HJ: the inviscid limit (no noise, last iterate).
HJ_DEFAULTS: dict[str, Any] = {**LOCAL_ENTROPY_DEFAULTS, "noise": 0.0, "alpha": 0.0}
#: The outer step of HJ: ``x <- y_L`` (thesis 3.2.3, "x <- z"); with Nesterov momentum at lr 0.3 the last
#: iterate (no averaging) killed the MNIST-1D CNN on one seed in three.
HJ_OUTER: dict[str, Any] = dict(lr=1.0, momentum=0.0, nesterov=True, weight_decay=0.0)

_CHECKS = {"gamma": check_scope, **INNER_CHECKS, "scale_by_gamma": check_flag}


@dataclass
class _GroupWork:
    """One param group's part of the current outer step."""

    group: dict[str, Any]
    params: list[torch.Tensor]  # the parameters taking part (requires_grad, a gradient at the first call)
    points: list[torch.Tensor]  # their real views, where the gradients are taken
    anchors: list[torch.Tensor]  # x (real views)
    inner: InnerLoop
    L: int
    gamma: float


@dataclass
class _OuterWork:
    groups: list[_GroupWork]
    calls: int  # calls of this outer step: the largest L of any group


class LocalEntropy(InnerLoopGroups, SmoothingWrapper):
    r"""Wrap any ``torch.optim`` optimizer so that it descends Local Entropy ``f_gamma``.

    One outer step is ``L`` calls of ``step()``, each consuming one minibatch gradient
    (``loss.backward(); opt.step()``, or ``opt.step(closure)``; ``opt.step_outer(closure)``
    makes all ``L``):

    1. at the first call, keep the weights ``x`` (the anchor); start the inner iterate at
       ``y = x`` and the running average at ``<y> = x`` (the inner momentum buffer is kept
       from the last outer step if ``keep_inner_buffer``, else zeroed);
    2. at call ``l = 1..L``, with the gradient taken at ``y`` (``mu = inner_momentum``,
       Nesterov by default, the coupling added after the momentum)

       .. math::

          b &\leftarrow \mu\, b + \nabla f(y), \qquad v = \nabla f(y) + \mu\, b \\
          y &\leftarrow y - \eta_y \big(v + (y - x)/\gamma\big) + \sqrt{2 \eta_y\, \texttt{noise}}\; \xi,
              \qquad \xi \sim N(0, I) \\
          \langle y\rangle &\leftarrow \alpha \langle y\rangle + (1 - \alpha)\, y

       and leave the parameters at the new ``y``, where the next gradient is to be taken;
    3. at call ``L``, put the weights back at ``x`` and step the base optimizer with
       ``g = (x - <y>)/gamma`` (``scale_by_gamma``: ``x - <y>``) as the gradient; the
       parameters then hold the new ``x``, the first evaluation point of the next outer step.

    Between calls the parameters hold ``y``; ``with opt.at_anchor():`` (or ``opt.eval()`` /
    ``opt.train()``) puts ``x`` into them for evaluation or export.

    Where things enter
    ------------------
    * **noise** (``= 1/beta``) enters only the inner loop (step 2), never its buffer.
    * **momentum, weight decay, Nesterov, Adam moments...** are the base optimizer's and
      act only on the outer update (step 3): weight decay therefore regularises ``x``,
      i.e. the optimizer descends ``f_gamma(x) + wd |x|^2 / 2``.
    * **inner_momentum**, **inner_nesterov**, **coupling_in_momentum** shape the inner
      step (:mod:`hjsmooth.optim._inner`); ``coupling_in_momentum=True`` is momentum SGD on
      ``f(y) + |y - x|^2/(2 gamma)`` (the hamilton-jacobi and Parle codes),
      ``inner_momentum=0`` the plain Langevin step of Algorithm 2.
    * ``lr`` (a base-optimizer argument) is the outer learning rate; attach any
      ``torch.optim.lr_scheduler`` to this wrapper.  ``inner_lr`` is ``eta_y``.
    * Every hyper-parameter is per param group.  A group with a smaller ``L`` stops its
      inner loop early and waits at ``x``.
    * Parameters with ``requires_grad=False``, or without a gradient at the first call of
      an outer step, take no part in it and are never changed.

    Parameters
    ----------
    params : iterable of tensors or dicts
        The parameters or param groups, as for any ``torch.optim`` optimizer.
    base_optimizer : type
        A ``torch.optim.Optimizer`` class (``torch.optim.SGD``, ``torch.optim.Adam``...).
    gamma : float or callable
        The scope (PDE time, a variance), ``> 0``; or a schedule ``k -> gamma_k`` of the
        outer step ``k`` (:mod:`hjsmooth.optim.schedules`).  The coupling is ``1/gamma``;
        scoping *decreases* ``gamma``.  ``inner_lr >= 2 gamma`` diverges (``UserWarning``).
    L : int
        Inner steps (calls, minibatch gradients) per outer step, ``>= 1``.
    inner_lr : float or callable
        Inner step size ``eta_y`` (> 0), or a schedule of the outer step.
    noise : float
        ``1/beta``, the inner Langevin temperature (``>= 0``; 0 adds no noise and relies on
        the minibatch noise, as the thesis' chapters 4-5 do).
    alpha : float
        Weight of the old value in ``<y> <- alpha <y> + (1 - alpha) y``, in ``[0, 1)``;
        0 keeps the last iterate.  The thesis' ``alpha = 0.25`` weighs the new sample: 0.75 here.
    inner_momentum : float
        Momentum of the inner loop, in ``[0, 1)``.
    inner_nesterov : bool
        Nesterov (``v = g + mu b``) or heavy-ball (``v = b``) inner momentum.
    coupling_in_momentum : bool
        Put the coupling ``(y - x)/gamma`` into the momentum buffer instead of adding it
        after the momentum.
    keep_inner_buffer : bool
        Keep the inner momentum buffer from one outer step to the next (it is saved in
        ``state_dict``) instead of zeroing it; ``y`` and ``<y>`` always restart at ``x``.
    scale_by_gamma : bool
        Hand the base optimizer ``gamma g = x - <y>`` instead of ``g`` (thesis 3.2.3).
    freeze_bn : torch.nn.Module, optional
        The model whose BatchNorm running statistics only the first call of each outer
        step (made at ``x`` itself) may update; the later updates (at perturbed points
        ``y``) are undone.  Default: none frozen, the statistics follow every call.
    generator : torch.Generator, optional
        Source of the inner noise (saved in ``state_dict``).  By default one is created on
        the parameters' device, seeded from torch's default generator.
    foreach : bool, optional
        Use the ``torch._foreach_*`` kernels (default: when every parameter is on CUDA);
        also passed to ``base_optimizer`` when given (``base_foreach`` overrides that).
    **base_kwargs
        Passed to ``base_optimizer`` (``lr``, ``momentum``, ``weight_decay``, ...).  Without
        ``lr`` the outer step gets defaults that train: over ``torch.optim.SGD``, EntropySGD's
        (``lr = 0.3``, Nesterov momentum 0.9); over any other optimizer 10 times its default
        learning rate (Adam: 0.01, the thesis' Entropy-Adam), since one outer step consumes
        ``L`` gradients.

    Attributes
    ----------
    stats : dict of float
        After each outer step: ``loss`` (at ``x``; NaN when the calls had no closure),
        ``inner_loss`` (mean over the calls that returned a loss), ``grad_norm`` (norm of
        the gradient handed to the base optimizer), ``gamma`` (first group's scope).
    outer_step : int
        Number of outer steps taken (the argument of the schedules).
    position : int
        Calls made in the current outer step (0 between outer steps).

    Notes
    -----
    A NaN or infinite loss or gradient stops the call with
    :class:`~hjsmooth.optim.NonFiniteError` naming the call and the outer step; the
    weights are back at ``x`` and the state is as it was when the outer step began (the
    next call starts it afresh).  Mixed precision: ``scaler.step(opt)`` after
    ``scaler.scale(loss).backward()`` works as with any optimizer (the scaler unscales the
    gradient; a step it skips is not a call).
    """

    hyperparameters = _CHECKS

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer],
        gamma: float | Any = LOCAL_ENTROPY_DEFAULTS["gamma"],
        L: int = LOCAL_ENTROPY_DEFAULTS["L"],
        inner_lr: float | Any = LOCAL_ENTROPY_DEFAULTS["inner_lr"],
        noise: float = LOCAL_ENTROPY_DEFAULTS["noise"],
        alpha: float = LOCAL_ENTROPY_DEFAULTS["alpha"],
        *,
        inner_momentum: float = LOCAL_ENTROPY_DEFAULTS["inner_momentum"],
        inner_nesterov: bool = LOCAL_ENTROPY_DEFAULTS["inner_nesterov"],
        coupling_in_momentum: bool = LOCAL_ENTROPY_DEFAULTS["coupling_in_momentum"],
        keep_inner_buffer: bool = LOCAL_ENTROPY_DEFAULTS["keep_inner_buffer"],
        scale_by_gamma: bool = LOCAL_ENTROPY_DEFAULTS["scale_by_gamma"],
        freeze_bn: torch.nn.Module | None = None,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        base_foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(
            gamma=gamma,
            L=L,
            inner_lr=inner_lr,
            noise=noise,
            alpha=alpha,
            inner_momentum=inner_momentum,
            inner_nesterov=inner_nesterov,
            coupling_in_momentum=coupling_in_momentum,
            keep_inner_buffer=keep_inner_buffer,
            scale_by_gamma=scale_by_gamma,
        )
        base_kwargs = outer_defaults(base_optimizer, base_kwargs)
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

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        self._warn_if_inner_unstable(group, index, type(self).__name__)

    def _inner_buffer_like(self, p: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        return p

    # ------------------------------------------------------------------ the algorithm
    def _settings(self, group: dict[str, Any], index: int) -> InnerSettings:
        k = self.outer_step
        gamma = resolve(group["gamma"], k, "gamma")
        lr = resolve(group["inner_lr"], k, "inner_lr")
        if index not in self._warned and (callable(group["gamma"]) or callable(group["inner_lr"])):
            if warn_if_unstable(
                lr,
                gamma,
                group["inner_momentum"],
                group["inner_nesterov"],
                group["coupling_in_momentum"],
                f"{type(self).__name__} param group {index} at outer step {k}",
            ):
                self._warned.add(index)
        return InnerSettings(
            gamma=gamma,
            lr=lr,
            noise=group["noise"],
            alpha=group["alpha"],
            momentum=group["inner_momentum"],
            nesterov=group["inner_nesterov"],
            coupling_in_momentum=group["coupling_in_momentum"],
        )

    def _calls_per_outer(self) -> int:
        if self._work is not None:
            return self._work.calls
        return max((g["L"] for g in self.param_groups), default=1)

    def _group_work(self, group: dict[str, Any], index: int, params: list[torch.Tensor], fresh: bool) -> _GroupWork:
        """A group's inner loop over ``params`` (its scratch tensors; the anchor written by the caller)."""
        settings = self._settings(group, index)
        keep = group["keep_inner_buffer"]
        anchors, disps, avgs, bufs = [], [], [], []
        for p in params:
            st = self._scratch_for(p, ("anchor", "displacement", "average"))
            anchors.append(ops.real(st["anchor"]))
            disps.append(ops.real(st["displacement"]))
            avgs.append(ops.real(st["average"]))
            if settings.momentum > 0:
                home = self.state[p] if keep else self._scratch[p]
                if "inner_buffer" not in home or home["inner_buffer"].shape != p.shape:
                    home["inner_buffer"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                bufs.append(ops.real(home["inner_buffer"]))
        foreach = self._use_foreach(params)
        inner = InnerLoop(disps, avgs, bufs if settings.momentum > 0 else None, settings, foreach, fresh=fresh)
        return _GroupWork(
            group=group,
            params=params,
            points=ops.reals(params),
            anchors=anchors,
            inner=inner,
            L=group["L"],
            gamma=settings.gamma,
        )

    def _begin(self) -> bool:
        groups = []
        for i, g in enumerate(self.param_groups):
            params = self._trainable(g)
            if not params:
                continue
            w = self._group_work(g, i, params, fresh=True)
            ops.copy_(w.anchors, w.points, w.inner.foreach)
            w.inner.reset(keep_buffer=g["keep_inner_buffer"])
            groups.append(w)
        if not groups:
            return False
        self._work = _OuterWork(groups, max(g["L"] for g in self.param_groups))
        return True

    def _current_work(self) -> _OuterWork:
        """The outer step's work; after a load or copy in the middle of one, rebuilt from the scratch tensors."""
        if self._work is None:
            groups = []
            for i, g in enumerate(self.param_groups):
                params = [p for p in g["params"] if "anchor" in self._scratch.get(p, {})]
                if params:
                    groups.append(self._group_work(g, i, params, fresh=False))
            self._work = _OuterWork(groups, max(g["L"] for g in self.param_groups))
        return self._work

    def _consume(self, position: int) -> bool:
        work = self._current_work()
        active = [w for w in work.groups if position < w.L]
        grads = [self._grads(w.params) for w in active]
        self._check_grads([g for gs in grads for g in gs])
        for w, g in zip(active, grads):
            noise = self._noise(w.params[0].device) if w.inner.settings.noise > 0 else None
            w.inner.update(g, noise)
            w.inner.place(w.points, w.anchors, done=position == w.L - 1)
        if position < work.calls - 1:
            return False
        params: list[torch.Tensor] = []
        smoothed: list[torch.Tensor] = []
        for w in work.groups:  # g = -m/gamma (scale_by_gamma: -m), written over d, which is spent
            scale = -1.0 if w.group["scale_by_gamma"] else -1.0 / w.gamma
            ops.scaled_into_(w.inner.disp, w.inner.avg, scale, w.inner.foreach)
            params += w.params
            smoothed += [self._scratch[p]["displacement"] for p in w.params]
        grad_norm = ops.global_norm(ops.reals(smoothed))
        self._apply_base(params, smoothed)
        self._work = None
        losses = self._losses
        self.stats = {
            "loss": losses[0] if losses and len(losses) == work.calls else math.nan,
            "inner_loss": finite_mean(losses),
            "grad_norm": grad_norm,
            "gamma": work.groups[0].gamma,
        }
        return True

    def _noise(self, device: torch.device) -> Any:
        gen = self.generator_for(device)
        return lambda d, scale: ops.add_noise_(d, scale, gen)

    def _abort(self) -> None:
        if self.position > 0 or self._work is not None:
            for w in self._current_work().groups:
                ops.copy_(w.points, w.anchors, w.inner.foreach)
        self._work = None

    def _taking_part(self) -> list[torch.Tensor]:
        if self.position == 0:
            return []
        return [p for w in self._current_work().groups for p in w.params]

    def _anchor_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(p, self._scratch[p]["anchor"]) for p in self._taking_part()]

    def _live_scratch(self) -> dict[torch.Tensor, dict[str, torch.Tensor]]:
        keys = ("anchor", "displacement", "average", "inner_buffer")
        return {p: {k: self._scratch[p][k] for k in keys if k in self._scratch[p]} for p in self._taking_part()}


def _sgd_kwargs(lr: Any, momentum: Any, nesterov: Any, weight_decay: Any) -> dict[str, Any]:
    """Keyword arguments of the outer ``torch.optim.SGD`` (Nesterov only where ``momentum > 0``)."""
    momentum = check_nonnegative_float(momentum, "momentum")
    return dict(
        lr=check_lr(lr, "lr"),
        momentum=momentum,
        nesterov=check_flag(nesterov, "nesterov") and momentum > 0,
        weight_decay=check_nonnegative_float(weight_decay, "weight_decay"),
    )


#: The outer learning rate of a base optimizer other than SGD, when none is given, in units of its own
#: default: one outer step consumes L gradients (the thesis' Entropy-Adam: 0.01 over Adam's 0.001).
OUTER_LR_FACTOR = 10.0


def outer_defaults(base_optimizer: Any, base_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The base optimizer's keyword arguments with the outer step's defaults filled in where not given.

    Over ``torch.optim.SGD`` (or a subclass): :class:`EntropySGD`'s outer step (``lr = 0.3``,
    Nesterov momentum 0.9).  Over another optimizer whose default ``lr`` is a number:
    ``OUTER_LR_FACTOR`` times that default (Adam: 0.01).  Arguments given are kept.
    """
    if "lr" in base_kwargs or not isinstance(base_optimizer, type):
        return base_kwargs
    if issubclass(base_optimizer, torch.optim.SGD):
        return {**ENTROPY_SGD_OUTER, **base_kwargs}
    try:
        default = inspect.signature(base_optimizer).parameters["lr"].default
    except (KeyError, TypeError, ValueError):
        return base_kwargs
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
        return {**base_kwargs, "lr": OUTER_LR_FACTOR * float(default)}
    return base_kwargs


def _sgd_foreach(foreach: bool | None) -> bool:
    """The ``foreach`` of an internal ``torch.optim.SGD``: its multi-tensor kernels unless told otherwise.

    (torch picks its per-tensor loop on the CPU; the multi-tensor path was 5 % faster per
    gradient evaluation on the benchmark MLP.)
    """
    return True if foreach is None else bool(foreach)


class EntropySGD(LocalEntropy):
    """Entropy-SGD (thesis Algorithm 2): :class:`LocalEntropy` over SGD with Nesterov momentum.

    ``EntropySGD(params, lr, gamma, ...)`` is ``LocalEntropy(params, torch.optim.SGD, gamma,
    ..., lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=...)``.
    Momentum and weight decay act on the outer update only.  Every argument has a default
    that trains a small network about as well as SGD with Nesterov momentum for the same
    number of gradient evaluations (docs/optimizers.md); the thesis' own settings are the
    recipes of :mod:`hjsmooth.optim.recipes`.  See :class:`LocalEntropy` for the
    equations, the statistics and the remaining arguments.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = ENTROPY_SGD_OUTER["lr"],
        gamma: float | Any = LOCAL_ENTROPY_DEFAULTS["gamma"],
        L: int = LOCAL_ENTROPY_DEFAULTS["L"],
        inner_lr: float | Any = LOCAL_ENTROPY_DEFAULTS["inner_lr"],
        noise: float = LOCAL_ENTROPY_DEFAULTS["noise"],
        alpha: float = LOCAL_ENTROPY_DEFAULTS["alpha"],
        momentum: float = ENTROPY_SGD_OUTER["momentum"],
        nesterov: bool = ENTROPY_SGD_OUTER["nesterov"],
        weight_decay: float = ENTROPY_SGD_OUTER["weight_decay"],
        *,
        inner_momentum: float = LOCAL_ENTROPY_DEFAULTS["inner_momentum"],
        inner_nesterov: bool = LOCAL_ENTROPY_DEFAULTS["inner_nesterov"],
        coupling_in_momentum: bool = LOCAL_ENTROPY_DEFAULTS["coupling_in_momentum"],
        keep_inner_buffer: bool = LOCAL_ENTROPY_DEFAULTS["keep_inner_buffer"],
        scale_by_gamma: bool = LOCAL_ENTROPY_DEFAULTS["scale_by_gamma"],
        freeze_bn: torch.nn.Module | None = None,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            torch.optim.SGD,
            gamma,
            L,
            inner_lr,
            noise,
            alpha,
            inner_momentum=inner_momentum,
            inner_nesterov=inner_nesterov,
            coupling_in_momentum=coupling_in_momentum,
            keep_inner_buffer=keep_inner_buffer,
            scale_by_gamma=scale_by_gamma,
            freeze_bn=freeze_bn,
            generator=generator,
            foreach=foreach,
            base_foreach=_sgd_foreach(foreach),
            **_sgd_kwargs(lr, momentum, nesterov, weight_decay),
        )


class HJ(LocalEntropy):
    """The inviscid Hamilton-Jacobi optimizer (thesis 4.6.1.2): Local Entropy at ``beta = inf``.

    No noise and the last inner iterate (``alpha = 0``): the inner loop runs ``L`` steps of
    (momentum) gradient descent on ``y -> f(y) + |y - x|^2 / (2 gamma)`` from ``y = x``, and
    the outer step applies SGD (Nesterov) to ``g = (x - y_L)/gamma``, which tends to
    ``grad u(x, gamma) = (x - prox_{gamma f}(x))/gamma`` of the Hopf-Lax solution
    ``u_t = -1/2 |grad u|^2`` as ``L`` grows (for a stable ``inner_lr``).  On
    ``f = x^T Q x / 2`` the limit is ``(gamma Q + I)^{-1} Q x`` (thesis Lemma 4.4).
    Arguments as in :class:`EntropySGD`.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = HJ_OUTER["lr"],
        gamma: float | Any = HJ_DEFAULTS["gamma"],
        L: int = HJ_DEFAULTS["L"],
        inner_lr: float | Any = HJ_DEFAULTS["inner_lr"],
        momentum: float = HJ_OUTER["momentum"],
        nesterov: bool = HJ_OUTER["nesterov"],
        weight_decay: float = HJ_OUTER["weight_decay"],
        *,
        inner_momentum: float = HJ_DEFAULTS["inner_momentum"],
        inner_nesterov: bool = HJ_DEFAULTS["inner_nesterov"],
        coupling_in_momentum: bool = HJ_DEFAULTS["coupling_in_momentum"],
        keep_inner_buffer: bool = HJ_DEFAULTS["keep_inner_buffer"],
        scale_by_gamma: bool = HJ_DEFAULTS["scale_by_gamma"],
        freeze_bn: torch.nn.Module | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            torch.optim.SGD,
            gamma,
            L,
            inner_lr,
            0.0,
            0.0,
            inner_momentum=inner_momentum,
            inner_nesterov=inner_nesterov,
            coupling_in_momentum=coupling_in_momentum,
            keep_inner_buffer=keep_inner_buffer,
            scale_by_gamma=scale_by_gamma,
            freeze_bn=freeze_bn,
            foreach=foreach,
            base_foreach=_sgd_foreach(foreach),
            **_sgd_kwargs(lr, momentum, nesterov, weight_decay),
        )
