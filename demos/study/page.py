"""docs/results.md from the study's record: every number and every verdict of the page is read from the JSON.

``python -m hjsmooth.demos.study.page docs/img/train.json --out docs/results.md`` writes the page.  The prose
that describes the design (tasks, budgets, search, statistics) is fixed text with the record's numbers put
in; the claims ("HEAT beat SAM on ...", "width tracked error for SAM on ...", "Parle on 2 processes ...")
are computed from the paired comparisons of the record (recomputed from its per-seed numbers when a record
predates them), so the text cannot disagree with the numbers.  A verdict is "beat" / "lost to" when the
95 % interval of the paired difference excludes 0, "tied with" otherwise.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render", "main", "DEAD", "verdict_word", "pair_text"]

#: A configuration whose validation error ends at or above this (in %) counts as diverged or dead.
DEAD = 60.0

_TASK_TEXT = {
    "digits-mlp": "scikit-learn's 8x8 digits, MLP 64-128-10",
    "mnist1d-mlp": "MNIST-1D (default `make_dataset` arguments, generated locally; validation carved from the "
    "package's training set, its test set), MLP 40-128-128-10",
    "mnist1d-cnn": "the same MNIST-1D data, a 1D CNN (three convolutions with 32 channels, a linear layer)",
    "mnist-mlp": "MNIST from a local folder, MLP",
    "cifar10-mlp": "CIFAR-10 from a local folder, MLP",
}
_VERB = {"better": "beat", "worse": "lost to", "same": "tied with"}


# ----------------------------------------------------------------------------------------------- formatting
def _num(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _int(value: float) -> str:
    """An integer with a thin space between thousands (``5 000``)."""
    return f"{int(round(value)):,}".replace(",", " ")


def pair_text(c: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A paired entry as ``-3.62 [-4.51, -2.73]``."""
    if not c:
        return "n/a"
    lo, hi = c["interval"]
    return f"{_num(c['difference'], digits, True)} [{_num(lo, digits, True)}, {_num(hi, digits, True)}]"


def verdict_word(c: Mapping[str, Any] | None) -> str:
    """``"beat"``, ``"lost to"`` or ``"tied with"`` for a paired entry (lower is better)."""
    return _VERB.get(c["verdict"], "tied with") if c else "was not compared with"


def _mean(values: Sequence[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _cell(values: Sequence[float | None], digits: int = 2) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "n/a"
    m = sum(finite) / len(finite)
    sd = math.sqrt(sum((v - m) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else 0.0
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _p(value: float | None) -> str:
    """A p-value: two decimals, or one significant digit in scientific notation below 0.01."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.0e}"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _hp_text(hp: Mapping[str, Any], documented: Mapping[str, Any]) -> str:
    diffs = [f"{k} {_value(v)}" if k != "scoping" else str(v) for k, v in hp.items() if documented.get(k) != v]
    return ", ".join(diffs)


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------------------------- the record
def _complete(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with the derived sections present (recomputed from its runs when it predates them)."""
    from hjsmooth.demos.study.methods import COMPETITORS, SMOOTHING
    from hjsmooth.demos.study.report import summarise

    out = copy.deepcopy(dict(record))
    if "versus" not in out or "width_vs_sgd" not in out:
        summarise(out, SMOOTHING, COMPETITORS)
    out.setdefault("parallel_hardware", {})
    return out


def _present(record: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The ``names`` that have runs on some task of ``record``."""
    return [n for n in names if any(n in per_method for per_method in record["tasks"].values())]


# ----------------------------------------------------------------------------------------------- sections
def _intro(record: Mapping[str, Any], figure: str) -> list[str]:
    rows = "Top row" if not record["parallel_hardware"] else "First row"
    lines = [
        "# Results: the training study",
        "",
        "The thesis compares Entropy-SGD (Table 3.1), HJ and HEAT (Table 4.1), and Elastic-SGD and Parle",
        "(Table 5.1) with SGD and Adam, at equal budgets in *effective epochs* and, for Parle, at equal",
        "wall-clock time with the replicas running in parallel. `hjsmooth demo train` repeats that comparison",
        "on data that need no download, as a study: every method gets the same tuning budget, chosen on",
        "validation data and reported on test data over the final seeds, beside what practitioners pick for",
        "flat minima instead (SAM, ASAM, SWA) and SGD with weight averaging; the width of every final minimum",
        "is measured, and Table 5.1 is rerun with one CPU core per replica. This page is generated from the",
        "study's record (`python -m hjsmooth.demos.study.page docs/img/train.json --out docs/results.md`):",
        "every number and verdict below is read from it.",
        "",
        f"![error against effective epochs, against wall-clock time, and against width]({figure})",
        "",
        f"{rows}: validation error against effective epochs (mean of the final seeds, band min-max). Second",
        "row: the same against wall-clock training time (one CPU thread per run); dashed, Elastic-SGD and Parle",
        "with their replicas evaluated at once. Third row: test error against the top Hessian eigenvalue of",
        "the training loss at the final weights, one point per run (crosses: replicas in parallel).",
    ]
    if record["parallel_hardware"]:
        lines += [
            "Fourth row: Table 5.1 on parallel hardware, validation error against wall-clock time, one CPU",
            "core per process (dotted: SGD in one process).",
        ]
    return lines


def _how(record: Mapping[str, Any]) -> list[str]:
    s = record["settings"]
    m = s.get("machine", {})
    seeds = s["seeds"]
    wall = record.get("wall_time_s", math.nan)
    parts = record.get("parts", [])
    wall_text = f"**The study took {_int(wall)} s ({wall / 60:.0f} min) of wall time"
    if len(parts) > 1:
        wall_text += (
            f", in {len(parts)} runs merged into one record** ("
            + "; ".join(
                f"{', '.join(q['methods'])} on {', '.join(q['tasks'])}: {_int(q['wall_time_s'])} s" for q in parts
            )
            + ")."
        )
    else:
        wall_text += ".**"
    if s.get("budget_scale", 1.0) != 1.0:
        wall_text += f" **Every budget was scaled by {s['budget_scale']:g}: a reduced run, not the study's results.**"
    software = ", ".join(
        f"{k} {m[k]}" for k in ("torch", "numpy", "scipy", "scikit-learn", "mnist1d", "pytorch_optimizer") if m.get(k)
    )
    lines = [
        "",
        "## How it was run",
        "",
        "```text",
        'pip install -e ".[demos]"',
        f"hjsmooth demo train --out docs/img/train.png --seed {seeds[0]}    # writes train.png, train.json, train.txt",
        "python -m hjsmooth.demos.study.page docs/img/train.json --out docs/results.md",
        "```",
        "",
        "`docs/img/train.json` is the whole record (every configuration tried with its validation error, every",
        "final run's test and validation error, width, curve and wall-clock time, the paired comparisons, the",
        "parallel-hardware runs), and `docs/img/train.txt` the tables below. `hjsmooth demo train --quick` runs",
        "the same pipeline small (digits only, 2 configurations, 2 seeds), and `tests/test_study.py` checks it.",
        "`python -m hjsmooth.demos.train --methods A,B --tasks T` reruns part of the study and merges it into the",
        "record.",
        "",
    ]
    machine = (
        f"* Machine and software: {m.get('cpu_count', '?')} CPU cores ({m.get('platform', 'n/a')}), "
        f"Python {m.get('python', 'n/a')}; {software or 'versions not recorded'}. {s.get('workers', '?')} "
        f"worker processes for the search and final runs, one torch thread each; the parallel-hardware "
        f"runs one at a time with nothing else of the study running. {wall_text}"
    )
    lines.append(machine)
    lines.append(
        "* Tasks and splits (`hjsmooth/demos/study/tasks.py`; fixed permutations, inputs standardised with "
        "the training statistics only):"
    )
    for task, b in s["budgets"].items():
        ex = b.get("examples")
        sizes = (
            f"{_int(ex['train'])} train / {_int(ex['validation'])} validation / {_int(ex['test'])} test, " if ex else ""
        )
        weights = f"{_int(b['weights'])} weights, " if b.get("weights") else ""
        lines.append(
            f"  * `{task}`: {_TASK_TEXT.get(task, task)}; {sizes}{weights}{b['effective_epochs']:g} "
            f"effective epochs ({_int(b['gradient_evaluations'])} minibatch gradients)."
        )
    lines += [
        "* Budget, first accounting: minibatches of 128, the same number of minibatch gradient evaluations for",
        "  every method; a step that evaluates `k` gradients counts `k` times (`k = 2` for SAM and ASAM, `L` for",
        "  Entropy-SGD, HJ and HEAT, `n` for Elastic-SGD, `n L` for Parle). Every budget is a multiple of every",
        "  documented cost, so each method spends it exactly. The learning rate of every method is divided by 5",
        "  after 60 % and 80 % of the budget (SWA: until its averaging phase, where SWALR or its cycle sets it).",
        "* Budget, second accounting: Elastic-SGD and Parle again, each replica given as many gradient",
        "  evaluations as SGD, the replicas evaluated at once in one process by `hjsmooth.optim.ReplicaBatches`",
        "  (`torch.func.vmap`), at the setting chosen by the first accounting's search.",
        "* Budget, third accounting (Table 5.1 on parallel hardware, `hjsmooth/demos/study/hardware.py`): one CPU",
        "  core per process, 2 processes under `torchrun` (gloo, one thread each). Elastic-SGD and Parle with one",
        "  replica per process (`distributed=True`), data-parallel SGD under DDP on the same 2 processes (the",
        "  chosen SGD setting; the gradient is averaged over 2 x 128 examples), and SGD in one process; every",
        "  process spends the first accounting's budget, and the wall-clock time of training is recorded with",
        "  20 validation checkpoints per run. Paired over the same seeds: the two-process runs against SGD (same",
        "  gradient evaluations per process) and the replicated methods against DDP (same processes).",
        f"* Search (`hjsmooth/demos/study/search.py`): every method tries {s['configurations_per_method']} "
        f"configurations on search seed{'s' if len(s['search_seeds']) > 1 else ''} "
        f"{', '.join(map(str, s['search_seeds']))}:",
        "  its documented setting first (the library's defaults, read from the optimizer's signature, or the",
        "  paper's), then random draws from its space. Each configuration trains on the training split and is",
        "  scored by its final validation error (the mean over the search seeds, so that a setting that dies on",
        "  one of them ranks low); the search jobs never receive the test arrays. A run whose loss",
        "  becomes NaN or inf, or whose hjsmooth optimizer raises `NonFiniteError`, stops and scores 90 %.",
        f"* Final runs: the chosen configuration with seeds {seeds[0]}-{seeds[-1]} (initialisation, minibatch "
        "stream and the method's own noise), test error at the end of the budget.",
        f"* Statistics (`hjsmooth/demos/study/stats.py`): mean ± standard deviation over the {len(seeds)} seeds; "
        'paired t-tests on the same seeds, with their 95 % intervals. "beat" or "lost to" means the interval '
        'excludes 0; otherwise "tied with".',
        "* Width (`hjsmooth/demos/study/width.py`, with `hjsmooth.diagnostics`), on the same (at most 2 000)",
        "  training examples for every run of a task: the top Hessian eigenvalue (Lanczos), the Hessian trace",
        f"  (Hutchinson, {s['width_samples']} Rademacher vectors after deflating the top 10 Lanczos directions), "
        "and the heat-smoothing",
        f"  gap `E f(x + sigma z) - f(x)` at `sigma^2 = 1e-3` per weight ({s['width_samples']} samples), which is",
        "  `sigma^2 tr(H) / 2` at a quadratic minimum.",
    ]
    return lines


def _spaces(record: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    first: Mapping[str, Any] = next(iter(record["search"].values()), {})
    lines = [
        "",
        "### Search spaces",
        "",
        "| method | documented setting (tried first) | search space (the other draws) |",
        "| --- | --- | --- |",
    ]
    for name in names:
        rec = first.get(name) or next((t[name] for t in record["search"].values() if name in t), None)
        if rec is None:
            continue
        documented = ", ".join(f"{k} {_value(v)}" for k, v in rec["documented"].items())
        space = "; ".join(f"{k}: {v}" for k, v in rec["space"].items())
        lines.append(f"| {name} | {rec.get('source', '')}: {documented} | {space} |")
    return lines


def _chosen(record: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    tasks = list(record["search"])
    lines = [
        "",
        'What the searches chose ("documented" or the draw number, with the values that differ from the',
        "documented setting):",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "| --- |" + " --- |" * len(tasks),
    ]
    dead_rows = []
    for name in names:
        cells, dead = [], []
        for task in tasks:
            rec = record["search"][task].get(name)
            if rec is None:
                cells.append("n/a")
                dead.append("n/a")
                continue
            i = rec["chosen"]
            hp = rec["configurations"][i]["hyperparameters"]
            cells.append("documented" if i == 0 else f"draw {i}: {_hp_text(hp, rec['documented'])}")
            scores = [_mean(c["val_error"]) for c in rec["configurations"]]
            dead.append(str(sum(1 for v in scores if not math.isfinite(v) or v >= DEAD)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        dead_rows.append(f"{name} {' / '.join(dead)}")
    configs = record["settings"]["configurations_per_method"]
    lines += [
        "",
        f"Configurations of {configs} that diverged or ended dead (validation error at or above "
        f"{DEAD:g} %), {' / '.join(tasks)}: " + ", ".join(dead_rows) + ".",
    ]
    documented_dead = [
        f"{name} on {task}"
        for task in tasks
        for name, rec in record["search"][task].items()
        if _mean(rec["configurations"][0]["val_error"]) >= DEAD
    ]
    lines.append(
        "The documented setting "
        + ("never diverged." if not documented_dead else "diverged or ended dead for " + _join(documented_dead) + ".")
    )
    return lines


def _tables(record: Mapping[str, Any]) -> list[str]:
    from hjsmooth.demos.study.report import markdown_tables

    seeds = record["settings"]["seeds"]
    lines = [
        "",
        "## The tables",
        "",
        f"Test error (%) at the end of the budget, mean ± standard deviation over seeds {seeds[0]}-{seeds[-1]}; "
        "the paired difference to SGD with its 95 % interval; the width measures (mean ± std over seeds); outer "
        "steps taken; training wall-clock seconds per run. The parallel-hardware tables give the gradient "
        "evaluations per process, the paired differences to SGD in one process and to DDP, the training time "
        "over SGD's (per seed), and the validation error at the last checkpoint reached within SGD's time.",
        "",
        markdown_tables(record),
    ]
    outliers = []
    for accounting, label in (("tasks", ""), ("parallel", ", replicas in parallel")):
        for task, per_method in record.get(accounting, {}).items():
            for name, e in per_method.items():
                errs = [v for v in e["test_error"] if v is not None]
                if errs and any(v >= DEAD for v in errs) and any(v < DEAD for v in errs):
                    cells = ", ".join(f"**{v:.1f}**" if v >= DEAD else f"{v:.1f}" for v in errs)
                    outliers.append(f"{name}{label} on {task}: {cells}")
    if outliers:
        lines += [
            "",
            "Runs that ended dead (test error at or above 60 %; chance is 90 %) beside live seeds, test "
            "error % per seed: " + "; ".join(outliers) + ".",
        ]
    corr = []
    for task, measures in record["width_vs_error"].items():
        top = measures["hessian_top"]
        corr.append(
            f"{task} ({top['runs']} runs) {_num(top['spearman'])} (top eigenvalue, p = "
            f"{_p(top['p_value'])}), {_num(measures['hessian_trace']['spearman'])} (trace), "
            f"{_num(measures['smoothing_gap']['spearman'])} (smoothing gap)"
        )
    lines += [
        "",
        "Width against test error, Spearman's rank correlation over the final runs of a task (every method "
        "and seed): " + "; ".join(corr) + ".",
    ]
    return lines


def _task_verdicts(record: Mapping[str, Any], c_of: Any) -> dict[str, list[str]]:
    """``{"better": [...], "worse": [...], "same": [...]}``: tasks with ``c_of(task)`` in each verdict."""
    out: dict[str, list[str]] = {"better": [], "worse": [], "same": []}
    for task in record["tasks"]:
        c = c_of(task)
        if c:
            out[c["verdict"]].append(f"{task} ({pair_text(c)})")
    return out


def _sentence(subject: str, other: str, groups: Mapping[str, list[str]]) -> str:
    parts = []
    for verdict in ("better", "same", "worse"):
        if groups[verdict]:
            parts.append(f"{_VERB[verdict]} {other} on {_join(groups[verdict])}")
    return f"{subject} " + "; ".join(parts) + "." if parts else f"{subject} was not compared with {other}."


def _vs_sgd(record: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    lines = [
        "",
        "### Against tuned SGD",
        "",
        "Paired test-error difference to SGD in points, 95 % interval, per task:",
        "",
    ]
    for name in names:
        if name == "SGD":
            continue
        groups = _task_verdicts(record, lambda t, n=name: record["comparison"].get(t, {}).get(n))
        lines.append("* " + _sentence(f"**{name}**", "SGD", groups))
    return lines


def _head_to_head(record: Mapping[str, Any], smoothing: Sequence[str], competitors: Sequence[str]) -> list[str]:
    tasks = list(record["tasks"])
    lines = [
        "",
        "### The hjsmooth optimizers against SAM, ASAM and SWA",
        "",
        "At equal gradient evaluations (SAM's and ASAM's two gradients per step both counted), paired over the "
        "same seeds: the difference in test error (points, negative: the hjsmooth optimizer is better) with "
        "its 95 % interval and the verdict.",
        "",
    ]
    if not competitors or not smoothing:
        return lines[:3] + ["SAM, ASAM and SWA are not in this record."]
    for comp in competitors:
        if not any(comp in record["versus"].get(t, {}) for t in tasks):
            continue
        lines += [f"| vs {comp} | " + " | ".join(tasks) + " |", "| --- |" + " --- |" * len(tasks)]
        for name in smoothing:
            cells = []
            for t in tasks:
                c = record["versus"].get(t, {}).get(comp, {}).get(name)
                cells.append(f"{pair_text(c)} {verdict_word(c)} {comp}" if c else "n/a")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for name in smoothing:
        per_task = []
        for t in tasks:
            vs = record["versus"].get(t, {})
            beaten = [c for c in competitors if vs.get(c, {}).get(name, {}).get("verdict") == "better"]
            lost = [c for c in competitors if vs.get(c, {}).get(name, {}).get("verdict") == "worse"]
            tied = [c for c in competitors if vs.get(c, {}).get(name, {}).get("verdict") == "same"]
            if not (beaten or lost or tied):
                continue
            bits = []
            if beaten:
                bits.append("beat " + _join(beaten))
            if tied:
                bits.append("tied with " + _join(tied))
            if lost:
                bits.append("lost to " + _join(lost))
            per_task.append(f"on {t} it " + ", ".join(bits))
        if per_task:
            wins = sum(
                1
                for t in tasks
                for c in competitors
                if record["versus"].get(t, {}).get(c, {}).get(name, {}).get("verdict") == "better"
            )
            total = sum(1 for t in tasks for c in competitors if name in record["versus"].get(t, {}).get(c, {}))
            lines.append(
                f"* **{name}** beat the competitor in {wins} of {total} task-competitor pairs: "
                + "; ".join(per_task)
                + "."
            )
    return lines


def _width_tracks(width: Mapping[str, Any] | None, error: Mapping[str, Any] | None) -> str:
    """Whether a paired width difference (of log10 width) and a paired error difference agree, in words."""
    if not width or not error:
        return "not measured"
    w, e = width["verdict"], error["verdict"]
    if w == "same":
        return "no width difference" + ("" if e == "same" else ": width did not track error")
    shape = "flatter" if w == "better" else "sharper"
    if e == "same":
        return f"{shape}, same error: width did not track error"
    if w == e:
        return f"{shape}, {'lower' if e == 'better' else 'higher'} error: width tracked error"
    return f"{shape}, yet {'lower' if e == 'better' else 'higher'} error: width went against error"


def _sam_width(record: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    lines = [
        "",
        "### Width and error for SAM and ASAM",
        "",
        "Paired against SGD on the same seeds: the ratio of the top Hessian eigenvalue and of the Hessian trace "
        "(geometric mean over seeds with its 95 % interval, from the paired difference of log10 width), each "
        "read against the test-error difference. Across all methods, the Spearman correlation of width and "
        "error of each task is in the tables' section.",
        "",
    ]
    if not names:
        return lines[:3] + ["SAM and ASAM are not in this record."]
    for name in names:
        for task in record["tasks"]:
            w = record["width_vs_sgd"].get(task, {}).get(name, {})
            e = record["comparison"].get(task, {}).get(name)
            if not w or not e:
                continue
            top, trace = w.get("hessian_top"), w.get("hessian_trace")
            corr = record["width_vs_error"].get(task, {}).get("hessian_top", {})
            lines.append(
                f"* {name} on {task}, test error {pair_text(e)} against SGD: top eigenvalue x{_ratio(top)} "
                f"({_width_tracks(top, e)}); trace x{_ratio(trace)} ({_width_tracks(trace, e)}). All "
                f"methods on {task}: Spearman {_num(corr.get('spearman'))} (top eigenvalue)."
            )
    return lines


def _ratio(c: Mapping[str, Any] | None) -> str:
    if not c:
        return "n/a"
    lo, hi = c["interval"]
    f = lambda v: "n/a" if v is None or not math.isfinite(v) else f"{10**v:.2g}"  # noqa: E731
    return f"{f(c['difference'])} [{f(lo)}, {f(hi)}]"


def _hardware(record: Mapping[str, Any]) -> list[str]:
    hw = record["parallel_hardware"]
    if not hw:
        return ["", "### Table 5.1 on parallel hardware", "", "Not run in this record."]
    lines = [
        "",
        "### Table 5.1 on parallel hardware",
        "",
        "Each process spends single-process SGD's gradient evaluations; time is training time (evaluation "
        "excluded), one CPU core per process.",
        "",
    ]
    groups: dict[str, list[str]] = {"better": [], "same": [], "worse": []}
    for task, h in hw.items():
        runs, comp = h["runs"], h["comparison"]
        lines.append(
            f"* {task} ({_int(h['gradient_evaluations_per_process'])} gradients per process; SGD in one "
            f"process trained in {_cell(runs['SGD']['wall_clock_s'], 1)} s):"
        )
        for name in ("SGD-DDP", "Elastic-SGD", "Parle"):
            if name not in comp:
                continue
            c = comp[name]
            text = (
                f"  * {name} took {_mean(c['wall_clock_ratio']):.2f}x SGD's time; its test error "
                f"{verdict_word(c['vs_SGD'])} SGD's ({pair_text(c['vs_SGD'])})"
            )
            if "vs_SGD-DDP" in c:
                text += f" and {verdict_word(c['vs_SGD-DDP'])} DDP's ({pair_text(c['vs_SGD-DDP'])})"
            text += (
                f"; at SGD's wall-clock its validation error {verdict_word(c['at_sgd_time_vs_SGD'])} SGD's final "
                f"one ({pair_text(c['at_sgd_time_vs_SGD'])})."
            )
            lines.append(text)
        parle = comp.get("Parle")
        if parle:
            groups[parle["at_sgd_time_vs_SGD"]["verdict"]].append(task)
    if any(groups.values()):
        said = {
            "better": "held (Parle ahead) on ",
            "same": "was not shown (a tie) on ",
            "worse": "was reversed (SGD ahead) on ",
        }
        lines += [
            "",
            "The thesis' claim that Parle is ahead of SGD at equal wall-clock time, with a device per "
            "replica, "
            + "; ".join(said[v] + _join(groups[v]) for v in said if groups[v])
            + " (the validation error of Parle at the time SGD needed for its budget, against SGD's final "
            "validation error, paired over seeds).",
        ]
    return lines


def _communication(record: Mapping[str, Any]) -> str:
    """What the parallel hardware's communication cost, from DDP's time against SGD's (same gradients)."""
    hw = record["parallel_hardware"]
    ratios = {
        t: _mean(h["comparison"]["SGD-DDP"]["wall_clock_ratio"]) for t, h in hw.items() if "SGD-DDP" in h["comparison"]
    }
    if not ratios:
        return ""
    cores = record["settings"].get("machine", {}).get("cpu_count", "?")
    return (
        "; the parallel hardware is "
        + f"{cores} CPU cores, where data-parallel SGD took "
        + _join([f"{r:.2f}x" for r in ratios.values()])
        + f" single-process SGD's time on {_join(list(ratios))}"
        " for the same gradients per process: that excess is what communication and synchronisation cost a "
        "model this small"
    )


def _limits(record: Mapping[str, Any]) -> list[str]:
    b = record["settings"]["budgets"]
    weights = [v["weights"] for v in b.values() if v.get("weights")]
    examples = [v["examples"]["train"] for v in b.values() if v.get("examples")]
    size = (
        f" ({_int(min(examples))} to {_int(max(examples))} training examples, {_int(min(weights))} to "
        f"{_int(max(weights))} weights)"
        if weights and examples
        else ""
    )
    return [
        "",
        "## What this study cannot say",
        "",
        f"The tasks and networks are small{size}; the search is "
        f"{record['settings']['configurations_per_method']} configurations on "
        f"{len(record['settings']['search_seeds'])} seed(s), so a setting at the edge of stability can still be "
        "chosen and die on some final seeds (listed above); the second and third "
        "accountings reuse the first accounting's settings (DDP uses SGD's learning rate with a twice larger "
        "averaged minibatch)" + _communication(record) + ". MNIST and CIFAR-10 (`--data-dir`) and the thesis' "
        "All-CNN on a GPU were not run unless the tables list them.",
        "",
        "Reproducibility: a run is deterministic for a fixed seed and a fixed number of torch threads; the "
        "study fixes one thread per process. Rerunning the command above reproduces the errors on the same "
        "software versions; wall-clock times depend on the machine and on what else runs on it.",
    ]


def render(record: Mapping[str, Any], figure: str = "img/train.png") -> str:
    """The Markdown page of ``record`` (a study record as written to ``train.json``)."""
    from hjsmooth.demos.study.methods import COMPETITORS, NAMES, SMOOTHING

    rec = _complete(record)
    names = _present(rec, NAMES)
    smoothing = _present(rec, SMOOTHING)
    competitors = _present(rec, COMPETITORS)
    lines = _intro(rec, figure) + _how(rec) + _spaces(rec, names) + _chosen(rec, names) + _tables(rec)
    lines += [
        "",
        "## What held and what did not",
        "",
        "At equal gradient evaluations, with every method tuned alike (numbers: paired difference in test error, "
        "percentage points, with its 95 % interval):",
    ]
    lines += _head_to_head(rec, smoothing, competitors) + _vs_sgd(rec, names)
    lines += _sam_width(rec, [n for n in ("SAM", "ASAM") if n in names]) + _hardware(rec) + _limits(rec)
    return "\n".join(_wrap("\n".join(lines).split("\n"))) + "\n"


def _wrap(lines: Sequence[str], width: int = 110) -> list[str]:
    """Long prose lines wrapped at ``width`` (bullets with a hanging indent); tables, code and headings kept."""
    import textwrap

    out, code = [], False
    for line in lines:
        if line.startswith("```"):
            code = not code
        if code or len(line) <= width or line.lstrip().startswith(("|", "#", "![")):
            out.append(line)
            continue
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        hang = indent + ("  " if stripped.startswith("* ") else "")
        out.extend(
            textwrap.wrap(
                line, width, initial_indent="", subsequent_indent=hang, break_long_words=False, break_on_hyphens=False
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hjsmooth.demos.study.page RECORD.json [--out PAGE.md] [--figure PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m hjsmooth.demos.study.page", description="write docs/results.md from the study's record"
    )
    parser.add_argument("record", type=Path, help="the study's JSON record (docs/img/train.json)")
    parser.add_argument("--out", type=Path, default=None, help="the page to write (default: standard output)")
    parser.add_argument("--figure", default="img/train.png", help="the figure's path as seen from the page")
    args = parser.parse_args(argv)
    text = render(json.loads(args.record.read_text()), args.figure)
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
