"""Summaries over seeds: mean and standard deviation, paired comparisons, rank correlations.

A paired comparison of method A against the baseline B uses the per-seed differences
``d_s = err_A(s) - err_B(s)`` (seed ``s`` fixes the initialisation and the minibatch order of both runs).
Its 95 % confidence interval is ``mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n)``; a difference is called larger
than the seed noise when that interval excludes 0 (a two-sided paired t-test at the 5 % level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MeanStd", "Paired", "mean_std", "paired", "rank_correlation"]


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f}"


@dataclass(frozen=True)
class Paired:
    """``mean`` of the per-seed differences, its 95 % interval ``[low, high]``, the p-value, and the verdict."""

    mean: float
    low: float
    high: float
    p_value: float
    n: int

    @property
    def significant(self) -> bool:
        return self.n >= 2 and (self.low > 0.0 or self.high < 0.0)

    def verdict(self) -> str:
        """``"better"``, ``"worse"`` or ``"same"`` (within the seed noise), where a lower value is better."""
        if not self.significant:
            return "same"
        return "better" if self.mean < 0 else "worse"


def mean_std(values: Sequence[float]) -> MeanStd:
    """Mean and sample standard deviation (``ddof = 1``; 0 for a single value)."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        raise ValueError("`values` is empty")
    return MeanStd(float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size))


def paired(values: Sequence[float], baseline: Sequence[float]) -> Paired:
    """Paired comparison of ``values`` against ``baseline`` (same seeds, same order)."""
    from scipy import stats

    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"`values` and `baseline` must be 1-D of the same nonzero length, got {a.shape} and {b.shape}")
    d = a - b
    n = d.size
    mean = float(d.mean())
    if n < 2:
        return Paired(mean, -math.inf, math.inf, 1.0, n)
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return Paired(mean, mean, mean, p, n)
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    p = float(2.0 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return Paired(mean, mean - half, mean + half, p, n)


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation of ``x`` and ``y`` and its two-sided p-value (NaN pairs dropped)."""
    from scipy import stats

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return math.nan, math.nan
    result = stats.spearmanr(a[keep], b[keep])
    return float(result.statistic), float(result.pvalue)
