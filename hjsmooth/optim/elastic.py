"""Elastic-SGD and Parle: ``n`` replicas coupled to a master (thesis chapter 5).

Storage, the replicas' SGD step, the master and the communication are
:class:`~hjsmooth.optim._replicas.ReplicatedOptimizer`'s; this module holds the two
algorithms, i.e. how each replica's update direction ``G^a`` is formed.  Each call of
``step()`` consumes one gradient of the replica ``optimizer.replica`` (whose point the model
holds), so a loop can draw that replica's minibatch from its own shard of the data
(section 5.5); ``step_outer(closure)`` calls ``closure(a)`` with the replica index, or
``closure()`` when it takes no argument.

Parle (5.8), one outer step, for every replica ``a``::

    y = <y> = x^a   [inner buffer zeroed unless keep_inner_buffer]
    L times:  inner Langevin step of y from x^a (hjsmooth.optim._inner)   (5.8a, 5.8b)
    G^a = (x^a - <y>) + (x^a - x)/rho                                   (5.8c)
    x^a <- SGD(momentum, nesterov, weight decay) step with G^a and lr
    x   <- (1/n) sum_a x^a                                              (5.8d)

with the thesis' normalisation (section 5.3.2) ``eta^(1) = lr gamma``, ``eta^(2) = lr``,
``eta^(3) = rho/n``: the Local Entropy term is ``gamma grad f_gamma(x^a) = x^a - <y>``,
and the master moves to the replicas' mean.  The master is the mean of the *updated*
replicas (Gauss-Seidel order; the printed (5.8d) uses the old ones, one step behind).

Elastic-SGD (5.4): every step, ``G^a = grad f_a(x^a) + (x^a - x)/rho``, the same SGD step,
and the master moved to the mean.  The special cases of section 5.3 hold exactly:
``Parle(n=1, rho=inf)`` is ``EntropySGD(..., scale_by_gamma=True)`` and
``Parle(L=1, gamma=inf, alpha=0, inner_lr=1, inner_momentum=0)`` is ``ElasticSGD``.

Vectorised replicas: ``step_outer(ReplicaBatches(model, loss_fn, batches))`` instead of
``step_outer(closure)`` evaluates all local replicas at once: ``L`` vmapped passes per outer
step of Parle instead of ``n L`` (:mod:`hjsmooth.optim.vectorized`); the inner updates act
on the stacked tensors.  Replica ``a``'s noise is drawn from its generator in the order
of the sequential path (with one generator shared by the replicas, it is advanced
through the sequential order and each replica reads its own stretch), so ``step_outer(rb)``
and ``step_outer(rb.sequential_closure(opt))`` follow the same trajectory up to the rounding
of batched kernels (float64: ~1e-16 per step).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._checks import (
    INNER_CHECKS,
    NonFiniteError,
    check_flag,
    check_scope_or_inf,
    resolve,
    warn_if_unstable,
)
from hjsmooth.optim._inner import InnerLoop, InnerLoopGroups, InnerSettings
from hjsmooth.optim._replicas import ReplicaGroup, ReplicatedOptimizer, ReplicaWork
from hjsmooth.optim.local_entropy import _sgd_kwargs
from hjsmooth.optim.vectorized import ReplicaBatches

__all__ = ["Parle", "ElasticSGD", "PARLE_DEFAULTS", "ELASTIC_DEFAULTS"]

#: Defaults of Elastic-SGD (measured on the project's tasks: docs/optimizers.md).
ELASTIC_DEFAULTS: dict[str, Any] = dict(lr=0.15, rho=1.0, momentum=0.9, nesterov=True, weight_decay=0.0)
#: Defaults of Parle (measured on the project's tasks: docs/optimizers.md).
PARLE_DEFAULTS: dict[str, Any] = dict(
    lr=0.6,
    gamma=1.0,
    rho=1.0,
    L=5,
    inner_lr=0.1,
    noise=0.0,
    alpha=0.75,
    momentum=0.9,
    nesterov=True,
    weight_decay=0.0,
    inner_momentum=0.9,
    inner_nesterov=True,
    coupling_in_momentum=False,
    keep_inner_buffer=True,
)

_ELASTIC_CHECKS = {"rho": check_scope_or_inf, "nesterov": check_flag}
_PARLE_CHECKS = {
    **_ELASTIC_CHECKS,
    "gamma": check_scope_or_inf,
    **INNER_CHECKS,
}


class Parle(InnerLoopGroups, ReplicatedOptimizer):
    """Parle (thesis (5.8)): Entropy-SGD in each of ``n`` replicas, Elastic-SGD between them.

    Every argument has a default (docs/optimizers.md); the thesis' chapter-5 setting is
    :func:`hjsmooth.optim.recipes.parle_section_5_3`.

    Parameters
    ----------
    params : iterable of tensors or dicts
        The model's parameters (they hold the master ``x`` after every step).
    lr : float
        Outer learning rate of the replicas' SGD step (driven by any
        ``torch.optim.lr_scheduler``).
    gamma : float or callable
        Local Entropy scope (``> 0``, ``inf`` allowed) or a schedule of the outer step,
        e.g. ``schedules.parle(100, B, minimum=1)`` for (5.10).
    rho : float or callable
        Elastic scope (``> 0``, ``inf`` decouples the replicas) or a schedule,
        e.g. ``schedules.parle(1, B, minimum=0.1)``.
    n : int
        Number of replicas (``>= 1``, default 2 in one process); with ``distributed=True`` the world size.
    L, inner_lr, noise, alpha
        As in :class:`~hjsmooth.optim.LocalEntropy` (the inner loop of each replica).
    momentum, nesterov, weight_decay
        Of the SGD step on each replica with ``G^a`` (module docstring).
    inner_momentum, inner_nesterov, coupling_in_momentum, keep_inner_buffer
        As in :class:`~hjsmooth.optim.LocalEntropy`; with ``keep_inner_buffer`` each
        replica keeps its own inner momentum buffer across outer steps (in ``state_dict``).
    distributed, process_group, timeout
        One replica per rank; the reduction fails after ``timeout`` seconds.
    generator : torch.Generator or sequence of them, optional
        One per local replica (or one shared), saved in ``state_dict``.
    freeze_bn : torch.nn.Module, optional
        The model whose BatchNorm running statistics only the first call of each outer step
        (replica 0's first inner step, at ``x^0``) may update.  Default: the statistics
        follow every call.  (Re-estimate them at the master before evaluating, e.g. with
        ``torch.optim.swa_utils.update_bn``.)

    Notes
    -----
    One outer step is ``n L`` calls of ``step()`` in one process (replica 0's ``L`` inner
    steps, then replica 1's, ...), ``L`` per rank with ``distributed=True``; between calls the
    model holds the point ``y = x^a + d^a`` of replica ``a = opt.replica``, and
    ``with opt.at_anchor():`` puts the master into it.  ``step_outer`` takes ``closure(a)``
    or a :class:`~hjsmooth.optim.ReplicaBatches` (all local replicas at each inner step in
    one ``torch.func.vmap`` call, ``L`` calls; the same trajectory, see the module
    docstring).  ``stats`` after an outer step: ``loss`` (mean over replicas of their first
    inner loss), ``inner_loss``, ``replica_spread`` (RMS distance of the replicas to the new
    master).
    """

    hyperparameters = _PARLE_CHECKS

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = PARLE_DEFAULTS["lr"],
        gamma: float | Any = PARLE_DEFAULTS["gamma"],
        rho: float | Any = PARLE_DEFAULTS["rho"],
        n: int | None = None,
        L: int = PARLE_DEFAULTS["L"],
        inner_lr: float | Any = PARLE_DEFAULTS["inner_lr"],
        noise: float = PARLE_DEFAULTS["noise"],
        alpha: float = PARLE_DEFAULTS["alpha"],
        momentum: float = PARLE_DEFAULTS["momentum"],
        nesterov: bool = PARLE_DEFAULTS["nesterov"],
        weight_decay: float = PARLE_DEFAULTS["weight_decay"],
        *,
        inner_momentum: float = PARLE_DEFAULTS["inner_momentum"],
        inner_nesterov: bool = PARLE_DEFAULTS["inner_nesterov"],
        coupling_in_momentum: bool = PARLE_DEFAULTS["coupling_in_momentum"],
        keep_inner_buffer: bool = PARLE_DEFAULTS["keep_inner_buffer"],
        distributed: bool = False,
        process_group: Any = None,
        timeout: float = 300.0,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        foreach: bool | None = None,
        freeze_bn: torch.nn.Module | None = None,
    ) -> None:
        defaults = dict(
            **_sgd_kwargs(lr, momentum, nesterov, weight_decay),
            gamma=gamma,
            rho=rho,
            L=L,
            inner_lr=inner_lr,
            noise=noise,
            alpha=alpha,
            inner_momentum=inner_momentum,
            inner_nesterov=inner_nesterov,
            coupling_in_momentum=coupling_in_momentum,
            keep_inner_buffer=keep_inner_buffer,
            dampening=0.0,
            maximize=False,
        )
        super().__init__(
            params,
            defaults,
            n,
            distributed=distributed,
            process_group=process_group,
            timeout=timeout,
            generator=generator,
            foreach=foreach,
            freeze_bn=freeze_bn,
        )

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        super()._check_group(group, index)
        self._warn_if_inner_unstable(group, index, "Parle")

    def _inner_buffer_like(self, p: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        return state["replicas"]

    # ------------------------------------------------------------------ the inner loops
    def _settings(self, group: dict[str, Any]) -> InnerSettings:
        k = self.outer_step
        gamma = resolve(group["gamma"], k, "gamma", allow_inf=True)
        lr = resolve(group["inner_lr"], k, "inner_lr")
        index = self._group_index(group)
        if index not in self._warned and (callable(group["gamma"]) or callable(group["inner_lr"])):
            if warn_if_unstable(
                lr,
                gamma,
                group["inner_momentum"],
                group["inner_nesterov"],
                group["coupling_in_momentum"],
                f"Parle param group {index} at outer step {k}",
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

    def _calls_per_replica(self) -> int:
        return max((g["L"] for g in self.param_groups), default=1)

    def _noisy(self) -> bool:
        return any(g["noise"] > 0 for g in self.param_groups)

    def _prepare_inner(self, work: ReplicaWork) -> None:
        """The stacked inner state ``d``, ``m``, ``b`` of the parameters taking part, per group (real views)."""
        for w in work.groups:
            s = self._settings(w.group)
            keep = w.group["keep_inner_buffer"]
            disp, avg, buf = [], [], []
            for i in w.taking:
                p, r = w.params[i], w.replicas[i]
                st = self._scratch_for(p, ("displacement", "average"), like=r)
                disp.append(ops.real(st["displacement"]))
                avg.append(ops.real(st["average"]))
                if s.momentum > 0:
                    home = self.state[p] if keep else self._scratch[p]
                    if "inner_buffer" not in home or home["inner_buffer"].shape != r.shape:
                        home["inner_buffer"] = torch.zeros_like(r)
                    buf.append(ops.real(home["inner_buffer"]))
            w.inner = _ParleGroup(
                settings=s, disp=disp, avg=avg, buf=buf if s.momentum > 0 else None, settings_L=w.group["L"]
            )

    def _loop(self, w: ReplicaGroup, local: int | None, fresh: bool) -> InnerLoop:
        """The inner loop of replica slice ``local`` (``None``: all local replicas stacked)."""

        def pick(ts: list[torch.Tensor]) -> list[torch.Tensor]:
            return ts if local is None else [t[local] for t in ts]

        g = w.inner
        loop = InnerLoop(
            pick(g.disp), pick(g.avg), None if g.buf is None else pick(g.buf), g.settings, w.foreach, fresh=fresh
        )
        if fresh:
            loop.reset(keep_buffer=w.group["keep_inner_buffer"])
        return loop

    def _replica_call(self, work: ReplicaWork, local: int, step: int, grads: list[list[torch.Tensor]]) -> None:
        if step == 0 or local not in work.loops:
            work.loops = {local: [self._loop(w, local, fresh=step == 0) for w in work.groups]}
        for w, loop, g in zip(work.groups, work.loops[local], grads):
            if step >= w.inner.settings_L or not w.taking:
                continue
            noise = None
            if loop.settings.noise > 0:
                noise = _noise_from(self.generator_for(w.params[0].device, local))
            loop.update(g, noise)
            loop.place(
                ops.reals([w.params[i] for i in w.taking]),
                ops.reals([w.replicas[i][local] for i in w.taking]),
                done=step == w.inner.settings_L - 1,
            )

    def _replica_done(self, work: ReplicaWork, local: int) -> None:
        for w in work.groups:  # G^a = x^a - <y>^a = -m^a
            for i, m in zip(w.taking, w.inner.avg):
                torch.mul(m[local], -1.0, out=ops.real(_stack_grad(w.replicas[i]))[local])

    def _inner_scratch(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        st = self._scratch.get(p, {})
        return {k: st[k] for k in ("displacement", "average", "inner_buffer") if k in st}

    def _noise_generators(self, work: ReplicaWork, n_inner: int) -> list[torch.Generator]:
        """One generator per local replica for the stacked path, drawing what the sequential path draws.

        With one generator per replica these are the replicas' own generators (the
        sequential path draws, from replica ``a``'s generator, step by step and group by
        group, exactly what the stacked path draws).  With one generator shared by several
        replicas, the sequential path draws replica 0's noise for all inner steps, then
        replica 1's, ...: the shared generator is advanced through those draws here (the
        same calls, discarded), and each replica gets a copy started where its draws begin.
        """
        noisy = [w for w in work.groups if w.inner.settings.noise > 0]
        if not noisy:
            return []
        n_local = len(self.replica_ids)
        device = work.groups[0].params[0].device
        gens = [self.generator_for(device, local) for local in range(n_local)]
        if n_local == 1 or self._generators is None or len(self._generators) > 1:
            return gens
        shared = gens[0]
        out = []
        for _ in range(n_local):
            g = torch.Generator(device=shared.device)
            g.set_state(shared.get_state())
            out.append(g)
            for step in range(n_inner):
                for w in noisy:
                    if step >= w.inner.settings_L:
                        continue
                    for (_, dtype), idx in ops.buckets(w.inner.disp).items():
                        torch.randn(
                            sum(w.inner.disp[i][0].numel() for i in idx),
                            generator=shared,
                            device=shared.device,
                            dtype=dtype,
                        )
        return out

    def _replica_gradients_stacked(self, batches: ReplicaBatches, work: ReplicaWork) -> tuple[list[Any], list[float]]:
        """The inner loops of all local replicas at once: one vmapped gradient per inner step.

        The evaluation points ``y^a = x^a + d^a`` are stacked (shape ``(n_local, *p.shape)``);
        the drift, the running average and the placement are one tensor operation per
        parameter for all replicas; the noise of replica ``a`` is drawn from its generator
        in the order of the sequential path.
        """
        n_inner = max((w.group["L"] for w in work.groups), default=1)
        n_local = len(self.replica_ids)
        outer = self.outer_step
        names = [batches.parameter_names(w.params) for w in work.groups]
        ys = [[r.clone() for r in w.replicas] for w in work.groups]
        per_replica: list[list[float]] = [[] for _ in range(n_local)]
        first: list[Any] = []
        loops: list[InnerLoop] = []
        gens: list[torch.Generator] = []
        for step in range(n_inner):
            stacked = {name: y for ns, yw in zip(names, ys) for name, y in zip(ns, yw)}
            losses, grads = batches.loss_and_grad(stacked, batches.draw(n_local))
            values = [float(v) for v in losses.tolist()]
            for local, v in enumerate(values):
                where = f"inner step {step + 1} of {n_inner} of replica {self.replica_ids[local]} (outer step {outer})"
                if not math.isfinite(v):
                    raise _non_finite_loss(v, where)
                per_replica[local].append(v)
            if step == 0:
                first = list(losses.detach().unbind(0))
                for w, ns in zip(work.groups, names):
                    w.taking = [
                        i
                        for i, (p, name) in enumerate(zip(w.params, ns))
                        if p.requires_grad and grads[name] is not None
                    ]
                    for i in w.taking:
                        r = w.replicas[i]
                        if r.grad is None or r.grad.shape != r.shape:
                            r.grad = torch.zeros_like(r)
                self._prepare_inner(work)
                loops = [self._loop(w, None, fresh=True) for w in work.groups]
                gens = self._noise_generators(work, n_inner)
            active = [
                (w, loop, ns, yw) for w, loop, ns, yw in zip(work.groups, loops, names, ys) if step < w.group["L"]
            ]
            g_active = [
                [
                    ops.real(grads[ns[i]]) if grads[ns[i]] is not None else torch.zeros_like(ops.real(w.replicas[i]))
                    for i in w.taking
                ]
                for w, _, ns, _ in active
            ]
            where = f"inner step {step + 1} of {n_inner} (outer step {outer}), one of replicas {self.replica_ids}"
            self._check_grads([g for gs in g_active for g in gs], functools.partial(str, where))
            for (w, loop, _, yw), g in zip(active, g_active):
                loop.update(g, _stacked_noise(gens) if loop.settings.noise > 0 else None)
                loop.place(
                    ops.reals([yw[i] for i in w.taking]),
                    ops.reals([w.replicas[i] for i in w.taking]),
                    done=step == w.group["L"] - 1,
                )
        for local in range(n_local):
            self._replica_done(work, local)
        return first, [x for v in per_replica for x in v]


@dataclass
class _ParleGroup:
    """A group's inner-loop settings and stacked state (real views) in the current outer step."""

    settings: InnerSettings
    disp: list[torch.Tensor]
    avg: list[torch.Tensor]
    buf: list[torch.Tensor] | None
    settings_L: int


def _stack_grad(stack: torch.Tensor) -> torch.Tensor:
    """The ``.grad`` of a replica stack that takes part (allocated at the first call of the outer step)."""
    grad = stack.grad
    assert grad is not None
    return grad


def _stacked_noise(gens: list[torch.Generator]) -> Any:
    """``noise(d, scale)`` for stacked replicas: slice ``a`` of each tensor of ``d`` from generator ``gens[a]``."""

    def noise(d: list[torch.Tensor], scale: float) -> None:
        for local, gen in enumerate(gens):
            ops.add_noise_([t[local] for t in d], scale, gen)

    return noise


def _noise_from(gen: torch.Generator) -> Any:
    """``noise(d, scale)``: add ``scale N(0, I)`` drawn from ``gen`` to the tensors ``d``."""
    return lambda d, scale: ops.add_noise_(d, scale, gen)


def _non_finite_loss(value: float, where: str) -> Exception:
    return NonFiniteError(
        f"ReplicaBatches returned a non-finite loss ({value}) at {where}; the weights were put "
        "back where the step began"
    )


class ElasticSGD(ReplicatedOptimizer):
    """Elastic-SGD (thesis (5.4)): ``n`` replicas each taking SGD steps on
    ``f_a(x^a) + |x^a - x|^2/(2 rho)``, the master moved to their mean every step.

    ``G^a = grad f_a(x^a) + (x^a - x)/rho``; SGD (momentum, Nesterov, weight decay) on each
    replica; ``x <- mean_a x^a`` (the normalisation ``eta' = rho/n`` of section 5.3.2).
    Every argument has a default (docs/optimizers.md); the others as in :class:`Parle`
    (without the inner loop).  One outer step is ``n`` calls of ``step()`` in one process
    (one per replica; the model holds replica ``opt.replica``'s point), one per rank with
    ``distributed=True``.  ``step_outer`` takes ``closure(a)`` or a
    :class:`~hjsmooth.optim.ReplicaBatches` (every replica's gradient in one
    ``torch.func.vmap`` call at the stacked replicas).  ``freeze_bn=model``: only replica
    0's evaluation updates the BatchNorm running statistics.
    """

    hyperparameters = _ELASTIC_CHECKS

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = ELASTIC_DEFAULTS["lr"],
        rho: float | Any = ELASTIC_DEFAULTS["rho"],
        n: int | None = None,
        momentum: float = ELASTIC_DEFAULTS["momentum"],
        nesterov: bool = ELASTIC_DEFAULTS["nesterov"],
        weight_decay: float = ELASTIC_DEFAULTS["weight_decay"],
        *,
        distributed: bool = False,
        process_group: Any = None,
        timeout: float = 300.0,
        foreach: bool | None = None,
        freeze_bn: torch.nn.Module | None = None,
    ) -> None:
        defaults = dict(**_sgd_kwargs(lr, momentum, nesterov, weight_decay), rho=rho, dampening=0.0, maximize=False)
        super().__init__(
            params,
            defaults,
            n,
            distributed=distributed,
            process_group=process_group,
            timeout=timeout,
            generator=None,
            foreach=foreach,
            freeze_bn=freeze_bn,
        )

    def _replica_call(self, work: ReplicaWork, local: int, step: int, grads: list[list[torch.Tensor]]) -> None:
        for w, gs in zip(work.groups, grads):
            for i, g in zip(w.taking, gs):
                ops.real(_stack_grad(w.replicas[i]))[local].copy_(g)

    def _replica_gradients_stacked(self, batches: ReplicaBatches, work: ReplicaWork) -> tuple[list[Any], list[float]]:
        """All local replicas' gradients ``grad f_a(x^a)`` in one vmapped evaluation at the stacked replicas."""
        outer = self.outer_step
        names = [batches.parameter_names(w.params) for w in work.groups]
        stacked = {name: r for w, ns in zip(work.groups, names) for name, r in zip(ns, w.replicas)}
        losses, grads = batches.loss_and_grad(stacked, batches.draw(len(self.replica_ids)))
        values = [float(v) for v in losses.tolist()]
        for local, v in enumerate(values):
            if not math.isfinite(v):
                raise _non_finite_loss(v, f"replica {self.replica_ids[local]} (outer step {outer})")
        taken = []
        for w, ns in zip(work.groups, names):
            w.taking = [
                i for i, (p, name) in enumerate(zip(w.params, ns)) if p.requires_grad and grads[name] is not None
            ]
            taken += [grads[ns[i]] for i in w.taking]
        self._check_grads(ops.reals(taken), lambda: f"outer step {outer}, one of replicas {self.replica_ids}")
        for w, ns in zip(work.groups, names):
            for i in w.taking:
                w.replicas[i].grad = grads[ns[i]].clone()
        return list(losses.detach().unbind(0)), values
