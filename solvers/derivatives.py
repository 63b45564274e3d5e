"""Finite differences for the Hamilton-Jacobi solvers: one-sided (upwind) first derivatives
of order 1, 2 (ENO2) and 5 (WENO5), central Laplacians, and central gradients.

All functions work through ``xp = array_namespace(u)`` on numpy, torch and CuPy arrays.
The one-sided differences take a field already padded along ``axis`` by the ghost
width of the method (:data:`GHOST_WIDTH`; see :mod:`hjsmooth.solvers.boundary`) and
return arrays of the unpadded shape.
"""

from __future__ import annotations

from typing import Any

from hjsmooth.backend import array_namespace

__all__ = [
    "ACCURACIES",
    "GHOST_WIDTH",
    "WENO_EPS",
    "one_sided_differences",
    "laplacian",
    "laplacian_stiffness",
    "central_gradient",
]

ACCURACIES = ("first", "eno2", "weno5")
GHOST_WIDTH = {"first": 1, "eno2": 2, "weno5": 3}
#: Jiang-Peng regularisation of the WENO5 smoothness indicators, relative to the largest
#: squared first difference on the grid (the array code and the numba kernels share it).
WENO_EPS = 1e-6


def _shift(u: Any, axis: int, width: int, offset: int) -> Any:
    """The slice of padded ``u`` (ghost ``width``) holding node ``i + offset`` at position ``i``."""
    n = u.shape[axis] - 2 * width
    index = [slice(None)] * u.ndim
    index[axis] = slice(width + offset, width + offset + n)
    return u[tuple(index)]


def _first(padded: Any, axis: int, h: float) -> tuple[Any, Any]:
    centre = _shift(padded, axis, 1, 0)
    minus = (centre - _shift(padded, axis, 1, -1)) / h
    plus = (_shift(padded, axis, 1, 1) - centre) / h
    return minus, plus


def _eno2(padded: Any, axis: int, h: float) -> tuple[Any, Any]:
    xp = array_namespace(padded)
    u = {k: _shift(padded, axis, 2, k) for k in range(-2, 3)}
    d2 = {k: (u[k + 1] - 2.0 * u[k] + u[k - 1]) / (h * h) for k in (-1, 0, 1)}

    def smaller(a: Any, b: Any) -> Any:
        return xp.where(xp.abs(a) <= xp.abs(b), a, b)

    minus = (u[0] - u[-1]) / h + (0.5 * h) * smaller(d2[-1], d2[0])
    plus = (u[1] - u[0]) / h - (0.5 * h) * smaller(d2[0], d2[1])
    return minus, plus


def _weno5_combine(v1: Any, v2: Any, v3: Any, v4: Any, v5: Any, eps: float) -> Any:
    """Jiang-Peng WENO5 value from five consecutive differences ``v1 .. v5`` (``eps > 0``)."""
    phi1 = v1 / 3.0 - 7.0 * v2 / 6.0 + 11.0 * v3 / 6.0
    phi2 = -v2 / 6.0 + 5.0 * v3 / 6.0 + v4 / 3.0
    phi3 = v3 / 3.0 + 5.0 * v4 / 6.0 - v5 / 6.0
    s1 = (13.0 / 12.0) * (v1 - 2.0 * v2 + v3) ** 2 + 0.25 * (v1 - 4.0 * v2 + 3.0 * v3) ** 2
    s2 = (13.0 / 12.0) * (v2 - 2.0 * v3 + v4) ** 2 + 0.25 * (v2 - v4) ** 2
    s3 = (13.0 / 12.0) * (v3 - 2.0 * v4 + v5) ** 2 + 0.25 * (3.0 * v3 - 4.0 * v4 + v5) ** 2
    a1 = 0.1 / (s1 + eps) ** 2
    a2 = 0.6 / (s2 + eps) ** 2
    a3 = 0.3 / (s3 + eps) ** 2
    return (a1 * phi1 + a2 * phi2 + a3 * phi3) / (a1 + a2 + a3)


def _weno5(padded: Any, axis: int, h: float) -> tuple[Any, Any]:
    xp = array_namespace(padded)
    # backward differences of the padded field: diffs[j] = (u[j] - u[j-1]) / h, j = -2 .. n+2
    diffs = (
        padded[tuple(_axis_slice(padded.ndim, axis, 1, None))] - padded[tuple(_axis_slice(padded.ndim, axis, None, -1))]
    ) / h
    # The reconstruction is linear in the differences and its weights are scale-free, so it
    # runs on the differences divided by the largest one (1 for a constant field): the
    # smoothness indicators then lie in [0, 33] whatever the data's magnitude, and the
    # Jiang-Peng regularisation ``WENO_EPS`` (relative to the largest squared difference, so
    # that smooth regions keep the optimal fifth-order weights) keeps every weight finite
    # and their sum positive: no 0/0 on flat data, no underflow for tiny slopes, no
    # overflow for huge ones.  (No host sync: the guard against 0 is an array ``where``.)
    scale = xp.max(xp.abs(diffs))
    scale = xp.where(scale > 0, scale, xp.ones_like(scale))
    diffs = diffs / scale
    # d[k] holds (u[i+k] - u[i+k-1]) / (h scale) at position i, k = -2 .. 3
    n = padded.shape[axis] - 6
    d = {k: diffs[tuple(_axis_slice(padded.ndim, axis, k + 2, k + 2 + n))] for k in range(-2, 4)}
    minus = _weno5_combine(d[-2], d[-1], d[0], d[1], d[2], WENO_EPS) * scale
    plus = _weno5_combine(d[3], d[2], d[1], d[0], d[-1], WENO_EPS) * scale
    return minus, plus


def _axis_slice(ndim: int, axis: int, start: int | None, stop: int | None) -> list[slice]:
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return index


_METHODS = {"first": _first, "eno2": _eno2, "weno5": _weno5}


def one_sided_differences(padded: Any, axis: int, h: float, accuracy: str = "first") -> tuple[Any, Any]:
    """Left- and right-biased approximations ``(p_minus, p_plus)`` of ``du/dx_axis``.

    Parameters
    ----------
    padded : array
        The field padded along ``axis`` by ``GHOST_WIDTH[accuracy]`` ghost nodes.
    axis : int
        Direction of the derivative.
    h : float
        Node spacing along ``axis``.
    accuracy : {"first", "eno2", "weno5"}
        ``"first"``: ``p- = (u_i - u_{i-1})/h``, ``p+ = (u_{i+1} - u_i)/h``.
        ``"eno2"``: the first difference corrected by ``+-h/2`` times the second
        difference of smaller magnitude among the two candidate stencils
        (Osher-Fedkiw, second order where ``u`` is smooth).
        ``"weno5"``: Jiang-Peng weighted ENO on the five backward (forward) first
        differences, fifth order where ``u`` is smooth.

    Returns
    -------
    (p_minus, p_plus) : tuple of arrays of the unpadded shape
    """
    return _METHODS[accuracy](padded, axis, float(h))


def laplacian_stiffness(accuracy: str) -> float:
    """Largest magnitude of the Fourier symbol of the 1D Laplacian stencil, times ``h^2``.

    4 for the three-point stencil, 16/3 for the five-point one; the time step bound
    of the viscous term scales with it.
    """
    return 16.0 / 3.0 if accuracy == "weno5" else 4.0


def laplacian(padded_by_axis: list[Any], spacing: tuple[float, ...], width: int, accuracy: str = "first") -> Any:
    """Central-difference Laplacian ``sum_k d^2 u / dx_k^2``.

    Parameters
    ----------
    padded_by_axis : list of arrays
        ``padded_by_axis[k]`` is the field padded along axis ``k`` by ``width`` ghosts.
    spacing : tuple of float
        Node spacings ``h_k``.
    width : int
        The ghost width of the padded arrays (at least 1; at least 2 for ``"weno5"``).
    accuracy : str
        ``"weno5"`` uses the fourth-order five-point stencil
        ``(-u_{i-2} + 16 u_{i-1} - 30 u_i + 16 u_{i+1} - u_{i+2}) / (12 h^2)`` so that the
        viscous term does not limit the order; otherwise the second-order three-point
        stencil ``(u_{i-1} - 2 u_i + u_{i+1}) / h^2``, which keeps first-order schemes monotone.
    """
    total = None
    for axis, (padded, h) in enumerate(zip(padded_by_axis, spacing)):
        c = _shift(padded, axis, width, 0)
        if accuracy == "weno5":
            term = (
                -_shift(padded, axis, width, -2)
                + 16.0 * _shift(padded, axis, width, -1)
                - 30.0 * c
                + 16.0 * _shift(padded, axis, width, 1)
                - _shift(padded, axis, width, 2)
            ) / (12.0 * h * h)
        else:
            term = (_shift(padded, axis, width, -1) - 2.0 * c + _shift(padded, axis, width, 1)) / (h * h)
        total = term if total is None else total + term
    return total


def central_gradient(u: Any, spacing: tuple[float, ...]) -> Any:
    """Gradient of ``u`` by second-order differences, stacked as shape ``(ndim, *u.shape)``.

    Interior nodes use the central difference ``(u_{i+1} - u_{i-1}) / (2h)``; the end
    nodes of each axis use the one-sided second-order formulas
    ``(-3 u_0 + 4 u_1 - u_2) / (2h)`` and ``(3 u_{N-1} - 4 u_{N-2} + u_{N-3}) / (2h)``
    (as ``numpy.gradient(..., edge_order=2)``).
    """
    xp = array_namespace(u)
    parts = []
    for axis, h in enumerate(spacing):

        def sl(start: int | None, stop: int | None, axis: int = axis) -> tuple[slice, ...]:
            return tuple(_axis_slice(u.ndim, axis, start, stop))

        interior = (u[sl(2, None)] - u[sl(None, -2)]) / (2.0 * h)
        lo = (-3.0 * u[sl(0, 1)] + 4.0 * u[sl(1, 2)] - u[sl(2, 3)]) / (2.0 * h)
        hi = (3.0 * u[sl(-1, None)] - 4.0 * u[sl(-2, -1)] + u[sl(-3, -2)]) / (2.0 * h)
        parts.append(xp.concat([lo, interior, hi], axis=axis))
    return xp.stack(parts)
