"""Hyper-parameter checks for the optimizers: errors name the argument and the value."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hjsmooth.validation import check_count, check_positive

__all__ = ["check_scope", "check_count", "check_alpha", "check_nonnegative_float", "resolve", "check_loss"]


def check_scope(value: Any, name: str, *, allow_inf: bool = False) -> Any:
    """A scope (``gamma``, ``rho``): a number ``> 0`` or a schedule (a callable of the outer step)."""
    if callable(value):
        return value
    return check_positive(value, name, allow_inf=allow_inf)


def check_alpha(value: Any, name: str = "alpha") -> float:
    """The running-average weight: ``0 <= alpha < 1``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}")
    return value


def check_nonnegative_float(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """A real number ``>= 0`` (finite unless ``allow_inf``)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from None
    if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
        raise ValueError(f"`{name}` must be >= 0{'' if allow_inf else ' and finite'}, got {value!r}")
    return value


def resolve(value: Any, step: int, name: str, *, allow_inf: bool = False) -> float:
    """The value of a hyper-parameter at outer step ``step``: ``value(step)`` if it is a schedule."""
    if callable(value):
        value = value(step)
        return check_positive(value, f"{name} (schedule at outer step {step})", allow_inf=allow_inf)
    return check_positive(value, name, allow_inf=allow_inf)


def as_loss(loss: Any, where: Callable[[], str]) -> float:
    """The closure's loss as a float; ``ValueError`` (with ``where()``) if it is NaN or inf."""
    if loss is None:
        raise TypeError("the closure must return the loss; it returned None")
    value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
    if not math.isfinite(value):
        raise ValueError(f"the closure returned a non-finite loss ({value}) at {where()}")
    return value


check_loss = as_loss


def sgd_kwargs(lr: Any, momentum: Any, nesterov: Any, weight_decay: Any) -> dict[str, Any]:
    """Checked keyword arguments of the outer SGD step (Nesterov only where ``momentum > 0``)."""
    momentum = check_nonnegative_float(momentum, "momentum")
    return dict(lr=check_nonnegative_float(lr, "lr"), momentum=momentum, nesterov=bool(nesterov) and momentum > 0,
                weight_decay=check_nonnegative_float(weight_decay, "weight_decay"))
