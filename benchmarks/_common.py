"""Shared helpers of the benchmark scripts: timing, error measures and a plain table.

The scripts in this folder compare hjsmooth with peer packages on the same grid, final
time and initial data, in one process.  Each timing is the best of several repeats after
one warm-up call (which absorbs JIT compilation and caches); the spread of the repeats
is reported with it, because the benchmark machine is shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Timing", "time_call", "max_error", "relative_max_error", "Row", "print_rows", "format_seconds"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of the repeats of one call (the warm-up excluded), in seconds."""

    times: tuple[float, ...]
    warmup: float
    result: Any = field(repr=False, default=None)

    @property
    def best(self) -> float:
        """The fastest repeat: the figure every ratio uses."""
        return min(self.times)

    @property
    def worst(self) -> float:
        """The slowest repeat, to show the spread."""
        return max(self.times)


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1, min_total: float = 0.5,
              max_repeats: int = 100, budget: float = 30.0) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Fast calls are repeated further, until the timed repeats add up to ``min_total``
    seconds (at most ``max_repeats`` in all): on a shared machine the best of many short
    runs is the stable figure.  Slow calls are repeated less: when ``repeats`` times the
    warm-up would exceed ``budget`` seconds, only ``max(2, budget / warm-up)`` repeats run.  ``fn`` must block until its result is ready (call
    ``block_until_ready`` for JAX, synchronise for CUDA).  The result of the last repeat
    is kept in ``Timing.result``.
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1, got {repeats!r}")
    t0 = time.perf_counter()
    result = None
    for _ in range(warmup):
        result = fn()
    warm = time.perf_counter() - t0
    if warmup > 0 and repeats * warm / warmup > budget:
        repeats = max(2, int(budget / (warm / warmup)))
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_total and len(times) < max_repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return Timing(times=tuple(times), warmup=warm, result=result)


def max_error(values: Any, exact: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``max |values - exact|`` over the nodes where ``mask`` is true (all nodes if None)."""
    diff = np.abs(np.asarray(values, dtype=np.float64) - np.asarray(exact, dtype=np.float64))
    if mask is not None:
        diff = diff[mask]
    return float(diff.max())


def relative_max_error(values: Any, exact: np.ndarray) -> float:
    """``max |values - exact| / max |exact|``: the error as a fraction of the peak."""
    exact = np.asarray(exact, dtype=np.float64)
    return max_error(values, exact) / float(np.abs(exact).max())


def format_seconds(seconds: float) -> str:
    """Seconds as a short human string (ms below one second)."""
    if not np.isfinite(seconds):
        return "-"
    return f"{seconds * 1e3:9.2f} ms" if seconds < 1.0 else f"{seconds:9.3f} s "


@dataclass
class Row:
    """One line of a benchmark table: who ran, how long, how accurate."""

    name: str
    timing: Timing | None
    error: float = float("nan")
    note: str = ""

    @property
    def best(self) -> float:
        return self.timing.best if self.timing is not None else float("nan")


def print_rows(title: str, rows: Sequence[Row], reference: str | None = None) -> None:
    """Print ``rows`` as a table; ``ratio`` is the reference row's best time over each row's.

    A ratio above 1 means the row is that many times faster than the reference.
    """
    ref = next((r for r in rows if r.name == reference), None)
    print(f"\n== {title}")
    header = f"{'solver':<48} {'best':>12} {'spread (n)':>22} {'ratio':>8} {'max error':>11}  note"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.timing is None:
            print(f"{row.name:<48} {'-':>12} {'-':>22} {'-':>8} {'-':>11}  {row.note}")
            continue
        spread = f"{row.timing.best * 1e3:.1f}-{row.timing.worst * 1e3:.1f} ms x{len(row.timing.times)}"
        ratio = f"{ref.best / row.best:8.2f}" if ref is not None and ref.timing is not None else f"{'-':>8}"
        print(f"{row.name:<48} {format_seconds(row.best):>12} {spread:>22} {ratio} {row.error:11.3e}  {row.note}")


def print_ratios(peers: Sequence[Row], ours: Sequence[Row]) -> None:
    """For every (peer, hjsmooth) pair: speed-up (peer best / ours best) and both errors.

    ``same-or-better error`` says whether ours is at least as accurate as the peer, the
    condition under which a speed-up counts.
    """
    print("\nspeed-up = peer best time / hjsmooth best time")
    header = f"{'hjsmooth':<48} {'vs peer':<36} {'speed-up':>9} {'err ours':>10} {'err peer':>10}  same-or-better error"
    print(header)
    print("-" * len(header))
    for own in ours:
        if own.timing is None:
            continue
        for peer in peers:
            if peer.timing is None:
                continue
            ok = "yes" if own.error <= 1.01 * peer.error else "no"  # equal to 1% counts as equal
            print(f"{own.name:<48} {peer.name:<36} {peer.best / own.best:9.2f} {own.error:10.2e} {peer.error:10.2e}  {ok}")
