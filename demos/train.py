"""The training study: every method tuned alike on validation data, reported on test data over 5 seeds.

Tables 3.1, 4.1 and 5.1 of the thesis compare Entropy-SGD, HJ, HEAT, Elastic-SGD and Parle with SGD at
equal budgets.  This demo runs that comparison on data that need no download, as a study a skeptic can
check (the tasks, methods, search spaces and statistics are in :mod:`hjsmooth.demos.study`), beside the
methods users pick for flat minima (SAM, ASAM, SWA):

1. **Search.** Every method tries the same number of configurations: its documented setting, then random
   draws around it (learning rates, scopes, coupling, radii, scoping and SWA schedules, weight decay).  Each
   is trained on the training split and scored by its validation error; the test split is not handed to the
   search at all.
2. **Final runs.** The chosen configuration of every method is trained again with 5 fresh seeds (2 with
   ``quick``); the record holds the test and validation error of each, the wall-clock time, and the width
   of the minimum reached (top Hessian eigenvalue, Hessian trace, heat-smoothing gap).
3. **Three accountings.** All methods get the same number of minibatch gradient evaluations.  Elastic-SGD and
   Parle are also run with their replicas evaluated at once in one process (``ReplicaBatches``), each
   replica given as many gradient evaluations as SGD.  And Table 5.1 on parallel hardware
   (:mod:`hjsmooth.demos.study.hardware`): Elastic-SGD and Parle with one replica per process under
   ``torchrun`` (2 processes, one core each) against SGD in one process and data-parallel SGD (DDP) on the
   same 2 processes, every process given SGD's gradient evaluations, timed with nothing else running.

``run`` writes the figure to ``out``, the full record to ``out`` with suffix ``.json`` and the tables to
``out`` with suffix ``.txt``.  ``python -m hjsmooth.demos.train`` runs the same study with filters for
partial reruns (``--methods``, ``--tasks``) that merge into an earlier record, and ``--budget-scale`` for
a reduced run of the full study's shape; ``python -m hjsmooth.demos.study.page`` writes docs/results.md
from the record.
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
from hjsmooth.demos.study.methods import COMPETITORS, METHODS, NAMES, SMOOTHING
from hjsmooth.demos.study.record import check_compatible, empty_record, load_base, merge
from hjsmooth.demos.study.report import draw, markdown_tables, method_entry, summarise, write_json
from hjsmooth.demos.study.search import best_configuration, describe_space, draw_configurations
from hjsmooth.demos.study.tasks import TASKS, Task, data_tasks

__all__ = ["run", "study", "main", "Plan", "plan_for", "budget_for", "execute", "REPLICATED", "HARDWARE"]

#: The methods also run with their replicas in parallel (the wall-clock accounting of Table 5.1).
REPLICATED = ("Elastic-SGD", "Parle")
#: The name under which ``methods`` selects the parallel-hardware runs (Table 5.1 under torchrun).
HARDWARE = "parallel-hardware"


@dataclass(frozen=True)
class Plan:
    """The size of a study: seeds, configurations per method, width samples, tasks and their budgets."""

    tasks: tuple[Task, ...]
    seeds: tuple[int, ...]
    search_seeds: tuple[int, ...]
    configurations: int
    width_samples: int
    quick: bool


def plan_for(quick: bool, seed: int, data_dir: Path | None, tasks: Sequence[str] | None = None) -> Plan:
    """The full study (5 final seeds, 8 configurations per method) or its ``quick`` version (2 and 2), on
    ``tasks`` (names; default: every task of the study, the digits task alone with ``quick``, and a task per
    dataset found in ``data_dir``)."""
    local: list[Task] = []
    if data_dir is not None:
        from hjsmooth.demos.local_datasets import available

        found = available(data_dir)
        if not found:
            raise FileNotFoundError(f"`data_dir` {str(data_dir)!r} holds neither MNIST/raw nor cifar-10-batches-py")
        local = data_tasks(found)
    every = [*TASKS, *local]
    if tasks is None:
        chosen = [TASKS[0], *local] if quick else every
    else:
        names = [t.name for t in every]
        unknown = [t for t in tasks if t not in names]
        if unknown or not tasks:
            raise ValueError(f"unknown `tasks` {list(tasks)!r}; valid values are {names}")
        chosen = [t for t in every if t.name in tasks]
    final = 2 if quick else 5
    return Plan(
        tasks=tuple(chosen),
        seeds=tuple(seed + i for i in range(final)),
        search_seeds=(seed + 100,) if quick else (seed + 100, seed + 101),
        configurations=2 if quick else 8,
        width_samples=8 if quick else 50,
        quick=quick,
    )


def budget_for(task: Task, n_train: int, quick: bool, scale: float = 1.0) -> int:
    """The task's budget in gradient evaluations: its effective epochs (times ``scale``), rounded down to a
    multiple of every method's documented cost per outer step, so that every method spends exactly the same
    budget."""
    costs = [METHODS[name].cost(METHODS[name].documented) for name in NAMES]
    unit = math.lcm(*costs)
    raw = (task.quick_epochs if quick else task.epochs) * scale * steps_per_epoch(n_train)
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
    plan: Plan, names: Sequence[str], budgets: dict[str, int], workers: int, data_dir: str | None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
    """Run the search of ``names``; return the chosen settings and the search record, per task and method."""
    jobs, where = [], []
    record: dict[str, dict[str, dict[str, Any]]] = {}
    for task in plan.tasks:
        record[task.name] = {}
        for name in names:
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


def _finals(
    plan: Plan,
    names: Sequence[str],
    chosen: dict[str, dict[str, Any]],
    budgets: dict[str, int],
    workers: int,
    data_dir: str | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The final runs of ``names`` (and of the replicated ones with their replicas in parallel): the entries
    of ``record["tasks"]`` and ``record["parallel"]``, per task and method."""
    jobs = []
    for task in plan.tasks:
        for name in names:
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
                        data_dir=data_dir,
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
                            data_dir=data_dir,
                            width_samples=plan.width_samples,
                        )
                    )
    results = execute(jobs, workers, "final runs (test error, width)")
    tasks: dict[str, dict[str, Any]] = {}
    parallel: dict[str, dict[str, Any]] = {}
    for task in plan.tasks:
        tasks[task.name], parallel[task.name] = {}, {}
        for name in names:
            hp = chosen[task.name][name]
            for accounting, slot in (("evaluations", tasks), ("parallel", parallel)):
                mine = [
                    r
                    for r in results
                    if r["job"]["task"] == task.name
                    and r["job"]["method"] == name
                    and r["job"]["accounting"] == accounting
                ]
                if mine:
                    slot[task.name][name] = method_entry(mine, hp, METHODS[name].replicas(hp))
    return tasks, parallel


def _hardware(
    plan: Plan, chosen: dict[str, dict[str, Any]], budgets: dict[str, int], data_dir: str | None
) -> dict[str, Any]:
    """Table 5.1 on parallel hardware (:mod:`hjsmooth.demos.study.hardware`), one run at a time."""
    from hjsmooth.demos.study.hardware import hardware_entry, hardware_jobs, launch

    single, parallel = hardware_jobs(plan.tasks, chosen, budgets, plan.seeds, data_dir)
    sgd = execute(single, 1, "Table 5.1: SGD in one process")
    ranks = launch(parallel)
    return {
        task.name: hardware_entry(
            [r for r in sgd if r["job"]["task"] == task.name], [r for r in ranks if r["job"]["task"] == task.name]
        )
        for task in plan.tasks
    }


def _sizes(task: Task, data_dir: str | None) -> dict[str, Any]:
    """The examples of ``task``'s split and the weights of its network."""
    from hjsmooth.demos.study.tasks import make_model

    split = cached_split(task.dataset, data_dir)
    weights = sum(p.numel() for p in make_model(task.model, split.n_features).parameters())
    return {
        "examples": {"train": len(split.y_train), "validation": len(split.y_val), "test": len(split.y_test)},
        "weights": int(weights),
    }


def _machine(workers: int) -> dict[str, Any]:
    """The software and hardware a record was made on."""
    import os
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for package in ("torch", "numpy", "scipy", "scikit-learn", "mnist1d", "pytorch_optimizer"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "workers": workers,
        "torch_threads_per_process": 1,
        **versions,
    }


def _selection(methods: Sequence[str] | None) -> tuple[list[str], bool]:
    """The methods to run (in table order) and whether to run the parallel-hardware section (by default, when
    the methods whose settings it uses are run)."""
    from hjsmooth.demos.study.hardware import NEEDS

    if methods is None:
        return list(NAMES), all(name in NAMES for name in NEEDS)
    valid = (*NAMES, HARDWARE)
    unknown = [m for m in methods if m not in valid]
    if unknown or not methods:
        raise ValueError(f"unknown `methods` {list(methods)!r}; valid values are {', '.join(valid)}")
    return [n for n in NAMES if n in methods], HARDWARE in methods


def run(
    out: Path, quick: bool = False, seed: int = 0, data_dir: Path | None = None, workers: int | None = None
) -> dict[str, Any]:
    """Run the whole study; write ``out`` (PNG), ``out.json`` (the record) and ``out.txt`` (the tables).

    Parameters
    ----------
    out : Path
        The figure to write: per task, validation error against effective epochs and against wall-clock
        time, test error against the width of the minimum, and the parallel-hardware runs against time.
    quick : bool
        The same pipeline, small: the digits task only, 2 configurations per method, 2 final seeds, a budget
        of a few epochs (seconds on 2 CPU cores).
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
    return study(out, quick=quick, seed=seed, data_dir=data_dir, workers=workers)


def study(
    out: Path,
    quick: bool = False,
    seed: int = 0,
    data_dir: Path | None = None,
    workers: int | None = None,
    methods: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    budget_scale: float = 1.0,
) -> dict[str, Any]:
    """:func:`run` with filters: ``methods`` or ``tasks`` run part of the study and merge it into ``out.json``.

    Parameters
    ----------
    out, quick, seed, data_dir, workers
        As in :func:`run`.
    methods : sequence of str or None
        The methods to search and run (names of :data:`~hjsmooth.demos.study.methods.NAMES`), and
        ``"parallel-hardware"`` for Table 5.1 under torchrun; default: all of them.  With a selection of
        methods or tasks, an existing ``out.json`` made with the same design is kept and the new runs replace
        their earlier entries (:mod:`hjsmooth.demos.study.record`); the parallel-hardware runs take the
        settings of SGD, Elastic-SGD and Parle from this run or from that record.
    tasks : sequence of str or None
        Task names (default: every task; the digits task alone with ``quick``), merged as ``methods`` are.
    budget_scale : float
        Multiplies every task's budget in effective epochs (> 0; 1 for results: a smaller value is for
        timing a run of the full study's shape).

    Returns
    -------
    dict
        The record written to ``out.json``, plus ``"table"``.
    """
    import os

    if not (isinstance(budget_scale, (int, float)) and math.isfinite(budget_scale) and budget_scale > 0):
        raise ValueError(f"`budget_scale` must be a finite number > 0, got {budget_scale!r}")
    started = time.perf_counter()
    names, with_hardware = _selection(methods)
    plan = plan_for(quick, seed, data_dir, tasks)
    workers = workers if workers is not None else (1 if quick else max(1, min(4, os.cpu_count() or 1)))
    ddir = str(data_dir) if data_dir is not None else None
    out = Path(out)
    n_train = {t.name: len(cached_split(t.dataset, ddir).y_train) for t in plan.tasks}
    budgets = {t.name: budget_for(t, n_train[t.name], quick, budget_scale) for t in plan.tasks}
    sizes = {t.name: _sizes(t, ddir) for t in plan.tasks}
    settings = {
        "quick": quick,
        "seeds": list(plan.seeds),
        "search_seeds": list(plan.search_seeds),
        "configurations_per_method": plan.configurations,
        "width_samples": plan.width_samples,
        "batch": 128,
        "lr_drops": "outer lr divided by 5 after 60 % and 80 % of the budget",
        "budget_scale": float(budget_scale),
        "budgets": {
            t.name: {
                "gradient_evaluations": budgets[t.name],
                "steps_per_epoch": steps_per_epoch(n_train[t.name]),
                "effective_epochs": budgets[t.name] / steps_per_epoch(n_train[t.name]),
                **sizes[t.name],
            }
            for t in plan.tasks
        },
        "workers": workers,
        "machine": _machine(workers),
    }
    partial = methods is not None or tasks is not None
    base = load_base(out.with_suffix(".json")) if partial else empty_record()
    check_compatible(base, settings, [t.name for t in plan.tasks])

    chosen, search_record = _search(plan, names, budgets, workers, ddir) if names else ({}, {})
    per_task, parallel = _finals(plan, names, chosen, budgets, workers, ddir) if names else ({}, {})
    part: dict[str, Any] = {"tasks": per_task, "parallel": parallel, "search": search_record, "settings": settings}
    if with_hardware:
        known = {
            t.name: {
                **{m: e["hyperparameters"] for m, e in base["tasks"].get(t.name, {}).items()},
                **chosen.get(t.name, {}),
            }
            for t in plan.tasks
        }
        part["parallel_hardware"] = _hardware(plan, known, budgets, ddir)
    part["parts"] = [
        {
            "methods": names + ([HARDWARE] if with_hardware else []),
            "tasks": [t.name for t in plan.tasks],
            "wall_time_s": time.perf_counter() - started,
        }
    ]
    record = summarise(merge(base, part, NAMES), SMOOTHING, COMPETITORS)
    write_json(record, out.with_suffix(".json"))  # first: an hour of runs is kept even if a table or the figure fails
    text = markdown_tables(record)
    spe = {task: b["steps_per_epoch"] for task, b in record["settings"]["budgets"].items()}
    fig = draw(record, spe)
    save(
        fig,
        out,
        "train: test error (%) mean ± std over seeds, paired against SGD; widths",
        {"wall_time_s": record["wall_time_s"], "table": "\n" + text},
        quick=quick,
    )
    return {**record, "table": text}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hjsmooth.demos.train``: the study with the filters of :func:`study`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hjsmooth.demos.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("train.png"), help="the figure (default train.png)")
    parser.add_argument("--quick", action="store_true", help="the small version (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="the first final seed (default 0)")
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder with MNIST and/or CIFAR-10")
    parser.add_argument("--workers", type=int, default=None, help="processes training at once")
    parser.add_argument(
        "--methods",
        type=lambda t: t.split(","),
        default=None,
        help=f"comma-separated: some of {', '.join(NAMES)}, {HARDWARE} (merged into --out's json)",
    )
    parser.add_argument(
        "--tasks",
        type=lambda t: t.split(","),
        default=None,
        help=f"comma-separated: some of {', '.join(t.name for t in TASKS)}",
    )
    parser.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        help="multiply every budget (1 for results; less to time a reduced run)",
    )
    args = parser.parse_args(argv)
    try:
        numbers = study(
            args.out,
            quick=args.quick,
            seed=args.seed,
            data_dir=args.data_dir,
            workers=args.workers,
            methods=args.methods,
            tasks=args.tasks,
            budget_scale=args.budget_scale,
        )
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc).replace("`", ""))
    print(numbers["table"])
    print(f"wrote {args.out} and its .json and .txt ({numbers['wall_time_s']:.0f} s in all parts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
