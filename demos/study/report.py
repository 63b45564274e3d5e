"""The study's record (``train.json``), its Markdown tables and its figure.

The record has one entry per task and method::

    {"tasks": {TASK: {METHOD: {"test_error": [per seed], "val_error": [per seed],
       "hessian_top": [per seed], "hessian_trace": [per seed], "hyperparameters": {...},
       "gradient_evaluations": int, "wall_clock_s": [per seed], ...}}},
     "parallel": {TASK: {"Elastic-SGD": {...}, "Parle": {...}}},   # replicas run in parallel
     "search": {TASK: {METHOD: {"space": ..., "configurations": [...], "chosen": int}}},
     "comparison": {TASK: {METHOD: {"difference": ..., "interval": [lo, hi], "p_value": ..., "verdict": ...}}},
     "width_vs_error": {TASK: {MEASURE: {"spearman": ..., "p_value": ...}}},
     "settings": {...}, "wall_time_s": ...}

Errors are in %, times in seconds, ``gradient_evaluations`` counts minibatch gradients per run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos.study.stats import mean_std, paired, rank_correlation

__all__ = ["method_entry", "compare", "width_correlations", "markdown_tables", "write_json", "draw",
           "WIDTH_MEASURES"]

#: The width measures recorded per run (see :mod:`hjsmooth.demos.study.width`), as named in the record.
WIDTH_MEASURES = ("hessian_top", "hessian_trace", "smoothing_gap")


def method_entry(results: Sequence[Mapping[str, Any]], hp: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """The record of one method on one task from its final runs (one per seed, in seed order)."""
    entry: dict[str, Any] = {
        "seeds": [r["job"]["seed"] for r in results],
        "test_error": [r["test_error"] for r in results],
        "val_error": [r["val_error"] for r in results],
        "hyperparameters": dict(hp),
        "gradient_evaluations": int(results[0]["gradient_evaluations"]),
        "outer_steps": int(results[0]["outer_steps"]),
        "replicas": int(replicas),
        "wall_clock_s": [r["wall_clock_s"] for r in results],
        "diverged": [bool(r["diverged"]) for r in results],
        "curves": [r["curve"] for r in results],
    }
    for measure in WIDTH_MEASURES:
        entry[measure] = [float(r["width"][measure]) if "width" in r else math.nan for r in results]
    widths = [r["width"] for r in results if "width" in r]
    if widths:
        entry["width_stderr"] = {m: [float(w.get(f"{m}_stderr", math.nan)) for w in widths]
                                 for m in WIDTH_MEASURES}
        entry["width_settings"] = widths[0].get("settings", {})
    return entry


def compare(per_method: Mapping[str, Mapping[str, Any]], baseline: str = "SGD") -> dict[str, dict[str, Any]]:
    """Paired comparison of every method's test error against ``baseline``'s, seed by seed."""
    base = per_method[baseline]["test_error"]
    out = {}
    for name, entry in per_method.items():
        if name == baseline:
            continue
        p = paired(entry["test_error"], base)
        out[name] = {"difference": p.mean, "interval": [p.low, p.high], "p_value": p.p_value,
                     "verdict": p.verdict(), "seeds": p.n}
    return out


def width_correlations(per_method: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Spearman correlation of each width measure with the test error over every final run of a task."""
    out = {}
    for measure in WIDTH_MEASURES:
        x = [v for e in per_method.values() for v in e.get(measure, [])]
        y = [v for e in per_method.values() for v in e["test_error"][:len(e.get(measure, []))]]
        rho, p = rank_correlation(x, y)
        out[measure] = {"spearman": rho, "p_value": p, "runs": int(np.isfinite(np.asarray(x, float)).sum())}
    return out


def _cell(values: Sequence[float], digits: int = 2) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "—"
    s = mean_std(finite)
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f}"


def _sci(values: Sequence[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "—"
    s = mean_std(finite)
    return f"{s.mean:.3g} ± {s.std:.2g}"


def markdown_tables(record: Mapping[str, Any]) -> str:
    """One Markdown table per task: test and validation error, the paired comparison, widths, cost."""
    blocks = []
    for task, per_method in record["tasks"].items():
        comparison = record["comparison"][task]
        lines = [f"### {task}", "",
                 "| method | test error (%) | vs SGD (paired, 95 % CI) | val error (%) | top Hessian eig. | "
                 "Hessian trace | smoothing gap | outer steps | wall clock (s) |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, e in per_method.items():
            if name in comparison:
                c = comparison[name]
                vs = f"{c['difference']:+.2f} [{c['interval'][0]:+.2f}, {c['interval'][1]:+.2f}] {c['verdict']}"
            else:
                vs = "baseline"
            lines.append(f"| {name} | {_cell(e['test_error'])} | {vs} | {_cell(e['val_error'])} | "
                         f"{_sci(e['hessian_top'])} | {_sci(e['hessian_trace'])} | {_sci(e['smoothing_gap'])} | "
                         f"{e['outer_steps']} | {_cell(e['wall_clock_s'], 1)} |")
        for name, e in record.get("parallel", {}).get(task, {}).items():
            lines.append(f"| {name}, replicas in parallel ({e['gradient_evaluations']} evaluations) | "
                         f"{_cell(e['test_error'])} | — | {_cell(e['val_error'])} | {_sci(e['hessian_top'])} | "
                         f"{_sci(e['hessian_trace'])} | {_sci(e['smoothing_gap'])} | {e['outer_steps']} | "
                         f"{_cell(e['wall_clock_s'], 1)} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(record: Mapping[str, Any], path: Path) -> None:
    """Write ``record`` as JSON (NaN and inf become ``null``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_plain(record), indent=1) + "\n")


_COLORS = {"SGD": "0.15", "SGD-EMA": "0.55", "Adam": "tab:olive", "Entropy-SGD": "tab:red", "HJ": "tab:blue",
           "HEAT": "tab:green", "Elastic-SGD": "tab:purple", "Parle": "tab:orange"}


def draw(record: Mapping[str, Any], steps_per_epoch: Mapping[str, int]) -> Any:
    """The figure: per task, error against effective epochs, against wall-clock time, and against width."""
    from hjsmooth.demos._report import new_figure

    tasks = list(record["tasks"])
    fig, axes = new_figure(3, len(tasks), figsize=(5.6 * len(tasks), 13.0), squeeze=False)
    for col, task in enumerate(tasks):
        per_method = record["tasks"][task]
        parallel = record.get("parallel", {}).get(task, {})
        ax_e, ax_w, ax_h = axes[0][col], axes[1][col], axes[2][col]
        for name, e in per_method.items():
            color = _COLORS.get(name, "k")
            curves = e["curves"]
            ev = np.asarray(curves[0]["evaluations"], float) / steps_per_epoch[task]
            val = np.asarray([c["val_error"] for c in curves if len(c["val_error"]) == len(ev)], float)
            wall = np.asarray([c["wall_clock_s"] for c in curves if len(c["wall_clock_s"]) == len(ev)], float)
            label = f"{name}: {_cell(e['test_error'])} %"
            ax_e.plot(ev, val.mean(0), "-", color=color, label=label)
            ax_e.fill_between(ev, val.min(0), val.max(0), color=color, alpha=0.10, lw=0)
            ax_w.plot(wall.mean(0), val.mean(0), "-", color=color, label=name)
            ax_h.scatter(e["hessian_top"], e["test_error"], s=18, color=color, label=name)
        for name, e in parallel.items():
            color = _COLORS.get(name, "k")
            curves = e["curves"]
            val = np.asarray([c["val_error"] for c in curves], float)
            wall = np.asarray([c["wall_clock_s"] for c in curves], float)
            ax_w.plot(wall.mean(0), val.mean(0), "--", color=color, label=f"{name}, replicas in parallel")
            ax_h.scatter(e["hessian_top"], e["test_error"], s=18, marker="x", color=color)
        ax_e.set(yscale="log", xlabel="effective epochs (gradient evaluations / minibatches per epoch)",
                 ylabel="validation error (%)", title=f"{task}: mean of seeds (band: min-max)")
        ax_w.set(yscale="log", xlabel="wall-clock training time (s, one CPU thread)", ylabel="validation error (%)",
                 title=f"{task}: against wall-clock time")
        tops = np.asarray([v for e in (*per_method.values(), *parallel.values()) for v in e["hessian_top"]], float)
        if np.any(np.isfinite(tops) & (tops > 0)):
            ax_h.set_xscale("log")
        ax_h.set(yscale="log", xlabel="top Hessian eigenvalue of the training loss at the final weights",
                 ylabel="test error (%)", title=f"{task}: error against width (a point per run; x: parallel)")
        ax_e.legend(fontsize=7)
        ax_w.legend(fontsize=7)
    fig.tight_layout()
    return fig
