"""Scoping schedules: plain functions of the outer step, for ``gamma`` (and ``rho`` in Parle).

Each schedule is a small picklable object ``k -> value`` (so an optimizer holding one
still saves with ``torch.save``); pass it where a scope is expected, e.g.
``EntropySGD(params, lr=0.1, gamma=exponential(1.0, 1e-3))``, or call it yourself and
write the value into ``param_groups``.  ``k`` counts *outer* steps, starting at 0.  The
learning rate stays with ``torch.optim.lr_scheduler``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hjsmooth.optim._checks import check_count, check_nonnegative_float
from hjsmooth.validation import check_positive

__all__ = ["Exponential", "exponential", "parle", "constant"]


@dataclass(frozen=True)
class Exponential:
    r"""``value(k) = max(initial (1 - rate)^{floor(k / every)}, minimum)``.

    With ``every = 1`` this is the Entropy-SGD scoping ``gamma_k = gamma_0 (1 - gamma_1)^k``
    (thesis 3.2.3); with ``rate = 1/(2B)``, ``every = L`` and a clip it is Parle's (5.10).
    ``rate`` may be negative (an increasing schedule, e.g. for ``1/gamma``).
    """

    initial: float
    rate: float
    minimum: float = 0.0
    every: int = 1

    def __post_init__(self) -> None:
        check_positive(self.initial, "initial")
        if not -math.inf < float(self.rate) < 1.0:
            raise ValueError(f"`rate` must be < 1, got {self.rate!r}")
        check_nonnegative_float(self.minimum, "minimum")
        check_count(self.every, "every")

    def __call__(self, k: int) -> float:
        if k < 0:
            raise ValueError(f"`k` (the outer step) must be >= 0, got {k!r}")
        return max(self.initial * (1.0 - self.rate) ** (k // self.every), self.minimum)


def exponential(initial: float, rate: float, minimum: float = 0.0, every: int = 1) -> Exponential:
    """``k -> max(initial (1 - rate)^{floor(k/every)}, minimum)`` (thesis 3.2.3: ``gamma_0 (1 - gamma_1)^k``)."""
    return Exponential(float(initial), float(rate), float(minimum), int(every))


def parle(initial: float, n_batches: int, minimum: float, L: int = 1) -> Exponential:
    """Parle's scoping (5.10): ``k -> max(initial (1 - 1/(2B))^{floor(k/L)}, minimum)``.

    ``B`` (``n_batches``) is the number of minibatches in the whole data set; the thesis
    clips ``gamma`` at 1 and ``rho`` at 0.1.  ``k`` counts calls (gradients) per replica when
    ``L > 1`` is given; pass ``L = 1`` (default) when ``k`` already counts outer steps.
    """
    check_count(n_batches, "n_batches")
    return Exponential(float(initial), 1.0 / (2.0 * n_batches), float(minimum), int(L))


def constant(value: float) -> Exponential:
    """``k -> value``."""
    return Exponential(float(value), 0.0)
