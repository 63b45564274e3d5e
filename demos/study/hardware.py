"""Table 5.1 on parallel hardware: the runs, their launch under torchrun, and their record.

On a machine with ``PROCESSES`` CPU cores, one process per core is one device per replica.  For every task
and final seed four runs get the same number of gradient evaluations *per process*, the budget of the
study's single-process runs:

* ``"SGD"``: SGD in one process on one thread (the study's chosen setting), the baseline in time;
* ``"SGD-DDP"``: data-parallel SGD on the ``PROCESSES`` processes (same cores, same wall-clock as the
  replicated methods; the chosen SGD setting, so the averaged minibatch is ``PROCESSES`` times larger);
* ``"Elastic-SGD"``, ``"Parle"``: one replica per process (``distributed=True``), the setting chosen by
  the study's search.

The single-process runs are made in this process, one after the other; the others under one
``python -m torch.distributed.run --nproc_per_node=PROCESSES`` launch (:mod:`.distributed`), with nothing
else of the study running.  The record holds, per run, the validation error against gradient evaluations
and against wall-clock time, and compares the final test errors seed by seed (:func:`hardware_entry`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hjsmooth.demos.study.distributed import VARIANTS, RankJob
from hjsmooth.demos.study.jobs import Job
from hjsmooth.demos.study.report import WIDTH_MEASURES, method_entry, paired_entry

__all__ = [
    "PROCESSES",
    "CHECKPOINTS",
    "RUNS",
    "BASELINE",
    "NEEDS",
    "hardware_jobs",
    "launch",
    "at_time",
    "hardware_entry",
]

#: Processes (one CPU core each) of the parallel runs.
PROCESSES = 2
#: Validation checkpoints per run (the curves against wall-clock time).
CHECKPOINTS = 20
#: The single-process baseline and the runs on ``PROCESSES`` processes, in the order of the tables.
BASELINE = "SGD"
RUNS = (BASELINE, *VARIANTS)
_SOURCE = {"SGD-DDP": "SGD", "Elastic-SGD": "Elastic-SGD", "Parle": "Parle"}
#: The methods whose chosen settings the runs use.
NEEDS = ("SGD", "Elastic-SGD", "Parle")


def hardware_jobs(
    tasks: Sequence[Any],
    chosen: Mapping[str, Mapping[str, Mapping[str, Any]]],
    budgets: Mapping[str, int],
    seeds: Sequence[int],
    data_dir: str | None,
) -> tuple[list[Job], list[RankJob]]:
    """The single-process SGD jobs and the multi-process jobs for ``tasks`` (``chosen[task][method]``: the
    settings the search chose; ``budgets[task]``: gradient evaluations per process)."""
    single, parallel = [], []
    for task in tasks:
        hp = chosen[task.name]
        missing = [name for name in NEEDS if name not in hp]
        if missing:
            raise ValueError(
                f"the parallel-hardware runs of task {task.name!r} need the chosen settings of "
                f"{missing}: run those methods too, or merge into a record that has them"
            )
        for seed in seeds:
            single.append(
                Job(
                    "final",
                    task.name,
                    task.dataset,
                    task.model,
                    BASELINE,
                    dict(hp[BASELINE]),
                    seed,
                    budgets[task.name],
                    accounting="hardware",
                    data_dir=data_dir,
                    checkpoints=CHECKPOINTS,
                )
            )
            for variant in VARIANTS:
                parallel.append(
                    RankJob(
                        task.name,
                        task.dataset,
                        task.model,
                        variant,
                        dict(hp[_SOURCE[variant]]),
                        seed,
                        budgets[task.name],
                        checkpoints=CHECKPOINTS,
                        data_dir=data_dir,
                    )
                )
    return single, parallel


def launch(jobs: Sequence[RankJob], processes: int = PROCESSES, timeout: float | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` under ``python -m torch.distributed.run --standalone --nproc_per_node=processes`` (gloo on
    this machine, a free port chosen by torchrun, one thread per process); return process 0's numbers, one dict
    per job, in order.

    Raises ``RuntimeError`` (with torchrun's exit status) when a process fails, and
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
    """
    if processes < 2:
        raise ValueError(f"`processes` must be >= 2, got {processes!r}")
    if not jobs:
        return []
    with tempfile.TemporaryDirectory(prefix="hjsmooth-table51-") as tmp:
        spec, out = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
        spec.write_text(json.dumps([asdict(job) for job in jobs]))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc_per_node={processes}",
            "-m",
            "hjsmooth.demos.study.distributed",
            str(spec),
            str(out),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(command, env=env, timeout=timeout, stdout=subprocess.DEVNULL)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"the parallel-hardware runs failed: torchrun exited with status {proc.returncode} "
                f"(its error output is above); command: {' '.join(command)}"
            )
        return json.loads(out.read_text())


def at_time(curve: Mapping[str, Sequence[float]], seconds: float) -> float:
    """The validation error of ``curve`` at the last checkpoint reached within ``seconds`` of training."""
    best = curve["val_error"][0]
    for wall, err in zip(curve["wall_clock_s"], curve["val_error"]):
        if wall <= seconds * (1.0 + 1e-9):
            best = err
    return float(best)


def _entry(results: Sequence[Mapping[str, Any]], processes: int) -> dict[str, Any]:
    ordered = sorted(results, key=lambda r: r["job"]["seed"])
    entry = method_entry(ordered, ordered[0]["job"]["hp"], processes)
    for key in (*WIDTH_MEASURES, "width_stderr", "width_settings", "replicas"):
        entry.pop(key, None)
    entry["processes"] = processes
    return entry


def hardware_entry(
    single: Sequence[Mapping[str, Any]], parallel: Sequence[Mapping[str, Any]], processes: int = PROCESSES
) -> dict[str, Any]:
    """The record of one task: every run (:data:`RUNS`) and the comparisons, seed by seed.

    ``comparison[run]`` holds, for each run on ``processes`` processes: ``vs_SGD`` (paired test error against
    single-process SGD: the same gradient evaluations per process), ``vs_SGD-DDP`` (against data-parallel SGD
    on the same processes; for the replicated methods), ``wall_clock_ratio`` (its training time over SGD's,
    per seed), and ``val_at_sgd_time`` (its validation error at the last checkpoint reached within the time
    single-process SGD needed for its whole budget, per seed) with ``at_sgd_time_vs_SGD`` (paired against SGD's
    final validation error).  Errors in %, times in seconds.
    """
    runs = {BASELINE: _entry(single, 1)}
    for variant in VARIANTS:
        mine = [r for r in parallel if r["job"]["variant"] == variant]
        if mine:
            runs[variant] = _entry(mine, processes)
    base = runs[BASELINE]
    comparison: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        if variant not in runs:
            continue
        e = runs[variant]
        if e["seeds"] != base["seeds"]:
            raise ValueError(f"{variant} ran seeds {e['seeds']}, single-process SGD {base['seeds']}: cannot pair")
        at_sgd = [at_time(c, t) for c, t in zip(e["curves"], base["wall_clock_s"])]
        c: dict[str, Any] = {
            "vs_SGD": paired_entry(e["test_error"], base["test_error"]),
            "wall_clock_ratio": [w / b if b > 0 else math.nan for w, b in zip(e["wall_clock_s"], base["wall_clock_s"])],
            "val_at_sgd_time": at_sgd,
            "at_sgd_time_vs_SGD": paired_entry(at_sgd, base["val_error"]),
        }
        if variant != "SGD-DDP" and "SGD-DDP" in runs:
            c["vs_SGD-DDP"] = paired_entry(e["test_error"], runs["SGD-DDP"]["test_error"])
        comparison[variant] = c
    return {
        "processes": processes,
        "gradient_evaluations_per_process": base["gradient_evaluations"],
        "runs": runs,
        "comparison": comparison,
    }
