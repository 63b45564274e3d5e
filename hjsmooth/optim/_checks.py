"""Hyper-parameter checks of the optimizers: errors name the argument, the value and the valid range.

Each optimizer class lists its hyper-parameters in a table ``name -> check`` and
validates every param group once, in ``add_param_group`` (:func:`validate_group`).
A check returns the value it accepted, normalised (``L = 20.0`` becomes ``20``), and
raises ``TypeError`` / ``ValueError`` otherwise.  Values of groups after the first are
named ``param_groups[i]['name']`` in the messages.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from hjsmooth.validation import (
    check_alpha,
    check_choice,
    check_count,
    check_nonnegative_real,
    check_positive,
    check_real,
)

__all__ = [
    "NonFiniteError",
    "check_scope",
    "check_count",
    "check_alpha",
    "check_momentum",
    "check_flag",
    "check_nonnegative_float",
    "choice_check",
    "check_lr",
    "validate_group",
    "resolve",
    "as_loss",
    "inner_step_limit",
    "warn_if_unstable",
    "INNER_CHECKS",
]

Check = Callable[[Any, str], Any]


class NonFiniteError(ValueError):
    """A closure returned a NaN or infinite loss, or produced a NaN or infinite gradient.

    Raised after the weights were put back at the point ``x`` they had when the step
    began and the optimizer's state (buffers, random generators, ``outer_step``) was
    left as it was; the message names the inner step, the replica and the outer step.
    """


def check_scope(value: Any, name: str, *, allow_inf: bool = False) -> Any:
    """A scope (``gamma``, ``rho``, ``inner_lr``): a number ``> 0`` or a schedule (a callable of the outer step)."""
    if callable(value):
        return value
    return check_positive(value, name, allow_inf=allow_inf)


def check_scope_or_inf(value: Any, name: str) -> Any:
    """A scope that may be ``inf`` (no coupling)."""
    return check_scope(value, name, allow_inf=True)


def check_momentum(value: Any, name: str) -> float:
    """A momentum coefficient: ``0 <= momentum < 1`` (1 or more never forgets and diverges)."""
    value = check_real(value, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}")
    return value


def check_nonnegative_float(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """A real number ``>= 0`` (finite unless ``allow_inf``)."""
    return check_nonnegative_real(value, name, allow_inf=allow_inf)


def check_flag(value: Any, name: str) -> bool:
    """A boolean (``True``/``False``; numpy booleans accepted)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"`{name}` must be True or False, got {value!r}")


def choice_check(choices: tuple[str, ...]) -> Check:
    """A check (for a table of hyper-parameters) accepting one of ``choices``."""

    def check(value: Any, name: str) -> str:
        return check_choice(value, name, choices)

    return check


def check_lr(value: Any, name: str) -> float | torch.Tensor:
    """A learning rate: a real number ``>= 0``, or a one-element tensor (kept as a tensor, as torch.optim does).

    A tensor learning rate serves ``torch.compile`` and capturable steps; its value is checked
    (finite, ``>= 0``) once, here.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor lr must be 1-element: `{name}` has shape {tuple(value.shape)}")
        if value.is_complex() or not value.dtype.is_floating_point:
            raise TypeError(f"`{name}` must be a real floating-point tensor, got dtype {value.dtype}")
        check_nonnegative_real(float(value.detach()), name)
        return value
    return check_nonnegative_real(value, name)


#: checks of the keyword arguments of the base optimizers, applied when a group has them
BASE_CHECKS: dict[str, Check] = {
    "lr": check_lr,
    "momentum": check_nonnegative_float,
    "weight_decay": check_nonnegative_float,
}


def validate_group(group: dict[str, Any], checks: Mapping[str, Check], index: int) -> None:
    """Check every hyper-parameter of ``group`` named in ``checks`` (and ``lr``, ``momentum``,
    ``weight_decay`` where present) and write back the normalised values.

    ``index`` is the group's position in ``param_groups`` (0 names values plainly, as the
    constructor's arguments; later groups as ``param_groups[i]['name']``).
    """
    for key, check in {**BASE_CHECKS, **checks}.items():
        if key not in group:
            continue
        name = key if index == 0 else f"param_groups[{index}]['{key}']"
        group[key] = check(group[key], name)


def resolve(value: Any, step: int, name: str, *, allow_inf: bool = False) -> float:
    """The value of a hyper-parameter at outer step ``step``: ``value(step)`` if it is a schedule."""
    if callable(value):
        value = value(step)
        return check_positive(value, f"{name} (schedule at outer step {step})", allow_inf=allow_inf)
    return float(value)


def as_loss(loss: Any, where: Callable[[], str]) -> float | None:
    """The closure's loss as a float, or ``None`` when the closure returned ``None``.

    ``TypeError`` unless it is ``None``, a real number or a one-element real tensor;
    :class:`NonFiniteError` (naming ``where()``) if it is NaN or infinite.
    """
    if loss is None:
        return None
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise TypeError(
                f"the closure must return a scalar loss; it returned a tensor of shape "
                f"{tuple(loss.shape)} (reduce it, e.g. with .mean())"
            )
        if loss.is_complex() or loss.dtype == torch.bool:
            raise TypeError(f"the closure must return a real loss; it returned a {loss.dtype} tensor")
        value = float(loss.detach())
    elif isinstance(loss, numbers.Real) and not isinstance(loss, bool):
        value = float(loss)
    else:
        raise TypeError(
            f"the closure must return the loss as a number or a scalar tensor; it returned "
            f"{type(loss).__name__} {loss!r:.60}"
        )
    if not math.isfinite(value):
        raise NonFiniteError(
            f"the closure returned a non-finite loss ({value}) at {where()}; the weights "
            "were put back where the step began"
        )
    return value


def inner_step_limit(momentum: float, nesterov: bool, coupling_in_momentum: bool) -> float:
    """The largest ``inner_lr / gamma`` for which the coupling term alone does not blow up.

    The coupling ``(y - x)/gamma`` is a quadratic of curvature ``c = 1/gamma``; a step
    ``eta`` on it is stable for ``eta c < 2`` (plain step, or coupling added after the
    momentum), ``eta c < 2 (1 + mu)`` (heavy ball) and ``eta c < 2 (1 + mu)/(1 + 2 mu)``
    (Nesterov) when the coupling goes through a momentum buffer with coefficient ``mu``.
    """
    if not coupling_in_momentum or momentum == 0.0:
        return 2.0
    if nesterov:
        return 2.0 * (1.0 + momentum) / (1.0 + 2.0 * momentum)
    return 2.0 * (1.0 + momentum)


def warn_if_unstable(
    inner_lr: float, gamma: float, momentum: float, nesterov: bool, coupling_in_momentum: bool, where: str
) -> bool:
    """A ``UserWarning`` when ``inner_lr / gamma`` is at or past :func:`inner_step_limit`; whether it warned."""
    if math.isinf(gamma):
        return False
    limit = inner_step_limit(momentum, nesterov, coupling_in_momentum)
    if inner_lr / gamma < limit:
        return False
    warnings.warn(
        f"{where}: inner_lr / gamma = {inner_lr / gamma:g} (inner_lr = {inner_lr:g}, gamma = {gamma:g}) is >= "
        f"{limit:g}, the stability limit of the coupling term (y - x)/gamma with this inner momentum: the inner "
        "loop diverges. Lower inner_lr or raise gamma (gamma is the PDE time: the coupling is 1/gamma).",
        UserWarning,
        stacklevel=4,
    )
    return True


#: The checks of the inner loop's hyper-parameters (``LocalEntropy``, ``Parle``); each adds its scope check.
INNER_CHECKS: dict[str, Check] = {
    "L": check_count,
    "inner_lr": check_scope,
    "noise": check_nonnegative_float,
    "alpha": check_alpha,
    "inner_momentum": check_momentum,
    "inner_nesterov": check_flag,
    "coupling_in_momentum": check_flag,
    "keep_inner_buffer": check_flag,
}
