"""The unit of work of the study, run in this process or in a worker process.

A :class:`Job` names everything a run needs (task, method, settings, seed, budget), so a worker process
rebuilds the data and the model from it; :func:`run_job` returns plain numbers only.  A ``"search"`` job
trains on the split *without* its test arrays and returns the validation error; a ``"final"`` job also
returns the test error and the width of the minimum it reached.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "run_job", "cached_split"]

STAGES = ("search", "final")
#: equal gradient evaluations; replicas evaluated at once (vmap); single-process SGD of the parallel-hardware runs
ACCOUNTINGS = ("evaluations", "parallel", "hardware")


@dataclass(frozen=True)
class Job:
    """One training run.  ``accounting`` is one of :data:`ACCOUNTINGS`; ``checkpoints`` validation points."""

    stage: str
    task: str
    dataset: str
    model: str
    method: str
    hp: dict[str, Any] = field(hash=False)
    seed: int
    budget: int
    accounting: str = "evaluations"
    data_dir: str | None = None
    width_samples: int = 0
    checkpoints: int = 10

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"`stage` must be one of {STAGES}, got {self.stage!r}")
        if self.accounting not in ACCOUNTINGS:
            raise ValueError(f"`accounting` must be one of {ACCOUNTINGS}, got {self.accounting!r}")


@functools.lru_cache(maxsize=4)
def cached_split(dataset: str, data_dir: str | None) -> Any:
    """:func:`load_split`, once per process (MNIST-1D takes seconds to generate)."""
    from hjsmooth.demos.study.tasks import load_split

    return load_split(dataset, Path(data_dir) if data_dir is not None else None)


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` with one torch thread; return its numbers (errors in %, times in s)."""
    import torch

    from hjsmooth.demos.study.loop import train_run
    from hjsmooth.demos.study.methods import METHODS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and it does not fight the other worker
    try:
        split = cached_split(job.dataset, job.data_dir)
        if job.stage == "search":
            split = split.without_test()
        method = METHODS[job.method]
        result = train_run(
            method,
            job.hp,
            split,
            job.model,
            job.budget,
            job.seed,
            parallel=job.accounting == "parallel",
            checkpoints=job.checkpoints,
        )
        out = {
            "job": asdict(job),
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
        if job.stage == "final" and job.width_samples > 0 and not result.diverged:
            from hjsmooth.demos.study.width import measure_width

            out["width"] = measure_width(result.model, split, job.width_samples, seed=job.seed)
        return out
    finally:
        torch.set_num_threads(threads)
