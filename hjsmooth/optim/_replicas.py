"""Replica storage, the per-call cycle and communication for Elastic-SGD and Parle (thesis chapter 5).

:class:`ReplicatedOptimizer` keeps, for every parameter ``p`` of the model, a stack of
replicas ``x^a`` (``state[p]["replicas"]``, shape ``(n_local, *p.shape)``) and the *master*
``x`` (``state[p]["master"]``).  One outer step is a cycle of calls: the calls of local
replica 0 (one for Elastic-SGD, ``L`` for Parle), then replica 1's, ...; between calls the
model's parameters hold the point where the next gradient is to be taken (replica ``a``'s
``x^a``, or its inner iterate), and :attr:`~ReplicatedOptimizer.replica` names ``a`` (a
closure or a data loader can draw from that replica's shard).  ``with opt.at_anchor():``
puts the master into the parameters.  A subclass forms each replica's update direction
``G^a`` (into the stack's ``.grad``); at the last call this base adds the elastic term
``(x^a - x)/rho``, steps every replica with SGD (momentum, Nesterov, weight decay:
``replica_optimizer``), moves the master to the replicas' mean (the normalisation
``eta^(3) = rho/n`` of section 5.3.2) and places replica 0's new point.

Communication: in one process the mean is a float64 sum in replica order, rounded once.
With ``distributed=True`` there is one replica per rank of the process group: the plain
training loop runs unchanged on every rank (each drawing its own minibatches) and the ranks
communicate at the last call of each outer step: one small ``all_reduce`` agrees on the
outcome (a non-finite loss or gradient on any rank stops every rank, at that same call, with
the weights and state as they were when the outer step began; the parameters that took part),
and one ``all_reduce`` (float64 sums) forms the master and the replicas' spread.  A peer that dies
makes the reduction fail within ``timeout`` seconds with ``RuntimeError``.  At the first call
the ranks compare their gradients: bitwise equal gradients on every rank mean that every
replica sees the same data (the model wrapped in ``DistributedDataParallel``, which averages
them, or one data stream for all ranks) and are refused.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._base import SmoothingOptimizer, agreed_seed, finite_mean, mean_loss, unhooked_step
from hjsmooth.optim._checks import (
    NonFiniteError,
    as_loss,
    check_count,
    check_flag,
    check_nonnegative_float,
    inner_step_limit,
    resolve,
)
from hjsmooth.optim.vectorized import ReplicaBatches

__all__ = ["ReplicatedOptimizer", "ReplicaClosure", "N_REPLICAS"]

ReplicaClosure = Callable[..., Any]
#: Replicas in one process when ``n`` is not given: the smallest ensemble.  The replicas share the
#: gradient budget of a process; the thesis runs 3 (and 8), one per GPU: pass ``n`` (or distributed=True).
N_REPLICAS = 2
_SGD_KEYS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")


def takes_replica(closure: Callable[..., Any]) -> bool:
    """Whether ``closure`` accepts the replica index as a positional argument.

    A closure without parameters (e.g. the one a PyTorch Lightning optimizer wrapper
    hands over) reads the replica being evaluated from ``optimizer.replica`` instead.
    """
    try:
        sig = inspect.signature(closure)
    except (TypeError, ValueError):  # a builtin without a signature: give it the index
        return True
    kinds = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return any(p.kind in kinds for p in sig.parameters.values())


class ReplicatedOptimizer(SmoothingOptimizer):
    """Replica storage, the replicas' SGD, the master reduction, checkpoints (module docstring).

    Subclass contract: ``_calls_per_replica()``; ``_replica_call(work, local, step, grads)``
    uses the gradient of call ``step`` of local replica ``local`` (and places its next point),
    ``_replica_done(work, local)`` writes its ``G^a`` into slice ``local`` of ``r.grad`` of the
    stacks of the parameters that take part; ``_replica_gradients_stacked(batches, work)``
    does all of it for the vectorised path and returns ``(first losses, all losses)``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        n: int | None,
        *,
        distributed: bool,
        process_group: Any,
        timeout: float,
        generator: Any,
        foreach: bool | None,
        freeze_bn: Any,
    ) -> None:
        self.distributed = check_flag(distributed, "distributed")
        self.process_group = process_group
        self.timeout = check_nonnegative_float(timeout, "timeout")
        if self.distributed:
            import torch.distributed as dist

            if not dist.is_available() or not dist.is_initialized():
                raise RuntimeError(
                    "`distributed=True` needs an initialised torch.distributed process group "
                    "(torch.distributed.init_process_group)"
                )
            world = dist.get_world_size(process_group)
            if n is not None and n != world:
                raise ValueError(f"`n` must equal the world size {world} when distributed=True, got {n!r}")
            self.n = world
            self.rank = dist.get_rank(process_group)
            self.replica_ids = [self.rank]
        else:
            self.n = check_count(N_REPLICAS if n is None else n, "n")
            self.rank = 0
            self.replica_ids = list(range(self.n))
        self._pending: NonFiniteError | None = None
        self._checked_ranks = False
        super().__init__(
            params,
            defaults,
            generator=generator,
            n_generators=len(self.replica_ids),
            foreach=foreach,
            freeze_bn=freeze_bn,
        )
        if self._generators is not None and len(self._generators) not in (1, len(self.replica_ids)):
            raise TypeError(
                f"`generator` must be a torch.Generator or one per local replica "
                f"({len(self.replica_ids)}), got {len(self._generators)}"
            )
        self._build_replica_sgd()

    # ------------------------------------------------------------------ storage
    def _attach_group(self, param_group: dict[str, Any]) -> None:
        super()._attach_group(param_group)
        group = self.param_groups[-1]
        with torch.no_grad():
            if self.distributed:  # every rank starts from rank 0's weights
                import torch.distributed as dist

                src = dist.get_global_rank(self.process_group, 0) if self.process_group is not None else 0
                for p in group["params"]:
                    dist.broadcast(p.data, src=src, group=self.process_group)
            n_local = len(self.replica_ids)
            for p in group["params"]:
                self.state[p]["replicas"] = p.detach().unsqueeze(0).repeat(n_local, *([1] * p.dim())).contiguous()
                self.state[p]["master"] = p.detach().clone(memory_format=torch.contiguous_format)
        if "replica_optimizer" in self.__dict__:  # a group added after construction
            self.replica_optimizer.add_param_group(self._replica_group(group))

    def _replica_group(self, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "params": [self.state[p]["replicas"] for p in group["params"]],
            **{k: group[k] for k in _SGD_KEYS if k in group},
        }

    def _build_replica_sgd(self) -> None:
        self.replica_optimizer = torch.optim.SGD(
            [self._replica_group(g) for g in self.param_groups],
            lr=self.param_groups[0]["lr"],
            foreach=True if self._foreach is None else bool(self._foreach),
        )

    def _sync_replica_hyperparameters(self) -> None:
        for g, rg in zip(self.param_groups, self.replica_optimizer.param_groups):
            for k in _SGD_KEYS:
                if k in g:
                    rg[k] = g[k]

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        rho, lr = group["rho"], group["lr"]
        if callable(rho) or math.isinf(rho):
            return
        limit = inner_step_limit(group["momentum"], group["nesterov"], True)
        if float(lr) / rho >= limit:
            warnings.warn(
                f"{type(self).__name__} param group {index}: lr / rho = {float(lr) / rho:g} is >= "
                f"{limit:g}; the elastic term (x^a - x)/rho then makes the replicas oscillate away from the "
                "master. Lower lr or raise rho.",
                UserWarning,
                stacklevel=4,
            )

    def _default_generators(self, device: torch.device) -> list[torch.Generator]:
        """One generator per local replica; distributed: seeded from rank 0's seed and the replica's index."""
        if not self.distributed:
            return super()._default_generators(device)
        base = agreed_seed(int(torch.randint(0, 2**62, (1,)).item()), device, self.process_group)
        return [torch.Generator(device=device).manual_seed(replica_seed(base, a)) for a in self.replica_ids]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["replica_optimizer"] = self.replica_optimizer.state_dict()
        sd["n"] = self.n
        sd["replica_ids"] = list(self.replica_ids)
        return sd

    def _pop_extra_state(self, state_dict: dict[str, Any]) -> Any:
        replica_sd = state_dict.pop("replica_optimizer", None)
        if replica_sd is None:
            raise ValueError("`state_dict` has no 'replica_optimizer' entry: it was not saved by ElasticSGD/Parle")
        n, ids = state_dict.pop("n"), state_dict.pop("replica_ids")
        if n != self.n or list(ids) != self.replica_ids:
            raise ValueError(
                f"`state_dict` holds replicas {ids} of n={n}; this optimizer holds {self.replica_ids} of n={self.n}"
            )
        return replica_sd

    def _load_extra_state(self, extra: Any) -> None:
        for group in self.param_groups:  # own the tensors: never share them with the dictionary given
            for p in group["params"]:
                st = self.state[p]
                for key, value in st.items():
                    if isinstance(value, torch.Tensor):
                        st[key] = value.clone()
                if "master" not in st:
                    st["master"] = p.detach().clone()
        self._build_replica_sgd()
        self.replica_optimizer.load_state_dict(extra)

    def _after_load(self) -> None:
        for p, st in self._scratch.items():
            if "replica_grad" in st:
                self.state[p]["replicas"].grad = st.pop("replica_grad")

    def __getstate__(self) -> dict[str, Any]:
        if self.distributed:
            raise TypeError(
                f"a distributed {type(self).__name__} cannot be copied or pickled (its process group "
                "cannot); save its state_dict() on every rank instead"
            )
        return super().__getstate__()

    # ------------------------------------------------------------------ communication
    def _all_reduce(self, tensor: torch.Tensor, what: str, op: Any = None) -> None:
        """Reduce ``tensor`` over the ranks (sum); a dead or silent peer raises ``RuntimeError`` within ``timeout``."""
        import torch.distributed as dist

        try:
            work = dist.all_reduce(
                tensor, op=dist.ReduceOp.SUM if op is None else op, group=self.process_group, async_op=True
            )
            ok = work.wait(timeout=timedelta(seconds=self.timeout))
        except (RuntimeError, dist.DistBackendError) as exc:
            raise RuntimeError(
                f"{type(self).__name__}: all_reduce of {what} failed at outer step {self.outer_step} on rank "
                f"{self.rank} of {self.n} (timeout {self.timeout:g} s); a peer process has probably died: {exc}"
            ) from exc
        if ok is False:
            raise RuntimeError(
                f"{type(self).__name__}: all_reduce of {what} did not complete within {self.timeout:g} s at outer "
                f"step {self.outer_step} on rank {self.rank} of {self.n}; a peer process has probably died"
            )

    def _agree(self, work: list[ReplicaGroup], error: NonFiniteError | None) -> NonFiniteError | None:
        """Distributed: every rank learns whether any rank failed, and which parameters took part anywhere."""
        if not self.distributed:
            return error
        flags = [float(error is not None)] + [float(i in w.taking) for w in work for i in range(len(w.params))]
        device = work[0].params[0].device if work else torch.device("cpu")
        counts = torch.tensor(flags, dtype=torch.float64, device=device)
        self._all_reduce(counts, "the step's outcome")
        values = counts.tolist()
        if error is None and values[0] > 0:
            error = NonFiniteError(
                f"{int(values[0])} rank(s) of {self.n} met a non-finite loss or gradient in "
                f"outer step {self.outer_step}; the weights were put back where it began"
            )
        i = 1
        for w in work:
            m = len(w.params)
            w.taking = [j for j, c in enumerate(values[i : i + m]) if c > 0]
            i += m
        return error

    def _refuse_equal_gradients(self, grads: list[torch.Tensor]) -> None:
        """Distributed, first call: bitwise equal gradients on every rank mean that every replica sees the same data."""
        if not self.distributed or self.n == 1 or self._checked_ranks:
            return
        self._checked_ranks = True
        import torch.distributed as dist

        device = grads[0].device if grads else torch.device("cpu")
        digest = torch.zeros(2, dtype=torch.float64, device=device)
        for g in grads:
            g64 = g.detach().to(torch.float64)
            digest[0] += g64.sum()
            digest[1] += g64.square().sum()
        if float(digest[1]) == 0.0:
            return
        high, low = digest.clone(), digest.clone()
        self._all_reduce(high, "the gradient digest", dist.ReduceOp.MAX)
        self._all_reduce(low, "the gradient digest", dist.ReduceOp.MIN)
        if torch.equal(high, low):
            raise RuntimeError(
                f"{type(self).__name__}(distributed=True): the first gradient is bitwise the same on all {self.n} "
                "ranks, so every replica sees the same data. Either the model is wrapped in "
                "DistributedDataParallel (which averages the gradients of the ranks: pass the unwrapped model's "
                "parameters, the optimizer does the communication) or every rank draws the same minibatches (give "
                "each rank its own shard, e.g. with torch.utils.data.DistributedSampler)"
            )

    def _reduce_master(self, replicas: list[torch.Tensor], masters: list[torch.Tensor]) -> float:
        """Write the replicas' mean into ``masters`` (real views); return the replicas' RMS distance to it.

        The mean is the float64 sum over the replicas, rounded once (across processes, an
        ``all_reduce`` of the ranks' float64 sums).  For two replicas in one process it is
        ``(x^0 + x^1) / 2`` in the parameters' own dtype, the same number: the sum of two
        floats is rounded once and halving it is exact.
        """
        replicas, masters = ops.reals(replicas), ops.reals(masters)
        if not masters:
            return 0.0
        if not self.distributed:
            for m, r in zip(masters, replicas):
                if r.shape[0] == 2:
                    torch.add(r[0], r[1], out=m).mul_(0.5)
                else:
                    acc = r[0].to(torch.float64, copy=True)  # float64 sum in replica order, rounded once
                    for i in range(1, r.shape[0]):
                        acc += r[i]
                    m.copy_(acc.div_(self.n))
            return math.sqrt(self._spread(masters, replicas) / self.n)
        # one all_reduce: the float64 sums of the replicas and of their squared norms; the spread follows from
        # sum_a |x^a - x|^2 = sum_a |x^a|^2 - n |x|^2 (float64, exact to ~1e-16 of |x|^2)
        squares = sum(float(r.to(torch.float64).square().sum()) for r in replicas)
        device = replicas[0].device
        flat = torch.cat(
            [r.sum(0, dtype=torch.float64).reshape(-1) for r in replicas]
            + [torch.tensor([squares], dtype=torch.float64, device=device)]
        )
        self._all_reduce(flat, "the master (sum of the replicas)")
        mean = flat[:-1] / self.n
        offset = 0
        for m in masters:
            k = m.numel()
            m.copy_(mean[offset : offset + k].view_as(m))
            offset += k
        spread_sq = float(flat[-1]) - self.n * float(mean.square().sum())
        return math.sqrt(max(spread_sq, 0.0) / self.n)

    @staticmethod
    def _spread(masters: list[torch.Tensor], replicas: list[torch.Tensor]) -> float:
        """``sum_a |x^a - x|^2`` over the local replicas (one pass and one fused norm)."""
        diffs = [torch.sub(r, m.unsqueeze(0)) for m, r in zip(masters, replicas)]
        norms = torch._foreach_norm(diffs)
        return float(torch.stack([n.double() for n in norms]).square().sum())

    # ------------------------------------------------------------------ the cycle of calls
    @property
    def replica(self) -> int:
        """The replica whose gradient the next call consumes (its point is in the parameters)."""
        return self.replica_ids[min(self.position // self._calls_per_replica(), len(self.replica_ids) - 1)]

    def _calls_per_replica(self) -> int:
        """Calls each local replica makes in an outer step (1 for Elastic-SGD, ``L`` for Parle)."""
        return 1

    def _calls_per_outer(self) -> int:
        return len(self.replica_ids) * self._calls_per_replica()

    def _closure_args(self, closure: Any) -> tuple[Any, ...]:
        return (self.replica,) if takes_replica(closure) else ()

    def _where(self) -> str:
        per = self._calls_per_replica()
        inner = f"inner step {self.position % per + 1} of {per} of " if per > 1 else ""
        return f"{inner}replica {self.replica} (outer step {self.outer_step})"

    def _replica_groups(self) -> list[ReplicaGroup]:
        """The groups of the outer step about to begin (the parameters with ``requires_grad``)."""
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            if params:
                work.append(
                    ReplicaGroup(
                        group=group,
                        params=params,
                        replicas=[self.state[p]["replicas"] for p in params],
                        masters=[self.state[p]["master"] for p in params],
                        rho=resolve(group["rho"], self.outer_step, "rho", allow_inf=True),
                        foreach=self._use_foreach(params),
                    )
                )
        return work

    def _begin(self) -> bool:
        self._sync_replica_hyperparameters()
        work = self._replica_groups()
        for w in work:
            trainable = {id(p) for p in self._trainable(w.group)}
            w.taking = [i for i, p in enumerate(w.params) if id(p) in trainable]
            for i in w.taking:
                r = w.replicas[i]
                if r.grad is None or r.grad.shape != r.shape:
                    r.grad = torch.zeros_like(r)
        if not any(w.taking for w in work):
            return False
        self._work = ReplicaWork(groups=work)
        self._prepare_inner(self._work)
        return True

    def _prepare_inner(self, work: ReplicaWork) -> None:
        """Set up the subclass's per-step state (nothing by default)."""

    def _current_work(self) -> ReplicaWork:
        if self._work is None:  # after a load in the middle of an outer step
            groups = self._replica_groups()
            for w in groups:
                w.taking = [i for i, r in enumerate(w.replicas) if r.grad is not None]
            self._work = ReplicaWork(groups=groups)
            self._prepare_inner(self._work)
        return self._work

    def _evaluate(self, closure: Any) -> tuple[Any, float | None]:
        if not self.distributed:
            return super()._evaluate(closure)
        with torch.enable_grad():
            raw = closure(*self._closure_args(closure))
        try:
            return raw, as_loss(raw, self._where)
        except NonFiniteError as exc:  # the other ranks learn of it at the last call of the outer step
            self._pending = exc
            return raw, None

    def _consume(self, position: int) -> bool:
        work = self._current_work()
        per = self._calls_per_replica()
        local, step = divmod(position, per)
        if self._pending is None:
            try:
                grads = [self._grads([w.params[i] for i in w.taking]) for w in work.groups]
                flat = [g for gs in grads for g in gs]
                if position == 0 and self.outer_step == 0:
                    self._refuse_equal_gradients(flat)
                self._check_grads(flat)
                self._replica_call(work, local, step, grads)
            except NonFiniteError as exc:
                if not self.distributed:
                    raise
                self._pending = exc  # every rank must reach the all_reduce of the last call
        last = position == self._calls_per_outer() - 1
        if step == per - 1 and self._pending is None:
            self._replica_done(work, local)
            if not last:
                self._place_replica(work, local + 1)
        if not last:
            return False
        self._finish(work)
        return True

    def _replica_call(self, work: ReplicaWork, local: int, step: int, grads: list[list[torch.Tensor]]) -> None:
        raise NotImplementedError

    def _replica_done(self, work: ReplicaWork, local: int) -> None:
        """Replica ``local`` made its last call of the outer step (nothing by default)."""

    def _place_replica(self, work: ReplicaWork, local: int) -> None:
        """Put replica ``local``'s point ``x^a`` into the parameters that take part."""
        for w in work.groups:
            params = [w.params[i] for i in w.taking]
            ops.copy_(ops.reals(params), ops.reals([w.replicas[i][local] for i in w.taking]), w.foreach)

    def _finish(self, work: ReplicaWork) -> None:
        """Agree, add the elastic term, step the replicas, reduce the master, place replica 0's point."""
        error = self._agree(work.groups, self._pending)
        if error is not None:
            raise error
        taking_ids = {id(w.params[i]) for w in work.groups for i in w.taking}
        for p in self._params():  # the stacks of parameters that took no part are never stepped
            if id(p) not in taking_ids:
                self.state[p]["replicas"].grad = None
        replicas, masters = [], []
        for w in work.groups:
            for i in w.taking:
                r, m = w.replicas[i], w.masters[i]
                if r.grad is None:
                    r.grad = torch.zeros_like(r)
                if not math.isinf(w.rho):  # the elastic term, with the master of the start of the step
                    r.grad.add_(r, alpha=1.0 / w.rho).sub_(m.unsqueeze(0), alpha=1.0 / w.rho)
                replicas.append(r)
                masters.append(m)
        unhooked_step(self.replica_optimizer)
        spread = self._reduce_master(replicas, masters)
        self._place_replica(work, 0)
        self._work = None
        if self.n > 1 and spread == 0.0 and not self._noisy() and "spread" not in self._warned:
            self._warned.add("spread")
            warnings.warn(
                f"{type(self).__name__}: all {self.n} replicas ended outer step {self.outer_step} at the same point "
                "(spread exactly 0): they saw the same minibatches, so the step costs n times SGD's and does what "
                "SGD does. Give every call its own minibatch (in the plain loop: one batch per step() call; with "
                "step_outer: a closure that draws a fresh one, from replica `a`'s shard).",
                UserWarning,
                stacklevel=5,
            )
        losses = self._losses
        per = self._calls_per_replica()
        firsts = losses[::per] if len(losses) == self._calls_per_outer() else []
        self.stats = {"loss": finite_mean(firsts), "inner_loss": finite_mean(losses), "replica_spread": spread}

    def _noisy(self) -> bool:
        return False

    def _abort(self) -> None:
        work = self._work
        if work is None and self.position > 0:
            work = self._current_work()
        if work is not None:
            self._place_replica(work, 0)
        self._work = None
        self._pending = None

    def _anchor_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(p, self.state[p]["master"]) for p in self._params() if p.requires_grad]

    def _live_scratch(self) -> dict[torch.Tensor, dict[str, torch.Tensor]]:
        if self.position == 0:
            return {}
        out: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for w in self._current_work().groups:
            for i in w.taking:
                p = w.params[i]
                grad = w.replicas[i].grad
                assert grad is not None  # allocated for every parameter taking part, at the first call
                out[p] = {"replica_grad": grad, **self._inner_scratch(p)}
        return out

    def _inner_scratch(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """The subclass's per-parameter scratch tensors of the current outer step (none by default)."""
        return {}

    def _outer_loss(self, losses: list[Any]) -> Any:
        per = self._calls_per_replica()
        return mean_loss(losses[::per])

    # ------------------------------------------------------------------ the vectorised path
    def step(self, closure: Any = None) -> Any:
        if isinstance(closure, ReplicaBatches):
            raise TypeError(
                f"{type(self).__name__}.step takes a closure, not a ReplicaBatches: pass it to "
                "step_outer(batches), which evaluates all replicas at once"
            )
        return super().step(closure)

    def step_outer(self, closure: Any) -> Any:
        """One outer step: ``closure(a)`` once per call (see :class:`SmoothingOptimizer`), or a :class:`ReplicaBatches`.

        Given a :class:`~hjsmooth.optim.ReplicaBatches`, every call evaluates all local
        replicas at once with ``torch.func.vmap`` (``L`` vmapped calls per outer step of Parle
        instead of ``n L``; the same trajectory up to the rounding of batched kernels); the
        parameters are not touched until the master is written, and hold replica 0's point
        afterwards.  Returns the mean over the local replicas of their first loss (at ``x^a``).
        """
        if not isinstance(closure, ReplicaBatches):
            return super().step_outer(closure)
        if self._mode != "train":
            raise RuntimeError(f"{type(self).__name__}.step_outer was called in eval mode; call opt.train() first")
        if self.position != 0:
            raise RuntimeError(
                f"{type(self).__name__}.step_outer(ReplicaBatches) must start an outer step; "
                f"{self.position} of its {self._calls_per_outer()} calls were made already: finish "
                "it with step() or step_outer(closure)"
            )
        with torch.no_grad():
            self._warn_about_changed_momentum()
            self._sync_replica_hyperparameters()
            self._snapshot = self._take_snapshot()
            try:
                work = ReplicaWork(groups=self._replica_groups())
                self._work = work
                self._pending = None
                first, self._losses = self._replica_gradients_stacked(closure, work)
                self._finish(work)
            except BaseException:
                self._fail()
                raise
            self.outer_step += 1
            self._snapshot = None
        return mean_loss(first)

    def _replica_gradients_stacked(
        self, batches: ReplicaBatches, work: ReplicaWork
    ) -> tuple[list[Any], list[float]]:  # pragma: no cover - abstract
        raise NotImplementedError


def replica_seed(base: int, replica: int) -> int:
    """The seed of replica ``replica``'s generator, from the seed ``base`` all ranks agreed on."""
    import numpy as np

    return int(np.random.SeedSequence([base, replica]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class ReplicaGroup:
    """One param group's part of an outer step of a replicated optimizer."""

    group: dict[str, Any]
    params: list[torch.Tensor]  # requires_grad
    replicas: list[torch.Tensor]  # their stacks (n_local, *p.shape)
    masters: list[torch.Tensor]  # the master x (state)
    rho: float
    foreach: bool
    taking: list[int] = field(default_factory=list)  # indices of the parameters taking part
    inner: Any = None  # the subclass's per-group state


@dataclass
class ReplicaWork:
    groups: list[ReplicaGroup]
    loops: dict[int, Any] = field(default_factory=dict)  # the subclass's per-replica state
