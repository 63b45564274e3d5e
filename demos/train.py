"""The training study: every method tuned alike on validation data, reported on test data over 5 seeds.

Tables 3.1, 4.1 and 5.1 of the thesis compare Entropy-SGD, HJ, HEAT, Elastic-SGD and Parle with SGD at
equal budgets.  This demo runs that comparison on data that need no download, as a study a skeptic can
check (the tasks, methods, search spaces and statistics are in :mod:`hjsmooth.demos.study`):

1. **Search.** Every method tries the same number of configurations: its documented setting, then random
   draws around it (learning rates, scopes, coupling, scoping schedules, weight decay, EMA decay).  Each is
   trained on the training split and scored by its validation error; the test split is not handed to the
   search at all.
2. **Final runs.** The chosen configuration of every method is trained again with 5 fresh seeds (2 with
   ``quick``); the record holds the test and validation error of each, the wall-clock time, and the width
   of the minimum reached (top Hessian eigenvalue, Hessian trace, heat-smoothing gap).
3. **Two accountings.** All methods get the same number of minibatch gradient evaluations.  Elastic-SGD and
   Parle are also run with their replicas in parallel, as in Table 5.1: each replica gets as many gradient
   evaluations as SGD, the replicas are evaluated at once (``ReplicaBatches``), and their wall-clock time is
   measured.

``run`` writes the figure to ``out``, the full record to ``out`` with suffix ``.json`` and the tables to
``out`` with suffix ``.txt``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import progress, save
from hjsmooth.demos.study.jobs import Job, cached_split, run_job
from hjsmooth.demos.study.loop import steps_per_epoch
from hjsmooth.demos.study.methods import METHODS, NAMES
from hjsmooth.demos.study.report import compare, draw, markdown_tables, method_entry, width_correlations, write_json
from hjsmooth.demos.study.search import best_configuration, describe_space, draw_configurations
from hjsmooth.demos.study.tasks import TASKS, Task, data_tasks

__all__ = ["run", "Plan", "plan_for", "budget_for", "execute", "REPLICATED"]

#: The methods also run with their replicas in parallel (the wall-clock accounting of Table 5.1).
REPLICATED = ("Elastic-SGD", "Parle")


@dataclass(frozen=True)
class Plan:
    """The size of a study: seeds, configurations per method, width samples, tasks and their budgets."""

    tasks: tuple[Task, ...]
    seeds: tuple[int, ...]
    search_seeds: tuple[int, ...]
    configurations: int
    width_samples: int
    quick: bool


def plan_for(quick: bool, seed: int, data_dir: Path | None) -> Plan:
    """The full study (5 final seeds, 8 configurations per method) or its ``quick`` version (2 and 2)."""
    tasks: list[Task] = [TASKS[0]] if quick else list(TASKS)
    if data_dir is not None:
        from hjsmooth.demos.local_datasets import available

        found = available(data_dir)
        if not found:
            raise FileNotFoundError(f"`data_dir` {str(data_dir)!r} holds neither MNIST/raw nor cifar-10-batches-py")
        tasks += data_tasks(found)
    final = 2 if quick else 5
    return Plan(
        tasks=tuple(tasks),
        seeds=tuple(seed + i for i in range(final)),
        search_seeds=(seed + 100,),
        configurations=2 if quick else 8,
        width_samples=8 if quick else 50,
        quick=quick,
    )


def budget_for(task: Task, n_train: int, quick: bool) -> int:
    """The task's budget in gradient evaluations: its effective epochs, rounded down to a multiple of every
    method's documented cost per outer step, so that every method spends exactly the same budget."""
    costs = [METHODS[name].cost(METHODS[name].documented) for name in NAMES]
    unit = math.lcm(*costs)
    raw = (task.quick_epochs if quick else task.epochs) * steps_per_epoch(n_train)
    return max(unit, int(raw // unit) * unit)


def execute(
    jobs: Sequence[Job], workers: int, desc: str, runner: Callable[[Job], dict[str, Any]] = run_job
) -> list[dict[str, Any]]:
    """Run ``jobs`` (in this process when ``workers == 1``, else in that many spawned processes), in order."""
    if workers <= 1 or len(jobs) <= 1:
        return [runner(job) for job in progress(jobs, desc, total=len(jobs))]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(progress(pool.map(runner, jobs), desc, total=len(jobs)))


def _search(
    plan: Plan, budgets: dict[str, int], workers: int, data_dir: str | None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
    """Run the search; return the chosen settings and the search record, per task and method."""
    jobs, where = [], []
    record: dict[str, dict[str, dict[str, Any]]] = {}
    for task in plan.tasks:
        record[task.name] = {}
        for name in NAMES:
            method = METHODS[name]
            rng = np.random.default_rng([plan.seeds[0], len(task.name), sum(map(ord, task.name + name))])
            configs = draw_configurations(method.documented, method.space, plan.configurations, rng)
            record[task.name][name] = {
                "documented": dict(method.documented),
                "source": method.source,
                "space": describe_space(method.space),
                "configurations": [{"hyperparameters": c, "val_error": []} for c in configs],
            }
            for i, hp in enumerate(configs):
                for s in plan.search_seeds:
                    jobs.append(
                        Job(
                            "search",
                            task.name,
                            task.dataset,
                            task.model,
                            name,
                            hp,
                            s,
                            budgets[task.name],
                            data_dir=data_dir,
                        )
                    )
                    where.append((task.name, name, i))
    for (task_name, name, i), result in zip(where, execute(jobs, workers, "search (validation only)")):
        record[task_name][name]["configurations"][i]["val_error"].append(result["val_error"])
    chosen: dict[str, dict[str, Any]] = {}
    for task_name, per_method in record.items():
        chosen[task_name] = {}
        for name, rec in per_method.items():
            scores = [float(np.mean(c["val_error"])) for c in rec["configurations"]]
            best = best_configuration([c["hyperparameters"] for c in rec["configurations"]], scores)
            rec["chosen"] = best
            chosen[task_name][name] = rec["configurations"][best]["hyperparameters"]
    return chosen, record


def run(
    out: Path, quick: bool = False, seed: int = 0, data_dir: Path | None = None, workers: int | None = None
) -> dict[str, Any]:
    """Run the study; write ``out`` (PNG), ``out.json`` (the record) and ``out.txt`` (the tables).

    Parameters
    ----------
    out : Path
        The figure to write: per task, validation error against effective epochs and against wall-clock
        time, and test error against the width of the minimum.
    quick : bool
        The same pipeline, small: the digits task only, 2 configurations per method, 2 final seeds, a budget
        of a few epochs.
    seed : int
        The first final seed; the final runs use ``seed .. seed + 4`` (``seed, seed + 1`` with ``quick``),
        the search runs ``seed + 100``.
    data_dir : Path or None
        A folder holding MNIST and/or CIFAR-10 in torchvision's layout; each one found adds a task with an
        MLP.  Nothing is downloaded.
    workers : int or None
        Processes training at once (default: 1 with ``quick``, else the number of CPU cores, at most 4).

    Returns
    -------
    dict
        The record written to ``out.json`` (see :mod:`hjsmooth.demos.study.report`), plus ``"table"``.
    """
    import os

    started = time.perf_counter()
    plan = plan_for(quick, seed, data_dir)
    workers = workers if workers is not None else (1 if quick else max(1, min(4, os.cpu_count() or 1)))
    ddir = str(data_dir) if data_dir is not None else None
    n_train = {t.name: len(cached_split(t.dataset, ddir).y_train) for t in plan.tasks}
    budgets = {t.name: budget_for(t, n_train[t.name], quick) for t in plan.tasks}
    chosen, search_record = _search(plan, budgets, workers, ddir)

    jobs = []
    for task in plan.tasks:
        for name in NAMES:
            hp = chosen[task.name][name]
            for s in plan.seeds:
                jobs.append(
                    Job(
                        "final",
                        task.name,
                        task.dataset,
                        task.model,
                        name,
                        hp,
                        s,
                        budgets[task.name],
                        data_dir=ddir,
                        width_samples=plan.width_samples,
                    )
                )
            if name in REPLICATED:
                n = METHODS[name].replicas(hp)
                for s in plan.seeds:
                    jobs.append(
                        Job(
                            "final",
                            task.name,
                            task.dataset,
                            task.model,
                            name,
                            hp,
                            s,
                            budgets[task.name] * n,
                            accounting="parallel",
                            data_dir=ddir,
                            width_samples=plan.width_samples,
                        )
                    )
    results = execute(jobs, workers, "final runs (5 seeds, test error, width)" if not quick else "final runs")

    record: dict[str, Any] = {
        "tasks": {},
        "parallel": {},
        "search": search_record,
        "comparison": {},
        "width_vs_error": {},
    }
    for task in plan.tasks:
        record["tasks"][task.name], record["parallel"][task.name] = {}, {}
        for name in NAMES:
            hp = chosen[task.name][name]
            for accounting, slot in (("evaluations", record["tasks"]), ("parallel", record["parallel"])):
                mine = [
                    r
                    for r in results
                    if r["job"]["task"] == task.name
                    and r["job"]["method"] == name
                    and r["job"]["accounting"] == accounting
                ]
                if mine:
                    slot[task.name][name] = method_entry(mine, hp, METHODS[name].replicas(hp))
        record["comparison"][task.name] = compare(record["tasks"][task.name])
        record["width_vs_error"][task.name] = width_correlations(record["tasks"][task.name])
    record["settings"] = {
        "quick": quick,
        "seeds": list(plan.seeds),
        "search_seeds": list(plan.search_seeds),
        "configurations_per_method": plan.configurations,
        "width_samples": plan.width_samples,
        "batch": 128,
        "lr_drops": "outer lr divided by 5 after 60 % and 80 % of the budget",
        "budgets": {
            t.name: {
                "gradient_evaluations": budgets[t.name],
                "steps_per_epoch": steps_per_epoch(n_train[t.name]),
                "effective_epochs": budgets[t.name] / steps_per_epoch(n_train[t.name]),
            }
            for t in plan.tasks
        },
        "workers": workers,
    }
    record["wall_time_s"] = time.perf_counter() - started
    text = markdown_tables(record)
    fig = draw(record, {t.name: steps_per_epoch(n_train[t.name]) for t in plan.tasks})
    out = Path(out)
    write_json(record, out.with_suffix(".json"))
    save(
        fig,
        out,
        "train: test error (%) mean ± std over seeds, paired against SGD; widths",
        {"wall_time_s": record["wall_time_s"], "table": "\n" + text},
        quick=quick,
    )
    return {**record, "table": text}
