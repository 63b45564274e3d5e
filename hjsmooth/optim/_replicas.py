"""Replica storage and communication for Elastic-SGD and Parle (thesis chapter 5).

:class:`ReplicatedOptimizer` keeps, for every parameter ``p`` of the model, a stack of
replicas ``x^a`` (``state[p]["replicas"]``, shape ``(n_local, *p.shape)``) and leaves the
*master* ``x`` in the model's parameters after each step, so that evaluating the model
evaluates the master.  A subclass computes each replica's update direction ``G^a`` (into
the stack's ``.grad``); this base then adds the elastic term ``(x^a - x)/rho``, steps every
replica with SGD (momentum, Nesterov, weight decay: ``replica_optimizer``) and moves the
master to the replicas' mean (the normalisation ``eta^(3) = rho/n`` of section 5.3.2).

Communication: in one process the mean is a float64 sum in replica order, rounded once.
With ``distributed=True`` there is one replica per rank of the process group; per outer
step one small ``all_reduce`` agrees on the outcome (a non-finite loss or gradient on any
rank stops every rank with the weights and state unchanged; the parameters that took
part), one ``all_reduce`` (float64 sum) forms the master and one more the spread.  A peer
that dies makes the reduction fail within ``timeout`` seconds with ``RuntimeError``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import torch

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._base import ClosureOptimizer
from hjsmooth.optim._checks import (
    NonFiniteError,
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
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.VAR_POSITIONAL)
    return any(p.kind in kinds for p in sig.parameters.values())


class ReplicatedOptimizer(ClosureOptimizer):
    """Replica storage, the replicas' SGD, the master reduction, checkpoints (module docstring).

    Subclass contract: ``_replica_gradients(closure, work, bn_after)`` (closure path) and
    ``_replica_gradients_stacked(batches, work)`` (vectorised path) write ``G^a`` into
    ``r.grad`` of the stacks of the parameters that take part (listed in ``w["taking"]``)
    and return ``(first losses, all losses)`` of the local replicas, leaving the model's
    parameters at the master.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], n: int | None, *, distributed: bool,
                 process_group: Any, timeout: float, generator: Any, foreach: bool | None, freeze_bn: Any) -> None:
        self.distributed = check_flag(distributed, "distributed")
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
        else:
            self.n = check_count(N_REPLICAS if n is None else n, "n")
            self.rank = 0
            self.replica_ids = list(range(self.n))
        #: the replica being evaluated (for closures that take no argument)
        self.replica: int | None = None
        self._pass_replica = True
        super().__init__(params, defaults, generator=generator, n_generators=len(self.replica_ids), foreach=foreach,
                         freeze_bn=freeze_bn)
        if self._generators is not None and len(self._generators) not in (1, len(self.replica_ids)):
            raise TypeError(f"`generator` must be a torch.Generator or one per local replica "
                            f"({len(self.replica_ids)}), got {len(self._generators)}")
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
        if "replica_optimizer" in self.__dict__:  # a group added after construction
            self.replica_optimizer.add_param_group(self._replica_group(group))

    def _replica_group(self, group: dict[str, Any]) -> dict[str, Any]:
        return {"params": [self.state[p]["replicas"] for p in group["params"]],
                **{k: group[k] for k in _SGD_KEYS if k in group}}

    def _build_replica_sgd(self) -> None:
        self.replica_optimizer = torch.optim.SGD([self._replica_group(g) for g in self.param_groups],
                                                 lr=self.param_groups[0]["lr"],
                                                 foreach=True if self._foreach is None else bool(self._foreach))

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
        if lr / rho >= limit:
            import warnings

            warnings.warn(f"{type(self).__name__} param group {index}: lr / rho = {lr / rho:g} is >= {limit:g}; the "
                          "elastic term (x^a - x)/rho then makes the replicas oscillate away from the master. Lower "
                          "lr or raise rho.", UserWarning, stacklevel=4)

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
            raise ValueError(f"`state_dict` holds replicas {ids} of n={n}; this optimizer holds "
                             f"{self.replica_ids} of n={self.n}")
        return replica_sd

    def _load_extra_state(self, extra: Any) -> None:
        for group in self.param_groups:  # own the tensors: never share them with the dictionary given
            for p in group["params"]:
                for key, value in self.state[p].items():
                    if isinstance(value, torch.Tensor):
                        self.state[p][key] = value.clone()
        self._build_replica_sgd()
        self.replica_optimizer.load_state_dict(extra)

    def __getstate__(self) -> dict[str, Any]:
        if self.distributed:
            raise TypeError(f"a distributed {type(self).__name__} cannot be copied or pickled (its process group "
                            "cannot); save its state_dict() on every rank instead")
        return super().__getstate__()

    # ------------------------------------------------------------------ communication
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

    def _agree(self, work: list[dict[str, Any]], error: NonFiniteError | None) -> NonFiniteError | None:
        """Distributed: every rank learns whether any rank failed, and which parameters took part anywhere."""
        if not self.distributed:
            return error
        flags = [float(error is not None)] + [float(t) for w in work for t in w["taking_mask"]]
        device = work[0]["params"][0].device if work else torch.device("cpu")
        counts = torch.tensor(flags, dtype=torch.float64, device=device)
        self._all_reduce(counts, "the step's outcome")
        counts = counts.tolist()
        if error is None and counts[0] > 0:
            error = NonFiniteError(f"{int(counts[0])} rank(s) of {self.n} met a non-finite loss or gradient at "
                                   f"outer step {self.outer_step}; the weights were put back where the step began")
        i = 1
        for w in work:
            m = len(w["taking_mask"])
            w["taking_mask"] = [c > 0 for c in counts[i:i + m]]
            i += m
        return error

    def _reduce_master(self, params: list[torch.Tensor], replicas: list[torch.Tensor]) -> float:
        """Write the replicas' mean into ``params`` (real views); return the replicas' RMS distance to it.

        The mean is the float64 sum over the replicas, rounded once (across processes, an
        ``all_reduce`` of the ranks' float64 sums).  For two replicas in one process it is
        ``(x^0 + x^1) / 2`` in the parameters' own dtype, the same number: the sum of two
        floats is rounded once and halving it is exact.
        """
        params, replicas = F.reals(params), F.reals(replicas)
        if not params:
            return 0.0
        if not self.distributed:
            for p, r in zip(params, replicas):
                if r.shape[0] == 2:
                    torch.add(r[0], r[1], out=p).mul_(0.5)
                else:
                    acc = r[0].to(torch.float64, copy=True)  # float64 sum in replica order, rounded once
                    for i in range(1, r.shape[0]):
                        acc += r[i]
                    p.copy_(acc.div_(self.n))
            return math.sqrt(self._spread(params, replicas) / self.n)
        flat = torch.cat([r.sum(0, dtype=torch.float64).reshape(-1) for r in replicas])
        self._all_reduce(flat, "the master (sum of the replicas)")
        flat /= self.n
        offset = 0
        for p in params:
            k = p.numel()
            p.copy_(flat[offset:offset + k].view_as(p))
            offset += k
        local_sq = torch.tensor([self._spread(params, replicas)], dtype=torch.float64, device=flat.device)
        self._all_reduce(local_sq, "the replica spread")
        return math.sqrt(float(local_sq) / self.n)

    @staticmethod
    def _spread(params: list[torch.Tensor], replicas: list[torch.Tensor]) -> float:
        """``sum_a |x^a - x|^2`` over the local replicas (one pass and one fused norm)."""
        diffs = [torch.sub(r, p.unsqueeze(0)) for p, r in zip(params, replicas)]
        norms = torch._foreach_norm(diffs)
        return float(torch.stack([n.double() for n in norms]).square().sum())

    # ------------------------------------------------------------------ the step
    def _evaluate_replica(self, closure: ReplicaClosure, local: int, where: Callable[[], str]) -> tuple[Any, float]:
        """Evaluate replica ``replica_ids[local]`` (its point already in the parameters)."""
        a = self.replica_ids[local]
        self.replica = a
        try:
            return self._evaluate(closure, (a,) if self._pass_replica else (), where)
        finally:
            self.replica = None

    def _replica_gradients(self, closure: ReplicaClosure, work: list[dict[str, Any]], bn_after: list[Any]
                           ) -> tuple[list[Any], list[float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _replica_gradients_stacked(self, batches: ReplicaBatches, work: list[dict[str, Any]]
                                   ) -> tuple[list[Any], list[float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self) -> list[dict[str, Any]]:
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            if not params:
                continue
            rho = resolve(group["rho"], self.outer_step, "rho", allow_inf=True)
            master = [self._scratch_for(p, ("master",))["master"] for p in params]
            foreach = self._use_foreach(params)
            F.copy_(F.reals(master), F.reals(params), foreach)
            work.append(dict(group=group, params=params, foreach=foreach, master=master, rho=rho,
                             replicas=[self.state[p]["replicas"] for p in params]))
        return work

    def _restore_master(self, work: list[dict[str, Any]]) -> None:
        for w in work:
            F.copy_(F.reals(w["params"]), F.reals(w["master"]), w["foreach"])

    @torch.no_grad()
    def step(self, closure: ReplicaClosure | ReplicaBatches | None = None) -> Any:  # type: ignore[override]
        """One outer step of every local replica, then the master.

        ``closure`` is either ``closure(a)`` (called for one replica at a time, the model's
        parameters holding that replica's evaluation point; a closure without parameters
        reads the index from ``optimizer.replica``) or a
        :class:`~hjsmooth.optim.ReplicaBatches` (all local replicas evaluated at once with
        ``torch.func.vmap``).  Returns the mean over the local replicas of their first
        loss (at ``x^a``), a tensor if the closure returned tensors.
        """
        if closure is not None and not callable(closure) and not isinstance(closure, ReplicaBatches):
            raise TypeError(f"`closure` must be callable or a ReplicaBatches, got {type(closure).__name__}")
        if not isinstance(closure, ReplicaBatches):
            self._require_closure(closure, "`closure(a)` draws a minibatch for replica `a`; or pass a "
                                           "ReplicaBatches, which evaluates all replicas at once")
        self._sync_replica_hyperparameters()
        self._pass_replica = not isinstance(closure, ReplicaBatches) and takes_replica(closure)
        with self._transaction() as bn_after:
            work = self._prepare()
            error: NonFiniteError | None = None
            first: list[Any] = []
            inner: list[float] = []
            try:
                if isinstance(closure, ReplicaBatches):
                    first, inner = self._replica_gradients_stacked(closure, work)
                else:
                    first, inner = self._replica_gradients(closure, work, bn_after)
            except NonFiniteError as exc:
                error = exc
            except BaseException:
                self._restore_master(work)
                raise
            for w in work:
                w.setdefault("taking_mask", [False] * len(w["params"]))
            error = self._agree(work, error)
            if error is not None:
                self._restore_master(work)
                raise error
            taking_params, taking_replicas = [], []
            for w in work:
                for p, r, m, taking in zip(w["params"], w["replicas"], w["master"], w["taking_mask"]):
                    if not taking:
                        r.grad = None
                        continue
                    if r.grad is None:
                        r.grad = torch.zeros_like(r)
                    if not math.isinf(w["rho"]):  # the elastic term, with the master of the start of the step
                        r.grad.add_(r, alpha=1.0 / w["rho"]).sub_(m.unsqueeze(0), alpha=1.0 / w["rho"])
                    taking_params.append(p)
                    taking_replicas.append(r)
            self.replica_optimizer.step()
            spread = self._reduce_master(taking_params, taking_replicas)
        self.outer_step += 1
        losses = [float(v) for v in (first or [])]
        self.stats = {"loss": sum(losses) / max(len(losses), 1), "inner_loss": sum(inner) / max(len(inner), 1),
                      "replica_spread": spread}
        return _mean(first, self.stats["loss"])


def _mean(values: list[Any], mean: float) -> Any:
    """The mean of the replicas' first losses: a detached tensor if they are tensors."""
    if values and isinstance(values[0], torch.Tensor):
        return torch.stack([v.detach().reshape(()) for v in values]).mean()
    return mean
