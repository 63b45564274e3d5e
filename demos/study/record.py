"""Partial reruns: a run of some methods (or of the parallel-hardware section) merged into an earlier record.

A record can take the results of a later run only when both were made with the same design: the same
``quick`` flag, final seeds, search seeds, configurations per method, width samples, batch and, for every task
the later run touched, the same budget.  The merged record keeps the earlier entries of everything the later
run did not redo, and lists every run that went into it under ``"parts"`` (methods, tasks, wall time); its
``wall_time_s`` is their sum.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DESIGN_KEYS", "empty_record", "load_base", "check_compatible", "merge"]

#: The settings two records must share to be merged.
DESIGN_KEYS = ("quick", "seeds", "search_seeds", "configurations_per_method", "width_samples", "batch", "budget_scale")
_PER_TASK = ("tasks", "parallel", "search")


def empty_record() -> dict[str, Any]:
    """A record without runs."""
    return {
        "tasks": {},
        "parallel": {},
        "search": {},
        "comparison": {},
        "width_vs_error": {},
        "parallel_hardware": {},
        "settings": {},
        "parts": [],
        "wall_time_s": 0.0,
    }


def load_base(path: Path) -> dict[str, Any]:
    """The record at ``path`` (JSON) to merge into, or an empty record when there is none."""
    path = Path(path)
    if not path.exists():
        return empty_record()
    record = json.loads(path.read_text())
    for key, value in empty_record().items():
        record.setdefault(key, copy.deepcopy(value))
    if not record["parts"] and record.get("wall_time_s"):  # a record written before parts were listed
        record["parts"] = [
            {
                "methods": sorted({m for t in record["tasks"].values() for m in t}),
                "tasks": list(record["tasks"]),
                "wall_time_s": record["wall_time_s"],
            }
        ]
    return record


def check_compatible(base: Mapping[str, Any], settings: Mapping[str, Any], tasks: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first setting in which ``base`` and a run with ``settings`` differ."""
    old = base.get("settings", {})
    if not old:
        return
    for key in DESIGN_KEYS:
        if key in old and old[key] != settings.get(key):
            raise ValueError(
                f"the record to merge into was made with {key} = {old[key]!r}, this run uses "
                f"{settings.get(key)!r}: write to another `out`, or rerun every method"
            )
    for task in tasks:
        before = old.get("budgets", {}).get(task)
        now = settings["budgets"][task]
        if before is not None and before["gradient_evaluations"] != now["gradient_evaluations"]:
            raise ValueError(
                f"the record to merge into gave task {task!r} {before['gradient_evaluations']} gradient "
                f"evaluations, this run {now['gradient_evaluations']}: write to another `out`"
            )


def merge(base: Mapping[str, Any], part: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """``base`` with the runs of ``part`` put in (``part`` wins where both have an entry); the methods of every
    task in the order of ``order``.  Derived sections are left for :func:`report.summarise` to recompute."""
    out = copy.deepcopy(dict(base))
    for key in _PER_TASK:
        for task, per_method in part.get(key, {}).items():
            merged = {**out.get(key, {}).get(task, {}), **per_method}
            out.setdefault(key, {})[task] = {m: merged[m] for m in sorted(merged, key=_rank(order))}
    for task, hw in part.get("parallel_hardware", {}).items():
        out.setdefault("parallel_hardware", {})[task] = hw
    settings = {**out.get("settings", {}), **part["settings"]}
    settings["budgets"] = {**out.get("settings", {}).get("budgets", {}), **part["settings"]["budgets"]}
    out["settings"] = settings
    out["parts"] = [*out.get("parts", []), *part["parts"]]
    out["wall_time_s"] = float(sum(p["wall_time_s"] for p in out["parts"]))
    return out


def _rank(order: Sequence[str]) -> Any:
    return lambda name: (order.index(name) if name in order else len(order), name)
