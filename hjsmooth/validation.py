"""Argument checks shared by every public function.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the
argument and the offending value, e.g. ``` `t` must be >= 0, got -1```.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, is_cupy_array, is_numpy_array, is_torch_array

__all__ = [
    "check_time",
    "check_beta",
    "check_positive",
    "check_choice",
    "as_field",
    "check_finite",
    "check_nonnegative",
    "check_count",
    "check_stencil",
]


def _as_float(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from None
    if math.isnan(out):
        raise ValueError(f"`{name}` must not be NaN, got {value!r}")
    return out


def check_time(t: Any, name: str = "t") -> float:
    """Return ``t`` as a float after checking ``0 <= t < inf``."""
    t = _as_float(t, name)
    if not (0.0 <= t < math.inf):
        raise ValueError(f"`{name}` must be >= 0 and finite, got {t!r}")
    return t


def check_beta(beta: Any, name: str = "beta") -> float:
    """Return the inverse temperature as a float after checking ``0 < beta <= inf``."""
    beta = _as_float(beta, name)
    if not beta > 0.0:
        raise ValueError(f"`{name}` must be > 0 (use float('inf') for no noise), got {beta!r}")
    return beta


def check_positive(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking ``value > 0`` (and finite unless ``allow_inf``)."""
    value = _as_float(value, name)
    if not value > 0.0 or (not allow_inf and math.isinf(value)):
        raise ValueError(f"`{name}` must be > 0{'' if allow_inf else ' and finite'}, got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists the valid ones."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown `{name}` {value!r}; valid values are {', '.join(map(repr, choices))}")
    return value


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum``.

    Python and numpy integers are accepted, and floats with an integral value (``20.0``);
    booleans and fractional values are refused with ``TypeError``.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value!r}")
    return int(value)


def check_finite(x: Any, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or inf."""
    xp = array_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise ValueError(f"`{name}` must be finite everywhere; it holds {n_bad} NaN or inf value(s)")


def check_nonnegative(x: Any, name: str) -> None:
    """Raise ``ValueError`` if ``x`` has a negative entry."""
    xp = array_namespace(x)
    lowest = float(xp.min(x))
    if lowest < 0:
        raise ValueError(f"`{name}` must be non-negative everywhere, got a minimum of {lowest!r}")


def as_field(x: Any, name: str, shape: tuple[int, ...] | None = None) -> Any:
    """Validate a field on a grid and return it as a floating array of its own backend.

    Numpy, torch and CuPy arrays keep their backend and device; lists and scalars
    become numpy arrays.  Integer and boolean arrays are promoted to float64
    (numpy, CuPy) or the default float dtype (torch); float32 and float64 are kept.
    """
    if not (is_numpy_array(x) or is_torch_array(x) or is_cupy_array(x)):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"`{name}` must be an array (numpy, torch or CuPy), got {type(x).__name__}") from None
    xp = array_namespace(x)
    if x.dtype not in (xp.float32, xp.float64):
        if xp.isdtype(x.dtype, ("integral", "bool")):
            x = xp.astype(x, xp.float64)
        else:
            raise TypeError(f"`{name}` must have a real floating dtype (float32 or float64), got {x.dtype}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have the grid's shape {tuple(shape)}, got shape {tuple(x.shape)}")
    check_finite(x, name)
    return x


def check_stencil(scheme: str, accuracy: str) -> None:
    """The hybrid central/upwind scheme is a three-point scheme: it needs ``accuracy="first"``."""
    if scheme == "hybrid" and accuracy != "first":
        raise ValueError(f"`scheme` 'hybrid' uses the three-point stencil; `accuracy` must be 'first', got {accuracy!r}")
