"""What every demo does at the end: save the figure (Agg, no screen) and a text summary of its numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["new_figure", "save", "format_summary", "summary_path", "progress", "COARSE_RUN"]

#: The first line of a ``--quick`` run's summary, and the banner across the top of its figure.
COARSE_RUN = "COARSE RUN (--quick): fewer points, steps and samples than the demo; not the figure's result"


def progress(iterable: Any, desc: str, total: int | None = None) -> Any:
    """``iterable`` wrapped in a tqdm bar on standard error, shown only if the loop lasts over two seconds."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, delay=2.0, leave=False)


def new_figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` on the Agg backend, so demos run on machines without a screen."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_fmt(v) for v in np.asarray(value).ravel().tolist()) + "]"
    return str(value)


def format_summary(title: str, numbers: Mapping[str, Any], prefix: str = "") -> str:
    """``title`` then one ``key: value`` line per number (nested dicts become ``outer.inner`` keys)."""
    lines = [title] if title else []
    for key, value in numbers.items():
        if isinstance(value, Mapping):
            lines.append(format_summary("", value, prefix=f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key}: {_fmt(value)}")
    return "\n".join(line for line in lines if line)


def summary_path(out: Path) -> Path:
    """Where the text summary of the figure ``out`` goes: ``out`` with the suffix ``.txt``."""
    return Path(out).with_suffix(".txt")


def save(fig: Any, out: Path, title: str, numbers: Mapping[str, Any], *, quick: bool) -> str:
    """Write ``fig`` to ``out`` (PNG, whatever the case of its suffix) and the summary to
    :func:`summary_path`; return the summary text.  Exactly these two files are written (and
    the missing folders above them).

    ``quick`` (the demo's ``--quick``) marks both as a coarse run: a red banner across the top of
    the figure and :data:`COARSE_RUN` as the first line of the summary, above ``title``.
    """
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if quick:
        # above everything already drawn (titles, a suptitle), so bbox_inches="tight" keeps it in view
        top = fig.get_tightbbox(fig.canvas.get_renderer()).y1 / fig.get_figheight()
        fig.text(
            0.5,
            max(top, 1.0) + 0.01,
            COARSE_RUN,
            transform=fig.transFigure,
            ha="center",
            va="bottom",
            fontsize=11,
            fontweight="bold",
            color="white",
            bbox={"facecolor": "#b2182b", "edgecolor": "none", "pad": 4},
        )
    fig.savefig(out, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    text = format_summary(title, numbers) + "\n"
    if quick:
        text = f"{COARSE_RUN}\n{text}"
    summary_path(out).write_text(text)
    return text
