"""The time loop shared by the explicit solvers: CFL-limited steps, exact landing on output times."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hjsmooth.backend import array_namespace

__all__ = ["march", "MarchResult", "output_times", "DEFAULT_MAX_STEPS"]

#: the most steps a solver takes unless told otherwise (``max_steps``)
DEFAULT_MAX_STEPS = 10_000_000


@dataclass(frozen=True)
class MarchResult:
    state: Any
    times: np.ndarray
    snapshots: Any | None
    steps: int
    last_dt: float
    min_dt: float


def output_times(t: float, save_at: Sequence[float] | int | None) -> np.ndarray:
    """Normalise the ``save_at`` argument into a sorted array of times in ``[0, t]`` ending at ``t``.

    ``save_at`` may be ``None`` (only the final time), an integer ``n`` (``n`` equally
    spaced times including ``0`` and ``t``) or a sequence of times.
    """
    if save_at is None:
        return np.array([t])
    if isinstance(save_at, (int, np.integer)) and not isinstance(save_at, bool):
        if save_at < 2:
            raise ValueError(f"`save_at` as a count must be >= 2, got {save_at}")
        return np.linspace(0.0, t, int(save_at))
    times = np.asarray(save_at, dtype=float).ravel()
    if times.size == 0 or not np.all(np.isfinite(times)):
        raise ValueError(f"`save_at` must hold finite times, got {save_at!r}")
    if np.any(times < 0) or np.any(times > t * (1 + 1e-12)):
        raise ValueError(f"`save_at` times must lie in [0, t={t}], got {save_at!r}")
    times = np.unique(np.minimum(times, t))
    return times if times[-1] == t else np.append(times, t)


def march(
    state: Any,
    t: float,
    step: Callable[[Any, float], Any],
    stable_dt: Callable[[Any], float],
    *,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    desc: str = "",
    max_steps: int = DEFAULT_MAX_STEPS,
) -> MarchResult:
    """Advance ``state`` from time 0 to ``t`` with ``state = step(state, dt)``.

    Each step is ``min(dt, stable_dt(state))``, shortened to land exactly on the next
    output time, so a user-supplied ``dt`` above the stability bound is reduced rather
    than refused.  ``progress=None`` shows a tqdm bar only if the run lasts longer than
    two seconds and standard error is a terminal; ``True`` forces it, ``False`` hides it.

    Before the first step the number of steps is estimated as ``t`` over the first step
    (plus one landing step per extra output time); a run estimated to need more than
    ``max_steps`` is refused at once with a ``ValueError`` that gives the estimate.  The
    estimate assumes the step stays at its first value; should the step shrink later, the
    run stops with a ``RuntimeError`` when it has taken ``max_steps`` steps short of ``t``.
    """
    xp = array_namespace(state)
    times = output_times(t, save_at)
    _refuse_long_runs(state, t, stable_dt, dt, max_steps, len(times), desc)
    snaps = []
    steps = 0
    now = 0.0
    last_dt = math.nan
    min_dt = math.inf
    disable = None if progress is None else not progress
    bar = tqdm(total=t, desc=desc or "time", unit="t", delay=2.0, disable=disable, leave=False,
               bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
    try:
        for target in times:
            while now < target:
                if steps >= max_steps:
                    raise RuntimeError(f"reached `max_steps`={max_steps} at t={now:g} before t={t:g}")
                h = stable_dt(state)
                if dt is not None:
                    h = min(h, dt)
                if not h > 0 or not math.isfinite(h):
                    raise FloatingPointError(f"time step became {h!r} at t={now:g} after {steps} steps")
                remaining = target - now
                if h >= remaining * (1 - 1e-12):
                    h, landed = remaining, True
                else:
                    landed = False
                state = step(state, h)
                steps += 1
                now = target if landed else now + h
                last_dt = h
                min_dt = min(min_dt, h)
                bar.update(h)
            if save_at is not None:
                snaps.append(state)
    finally:
        bar.close()
    snapshots = xp.stack(snaps) if save_at is not None else None
    return MarchResult(state, times, snapshots, steps, last_dt, min_dt if steps else math.nan)


def _refuse_long_runs(state: Any, t: float, stable_dt: Callable[[Any], float], dt: float | None, max_steps: int,
                      outputs: int, desc: str) -> None:
    """Raise ``ValueError`` if ``t`` over the first step (plus the landing steps) exceeds ``max_steps``."""
    if t <= 0.0:
        return
    first = stable_dt(state)
    if dt is not None:
        first = min(first, dt)
    if not (first > 0.0 and math.isfinite(first)):
        return  # the loop reports a step that is not positive and finite
    ratio = t / first
    estimate = (math.ceil(ratio * (1 - 1e-12)) if ratio < 2**53 else ratio) + outputs - 1
    if estimate > max_steps:
        what = f" ({desc})" if desc else ""
        raise ValueError(
            f"`t`={t:g} needs about {estimate:.3g} steps of dt={first:.3g}{what}, more than "
            f"`max_steps`={max_steps}; shorten `t`, coarsen the grid, or pass a larger `max_steps`"
        )
