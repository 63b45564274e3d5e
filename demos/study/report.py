"""The study's record (``train.json``), its Markdown tables and its figure.

The record has one entry per task and method::

    {"tasks": {TASK: {METHOD: {"test_error": [per seed], "val_error": [per seed],
       "hessian_top": [per seed], "hessian_trace": [per seed], "hyperparameters": {...},
       "gradient_evaluations": int, "wall_clock_s": [per seed], ...}}},
     "parallel": {TASK: {"Elastic-SGD": {...}, "Parle": {...}}},   # replicas run in parallel
     "search": {TASK: {METHOD: {"space": ..., "configurations": [...], "chosen": int}}},
     "comparison": {TASK: {METHOD: {"difference": ..., "interval": [lo, hi], "p_value": ..., "verdict": ...}}},
     "versus": {TASK: {COMPETITOR: {METHOD: {...paired, as in "comparison"...}}}},   # hjsmooth vs SAM, ASAM, SWA
     "width_vs_sgd": {TASK: {METHOD: {MEASURE: {...paired difference of log10(width) against SGD...}}}},
     "width_vs_error": {TASK: {MEASURE: {"spearman": ..., "p_value": ...}}},
     "parallel_hardware": {TASK: {"runs": {RUN: {...}}, "comparison": {RUN: {...}}, ...}},  # see .hardware
     "settings": {...}, "wall_time_s": ...}

Errors are in %, times in seconds, ``gradient_evaluations`` counts minibatch gradients per run (per process
in ``parallel_hardware``).  A paired entry compares test errors seed by seed (:func:`paired_entry`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos.study.stats import mean_std, paired, rank_correlation

__all__ = [
    "method_entry",
    "paired_entry",
    "compare",
    "versus",
    "width_against",
    "width_correlations",
    "summarise",
    "markdown_tables",
    "hardware_tables",
    "write_json",
    "draw",
    "WIDTH_MEASURES",
]

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
        entry["width_stderr"] = {m: [float(w.get(f"{m}_stderr", math.nan)) for w in widths] for m in WIDTH_MEASURES}
        entry["width_settings"] = widths[0].get("settings", {})
    return entry


def paired_entry(values: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """The paired comparison of ``values`` against ``baseline`` (same seeds, same order) as the record keeps it."""
    p = paired(values, baseline)
    return {
        "difference": p.mean,
        "interval": [p.low, p.high],
        "p_value": p.p_value,
        "verdict": p.verdict(),
        "seeds": p.n,
    }


def compare(per_method: Mapping[str, Mapping[str, Any]], baseline: str = "SGD") -> dict[str, dict[str, Any]]:
    """Paired comparison of every method's test error against ``baseline``'s, seed by seed (empty without it)."""
    if baseline not in per_method:
        return {}
    base = per_method[baseline]["test_error"]
    return {name: paired_entry(entry["test_error"], base) for name, entry in per_method.items() if name != baseline}


def versus(
    per_method: Mapping[str, Mapping[str, Any]], methods: Sequence[str], competitors: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``out[competitor][method]``: the paired test-error comparison of each of ``methods`` against each of
    ``competitors`` (those present), at the same gradient evaluations and seeds."""
    return {
        c: {
            m: paired_entry(per_method[m]["test_error"], per_method[c]["test_error"])
            for m in methods
            if m in per_method
        }
        for c in competitors
        if c in per_method
    }


def width_against(
    per_method: Mapping[str, Mapping[str, Any]], baseline: str = "SGD"
) -> dict[str, dict[str, dict[str, Any]]]:
    """``out[method][measure]``: the paired difference of ``log10(width)`` against ``baseline``'s, seed by seed
    (negative: flatter than the baseline); only where every seed has a positive width on both sides."""
    if baseline not in per_method:
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, entry in per_method.items():
        if name == baseline:
            continue
        out[name] = {}
        for measure in WIDTH_MEASURES:
            a = np.asarray(entry.get(measure, []), float)
            b = np.asarray(per_method[baseline].get(measure, []), float)
            if a.size and a.shape == b.shape and np.all(np.isfinite(a) & (a > 0)) and np.all(np.isfinite(b) & (b > 0)):
                out[name][measure] = paired_entry(np.log10(a), np.log10(b))
    return out


def width_correlations(per_method: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Spearman correlation of each width measure with the test error over every final run of a task."""
    out = {}
    for measure in WIDTH_MEASURES:
        x = [v for e in per_method.values() for v in e.get(measure, [])]
        y = [v for e in per_method.values() for v in e["test_error"][: len(e.get(measure, []))]]
        rho, p = rank_correlation(x, y)
        out[measure] = {"spearman": rho, "p_value": p, "runs": int(np.isfinite(np.asarray(x, float)).sum())}
    return out


def summarise(record: dict[str, Any], smoothing: Sequence[str], competitors: Sequence[str]) -> dict[str, Any]:
    """Recompute every section of ``record`` derived from its runs (``comparison``, ``versus``,
    ``width_vs_sgd``, ``width_vs_error``), in place; return it."""
    for key in ("comparison", "versus", "width_vs_sgd", "width_vs_error"):
        record[key] = {}
    for task, per_method in record["tasks"].items():
        record["comparison"][task] = compare(per_method)
        record["versus"][task] = versus(per_method, smoothing, competitors)
        record["width_vs_sgd"][task] = width_against(per_method)
        record["width_vs_error"][task] = width_correlations(per_method)
    return record


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
        lines = [
            f"### {task}",
            "",
            "| method | test error (%) | vs SGD (paired, 95 % CI) | val error (%) | top Hessian eig. | "
            "Hessian trace | smoothing gap | outer steps | wall clock (s) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, e in per_method.items():
            vs = _vs(comparison[name]) if name in comparison else ("baseline" if name == "SGD" else "—")
            lines.append(
                f"| {name} | {_cell(e['test_error'])} | {vs} | {_cell(e['val_error'])} | "
                f"{_sci(e['hessian_top'])} | {_sci(e['hessian_trace'])} | {_sci(e['smoothing_gap'])} | "
                f"{e['outer_steps']} | {_cell(e['wall_clock_s'], 1)} |"
            )
        for name, e in record.get("parallel", {}).get(task, {}).items():
            lines.append(
                f"| {name}, replicas in parallel ({e['gradient_evaluations']} evaluations) | "
                f"{_cell(e['test_error'])} | — | {_cell(e['val_error'])} | {_sci(e['hessian_top'])} | "
                f"{_sci(e['hessian_trace'])} | {_sci(e['smoothing_gap'])} | {e['outer_steps']} | "
                f"{_cell(e['wall_clock_s'], 1)} |"
            )
        blocks.append("\n".join(lines))
    blocks += hardware_tables(record)
    return "\n\n".join(blocks)


def _vs(c: Mapping[str, Any] | None) -> str:
    """A paired entry as ``+0.12 [-0.30, +0.54] same``."""
    if not c:
        return "—"
    lo, hi = c["interval"]
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{c['difference']:+.2f} (one seed)"
    return f"{c['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}] {c['verdict']}"


def hardware_tables(record: Mapping[str, Any]) -> list[str]:
    """One Markdown table per task of ``record["parallel_hardware"]`` (Table 5.1 on several processes)."""
    blocks = []
    for task, hw in record.get("parallel_hardware", {}).items():
        lines = [
            f"### {task}: Table 5.1 on {hw['processes']} processes ({hw['gradient_evaluations_per_process']} "
            "gradient evaluations per process)",
            "",
            "| run | processes | test error (%) | vs SGD (paired, 95 % CI) | vs SGD-DDP (paired, 95 % CI) | "
            "val error (%) | wall clock (s) | time / SGD's | val error at SGD's time (%) | outer steps |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, e in hw["runs"].items():
            c = hw["comparison"].get(name, {})
            ratio = _cell(c["wall_clock_ratio"]) if c else "1"
            at_sgd = _cell(c["val_at_sgd_time"]) if c else _cell(e["val_error"])
            lines.append(
                f"| {name} | {e['processes']} | {_cell(e['test_error'])} | "
                f"{_vs(c.get('vs_SGD')) if c else 'baseline'} | {_vs(c.get('vs_SGD-DDP'))} | "
                f"{_cell(e['val_error'])} | {_cell(e['wall_clock_s'], 1)} | {ratio} | {at_sgd} | "
                f"{e['outer_steps']} |"
            )
        blocks.append("\n".join(lines))
    return blocks


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


def _complete_curves(curves: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Validation error and wall-clock time of the runs that reached every checkpoint (seeds x checkpoints).

    A run stopped early (a refused non-finite step) has a shorter curve: it is left out of the mean curve
    (its test error still counts in the tables).
    """
    full = max(len(c["val_error"]) for c in curves)
    kept = [c for c in curves if len(c["val_error"]) == full and len(c["wall_clock_s"]) == full]
    return np.asarray([c["val_error"] for c in kept], float), np.asarray([c["wall_clock_s"] for c in kept], float)


def write_json(record: Mapping[str, Any], path: Path) -> None:
    """Write ``record`` as JSON (NaN and inf become ``null``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_plain(record), indent=1) + "\n")


_COLORS = {
    "SGD": "0.15",
    "SGD-EMA": "0.55",
    "SWA": "darkgoldenrod",
    "Adam": "tab:olive",
    "SAM": "tab:cyan",
    "ASAM": "tab:pink",
    "Entropy-SGD": "tab:red",
    "HJ": "tab:blue",
    "HEAT": "tab:green",
    "Elastic-SGD": "tab:purple",
    "Parle": "tab:orange",
    "SGD-DDP": "tab:brown",
}


def draw(record: Mapping[str, Any], steps_per_epoch: Mapping[str, int]) -> Any:
    """The figure: per task, error against effective epochs, against wall-clock time, and against width; with
    ``parallel_hardware``, a fourth row: error against wall-clock time on several processes."""
    from hjsmooth.demos._report import new_figure

    tasks = list(record["tasks"])
    hardware = record.get("parallel_hardware", {})
    rows = 4 if hardware else 3
    fig, axes = new_figure(rows, len(tasks), figsize=(5.6 * len(tasks), 4.35 * rows), squeeze=False)
    for col, task in enumerate(tasks):
        if task in hardware:
            _draw_hardware(axes[3][col], task, hardware[task])
        per_method = record["tasks"][task]
        parallel = record.get("parallel", {}).get(task, {})
        ax_e, ax_w, ax_h = axes[0][col], axes[1][col], axes[2][col]
        for name, e in per_method.items():
            color = _COLORS.get(name, "k")
            curves = e["curves"]
            ev = np.asarray(max((c["evaluations"] for c in curves), key=len), float) / steps_per_epoch[task]
            val, wall = _complete_curves(curves)
            label = f"{name}: {_cell(e['test_error'])} %"
            ax_e.plot(ev, val.mean(0), "-", color=color, label=label)
            ax_e.fill_between(ev, val.min(0), val.max(0), color=color, alpha=0.10, lw=0)
            ax_w.plot(wall.mean(0), val.mean(0), "-", color=color, label=name)
            ax_h.scatter(e["hessian_top"], e["test_error"], s=18, color=color, label=name)
        for name, e in parallel.items():
            color = _COLORS.get(name, "k")
            val, wall = _complete_curves(e["curves"])
            ax_w.plot(wall.mean(0), val.mean(0), "--", color=color, label=f"{name}, replicas in parallel")
            ax_h.scatter(e["hessian_top"], e["test_error"], s=18, marker="x", color=color)
        ax_e.set(
            yscale="log",
            xlabel="effective epochs (gradient evaluations / minibatches per epoch)",
            ylabel="validation error (%)",
            title=f"{task}: mean of seeds (band: min-max)",
        )
        ax_w.set(
            yscale="log",
            xlabel="wall-clock training time (s, one CPU thread)",
            ylabel="validation error (%)",
            title=f"{task}: against wall-clock time",
        )
        tops = np.asarray([v for e in (*per_method.values(), *parallel.values()) for v in e["hessian_top"]], float)
        if np.any(np.isfinite(tops) & (tops > 0)):
            ax_h.set_xscale("log")
        ax_h.set(
            yscale="log",
            xlabel="top Hessian eigenvalue of the training loss at the final weights",
            ylabel="test error (%)",
            title=f"{task}: error against width (a point per run; x: parallel)",
        )
        ax_e.legend(fontsize=7)
        ax_w.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _draw_hardware(ax: Any, task: str, hw: Mapping[str, Any]) -> None:
    """Validation error against wall-clock time of the parallel-hardware runs (mean over seeds)."""
    for name, e in hw["runs"].items():
        curves = e["curves"]
        n = max(len(c["val_error"]) for c in curves)  # diverged runs stop early: the curves of the others
        val = np.asarray([c["val_error"] for c in curves if len(c["val_error"]) == n], float)
        wall = np.asarray([c["wall_clock_s"] for c in curves if len(c["wall_clock_s"]) == n], float)
        style = "-" if e["processes"] > 1 else ":"
        ax.plot(
            wall.mean(0),
            val.mean(0),
            style,
            color=_COLORS.get(name, "k"),
            label=f"{name} ({e['processes']} proc.): {_cell(e['test_error'])} %",
        )
    ax.set(
        yscale="log",
        xlabel="wall-clock training time (s; one CPU core per process)",
        ylabel="validation error (%)",
        title=f"{task}: Table 5.1 on {hw['processes']} processes, {hw['gradient_evaluations_per_process']} "
        "gradients each",
    )
    ax.legend(fontsize=7)
