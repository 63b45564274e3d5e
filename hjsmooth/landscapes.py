"""Named test functions: the losses every layer of hjsmooth is tried on.

Each :class:`Landscape` evaluates its value and gradient on any backend (numpy, torch,
CuPy) and on batches of points: ``x`` has shape ``(..., ndim)``, ``value(x)`` shape
``(...)`` and ``grad(x)`` shape ``(..., ndim)``.  ``on_grid(grid)`` evaluates on the nodes
of a :class:`~hjsmooth.grid.Grid`.

=====================  =====================================================================
``rugged_1d()``        the thesis' Figure 4.1 in spirit: a wide global basin under ripples
                       that trap gradient descent in local minima
``wide_sharp_2d()``    a wide shallow basin and a sharp, slightly deeper one
``double_well(ndim)``  ``(x_1^2 - 1)^2/4 + sum_{k>1} x_k^2/2`` (the potential of Example 6.43)
``rastrigin(ndim)``    ``sum_k x_k^2/2 + a (1 - cos(2 pi x_k / p))``: a lattice of local minima
``quadratic(ndim, c)`` ``c |x|^2/2``, the closed-form case of Example 4.12
``limit_cycles(lam)``  Example 6.43: potential Phi and the non-gradient force ``j``
=====================  =====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like
from hjsmooth.grid import Grid

__all__ = [
    "Landscape",
    "LimitCycles",
    "rugged_1d",
    "wide_sharp_2d",
    "double_well",
    "rastrigin",
    "quadratic",
    "limit_cycles",
    "LANDSCAPES",
    "get",
]

ArrayFn = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Landscape:
    """A loss ``f: R^ndim -> R`` with its gradient, a suggested window and its known minima.

    Attributes
    ----------
    name : str
    ndim : int
    lower, upper : tuple of float
        The window the demos and tests use.
    minima : tuple of tuple of float
        Known local minimisers, the global one first.
    description : str
    """

    name: str
    ndim: int
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    value_fn: ArrayFn = field(repr=False)
    grad_fn: ArrayFn = field(repr=False)
    minima: tuple[tuple[float, ...], ...] = ()
    description: str = ""

    def _points(self, x: Any, name: str = "x") -> tuple[Any, Any]:
        if isinstance(x, (list, tuple, float, int)):
            x = np.asarray(x, dtype=np.float64)
        xp = array_namespace(x)
        if x.ndim == 0 or x.shape[-1] != self.ndim:
            raise ValueError(
                f"`{name}` must have shape (..., {self.ndim}) for the {self.ndim}-D landscape "
                f"{self.name!r}, got shape {tuple(x.shape)}"
            )
        return xp, x

    def value(self, x: Any) -> Any:
        """``f(x)`` for points ``x`` of shape ``(..., ndim)``; returns shape ``(...)``."""
        xp, x = self._points(x)
        return self.value_fn(xp, x)

    def grad(self, x: Any) -> Any:
        """``grad f(x)`` for points ``x`` of shape ``(..., ndim)``; returns shape ``(..., ndim)``."""
        xp, x = self._points(x)
        return self.grad_fn(xp, x)

    def __call__(self, x: Any) -> Any:
        return self.value(x)

    def grid(self, shape: Sequence[int] | int = 257) -> Grid:
        """A :class:`Grid` on the landscape's window with ``shape`` nodes (an int means that many per axis)."""
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),) * self.ndim
        return Grid(self.lower, self.upper, shape)

    def _stacked_nodes(self, grid: Grid, like: Any | None) -> Any:
        if grid.ndim != self.ndim:
            raise ValueError(f"`grid` must be {self.ndim}-D for landscape {self.name!r}, got {grid.ndim}-D")
        coords = grid.coords if like is None else grid.coords_like(like)
        xp = array_namespace(coords[0])
        return xp.stack(coords, axis=-1)

    def on_grid(self, grid: Grid, like: Any | None = None) -> Any:
        """``f`` at the nodes of ``grid``, shape ``grid.shape``; numpy float64 or ``like``'s backend/dtype."""
        return self.value(self._stacked_nodes(grid, like))

    def grad_on_grid(self, grid: Grid, like: Any | None = None) -> Any:
        """``grad f`` at the nodes of ``grid``, shape ``(ndim, *grid.shape)`` (the solvers' drift layout)."""
        xp_nodes = self._stacked_nodes(grid, like)
        xp = array_namespace(xp_nodes)
        return xp.moveaxis(self.grad(xp_nodes), -1, 0)


def _sq(xp: Any, x: Any) -> Any:
    return xp.sum(x * x, axis=-1)


# ----------------------------------------------------------------------------- rugged 1D
def rugged_1d(slope: float = 0.125, ripple: float = 0.3, frequency: float = 3.0, center: float = 1.0) -> Landscape:
    """A wide basin under ripples: ``f(x) = slope (x - center)^2 + ripple sin^2(frequency x)``.

    With the defaults the minima sit near ``k pi / 3``; the global one is at ``x ~ pi/3`` (f ~ 3e-4) and the
    others rise away from it (f(0) ~ 0.125, f(2.09) ~ 0.14, f(-1.05) ~ 0.52, f(-2.09) ~ 1.2), so gradient
    descent started on the left stalls in a ripple, while the smoothed losses lead to the global basin.
    """

    def value(xp: Any, x: Any) -> Any:
        s = x[..., 0]
        return slope * (s - center) ** 2 + ripple * xp.sin(frequency * s) ** 2

    def grad(xp: Any, x: Any) -> Any:
        s = x[..., 0]
        g = 2 * slope * (s - center) + ripple * frequency * xp.sin(2 * frequency * s)
        return g[..., None]

    minima = _minima_1d(lambda s: slope * (s - center) ** 2 + ripple * np.sin(frequency * s) ** 2, -3.0, 3.0)
    return Landscape(
        "rugged_1d",
        1,
        (-3.0,),
        (3.0,),
        value,
        grad,
        minima,
        "wide quadratic basin under sin^2 ripples (Figure 4.1 in spirit)",
    )


def _minima_1d(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float) -> tuple[tuple[float, ...], ...]:
    """Local minimisers of a smooth 1D function on [lo, hi], located on a fine grid and polished by golden search."""
    from scipy.optimize import minimize_scalar

    s = np.linspace(lo, hi, 20001)
    v = f(s)
    idx = np.nonzero((v[1:-1] < v[:-2]) & (v[1:-1] <= v[2:]))[0] + 1
    found = []
    for i in idx:
        res = minimize_scalar(f, bracket=(s[i - 1], s[i], s[i + 1]), tol=1e-12)
        found.append((float(res.x), float(res.fun)))
    found.sort(key=lambda p: p[1])
    return tuple((p[0],) for p in found)


# ----------------------------------------------------------------------------- wide vs sharp 2D
def wide_sharp_2d(
    wide_center: Sequence[float] = (-1.0, -0.5),
    wide_depth: float = 1.0,
    wide_width: float = 0.8,
    sharp_center: Sequence[float] = (1.2, 0.8),
    sharp_depth: float = 1.15,
    sharp_width: float = 0.12,
    confinement: float = 0.02,
) -> Landscape:
    """Two Gaussian wells on a weak quadratic bowl; the sharp one is slightly deeper.

    ``f(x) = -a_w exp(-|x-c_w|^2/(2 s_w^2)) - a_s exp(-|x-c_s|^2/(2 s_s^2)) + k |x|^2/2``.
    Plain gradient descent started near the sharp well falls into it (it holds the global minimum);
    Local Entropy and the Hopf-Lax/heat smoothings prefer the wide well.
    """
    cw = np.asarray(wide_center, dtype=float)
    cs = np.asarray(sharp_center, dtype=float)

    def wells(xp: Any, x: Any) -> tuple[Any, Any, Any, Any]:
        dw = x - asarray_like(cw, x)
        ds = x - asarray_like(cs, x)
        ew = wide_depth * xp.exp(-_sq(xp, dw) / (2 * wide_width**2))
        es = sharp_depth * xp.exp(-_sq(xp, ds) / (2 * sharp_width**2))
        return dw, ds, ew, es

    def value(xp: Any, x: Any) -> Any:
        _, _, ew, es = wells(xp, x)
        return -ew - es + 0.5 * confinement * _sq(xp, x)

    def grad(xp: Any, x: Any) -> Any:
        dw, ds, ew, es = wells(xp, x)
        return ew[..., None] * dw / wide_width**2 + es[..., None] * ds / sharp_width**2 + confinement * x

    def polish(c: np.ndarray) -> tuple[float, ...]:
        from scipy.optimize import minimize

        res = minimize(
            lambda z: float(value(np, z[None, :])[0]),
            c,
            jac=lambda z: grad(np, z[None, :])[0],
            method="BFGS",
            options={"gtol": 1e-12},
        )
        return tuple(float(v) for v in res.x)

    return Landscape(
        "wide_sharp_2d",
        2,
        (-3.0, -3.0),
        (3.0, 3.0),
        value,
        grad,
        (polish(cs), polish(cw)),
        "a wide shallow well and a sharp, slightly deeper one",
    )


# ----------------------------------------------------------------------------- double well
def double_well(ndim: int = 2, tilt: float = 0.0) -> Landscape:
    """``f(x) = (x_1^2 - 1)^2/4 + tilt x_1 + sum_{k>1} x_k^2/2``: minima near ``x_1 = +-1`` (the lower
    one on the side opposite the sign of ``tilt``), a saddle near the origin."""
    if int(ndim) != ndim or not 1 <= ndim <= 3:
        raise ValueError(f"`ndim` must be 1, 2 or 3, got {ndim!r}")

    def value(xp: Any, x: Any) -> Any:
        s = x[..., 0]
        rest = _sq(xp, x[..., 1:]) if ndim > 1 else 0.0
        return (s * s - 1) ** 2 / 4 + tilt * s + rest / 2

    def grad(xp: Any, x: Any) -> Any:
        s = x[..., 0]
        g0 = s * (s * s - 1) + tilt
        return xp.concat([g0[..., None], x[..., 1:]], axis=-1) if ndim > 1 else g0[..., None]

    roots = np.sort(np.real(np.roots([1.0, 0.0, -1.0, tilt])))
    wells = [r for r in roots if 3 * r * r - 1 > 0]
    wells.sort(key=lambda r: (r * r - 1) ** 2 / 4 + tilt * r)
    minima = tuple((float(r),) + (0.0,) * (ndim - 1) for r in wells)
    return Landscape(
        f"double_well_{ndim}d",
        ndim,
        (-2.0,) * ndim,
        (2.0,) * ndim,
        value,
        grad,
        minima,
        "quartic double well (x_1^2-1)^2/4 with quadratic transverse directions",
    )


# ----------------------------------------------------------------------------- Rastrigin-like
def rastrigin(ndim: int = 2, amplitude: float = 0.5, period: float = 1.0) -> Landscape:
    """``f(x) = sum_k [x_k^2/2 + a (1 - cos(2 pi x_k / p))]``: the global minimum at 0 inside a lattice
    of local minima near the integer multiples of ``p``."""
    if int(ndim) != ndim or not 1 <= ndim <= 3:
        raise ValueError(f"`ndim` must be 1, 2 or 3, got {ndim!r}")
    w = 2 * math.pi / period

    def value(xp: Any, x: Any) -> Any:
        return xp.sum(x * x / 2 + amplitude * (1 - xp.cos(w * x)), axis=-1)

    def grad(xp: Any, x: Any) -> Any:
        return x + amplitude * w * xp.sin(w * x)

    return Landscape(
        f"rastrigin_{ndim}d",
        ndim,
        (-3.0,) * ndim,
        (3.0,) * ndim,
        value,
        grad,
        ((0.0,) * ndim,),
        "quadratic bowl with a cosine lattice of local minima",
    )


# ----------------------------------------------------------------------------- quadratic
def quadratic(ndim: int = 1, curvature: float = 1.0) -> Landscape:
    """``f(x) = c |x|^2 / 2``, whose smoothings are known in closed form (Example 4.12)."""
    if int(ndim) != ndim or not 1 <= ndim <= 3:
        raise ValueError(f"`ndim` must be 1, 2 or 3, got {ndim!r}")
    if not curvature > 0:
        raise ValueError(f"`curvature` must be > 0, got {curvature!r}")

    def value(xp: Any, x: Any) -> Any:
        return 0.5 * curvature * _sq(xp, x)

    def grad(xp: Any, x: Any) -> Any:
        return curvature * x

    return Landscape(
        f"quadratic_{ndim}d", ndim, (-3.0,) * ndim, (3.0,) * ndim, value, grad, ((0.0,) * ndim,), "c |x|^2 / 2"
    )


# ----------------------------------------------------------------------------- Example 6.43
@dataclass(frozen=True)
class LimitCycles:
    """Example 6.43: ``dX = -grad f(X) dt + sqrt(2) dB`` with ``-grad f = j - grad Phi``.

    ``Phi(x) = (x_1^2 - 1)^2/4 + x_2^2/2``, ``j = lam e^Phi J_ss``,
    ``J_ss(x) = e^{-(x_1^2 + x_2^2)^2/4} (-x_2, x_1)``.  ``div(j e^{-Phi}) = 0``, so the steady state is
    ``e^{-Phi}/Z`` for every ``lam``; in hjsmooth's convention (noise ``beta^{-1/2} dB``) the noise
    ``sqrt(2)`` is ``beta = 1/2`` with ``D = I``, and ``exp(-2 beta Phi) = exp(-Phi)``.
    """

    lam: float
    potential: Landscape
    beta: float = 0.5

    def force(self, x: Any) -> Any:
        """The divergence-free (w.r.t. ``e^{-Phi}``) force ``j(x)``, shape ``(..., 2)``."""
        xp, x = self.potential._points(x)
        r2 = _sq(xp, x)
        scale = self.lam * xp.exp(self.potential.value_fn(xp, x) - r2 * r2 / 4)
        return scale[..., None] * xp.stack([-x[..., 1], x[..., 0]], axis=-1)

    def drift(self, x: Any) -> Any:
        """The SDE drift ``b = -grad f = j - grad Phi``, shape ``(..., 2)``."""
        return self.force(x) - self.potential.grad(x)

    def drift_on_grid(self, grid: Grid, like: Any | None = None) -> Any:
        """The drift at the nodes of ``grid``, shape ``(2, *grid.shape)``."""
        nodes = self.potential._stacked_nodes(grid, like)
        xp = array_namespace(nodes)
        return xp.moveaxis(self.drift(nodes), -1, 0)


def limit_cycles(lam: float = 0.5) -> LimitCycles:
    """Example 6.43 with force strength ``lam`` (0: gradient flow; 0.5: Figure 6.4b; large: limit cycles)."""
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"`lam` must be finite and >= 0, got {lam!r}")
    phi = double_well(2)
    phi = Landscape(
        "limit_cycles_potential",
        2,
        (-2.5, -2.5),
        (2.5, 2.5),
        phi.value_fn,
        phi.grad_fn,
        phi.minima,
        "Phi of Example 6.43",
    )
    return LimitCycles(float(lam), phi)


LANDSCAPES: dict[str, Callable[..., Landscape]] = {
    "rugged_1d": rugged_1d,
    "wide_sharp_2d": wide_sharp_2d,
    "double_well": double_well,
    "rastrigin": rastrigin,
    "quadratic": quadratic,
}


def get(name: str, **kwargs: Any) -> Landscape:
    """Build the landscape registered under ``name`` (see ``LANDSCAPES``) with ``kwargs``."""
    from hjsmooth.validation import check_choice

    return LANDSCAPES[check_choice(name, "name", LANDSCAPES)](**kwargs)
