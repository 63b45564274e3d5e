"""The time loops of the solvers: CFL-limited steps (:func:`march`) and error-controlled steps
(:func:`march_adaptive`), both landing exactly on the output times."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hjsmooth.backend import array_namespace

__all__ = ["march", "march_adaptive", "MarchResult", "output_times", "DEFAULT_MAX_STEPS"]

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
    #: rejected attempts (error-controlled loop only)
    rejected: int = 0
    #: the largest step taken (error-controlled loop only)
    max_dt: float = math.nan


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
    if isinstance(save_at, (str, bytes, bool)):
        raise ValueError(f"`save_at` must be a count (an int >= 2) or a sequence of times, got {save_at!r}")
    try:
        times = np.asarray(save_at, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"`save_at` must be a count (an int >= 2) or a sequence of times, got {save_at!r}") from None
    if times.size == 0 or not np.all(np.isfinite(times)):
        raise ValueError(f"`save_at` must hold finite times, got {save_at!r}")
    if np.any(times < 0) or np.any(times > t * (1 + 1e-12)):
        raise ValueError(f"`save_at` times must lie in [0, t={t}], got {save_at!r}")
    times = np.unique(np.minimum(times, t))
    return times if times[-1] == t else np.append(times, t)


def _time_bar(t: float, desc: str | None, progress: bool | None) -> Any:
    """A tqdm bar over the simulated time ``0..t`` (shown after 2 s; ``progress=None``: only on a terminal)."""
    disable = None if progress is None else not progress
    return tqdm(
        total=t,
        desc=desc or "time",
        unit="t",
        delay=2.0,
        disable=disable,
        leave=False,
        bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]",
    )


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
    read: Callable[[Any], Any] | None = None,
) -> MarchResult:
    """Advance ``state`` from time 0 to ``t`` with ``state = step(state, dt)``.

    Each step is ``min(dt, stable_dt(state))``, shortened to land exactly on the next
    output time, so a user-supplied ``dt`` above the stability bound is reduced rather
    than refused.  ``progress=None`` shows a tqdm bar only if the run lasts longer than
    two seconds and standard error is a terminal; ``True`` forces it, ``False`` hides it.
    ``read`` turns a state into the array that snapshots and the result hold (for steppers
    that advance in place on their own buffers); ``None`` keeps the states themselves.

    Before the first step the number of steps is estimated as ``t`` over the first step
    (plus one landing step per extra output time); a run estimated to need more than
    ``max_steps`` is refused at once with a ``ValueError`` that gives the estimate.  The
    estimate assumes the step stays at its first value; should the step shrink later, the
    run stops with a ``RuntimeError`` when it has taken ``max_steps`` steps short of ``t``.
    """
    times = output_times(t, save_at)
    _refuse_long_runs(state, t, stable_dt, dt, max_steps, len(times), desc)
    snaps = []
    steps = 0
    now = 0.0
    last_dt = math.nan
    min_dt = math.inf
    bar = _time_bar(t, desc, progress)
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
                snaps.append(state if read is None else read(state))
    finally:
        bar.close()
    final = state if read is None else read(state)
    snapshots = array_namespace(final).stack(snaps) if save_at is not None else None
    return MarchResult(final, times, snapshots, steps, last_dt, min_dt if steps else math.nan)


def _refuse_long_runs(
    state: Any, t: float, stable_dt: Callable[[Any], float], dt: float | None, max_steps: int, outputs: int, desc: str
) -> None:
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


def march_adaptive(
    state: Any,
    t: float,
    attempt: Callable[[Any, float], tuple[Any, float]],
    first_dt: float,
    *,
    order: int,
    max_dt: float = math.inf,
    max_growth: float = 5.0,
    round_step: Callable[[float], float] | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    desc: str = "",
    max_steps: int = DEFAULT_MAX_STEPS,
) -> MarchResult:
    """Advance ``state`` from time 0 to ``t`` with steps chosen by a local-error controller.

    ``attempt(state, h)`` returns ``(new_state, error)``: ``error`` is the local error of the
    step in the caller's scaled norm, so that the step is accepted when ``error <= 1``; ``inf``
    (or NaN) rejects it for another reason (the caller's check failed), and the step is halved.
    After an accepted step the next is ``h min(max_growth, max(0.2, 0.9 error^(-1/(order+1))))``
    (``order`` the order of the method, ``order + 1`` that of its local error); after a rejected
    one ``h max(0.2, 0.9 error^(-1/(order+1)))``, and the step does not grow on the step that
    follows a rejection.  Steps never exceed ``max_dt`` and are shortened to land exactly on
    the output times (a shortened landing step does not shrink the proposal).  ``round_step``
    maps a proposal to the step actually tried (at most the proposal: e.g. down to a ladder of
    steps whose matrix factorisations a caller keeps).  ``max_steps``
    bounds the attempts, accepted and rejected; a run whose steps could not be fewer than that
    (``t / max_dt``) is refused before it starts.  The result's ``steps`` counts the accepted
    steps and ``rejected`` the rejected ones.
    """
    times = output_times(t, save_at)
    if t > 0.0 and math.isfinite(max_dt) and t / max_dt > max_steps:
        raise ValueError(
            f"`t`={t:g} needs at least {t / max_dt:.3g} steps of at most dt={max_dt:.3g} ({desc}), "
            f"more than `max_steps`={max_steps}; shorten `t` or pass a larger `max_steps`"
        )
    exponent = -1.0 / (order + 1)
    snaps = []
    accepted = rejected = 0
    now = 0.0
    h = min(first_dt, max_dt)
    last_dt, min_dt, largest_dt = math.nan, math.inf, 0.0
    growth = max_growth
    bar = _time_bar(t, desc, progress)
    try:
        for target in times:
            while now < target:
                if accepted + rejected >= max_steps:
                    raise RuntimeError(f"reached `max_steps`={max_steps} at t={now:g} before t={t:g}")
                if not (h > 0.0 and now + h > now):
                    raise FloatingPointError(
                        f"the time step fell to {h!r} at t={now:g} after {accepted} steps "
                        f"({rejected} rejected); loosen the tolerances"
                    )
                remaining = target - now
                landing = h >= remaining * (1 - 1e-12)
                step = remaining if landing else (h if round_step is None else round_step(h))
                new, error = attempt(state, step)
                if error <= 1.0:
                    state = new
                    now = target if landing else now + step
                    accepted += 1
                    last_dt, min_dt, largest_dt = step, min(min_dt, step), max(largest_dt, step)
                    factor = growth if error == 0.0 else min(growth, max(0.2, 0.9 * error**exponent))
                    h = min(max(h, step * factor) if landing else step * factor, max_dt)
                    growth = max_growth
                    bar.update(step)
                else:
                    rejected += 1
                    h = step * (max(0.2, 0.9 * error**exponent) if math.isfinite(error) else 0.5)
                    growth = 1.0
            if save_at is not None:
                snaps.append(state)
    finally:
        bar.close()
    snapshots = array_namespace(state).stack(snaps) if save_at is not None else None
    return MarchResult(
        state,
        times,
        snapshots,
        accepted,
        last_dt,
        min_dt if accepted else math.nan,
        rejected=rejected,
        max_dt=largest_dt if accepted else math.nan,
    )
