"""Controls for the controlled SDE (4.29): from a grid solution of the HJB equation, or in closed form.

The controlled dynamics (4.29) ``dX = -(grad f(X) + alpha(X, s)) ds + beta^{-1/2} dB`` with the
cost ``E[V(X(T)) + 1/2 int_0^T |alpha|^2 ds]`` has the value function ``u`` of the HJB equation (4.31)

    -u_s = -grad f . grad u - 1/2 |grad u|^2 + 1/(2 beta) Lap u,   u(., T) = V,

and the optimal feedback control ``alpha*(x, s) = grad u(x, s)`` (4.32).  A control here is a callable
``alpha(x, s)`` taking points ``(..., d)`` and the forward time ``s`` and returning ``(..., d)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, from_numpy, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import (
    check_beta,
    check_finite,
    check_grid,
    check_positive,
    check_real,
    check_time,
    renamed_argument,
)

__all__ = ["grid_control", "riccati_control", "RiccatiControl"]


def grid_control(values: Any, times: Any, grid: Grid) -> Callable[[Any, float], Any]:
    """The feedback control ``alpha(x, s) = grad u(x, s)`` from snapshots of a grid solution ``u``.

    Parameters
    ----------
    values : array of shape ``(len(times), *grid.shape)``
        ``u(., s)`` at the forward times ``times`` (for a terminal-value HJB solved backwards, pass the
        snapshots with their forward times ``s``; the order of ``times`` may be either).
    times : sequence of float
        The forward times of the snapshots, at least one.
    grid : Grid

    Returns
    -------
    callable
        ``alpha(x, s)``: central differences of ``u`` on the grid (``numpy.gradient``, second order inside,
        one-sided first order on the edge nodes), multilinear interpolation in space, linear in time.
        Points outside the box use the value at the nearest point of the box (clamped); times outside
        ``[min(times), max(times)]`` use the nearest snapshot.  Evaluation is done on the host; the
        result is returned on ``x``'s backend, device and dtype.
    """
    from scipy.interpolate import RegularGridInterpolator

    check_grid(grid)
    u = np.asarray(to_numpy(values), dtype=np.float64)
    s_grid = np.asarray(times, dtype=np.float64).ravel()
    if u.shape != (s_grid.size,) + tuple(grid.shape):
        raise ValueError(
            f"`values` must have shape (len(times),) + grid.shape = {(s_grid.size,) + grid.shape}, got {u.shape}"
        )
    check_finite(u, "values")
    order = np.argsort(s_grid)
    s_grid, u = s_grid[order], u[order]
    if s_grid.size == 1:
        s_grid = np.array([s_grid[0], s_grid[0] + 1.0])
        u = np.concatenate([u, u], axis=0)
    grads = np.gradient(u, *grid.axes, axis=tuple(range(1, grid.ndim + 1)))
    if grid.ndim == 1:
        grads = [grads]
    interpolators = [RegularGridInterpolator((s_grid,) + grid.axes, g, method="linear") for g in grads]
    lower = np.asarray(grid.lower)
    upper = np.asarray(grid.upper)

    def alpha(x: Any, s: float) -> Any:
        xs = np.asarray(to_numpy(x), dtype=np.float64)
        if xs.shape[-1] != grid.ndim:
            raise ValueError(f"`x` must have shape (..., {grid.ndim}), got {xs.shape}")
        flat = np.clip(xs.reshape(-1, grid.ndim), lower, upper)
        s_col = np.full((flat.shape[0], 1), min(max(float(s), s_grid[0]), s_grid[-1]))
        query = np.concatenate([s_col, flat], axis=1)
        out = np.stack([f(query) for f in interpolators], axis=-1).reshape(xs.shape)
        return from_numpy(out, x)

    return alpha


class RiccatiControl:
    """Closed-form optimal control for ``f = a |x|^2/2`` and ``V = c |x|^2/2`` (any dimension ``d``).

    The value function is ``u(x, s) = q(s) |x|^2/2 + r(s)`` with the Riccati equation
    ``q' = 2 a q + q^2``, ``q(T) = c``, and ``r' = -d q / (2 beta)``, ``r(T) = 0``.  With ``w = 1/q``
    (``w' = -2 a w - 1``) and ``S = T - s``::

        w(s) = (1/c + 1/(2a)) e^{2 a S} - 1/(2a)        (w = 1/c + S when a = 0)
        r(s) = d/(2 beta) log(1 + c (1 - e^{-2 a S}) / (2a))   (log(1 + c S) when a = 0)

    and ``alpha*(x, s) = q(s) x``.  ``sgd_expectation(x0)`` is ``E[V(X_sgd(T))]`` for the uncontrolled
    Ornstein-Uhlenbeck process ``dX = -a X ds + beta^{-1/2} dB``.  The final time (the horizon ``T``
    of the formulas) is ``t``; ``horizon`` is its deprecated name.
    """

    def __init__(self, a: float, c: float, beta: float, t: float | None = None, *, horizon: float | None = None):
        self.a = check_real(a, "a")
        if not math.isfinite(self.a):
            raise ValueError(f"`a` must be finite, got {a!r}")
        self.c = check_positive(c, "c")
        self.beta = check_beta(beta)
        self.t = check_time(renamed_argument(t, horizon, "t", "horizon"), "t")

    @property
    def horizon(self) -> float:
        """Deprecated name of :attr:`t`, the final time."""
        warnings.warn("`horizon` is deprecated and will be removed; use `t`", DeprecationWarning, stacklevel=2)
        return self.t

    def _ratio(self, span: float) -> float:
        """``(1 - e^{-2 a S}) / (2 a)``, continuous at ``a = 0``."""
        z = 2 * self.a * span
        return span if abs(z) < 1e-12 else -math.expm1(-z) / (2 * self.a)

    def q(self, s: float) -> float:
        """The curvature ``q(s)`` of the value function."""
        span = self.t - float(s)
        w = math.exp(2 * self.a * span) * (1 / self.c + self._ratio(span))
        return 1.0 / w

    def r(self, s: float, d: int = 1) -> float:
        """The offset ``r(s)`` of the value function in ``d`` dimensions."""
        span = self.t - float(s)
        return 0.0 if self.beta == math.inf else d / (2 * self.beta) * math.log1p(self.c * self._ratio(span))

    def value(self, x: Any, s: float) -> Any:
        """``u(x, s)`` for points ``(..., d)``."""
        xp = array_namespace(x)
        return self.q(s) * xp.sum(x * x, axis=-1) / 2 + self.r(s, x.shape[-1])

    def __call__(self, x: Any, s: float) -> Any:
        """The optimal control ``alpha*(x, s) = q(s) x``."""
        return self.q(s) * x

    def sgd_expectation(self, x0: Any) -> float:
        """``E[V(X_sgd(T))]`` from ``X(0) = x0`` (a single point ``(d,)``) under ``dX = -a X ds + beta^{-1/2} dB``."""
        x0 = np.asarray(to_numpy(x0), dtype=np.float64).ravel()
        T = self.t
        mean_sq = float(np.sum(x0 * x0)) * math.exp(-2 * self.a * T)
        var = 0.0 if self.beta == math.inf else self._ratio(T) / self.beta
        return self.c / 2 * (mean_sq + x0.size * var)


def riccati_control(
    a: float, c: float, beta: float, t: float | None = None, *, horizon: float | None = None
) -> RiccatiControl:
    """The closed-form optimal control of (4.29)-(4.31) for ``f = a|x|^2/2``, ``V = c|x|^2/2`` up to the
    final time ``t`` (see :class:`RiccatiControl`; ``horizon`` is the deprecated name of ``t``)."""
    return RiccatiControl(a, c, beta, renamed_argument(t, horizon, "t", "horizon"))
