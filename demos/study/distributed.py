"""What one process of the parallel-hardware runs does (Table 5.1 with one CPU core per replica).

``python -m torch.distributed.run --nproc_per_node=2 -m hjsmooth.demos.study.distributed JOBS.json OUT.json``
starts one copy of this module per process.  Each joins the gloo process group, fixes one torch thread, and
runs the jobs of ``JOBS.json`` in order; rank 0 writes what it measured to ``OUT.json``.  A job is one of

* ``"SGD-DDP"``: data-parallel SGD (Nesterov 0.9) under ``DistributedDataParallel``: every process draws its
  own minibatch of ``BATCH``, the gradients are averaged over the processes at every step;
* ``"Elastic-SGD"``, ``"Parle"``: the hjsmooth optimizer with ``distributed=True``, one replica per process.

Every process spends the job's ``budget`` gradient evaluations (its own, as single-process SGD does), starting
after a barrier.  Process ``r`` draws its minibatches from the stream ``seed + STREAM_STRIDE * r`` (process 0
from ``seed``, the stream of single-process SGD at that seed) and its own noise from
``seed + 1000 + STREAM_STRIDE * r``; the weights start from process 0's initialisation (``seed``), which DDP and
the hjsmooth optimizers broadcast.  Every process evaluates the model at the checkpoints (the master or the
shared weights, equal on all processes), so no process waits for another's evaluation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["VARIANTS", "STREAM_STRIDE", "RankJob", "outer_step", "cost_per_process", "run_rank_job", "main"]

#: The runs on several processes.
VARIANTS = ("SGD-DDP", "Elastic-SGD", "Parle")
#: Distance between the seeds of the processes' minibatch streams.
STREAM_STRIDE = 10_000


@dataclass(frozen=True)
class RankJob:
    """One run on all processes: ``budget`` gradient evaluations per process of ``variant`` at ``hp``."""

    task: str
    dataset: str
    model: str
    variant: str
    hp: dict[str, Any] = field(hash=False)
    seed: int
    budget: int
    checkpoints: int = 20
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}, got {self.variant!r}")


def outer_step(optimizer: Any, closure: Callable[..., Any]) -> Any:
    """One outer step of a distributed hjsmooth optimizer; ``closure(a)`` evaluates the local replica ``a``."""
    return optimizer.step_outer(closure)


def cost_per_process(variant: str, hp: dict[str, Any]) -> int:
    """Gradient evaluations of one process per step: ``L`` for Parle, 1 otherwise."""
    return int(hp["L"]) if variant == "Parle" else 1


def _ddp_runner(model: Any, draw: Callable[..., Any], hp: dict[str, Any]) -> Any:
    import torch
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from hjsmooth.demos.study.methods import Runner

    ddp = DistributedDataParallel(model)  # broadcasts process 0's weights
    opt = torch.optim.SGD(
        ddp.parameters(), lr=hp["lr"], momentum=0.9, nesterov=True, weight_decay=hp.get("weight_decay", 0.0)
    )
    params = [p for p in ddp.parameters() if p.requires_grad]

    def step() -> float:
        xb, yb = draw()
        opt.zero_grad()
        loss = F.cross_entropy(ddp(xb), yb)
        loss.backward()  # the gradients are averaged over the processes here
        # the averaged gradients are equal on every process, so every process stops at the same step
        if not bool(torch.isfinite(torch.stack([p.grad.sum() for p in params if p.grad is not None]).sum())):
            return float("nan")
        opt.step()
        return float(loss.detach())

    return Runner(opt, step, lambda: model)


def _replica_runner(
    model: Any, draw: Callable[..., Any], variant: str, hp: dict[str, Any], outer_steps: int, generator: Any
) -> Any:
    import torch.nn.functional as F

    from hjsmooth.demos.study.methods import Runner, replicated_optimizer

    extra = {"generator": generator} if variant == "Parle" else {}
    opt = replicated_optimizer(variant, model.parameters(), hp, outer_steps, distributed=True, **extra)

    def closure(*_replica: int) -> Any:
        xb, yb = draw()
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        return loss

    def step() -> float:
        loss = outer_step(opt, closure)
        return float(loss.detach()) if hasattr(loss, "detach") else float(loss)

    return Runner(opt, step, lambda: model)


def run_rank_job(job: RankJob, rank: int) -> dict[str, Any]:
    """Run ``job`` on this process (all processes call it together); return this process's numbers."""
    import torch
    import torch.distributed as dist

    from hjsmooth.demos.study.jobs import cached_split
    from hjsmooth.demos.study.loop import drive, fresh_run

    split = cached_split(job.dataset, job.data_dir)
    model, draw = fresh_run(split, job.model, job.seed, stream=job.seed + STREAM_STRIDE * rank)
    cost = cost_per_process(job.variant, job.hp)
    if job.variant == "SGD-DDP":
        runner = _ddp_runner(model, draw, job.hp)
    else:
        generator = torch.Generator().manual_seed(job.seed + 1000 + STREAM_STRIDE * rank)
        runner = _replica_runner(model, draw, job.variant, job.hp, max(1, job.budget // cost), generator)
    dist.barrier()
    result = drive(runner, cost, job.budget, split, job.checkpoints)
    return {
        "job": asdict(job),
        "rank": rank,
        "val_error": result.final_val_error,
        "test_error": result.test_error,
        "curve": {
            "evaluations": result.evaluations,
            "val_error": result.val_error,
            "wall_clock_s": result.wall_clock_s,
        },
        "wall_clock_s": result.wall_clock_s[-1],
        "gradient_evaluations": result.gradient_evaluations,
        "outer_steps": result.outer_steps,
        "diverged": result.diverged,
        "train_loss": result.train_loss,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Join the process group (torchrun's environment), run the jobs of ``argv[0]``, write ``argv[1]`` on rank 0."""
    import datetime

    import torch
    import torch.distributed as dist

    from hjsmooth.demos._report import progress

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        raise SystemExit("usage: python -m hjsmooth.demos.study.distributed JOBS.json OUT.json")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(minutes=30))
    try:
        rank = dist.get_rank()
        jobs = [RankJob(**spec) for spec in json.loads(Path(args[0]).read_text())]
        mine = progress(jobs, "Table 5.1 on 2 processes (torchrun)", total=len(jobs)) if rank == 0 else jobs
        results = [run_rank_job(job, rank) for job in mine]
        if rank == 0:
            Path(args[1]).write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
