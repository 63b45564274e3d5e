"""Uniform node-centred grids in one, two and three dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like

__all__ = ["Grid"]


def _as_tuple(value: Any, name: str, cast: type) -> tuple:
    if np.isscalar(value):
        value = (value,)
    try:
        out = tuple(cast(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number or a sequence of numbers, got {value!r}") from None
    return out


@dataclass(frozen=True)
class Grid:
    """A uniform, node-centred grid on the box ``[lower, upper]``; both ends are grid points.

    Along axis ``k`` the nodes are ``lower[k] + i * spacing[k]`` for ``i = 0 .. shape[k]-1``
    with ``spacing[k] = (upper[k] - lower[k]) / (shape[k] - 1)``.

    Parameters
    ----------
    lower, upper : sequence of float (or a float in 1D)
        Corners of the box, ``lower[k] < upper[k]``.
    shape : sequence of int (or an int in 1D)
        Number of nodes per axis, at least 3.

    Examples
    --------
    >>> g = Grid(lower=(-3.0,), upper=(3.0,), shape=(601,))
    >>> g.ndim, g.spacing
    (1, (0.01,))
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]

    def __init__(self, lower: Sequence[float] | float, upper: Sequence[float] | float, shape: Sequence[int] | int):
        lower_t = _as_tuple(lower, "lower", float)
        upper_t = _as_tuple(upper, "upper", float)
        shape_raw = _as_tuple(shape, "shape", lambda s: s)
        if any(isinstance(s, bool) or not float(s).is_integer() for s in shape_raw):
            raise TypeError(f"`shape` must hold integers, got {shape!r}")
        shape_t = tuple(int(s) for s in shape_raw)
        if not (len(lower_t) == len(upper_t) == len(shape_t)):
            raise ValueError(
                f"`lower`, `upper` and `shape` must have the same length, got {len(lower_t)}, {len(upper_t)}, {len(shape_t)}"
            )
        if not 1 <= len(shape_t) <= 3:
            raise ValueError(f"grids have 1, 2 or 3 dimensions, got {len(shape_t)} (shape={shape_t})")
        for k, (lo, hi, n) in enumerate(zip(lower_t, upper_t, shape_t)):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"`lower` and `upper` must be finite, got {lo!r} and {hi!r} on axis {k}")
            if not lo < hi:
                raise ValueError(f"`lower` must be < `upper` on every axis, got {lo!r} >= {hi!r} on axis {k}")
            if n < 3:
                raise ValueError(f"`shape` must have at least 3 nodes per axis, got {n} on axis {k}")
        object.__setattr__(self, "lower", lower_t)
        object.__setattr__(self, "upper", upper_t)
        object.__setattr__(self, "shape", shape_t)

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Total number of nodes."""
        return math.prod(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Node spacing ``h_k`` per axis."""
        return tuple((hi - lo) / (n - 1) for lo, hi, n in zip(self.lower, self.upper, self.shape))

    @property
    def cell_volume(self) -> float:
        """``prod_k h_k``, the quadrature weight of one node."""
        return math.prod(self.spacing)

    @cached_property
    def axes(self) -> tuple[np.ndarray, ...]:
        """The 1D node coordinates along each axis (float64 numpy arrays)."""
        return tuple(np.linspace(lo, hi, n) for lo, hi, n in zip(self.lower, self.upper, self.shape))

    @cached_property
    def coords(self) -> tuple[np.ndarray, ...]:
        """Node coordinates as ``ij``-indexed arrays of ``shape`` (float64 numpy arrays)."""
        return tuple(np.meshgrid(*self.axes, indexing="ij"))

    def points(self) -> np.ndarray:
        """All nodes as an array of shape ``(size, ndim)``, in C order."""
        return np.stack([c.ravel() for c in self.coords], axis=-1)

    def axes_like(self, like: Any) -> tuple[Any, ...]:
        """The axes as arrays of ``like``'s backend, device and dtype."""
        return tuple(asarray_like(a, like) for a in self.axes)

    def coords_like(self, like: Any) -> tuple[Any, ...]:
        """The ``ij``-indexed coordinates as arrays of ``like``'s backend, device and dtype."""
        xp = array_namespace(like)
        return tuple(xp.meshgrid(*self.axes_like(like), indexing="ij"))

    def refine(self, factor: int = 2) -> "Grid":
        """The same box with ``factor`` times finer spacing (old nodes are kept)."""
        if int(factor) != factor or factor < 1:
            raise ValueError(f"`factor` must be a positive integer, got {factor!r}")
        return Grid(self.lower, self.upper, tuple((n - 1) * int(factor) + 1 for n in self.shape))

    def integrate(self, values: Any) -> Any:
        """Riemann sum ``h^d * sum(values)`` over all nodes (the quadrature every solver uses)."""
        xp = array_namespace(values)
        return xp.sum(values) * self.cell_volume
