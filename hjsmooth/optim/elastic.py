"""Elastic-SGD and Parle: ``n`` replicas coupled to a master (thesis chapter 5).

Both keep, for every parameter ``p`` of the model, a stack of replicas ``x^a``
(``state[p]["replicas"]``, shape ``(n_local, *p.shape)``) and leave the *master* ``x`` in
the model's parameters after each step, so that evaluating the model evaluates the
master.  The closure takes the replica index, ``closure(a)``, so each replica can draw
its minibatch from its own shard of the data (section 5.5).

Parle (5.8), one outer step, for every replica ``a``::

    y = <y> = x^a, buf = 0                                       (re-initialised)
    L times:  v = grad f_a(y) + (y - x^a)/gamma   [buf <- mu buf + v; v = buf]
              y <- y - inner_lr v + sqrt(2 inner_lr noise) N(0, I)
              <y> <- alpha <y> + (1 - alpha) y                  (5.8a, 5.8b)
    G^a = (x^a - <y>) + (x^a - x)/rho                           (5.8c)
    x^a <- SGD(momentum, nesterov, weight decay) step with G^a and lr
    x   <- (1/n) sum_a x^a                                      (5.8d)

with the thesis' normalisation (section 5.3.2) ``eta^(1) = lr gamma``, ``eta^(2) = lr``,
``eta^(3) = rho/n``: the Local Entropy term is ``gamma grad f_gamma(x^a) = x^a - <y>``,
and the master moves to the replicas' mean.  The master is the mean of the *updated*
replicas (Gauss-Seidel order; the printed (5.8d) uses the old ones, one step behind).

Elastic-SGD (5.4): every step, ``G^a = grad f_a(x^a) + (x^a - x)/rho``, the same SGD step,
and the master moved to the mean.  The special cases of section 5.3 hold exactly:
``Parle(n=1, rho=inf)`` is ``EntropySGD(..., scale_by_gamma=True)`` and
``Parle(L=1, gamma=inf, alpha=0, inner_lr=1)`` is ``ElasticSGD``.

Across processes (``distributed=True``): one replica per rank of the default (or given)
process group, the closure called with ``a = rank``; the master is formed with one
``all_reduce`` per outer step (every ``L`` gradient evaluations).  A peer that dies
makes the reduction fail within ``timeout`` seconds with ``RuntimeError``.

Vectorised replicas: ``step(ReplicaBatches(model, loss_fn, batches))`` instead of
``step(closure)`` evaluates all local replicas at once.  Each gradient evaluation draws
one stacked minibatch ``batches() -> (inputs, targets)`` of leading dimension ``n_local``
(replica ``a`` reads slice ``a``, its shard) and computes every replica's loss and
gradient at the stacked evaluation points ``y = x^a + d^a`` with ``torch.func.vmap`` of
``grad_and_value`` of ``functional_call``: ``L`` batched passes per outer step of Parle
instead of ``n L``, and the inner updates act on the stacked tensors (one operation per
parameter for all replicas).  Replica ``a``'s noise is drawn from its generator in the
order of the sequential path (with one generator shared by the replicas, it is advanced
through the sequential order and each replica reads its own stretch), so
``step(rb)`` and ``step(rb.sequential_closure(opt))`` follow the same trajectory up to the
rounding of batched kernels (float64: ~1e-16 per step).  The model's parameters are not
touched during the evaluations.  BatchNorm layers must be in eval mode (or built with
``track_running_stats=False``): in-place updates of running statistics cannot be vmapped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._checks import (
    as_loss,
    check_alpha,
    check_count,
    check_nonnegative_float,
    check_scope,
    resolve,
    sgd_kwargs,
)
from hjsmooth.optim.vectorized import ReplicaBatches

__all__ = ["Parle", "ElasticSGD"]

ReplicaClosure = Callable[[int], Any]
_SGD_KEYS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")


class _Replicated(Optimizer):
    """Replica storage, the replicas' SGD, the master reduction and checkpoints."""

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        n: int | None,
        *,
        distributed: bool,
        process_group: Any,
        timeout: float,
        generator: torch.Generator | Sequence[torch.Generator] | None,
        foreach: bool | None,
    ) -> None:
        super().__init__(params, defaults)
        self.distributed = bool(distributed)
        self.process_group = process_group
        self.timeout = check_nonnegative_float(timeout, "timeout")
        if self.distributed:
            import torch.distributed as dist

            if not dist.is_available() or not dist.is_initialized():
                raise RuntimeError("`distributed=True` needs an initialised torch.distributed process group "
                                   "(torch.distributed.init_process_group)")
            world = dist.get_world_size(process_group)
            if n is not None and n != world:
                raise ValueError(f"`n` must equal the world size {world} when distributed=True, got {n!r}")
            self.n = world
            self.rank = dist.get_rank(process_group)
            self.replica_ids = [self.rank]
            src = dist.get_global_rank(process_group, 0) if process_group is not None else 0
            with torch.no_grad():  # every rank starts from rank 0's weights
                for group in self.param_groups:
                    for p in group["params"]:
                        dist.broadcast(p.data, src=src, group=process_group)
        else:
            self.n = check_count(n, "n")
            self.rank = 0
            self.replica_ids = list(range(self.n))
        if isinstance(generator, torch.Generator):
            generator = [generator]
        if generator is not None:
            generator = list(generator)
            if len(generator) not in (1, len(self.replica_ids)) or not all(
                    isinstance(g, torch.Generator) for g in generator):
                raise TypeError(f"`generator` must be a torch.Generator or one per local replica "
                                f"({len(self.replica_ids)}), got {generator!r}")
        self._generators: list[torch.Generator] | None = generator
        self._foreach = foreach
        self.outer_step = 0
        self.stats: dict[str, float] = {}
        n_local = len(self.replica_ids)
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                st["replicas"] = p.detach().unsqueeze(0).repeat(n_local, *([1] * p.dim())).contiguous()
        self._build_replica_sgd()

    # ------------------------------------------------------------------ helpers
    def _replica_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.state[p]["replicas"] for p in g["params"]],
                 **{k: g[k] for k in _SGD_KEYS if k in g}} for g in self.param_groups]

    def _build_replica_sgd(self) -> None:
        self.replica_optimizer = torch.optim.SGD(self._replica_groups(), lr=self.param_groups[0]["lr"])

    def _sync_replica_hyperparameters(self) -> None:
        for g, rg in zip(self.param_groups, self.replica_optimizer.param_groups):
            for k in _SGD_KEYS:
                if k in g:
                    rg[k] = g[k]

    def _use_foreach(self, tensors: list[torch.Tensor]) -> bool:
        if self._foreach is not None:
            return bool(self._foreach)
        return bool(tensors) and all(t.is_cuda for t in tensors)

    def _generator(self, local: int, device: torch.device) -> torch.Generator:
        if self._generators is None:
            self._generators = [
                torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
                for _ in self.replica_ids
            ]
        return self._generators[local if len(self._generators) > 1 else 0]

    def _call(self, closure: ReplicaClosure, a: int, where: Callable[[], str]) -> float:
        with torch.enable_grad():
            loss = closure(a)
        return as_loss(loss, where)

    def _check_closure(self, closure: Any) -> None:
        if closure is None:
            raise TypeError(
                f"{type(self).__name__}.step needs a closure `closure(a)` that draws a minibatch for replica `a`, "
                "zeroes the gradients, runs forward and backward and returns the loss (or a ReplicaBatches, "
                "which evaluates all replicas at once)")
        if not callable(closure) and not isinstance(closure, ReplicaBatches):
            raise TypeError(f"`closure` must be callable or a ReplicaBatches, got {type(closure).__name__}")

    def _stacked_names(self, batches: ReplicaBatches, work: list[dict[str, Any]]) -> None:
        """Each group's parameter names in ``batches.model`` (``w["names"]``)."""
        for w in work:
            w["names"] = batches.parameter_names(w["params"])

    def _stacked_losses(self, batches: ReplicaBatches, stacked: dict[str, torch.Tensor],
                        where: Callable[[int], str]) -> tuple[list[float], dict[str, torch.Tensor]]:
        """One vmapped evaluation of every local replica: losses (checked finite) and stacked gradients."""
        losses, grads = batches.loss_and_grad(stacked, batches.draw(len(self.replica_ids)))
        values = [float(v) for v in losses.tolist()]
        for local, v in enumerate(values):
            if not math.isfinite(v):
                raise ValueError(f"ReplicaBatches returned a non-finite loss ({v}) at {where(local)}")
        return values, grads

    def _reduce_master(self, params: list[torch.Tensor], replicas: list[torch.Tensor]) -> float:
        """Write the replicas' mean into ``params``; return the replicas' RMS distance to it."""
        if not self.distributed:
            for p, r in zip(params, replicas):
                acc = r[0].to(torch.float64, copy=True)  # float64 sum in replica order, rounded once
                for i in range(1, r.shape[0]):
                    acc += r[i]
                p.copy_(acc / self.n)
            dev = params[0].device if params else torch.device("cpu")
            total = torch.zeros((), dtype=torch.float64, device=dev)
            for p, r in zip(params, replicas):
                total += ((r - p.unsqueeze(0)).double() ** 2).sum().to(dev)
            return math.sqrt(float(total) / self.n)
        device = params[0].device if params else torch.device("cpu")
        flat = torch.cat([r.reshape(-1).double() for r in replicas]) if replicas else torch.zeros(0, device=device)
        self._all_reduce(flat, "the master (sum of the replicas)")
        flat /= self.n
        offset = 0
        local_sq = torch.zeros(1, dtype=torch.float64, device=flat.device)
        for p, r in zip(params, replicas):
            k = r.numel()
            mean = flat[offset:offset + k].view_as(r[0])
            offset += k
            # the same floating-point mean as the one-process path would give is not
            # guaranteed across ranks; the sum is reduced in float64 and rounded once.
            p.copy_(mean.to(p.dtype))
            local_sq += ((r - p.unsqueeze(0)).double() ** 2).sum()
        self._all_reduce(local_sq, "the replica spread")
        return math.sqrt(float(local_sq) / self.n)

    def _all_reduce(self, tensor: torch.Tensor, what: str) -> None:
        """Sum ``tensor`` over the ranks; a dead or silent peer raises ``RuntimeError`` within ``timeout``."""
        import torch.distributed as dist

        try:
            work = dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.process_group, async_op=True)
            ok = work.wait(timeout=timedelta(seconds=self.timeout))
        except (RuntimeError, dist.DistBackendError) as exc:
            raise RuntimeError(
                f"{type(self).__name__}: all_reduce of {what} failed at outer step {self.outer_step} on rank "
                f"{self.rank} of {self.n} (timeout {self.timeout:g} s); a peer process has probably died: {exc}"
            ) from exc
        if ok is False:
            raise RuntimeError(
                f"{type(self).__name__}: all_reduce of {what} did not complete within {self.timeout:g} s at outer "
                f"step {self.outer_step} on rank {self.rank} of {self.n}; a peer process has probably died")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["replica_optimizer"] = self.replica_optimizer.state_dict()
        sd["outer_step"] = self.outer_step
        sd["n"] = self.n
        sd["replica_ids"] = list(self.replica_ids)
        if self._generators is not None:
            sd["generators"] = [{"device": str(g.device), "state": g.get_state()} for g in self._generators]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        replica_sd = state_dict.pop("replica_optimizer", None)
        if replica_sd is None:
            raise ValueError("`state_dict` has no 'replica_optimizer' entry: it was not saved by ElasticSGD/Parle")
        n = state_dict.pop("n")
        ids = state_dict.pop("replica_ids")
        if n != self.n or list(ids) != self.replica_ids:
            raise ValueError(f"`state_dict` holds replicas {ids} of n={n}; this optimizer holds "
                             f"{self.replica_ids} of n={self.n}")
        outer_step = state_dict.pop("outer_step", 0)
        gens = state_dict.pop("generators", None)
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # own the tensors: never share them with the dictionary given
            for p in group["params"]:
                for key, value in self.state[p].items():
                    if isinstance(value, torch.Tensor):
                        self.state[p][key] = value.clone()
        self._build_replica_sgd()
        self.replica_optimizer.load_state_dict(replica_sd)
        self.outer_step = int(outer_step)
        if gens is not None:
            params = [p for g in self.param_groups for p in g["params"]]
            device = params[0].device if params else torch.device("cpu")
            self._generators = [torch.Generator(device=device) for _ in gens]
            for g, saved in zip(self._generators, gens):
                g.set_state(saved["state"])

    # ------------------------------------------------------------------ the step
    def _replica_gradients(self, closure: ReplicaClosure, work: list[dict[str, Any]]
                           ) -> tuple[list[float], list[float]]:
        raise NotImplementedError  # pragma: no cover

    def _replica_gradients_stacked(self, batches: ReplicaBatches, work: list[dict[str, Any]]
                                   ) -> tuple[list[float], list[float]]:
        raise NotImplementedError  # pragma: no cover

    @torch.no_grad()
    def step(self, closure: ReplicaClosure | ReplicaBatches | None = None) -> float:  # type: ignore[override]
        """One outer step of every local replica, then the master; returns the mean loss at the replicas.

        ``closure`` is either ``closure(a)`` (called for one replica at a time, the model's
        parameters holding that replica's evaluation point) or a
        :class:`~hjsmooth.optim.ReplicaBatches` (all local replicas evaluated at once with
        ``torch.func.vmap``; the model's parameters are not touched until the master is written).
        """
        self._check_closure(closure)
        self._sync_replica_hyperparameters()
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"]]
            if not params:
                continue
            w = dict(group=group, params=params, foreach=self._use_foreach(params),
                     replicas=[self.state[p]["replicas"] for p in params],
                     rho=resolve(group["rho"], self.outer_step, "rho", allow_inf=True))
            master = [st["master_copy"] for st in self._ensure(params, "master_copy", stacked=False)]
            F.copy_(master, params, w["foreach"])
            w["master"] = master
            work.append(w)
        if isinstance(closure, ReplicaBatches):
            losses, inner = self._replica_gradients_stacked(closure, work)
        else:
            losses, inner = self._replica_gradients(closure, work)
        # elastic term, with the master of the start of the step
        for w in work:
            for p, r, m in zip(w["params"], w["replicas"], w["master"]):
                F.elastic_add_([r.grad], [r], [m.unsqueeze(0)], w["rho"], False)
        self.replica_optimizer.step()
        params = [p for w in work for p in w["params"]]
        replicas = [r for w in work for r in w["replicas"]]
        spread = self._reduce_master(params, replicas)
        self.outer_step += 1
        self.stats = {"loss": sum(losses) / max(len(losses), 1), "inner_loss": sum(inner) / max(len(inner), 1),
                      "replica_spread": spread}
        return self.stats["loss"]

    def _ensure(self, params: list[torch.Tensor], key: str, *, stacked: bool) -> list[dict[str, Any]]:
        out = []
        for p in params:
            st = self.state[p]
            if key not in st:
                st[key] = torch.zeros_like(st["replicas"]) if stacked else torch.empty_like(p)
            out.append(st)
        return out


class Parle(_Replicated):
    """Parle (thesis (5.8)): Entropy-SGD in each of ``n`` replicas, Elastic-SGD between them.

    Parameters
    ----------
    params : iterable of tensors or dicts
        The model's parameters (they hold the master ``x`` after every step).
    lr : float
        Outer learning rate (driven by any ``torch.optim.lr_scheduler``).
    gamma : float or callable
        Local Entropy scope (``> 0``, ``inf`` allowed) or a schedule of the outer step,
        e.g. ``schedules.parle(100, B, minimum=1)`` for (5.10).
    rho : float or callable
        Elastic scope (``> 0``, ``inf`` decouples the replicas) or a schedule,
        e.g. ``schedules.parle(1, B, minimum=0.1)``.
    n : int
        Number of replicas (``>= 1``); with ``distributed=True`` the world size.
    L : int
        Inner steps per outer step (thesis: 25).
    inner_lr, noise, alpha, inner_momentum
        As in :class:`~hjsmooth.optim.LocalEntropy` (inner loop of each replica, reset
        every outer step).  The thesis' chapter 5 uses ``alpha = 0.75`` in this
        convention (its 0.25 weighs the new sample) and no added noise.
    momentum, nesterov, weight_decay
        Of the SGD step on each replica with ``G^a`` (module docstring).
    distributed, process_group, timeout
        One replica per rank; the reduction fails after ``timeout`` seconds.
    generator : torch.Generator or sequence of them, optional
        One per local replica (or one shared), saved in ``state_dict``.

    ``step(closure)`` takes ``closure(a)`` (replica ``a`` evaluated with its point
    ``y = x^a + d^a`` held in the model's parameters, ``n L`` calls per outer step) or a
    :class:`~hjsmooth.optim.ReplicaBatches` (all local replicas at each inner step in one
    ``torch.func.vmap`` call, ``L`` calls; the same trajectory, see the module docstring)::

        rb = ReplicaBatches(model, F.cross_entropy, batches)   # batches() -> (n, B, ...) pairs
        opt.step(rb)

    ``stats`` after a step: ``loss`` (mean over replicas of their first inner loss),
    ``inner_loss``, ``replica_spread`` (RMS distance of the replicas to the new master).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        gamma: float | Any,
        rho: float | Any,
        n: int | None = None,
        L: int = 25,
        inner_lr: float = 0.1,
        noise: float = 0.0,
        alpha: float = 0.75,
        inner_momentum: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        distributed: bool = False,
        process_group: Any = None,
        timeout: float = 300.0,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(**sgd_kwargs(lr, momentum, nesterov, weight_decay),
                        gamma=check_scope(gamma, "gamma", allow_inf=True),
                        rho=check_scope(rho, "rho", allow_inf=True), L=check_count(L, "L"),
                        inner_lr=check_scope(inner_lr, "inner_lr"), noise=check_nonnegative_float(noise, "noise"),
                        alpha=check_alpha(alpha),
                        inner_momentum=check_nonnegative_float(inner_momentum, "inner_momentum"),
                        dampening=0.0, maximize=False)
        if n is None and not distributed:
            raise TypeError("`n` (the number of replicas) is required unless distributed=True")
        super().__init__(params, defaults, n, distributed=distributed, process_group=process_group,
                         timeout=timeout, generator=generator, foreach=foreach)

    def _prepare_inner(self, work: list[dict[str, Any]]) -> None:
        for w in work:
            sts = self._ensure(w["params"], "displacement", stacked=True)
            self._ensure(w["params"], "average", stacked=True)
            w["disp"] = [st["displacement"] for st in sts]
            w["avg"] = [st["average"] for st in sts]
            if w["group"]["inner_momentum"] > 0:
                w["buf"] = [st["inner_buffer"] for st in self._ensure(w["params"], "inner_buffer", stacked=True)]
            w["gamma"] = resolve(w["group"]["gamma"], self.outer_step, "gamma", allow_inf=True)
            w["lr"] = resolve(w["group"]["inner_lr"], self.outer_step, "inner_lr")

    def _replica_gradients(self, closure: ReplicaClosure, work: list[dict[str, Any]]
                           ) -> tuple[list[float], list[float]]:
        self._prepare_inner(work)
        n_inner = max((w["group"]["L"] for w in work), default=1)
        first_losses: list[float] = []
        all_losses: list[float] = []
        try:
            for local, a in enumerate(self.replica_ids):
                per = []
                for w in work:
                    per.append(dict(
                        w=w, xa=[r[local] for r in w["replicas"]], d=[t[local] for t in w["disp"]],
                        m=[t[local] for t in w["avg"]], b=[t[local] for t in w["buf"]] if "buf" in w else None))
                    F.zero_(per[-1]["d"], w["foreach"])
                    F.zero_(per[-1]["m"], w["foreach"])
                    if per[-1]["b"] is not None:
                        F.zero_(per[-1]["b"], w["foreach"])
                    F.copy_(w["params"], per[-1]["xa"], w["foreach"])
                for step in range(n_inner):
                    loss = self._call(closure, a, lambda: (f"inner step {step + 1} of {n_inner} of replica {a} "
                                                           f"(outer step {self.outer_step})"))
                    all_losses.append(loss)
                    if step == 0:
                        first_losses.append(loss)
                    for q in per:
                        w, g = q["w"], q["w"]["group"]
                        if step >= g["L"]:
                            continue
                        grads = F.grads_or_zeros(w["params"])
                        F.inner_step_(q["d"], grads, q["b"], gamma=w["gamma"], lr=w["lr"],
                                      momentum=g["inner_momentum"], foreach=w["foreach"])
                        if g["noise"] > 0:
                            F.add_noise_(q["d"], math.sqrt(2.0 * w["lr"] * g["noise"]),
                                         self._generator(local, w["params"][0].device))
                        F.running_average_(q["m"], q["d"], g["alpha"], w["foreach"])
                        if step < g["L"] - 1:
                            F.add_into_(w["params"], q["xa"], q["d"], w["foreach"])
                        else:  # done: a group with a smaller L waits at x^a
                            F.copy_(w["params"], q["xa"], w["foreach"])
        finally:
            for w in work:
                F.copy_(w["params"], w["master"], w["foreach"])
        self._set_local_entropy_grads(work)
        return first_losses, all_losses

    @staticmethod
    def _set_local_entropy_grads(work: list[dict[str, Any]]) -> None:
        for w in work:  # G^a = x^a - <y>^a, stacked over the local replicas
            for r, m in zip(w["replicas"], w["avg"]):
                if r.grad is None:
                    r.grad = torch.empty_like(r)
                torch.mul(m, -1.0, out=r.grad)

    def _noise_generators(self, work: list[dict[str, Any]], n_inner: int) -> list[torch.Generator]:
        """One generator per local replica for the stacked path, drawing what the sequential path draws.

        With one generator per replica these are the replicas' own generators (the
        sequential path draws, from replica ``a``'s generator, step by step and group by
        group, exactly what the stacked path draws).  With one generator shared by several
        replicas, the sequential path draws replica 0's noise for all inner steps, then
        replica 1's, ...: the shared generator is advanced through those draws here (the
        same calls, discarded), and each replica gets a copy started where its draws begin.
        """
        noisy = [w for w in work if w["group"]["noise"] > 0]
        if not noisy:
            return []
        n_local = len(self.replica_ids)
        gens = [self._generator(local, work[0]["params"][0].device) for local in range(n_local)]
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
                    if step >= w["group"]["L"]:
                        continue
                    for (_, dtype), idx in F.buckets(w["disp"]).items():
                        torch.randn(sum(w["disp"][i][0].numel() for i in idx), generator=shared,
                                    device=shared.device, dtype=dtype)
        return out

    def _replica_gradients_stacked(self, batches: ReplicaBatches, work: list[dict[str, Any]]
                                   ) -> tuple[list[float], list[float]]:
        """The inner loops of all local replicas at once: one vmapped gradient per inner step.

        The evaluation points ``y^a = x^a + d^a`` are stacked (``w["y"]``, shape
        ``(n_local, *p.shape)``); the drift, the running average and the placement are one
        tensor operation per parameter for all replicas; the noise of replica ``a`` is
        drawn from its generator in the order of the sequential path.
        """
        self._prepare_inner(work)
        self._stacked_names(batches, work)
        n_inner = max((w["group"]["L"] for w in work), default=1)
        n_local = len(self.replica_ids)
        for w in work:
            F.zero_(w["disp"], w["foreach"])
            F.zero_(w["avg"], w["foreach"])
            if "buf" in w:
                F.zero_(w["buf"], w["foreach"])
            w["y"] = [r.clone() for r in w["replicas"]]
        gens = self._noise_generators(work, n_inner)
        per_replica: list[list[float]] = [[] for _ in range(n_local)]
        for step in range(n_inner):
            stacked = {name: y for w in work for name, y in zip(w["names"], w["y"])}
            values, grads = self._stacked_losses(
                batches, stacked, lambda local: (f"inner step {step + 1} of {n_inner} of replica "
                                                 f"{self.replica_ids[local]} (outer step {self.outer_step})"))
            for local, v in enumerate(values):
                per_replica[local].append(v)
            for w in work:
                g = w["group"]
                if step >= g["L"]:
                    continue
                F.inner_step_(w["disp"], [grads[name] for name in w["names"]], w.get("buf"), gamma=w["gamma"],
                              lr=w["lr"], momentum=g["inner_momentum"], foreach=w["foreach"])
                if g["noise"] > 0:
                    scale = math.sqrt(2.0 * w["lr"] * g["noise"])
                    for local in range(n_local):
                        F.add_noise_([d[local] for d in w["disp"]], scale, gens[local])
                F.running_average_(w["avg"], w["disp"], g["alpha"], w["foreach"])
                if step < g["L"] - 1:
                    F.add_into_(w["y"], w["replicas"], w["disp"], w["foreach"])
                else:  # done: a group with a smaller L waits at x^a
                    F.copy_(w["y"], w["replicas"], w["foreach"])
        for w in work:
            del w["y"]
        self._set_local_entropy_grads(work)
        return [v[0] for v in per_replica], [x for v in per_replica for x in v]


class ElasticSGD(_Replicated):
    """Elastic-SGD (thesis (5.4)): ``n`` replicas each taking SGD steps on
    ``f_a(x^a) + |x^a - x|^2/(2 rho)``, the master moved to their mean every step.

    ``G^a = grad f_a(x^a) + (x^a - x)/rho``; SGD (momentum, Nesterov, weight decay) on each
    replica; ``x <- mean_a x^a`` (the normalisation ``eta' = rho/n`` of section 5.3.2).
    Parameters as in :class:`Parle` (without the inner loop).  ``step`` takes ``closure(a)``
    or a :class:`~hjsmooth.optim.ReplicaBatches` (every replica's gradient in one
    ``torch.func.vmap`` call at the stacked replicas).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        rho: float | Any,
        n: int | None = None,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        distributed: bool = False,
        process_group: Any = None,
        timeout: float = 300.0,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(**sgd_kwargs(lr, momentum, nesterov, weight_decay),
                        rho=check_scope(rho, "rho", allow_inf=True), dampening=0.0, maximize=False)
        if n is None and not distributed:
            raise TypeError("`n` (the number of replicas) is required unless distributed=True")
        super().__init__(params, defaults, n, distributed=distributed, process_group=process_group,
                         timeout=timeout, generator=None, foreach=foreach)

    def _replica_gradients(self, closure: ReplicaClosure, work: list[dict[str, Any]]
                           ) -> tuple[list[float], list[float]]:
        losses = []
        try:
            for local, a in enumerate(self.replica_ids):
                for w in work:
                    F.copy_(w["params"], [r[local] for r in w["replicas"]], w["foreach"])
                losses.append(self._call(closure, a, lambda: f"replica {a} (step {self.outer_step})"))
                for w in work:
                    for p, r in zip(w["params"], w["replicas"]):
                        if r.grad is None:
                            r.grad = torch.empty_like(r)
                        r.grad[local].copy_(p.grad if p.grad is not None else torch.zeros_like(p))
        finally:
            for w in work:
                F.copy_(w["params"], w["master"], w["foreach"])
        return losses, losses

    def _replica_gradients_stacked(self, batches: ReplicaBatches, work: list[dict[str, Any]]
                                   ) -> tuple[list[float], list[float]]:
        """All local replicas' gradients ``grad f_a(x^a)`` in one vmapped evaluation at the stacked replicas."""
        self._stacked_names(batches, work)
        stacked = {name: r for w in work for name, r in zip(w["names"], w["replicas"])}
        losses, grads = self._stacked_losses(
            batches, stacked, lambda local: f"replica {self.replica_ids[local]} (step {self.outer_step})")
        for w in work:
            for name, r in zip(w["names"], w["replicas"]):
                if r.grad is None:
                    r.grad = torch.empty_like(r)
                r.grad.copy_(grads[name])
        return losses, losses
