"""Uniform node-centred grids in one, two and three dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like
from hjsmooth.validation import check_count, check_grid_geometry

__all__ = ["Grid"]


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

    Notes
    -----
    The spacing must be representable for the solvers (see
    :func:`hjsmooth.validation.check_grid_geometry`): roughly ``1.5e-154 <= h <= 1.3e154``,
    distinct nodes in float64 and a finite, normal cell volume; otherwise ``ValueError``.

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
        lower_t, upper_t, shape_t = check_grid_geometry(lower, upper, shape)
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

    def refine(self, factor: int = 2) -> Grid:
        """The same box with ``factor`` times finer spacing (old nodes are kept)."""
        factor = check_count(factor, "factor")
        return Grid(self.lower, self.upper, tuple((n - 1) * factor + 1 for n in self.shape))

    def integrate(self, values: Any) -> Any:
        """Riemann sum ``h^d * sum(values)`` over all nodes (the quadrature every solver uses)."""
        xp = array_namespace(values)
        return xp.sum(values) * self.cell_volume
