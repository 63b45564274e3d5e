"""Boundary conditions for the time-stepping solvers, applied as ghost-cell padding.

A stencil of half-width ``w`` at the first and last ``w`` nodes of an axis reaches
``w`` nodes beyond the grid.  Those *ghost* values are filled by :func:`pad_axis`
according to the boundary condition, one axis at a time (the difference stencils
of the Hamilton-Jacobi solvers are axis-aligned, so corners are never needed):

``"extrapolate"``
    Linear extrapolation from the two end nodes: ``u[-k] = u[0] + k (u[0] - u[1])``.
    It lets characteristics leave the box freely; it is *not* monotone, so the
    comparison principle is only guaranteed away from the edges.
``"periodic"``
    Period ``upper - lower``: node ``N-1`` is the same point as node ``0``, so the
    distinct nodes are ``0 .. N-2`` and ``u[N-1+k] = u[k]``, ``u[-k] = u[N-1-k]``.
    The solvers copy node ``0`` onto node ``N-1`` before the first step (the input's
    last node along a periodic axis is ignored), and the two stay equal exactly.
``"neumann"``
    Zero normal derivative, by mirroring about the end node:
    ``u[-k] = u[k]`` and ``u[N-1+k] = u[N-1-k]``.
``"dirichlet"``
    The end nodes are held at fixed values (:func:`dirichlet_hold` resets them after
    every step and Runge-Kutta stage); the ghosts are filled by linear extrapolation,
    they only serve to evaluate the stencils of the nodes next to the edge.

The solvers take one condition for every axis or a tuple with one per axis (e.g. a periodic
angle beside extrapolated positions, :func:`axis_conditions`); ``"dirichlet"`` holds every
face of the box, so it is given for all axes or none.
"""

from __future__ import annotations

from typing import Any

from hjsmooth.backend import array_namespace, device
from hjsmooth.validation import check_choice

__all__ = [
    "BOUNDARY_CONDITIONS",
    "axis_conditions",
    "check_ghost_width",
    "pad_axis",
    "boundary_mask",
    "dirichlet_hold",
    "close_periodic",
]

BOUNDARY_CONDITIONS = ("extrapolate", "periodic", "neumann", "dirichlet")


def axis_conditions(bc: Any, ndim: int) -> tuple[str, ...]:
    """The boundary condition of every axis: ``bc`` repeated, or ``bc`` itself when it is a sequence
    of ``ndim`` names (``"dirichlet"`` for all axes or none)."""
    if isinstance(bc, str):
        return (check_choice(bc, "bc", BOUNDARY_CONDITIONS),) * ndim
    try:
        conditions = tuple(bc)
    except TypeError:
        raise TypeError(f"`bc` must be a boundary condition name or a sequence of {ndim} of them, got {bc!r}") from None
    if len(conditions) != ndim:
        raise ValueError(f"`bc` must name one boundary condition per axis ({ndim}), got {bc!r}")
    for name in conditions:
        if not isinstance(name, str):
            raise TypeError(f"`bc` must hold boundary condition names, got {bc!r}")
        check_choice(name, "bc", BOUNDARY_CONDITIONS)
    if "dirichlet" in conditions and len(set(conditions)) > 1:
        raise ValueError(f"`bc` 'dirichlet' holds every face of the box: give it for all axes or none, got {bc!r}")
    return conditions


def _take(xp: Any, u: Any, indices: list[int], axis: int) -> Any:
    idx = xp.asarray(indices, dtype=xp.int64, device=device(u))
    return xp.take(u, idx, axis=axis)


def check_ghost_width(n: int, width: int, bc: str) -> None:
    """Refuse an axis of ``n`` nodes too short for ``width`` ghosts under a mirrored or periodic ``bc``."""
    if bc in ("periodic", "neumann") and n - 1 < width:
        raise ValueError(f"a {bc} boundary of width {width} needs at least {width + 1} nodes per axis, got {n}")


def pad_axis(u: Any, axis: int, width: int, bc: str) -> Any:
    """Return ``u`` with ``width`` ghost nodes added at both ends of ``axis``.

    Parameters
    ----------
    u : array
        Field on the grid (numpy, torch or CuPy).
    axis : int
        The axis to pad.
    width : int
        Number of ghost nodes on each side (1 for first-order stencils, 2 for ENO2,
        3 for WENO5).
    bc : {"extrapolate", "periodic", "neumann", "dirichlet"}
        How the ghosts are filled (see the module docstring); ``"dirichlet"`` pads
        like ``"extrapolate"``.

    Returns
    -------
    array
        Shape ``u.shape`` with ``u.shape[axis] + 2 * width`` along ``axis``.
    """
    xp = array_namespace(u)
    n = u.shape[axis]
    check_ghost_width(n, width, bc)
    if bc == "periodic":
        left = _take(xp, u, [n - 1 - k for k in range(width, 0, -1)], axis)
        right = _take(xp, u, [k for k in range(1, width + 1)], axis)
    elif bc == "neumann":
        left = _take(xp, u, [k for k in range(width, 0, -1)], axis)
        right = _take(xp, u, [n - 1 - k for k in range(1, width + 1)], axis)
    elif bc in ("extrapolate", "dirichlet"):
        first = _take(xp, u, [0], axis)
        slope_lo = first - _take(xp, u, [1], axis)
        last = _take(xp, u, [n - 1], axis)
        slope_hi = last - _take(xp, u, [n - 2], axis)
        left = xp.concat([first + k * slope_lo for k in range(width, 0, -1)], axis=axis)
        right = xp.concat([last + k * slope_hi for k in range(1, width + 1)], axis=axis)
    else:
        raise ValueError(f"unknown `bc` {bc!r}; valid values are {', '.join(map(repr, BOUNDARY_CONDITIONS))}")
    return xp.concat([left, u, right], axis=axis)


def boundary_mask(like: Any) -> Any:
    """Boolean array of ``like``'s shape and device, true on the nodes of the box's faces."""
    xp = array_namespace(like)
    mask = xp.zeros(like.shape, dtype=xp.bool, device=device(like))
    for axis, n in enumerate(like.shape):
        for end in (0, n - 1):
            index: list[slice | int] = [slice(None)] * like.ndim
            index[axis] = end
            mask[tuple(index)] = True
    return mask


def dirichlet_hold(u: Any, mask: Any, held: Any) -> Any:
    """Return ``u`` with the nodes where ``mask`` is true replaced by ``held``."""
    xp = array_namespace(u)
    return xp.where(mask, held, u)


def close_periodic(u: Any, periodic: tuple[bool, ...] | None = None) -> Any:
    """Copy node ``0`` onto node ``N-1`` along every periodic axis (they are the same point of a periodic
    box); ``periodic`` says which axes are (default: all)."""
    xp = array_namespace(u)
    out = xp.asarray(u, copy=True)
    for axis, n in enumerate(u.shape):
        if periodic is not None and not periodic[axis]:
            continue
        dst: list[slice | int] = [slice(None)] * u.ndim
        src: list[slice | int] = [slice(None)] * u.ndim
        dst[axis] = n - 1
        src[axis] = 0
        out[tuple(dst)] = out[tuple(src)]
    return out
