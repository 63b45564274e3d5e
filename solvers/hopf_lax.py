"""Exact solution of the inviscid Hamilton-Jacobi equation on a grid (Hopf-Lax formula)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hjsmooth.backend import (
    array_namespace,
    device,
    from_cupy,
    from_numpy,
    is_cupy_array,
    is_cuda,
    is_numpy_array,
    is_torch_array,
    to_cupy,
    to_numpy,
)
from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_choice, check_time

__all__ = ["hopf_lax", "check_grid"]

_METHODS = ("auto", "envelope", "brute_force")
_BRUTE_FORCE_BUDGET = 1 << 22  # entries of the largest temporary (rows x points x points) block


def check_grid(grid: Any) -> Grid:
    """Return ``grid`` after checking that it is a :class:`hjsmooth.Grid`."""
    if not isinstance(grid, Grid):
        raise TypeError(f"`grid` must be a hjsmooth.Grid, got {type(grid).__name__}")
    return grid


def hopf_lax(
    f: Any,
    grid: Grid,
    t: float,
    *,
    return_prox: bool = False,
    method: str = "auto",
) -> Any:
    r"""Solve the inviscid Hamilton-Jacobi equation exactly on the grid by the Hopf-Lax formula.

    The viscosity solution of (4.15)

    .. math:: u_t = -\tfrac12 |\nabla u|^2, \qquad u(x, 0) = f(x),

    is the inf-convolution (4.16) :math:`u(x, t) = \min_y f(y) + |x - y|^2 / (2t)`.  Here the
    minimum runs over the **grid points** ``y`` of the window ``[grid.lower, grid.upper]``
    and ``u`` is returned at the grid points ``x``.

    Edge of the grid: ``f`` is taken as ``+inf`` outside the window (a state constraint),
    so ``u`` equals the Hopf-Lax solution on the whole space only where the minimiser
    ``prox(x)`` stays inside the window, i.e. at distance ``t |grad f|`` from ``x``; near
    the edge ``u`` is larger.  Restricting ``y`` to grid points makes ``u`` exact at grid
    resolution: for ``f`` with ``f'' <= C`` it exceeds the continuous minimum by at most
    ``(C + 1/t) |h|^2 / 8``.

    Method: ``|x - y|^2`` is a sum over axes, so the ``d``-dimensional minimum is ``d``
    one-dimensional transforms applied along each axis in turn.  In 1D the minimum of
    ``f(y_q) + (p - q)^2 h^2 / (2t)`` over ``q`` is the lower envelope of ``n`` parabolas
    (Felzenszwalb-Huttenlocher), ``O(n)`` per line, so the whole transform is
    ``O(d N)`` for ``N`` grid points.  It runs as a numba kernel for numpy and CPU torch
    (parallel over lines), as a CuPy raw kernel (one GPU thread per line) for CuPy arrays
    and, when CuPy is installed, for CUDA torch tensors.  Any other array-API array
    (e.g. CUDA torch without CuPy) uses the chunked brute-force minimum, ``O(n^2)`` per
    line, which ``method="brute_force"`` also selects.  Float32 input stays float32 in memory
    and in the result (the CPU kernel evaluates each crossing point in double precision; the
    GPU kernel works in the array's precision throughout).

    Parameters
    ----------
    f : array of shape ``grid.shape``
        Initial value, numpy, torch or CuPy, float32 or float64 (integers become float64).
    grid : Grid
        The grid ``f`` lives on.
    t : float
        Time, ``t >= 0``.  ``t = 0`` returns a copy of ``f``.
    return_prox : bool
        Also return the proximal point ``prox(x) = argmin_y f(y) + |x - y|^2 / (2t)``,
        an array of shape ``(grid.ndim, *grid.shape)`` holding the coordinates of the
        minimising grid point.  Then ``grad u(x) = (x - prox(x)) / t`` (4.18).  Where the
        minimiser is not unique, ``prox`` is one of the minimisers (which one depends on the
        method).
    method : {"auto", "envelope", "brute_force"}
        ``"auto"`` (the lower envelope wherever a kernel exists for the array, else brute
        force), ``"envelope"`` (fail if no kernel exists) or ``"brute_force"``.

    Returns
    -------
    u : array
        ``u(., t)`` on the grid, same backend, device and dtype as ``f``.
    prox : array, only if ``return_prox``
        Shape ``(grid.ndim, *grid.shape)``, same backend, device and dtype as ``f``.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-2.0, 2.0, 401)
    >>> u = hs.hopf_lax(g.axes[0] ** 2 / 2, g, t=1.0)   # = x^2 / 4 up to h^2 terms
    >>> bool(np.abs(u - g.axes[0] ** 2 / 4).max() < 1e-4)
    True
    """
    grid = check_grid(grid)
    f = as_field(f, "f", grid.shape)
    t = check_time(t)
    method = check_choice(method, "method", _METHODS)
    return_prox = bool(return_prox)
    xp = array_namespace(f)
    if t == 0.0:
        u = xp.asarray(f, copy=True)
        if not return_prox:
            return u
        return u, xp.stack(grid.coords_like(f), axis=0)

    engine = _engine_for(f, method)
    work = {"numba": to_numpy, "cuda": to_cupy, "brute_force": lambda a: a}[engine](f)
    if engine == "cuda":
        import cupy

        with cupy.cuda.Device(work.device.id):
            u, prox_index = _transform(work, grid, t, engine, return_prox)
            u = cupy.ascontiguousarray(u)
    else:
        u, prox_index = _transform(work, grid, t, engine, return_prox)

    back = {"numba": from_numpy, "cuda": from_cupy, "brute_force": lambda a, like: a}[engine]
    u = back(u, f)
    if not return_prox:
        return u
    wxp = array_namespace(work)
    coords = [
        grid.lower[k] + wxp.astype(prox_index[k], wxp.float64) * grid.spacing[k] for k in range(grid.ndim)
    ]
    prox = back(wxp.astype(wxp.stack(coords, axis=0), work.dtype), f)
    return u, prox


def _engine_for(f: Any, method: str) -> str:
    """Pick the kernel for ``f``: ``"numba"``, ``"cuda"`` or ``"brute_force"``."""
    if method == "brute_force":
        return "brute_force"
    if is_numpy_array(f) or (is_torch_array(f) and f.device.type == "cpu"):
        return "numba"
    if is_cupy_array(f):
        return "cuda"
    if is_torch_array(f) and is_cuda(f):
        try:
            import cupy  # noqa: F401
        except ImportError:
            pass
        else:
            return "cuda"
    if method == "envelope":
        raise ValueError(
            f"`method` 'envelope' has no kernel for {type(f).__name__} on device {device(f)}; "
            "use method='auto' or 'brute_force'"
        )
    return "brute_force"


def _transform(work: Any, grid: Grid, t: float, engine: str, track: bool) -> tuple[Any, list[Any] | None]:
    """Apply the 1D transform along every axis; return ``u`` and, if ``track``, the prox indices."""
    argmins = []
    u = work
    for axis in range(grid.ndim):
        c = grid.spacing[axis] ** 2 / (2.0 * t)
        u, argmin = _axis_pass(u, axis, c, engine, track)
        argmins.append(argmin)
    if not track:
        return u, None
    return u, _resolve_prox_indices(argmins, grid.shape)


def _axis_pass(w: Any, axis: int, c: float, engine: str, track: bool) -> tuple[Any, Any | None]:
    """``min_q w[..., q, ...] + c (p - q)^2`` along ``axis``, with the minimising ``q`` if ``track``."""
    xp = array_namespace(w)
    n = w.shape[axis]
    if engine == "cuda":
        from hjsmooth.solvers._cuda_kernels import lower_envelope_columns

        moved = xp.moveaxis(w, axis, 0)
        env, arg = lower_envelope_columns(xp.reshape(moved, (n, -1)), c, track=track)
        restore = lambda a: xp.moveaxis(xp.reshape(a, moved.shape), 0, axis)  # noqa: E731
    else:
        moved = xp.moveaxis(w, axis, -1)
        rows = xp.reshape(moved, (-1, n))
        if engine == "numba":
            from hjsmooth.solvers._lower_envelope import lower_envelope_rows

            env, arg = lower_envelope_rows(rows, c, track=track)
        else:
            env, arg = _brute_force_rows(rows, c, track)
        restore = lambda a: xp.moveaxis(xp.reshape(a, moved.shape), -1, axis)  # noqa: E731
    return restore(env), (restore(arg) if track else None)


def _brute_force_rows(rows: Any, c: float, track: bool) -> tuple[Any, Any | None]:
    """``min_q rows[r, q] + c (p - q)^2`` by direct minimisation, in chunks of bounded size.

    ``O(n^2)`` per row with plain array-API operations, so it runs on any backend and
    device; it is also the reference the fast kernels are tested against.  Ties go to
    the smallest ``q``.
    """
    xp = array_namespace(rows)
    n_rows, n = rows.shape
    dev = device(rows)
    index = xp.arange(n, dtype=xp.float64, device=dev)
    rows_per_chunk = max(1, _BRUTE_FORCE_BUDGET // (n * n))
    points_per_chunk = min(n, max(1, _BRUTE_FORCE_BUDGET // (rows_per_chunk * n)))
    env_blocks, arg_blocks = [], []
    for r0 in range(0, n_rows, rows_per_chunk):
        block = rows[r0 : r0 + rows_per_chunk, :]
        env_parts, arg_parts = [], []
        for p0 in range(0, n, points_per_chunk):
            p = index[p0 : p0 + points_per_chunk]
            cost = xp.astype(c * (p[:, None] - index[None, :]) ** 2, rows.dtype)
            total = block[:, None, :] + cost[None, :, :]
            env_parts.append(xp.min(total, axis=-1))
            if track:
                arg_parts.append(xp.astype(xp.argmin(total, axis=-1), xp.int64))
        env_blocks.append(xp.concat(env_parts, axis=1))
        if track:
            arg_blocks.append(xp.concat(arg_parts, axis=1))
    env = xp.concat(env_blocks, axis=0)
    return env, (xp.concat(arg_blocks, axis=0) if track else None)


def _resolve_prox_indices(argmins: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Turn the per-pass argmin indices into the grid indices of the joint minimiser.

    Pass ``a`` minimised over ``y_a`` at points whose axes ``< a`` hold output coordinates
    ``x_k`` and whose axes ``> a`` hold the later passes' variables ``y_k``.  The last pass
    gives ``y_{d-1}(x)`` directly; going backwards, ``y_a(x)`` is pass ``a``'s argmin read at
    ``(x_0, .., x_a, y_{a+1}(x), .., y_{d-1}(x))``.
    """
    xp = array_namespace(argmins[0])
    dev = device(argmins[0])
    ndim = len(shape)
    strides = [int(np.prod(shape[k + 1 :])) for k in range(ndim)]
    own_index = [
        xp.reshape(xp.arange(shape[k], dtype=xp.int64, device=dev), tuple(-1 if j == k else 1 for j in range(ndim)))
        for k in range(ndim)
    ]
    resolved: list[Any] = [None] * ndim
    resolved[ndim - 1] = xp.astype(argmins[ndim - 1], xp.int64)
    for a in range(ndim - 2, -1, -1):
        flat = xp.zeros(shape, dtype=xp.int64, device=dev)
        for k in range(ndim):
            flat = flat + (own_index[k] if k <= a else resolved[k]) * strides[k]
        picked = xp.take(xp.reshape(xp.astype(argmins[a], xp.int64), (-1,)), xp.reshape(flat, (-1,)), axis=0)
        resolved[a] = xp.reshape(picked, shape)
    return resolved
