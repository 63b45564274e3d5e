"""Hyper-parameter search on validation data: the same number of configurations for every method.

A search space maps a hyper-parameter to a :class:`LogUniform` range or a :class:`Choice`.  The first
configuration tried is always the method's documented setting (its defaults or recipe); the others are
drawn at random from the space.  A configuration is scored by its final validation error, averaged over
the search seeds; the split handed to the runs has no test data (:meth:`Split.without_test`), so the search
cannot read the test error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LogUniform", "Choice", "draw_configurations", "best_configuration", "describe_space"]


@dataclass(frozen=True)
class LogUniform:
    """A value drawn log-uniformly from ``[low, high]``."""

    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Choice:
    """A value drawn uniformly from ``options``."""

    options: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


def draw_configurations(
    documented: Mapping[str, Any], space: Mapping[str, LogUniform | Choice], count: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``count`` configurations: ``documented`` first, then ``count - 1`` random draws from ``space``.

    Hyper-parameters outside ``space`` keep their documented value in every configuration.
    """
    if count < 1:
        raise ValueError(f"`count` must be >= 1, got {count!r}")
    configs = [dict(documented)]
    for _ in range(count - 1):
        configs.append({**documented, **{name: dim.draw(rng) for name, dim in space.items()}})
    return configs


def best_configuration(configs: Sequence[Mapping[str, Any]], scores: Sequence[float]) -> int:
    """Index of the configuration with the lowest score (the first one on a tie)."""
    if len(configs) != len(scores) or not configs:
        raise ValueError(
            f"`configs` and `scores` must have the same nonzero length, got {len(configs)} and {len(scores)}"
        )
    return int(np.argmin(np.asarray(scores, dtype=float)))


def describe_space(space: Mapping[str, LogUniform | Choice]) -> dict[str, str]:
    """The search space in words, for the JSON record and docs/results.md."""
    return {name: dim.describe() for name, dim in space.items()}
