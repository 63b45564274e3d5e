"""Hamilton-Jacobi reachability: backward reachable sets and tubes of a controlled system.

For dynamics ``dx/ds = f(x, u, d)`` with a control ``u`` and a disturbance ``d`` in boxes, and a
target ``{x : V0(x) <= 0}``, the value function ``V(x, s)``, ``s <= 0``, solves (in
hj_reachability's convention, which this module follows)

    V_s + H(x, grad V) = 0,   V(x, 0) = V0(x),   H(x, p) = max_u min_d p . f(x, u, d)

(``control="max"``, ``disturbance="min"``: the control keeps the state out of the target, the
disturbance drives it in; ``"min"``/``"max"`` swap the roles).  ``{V(., -t) <= 0}`` is the
backward reachable set: the states from which the disturbance can force the state into the target
at time ``t`` whatever the control does.  The backward reachable *tube* (reaching the target at
any time up to ``t``) marches ``V_s + min(H, 0) = 0`` instead, so that ``V`` never grows as ``s``
decreases (Mitchell's formulation; hj_reachability's ``backwards_reachable_tube``); its zero
sublevel set is that of the value frozen by the ``min`` with the target.

In the forward time ``tau = -s`` of :func:`hjsmooth.solvers.hj.solve_hj` this is
``u_tau + H_hj(x, grad u) = 0`` with ``H_hj = -H``.  For dynamics affine in ``u`` and ``d``,

    f(x, u, d) = a(x) + B(x) u + C(x) d,

the extremes over the boxes are in closed form (``max_u p.B u = p.B c + sum_j r_j |(p.B)_j|`` for
the box of centre ``c`` and half-widths ``r``), so ``H_hj`` is a sum of linear forms of ``p`` and
absolute values of linear forms (:class:`~hjsmooth.solvers.general_hj.LinearForms`), evaluated by
the array code or by the fused CPU kernel, with the Lax-Friedrichs bounds
``alpha_k(x) = |a_k| + sum_j |B_kj| max|u_j| + sum_j |C_kj| max|d_j|`` (hj_reachability's
``partial_max_magnitudes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_choice, check_grid

from .boundary import axis_conditions
from .derivatives import central_gradient
from .general_hj import Hamiltonian, LinearForms, solve_general_hj
from .result import PDESolution
from .stepping import DEFAULT_MAX_STEPS

__all__ = ["ControlAffineDynamics", "solve_reachability", "air3d"]

_MODES = ("max", "min")


def _box(bounds: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` of a box given as ``(lower, upper)`` sequences (or numbers)."""
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (lower, upper) of numbers or sequences, got {bounds!r}") from None
    low = np.atleast_1d(np.asarray(low, dtype=np.float64))
    high = np.atleast_1d(np.asarray(high, dtype=np.float64))
    if low.ndim != 1 or low.shape != high.shape or low.size == 0:
        raise ValueError(f"`{name}` must be a pair of equally long sequences, got {bounds!r}")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
        raise ValueError(f"`{name}` must hold finite bounds with lower <= upper, got {bounds!r}")
    return low, high


class ControlAffineDynamics:
    """Dynamics ``dx/ds = f(x, u, d)``, affine in the control ``u`` and the disturbance ``d``, with both in boxes.

    Parameters
    ----------
    f : callable
        ``f(x, u, d)``: ``x`` a tuple of ``ndim`` arrays (the state's coordinates, of one shape),
        ``u`` and ``d`` tuples of numbers (one per control and disturbance component); returns a
        tuple of ``ndim`` arrays or numbers, ``dx_k/ds``.  It must be affine in ``u`` and in ``d``
        (checked on the grid: the midpoint of two box corners must give the mean of their values).
    control_bounds : pair of sequences
        ``(lower, upper)`` of the control box.
    disturbance_bounds : pair of sequences, optional
        ``(lower, upper)`` of the disturbance box; ``None``: no disturbance.
    control, disturbance : {"max", "min"}
        Whether the control (disturbance) maximises or minimises the value ``p . f``: the default
        ``"max"``/``"min"`` is the pursuit-evasion convention (the control avoids the target).
    """

    def __init__(
        self,
        f: Callable[..., Any],
        control_bounds: Any,
        disturbance_bounds: Any = None,
        *,
        control: str = "max",
        disturbance: str = "min",
    ):
        if not callable(f):
            raise TypeError(f"`f` must be a callable f(x, u, d), got {f!r}")
        self.f = f
        self.control_bounds = _box(control_bounds, "control_bounds")
        self.disturbance_bounds = (
            _box(disturbance_bounds, "disturbance_bounds")
            if disturbance_bounds is not None
            else (np.zeros(0), np.zeros(0))
        )
        self.control = check_choice(control, "control", _MODES)
        self.disturbance = check_choice(disturbance, "disturbance", _MODES)

    # -- the affine structure on a grid -----------------------------------------------------------------
    def _evaluate(self, x: tuple[np.ndarray, ...], u: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
        shape = x[0].shape
        out = self.f(x, tuple(float(v) for v in u), tuple(float(v) for v in d))
        try:
            parts = [np.broadcast_to(np.asarray(to_numpy(v), dtype=np.float64), shape) for v in out]
        except (TypeError, ValueError):
            raise ValueError(f"`f` must return one array or number per state axis, got {out!r}") from None
        if len(parts) != len(x):
            raise ValueError(f"`f` must return {len(x)} components (one per state axis), got {len(parts)}")
        return parts

    def fields(self, grid: Grid) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[list[np.ndarray]]]:
        """``(a, B, C)`` on the grid: ``a[k]``, ``B[j][k]``, ``C[j][k]`` numpy arrays of ``grid.shape``."""
        check_grid(grid)
        x = grid.coords
        (u_low, u_high), (d_low, d_high) = self.control_bounds, self.disturbance_bounds
        u_centre, d_centre = 0.5 * (u_low + u_high), 0.5 * (d_low + d_high)
        a = self._evaluate(x, u_centre, d_centre)

        def columns(low: np.ndarray, high: np.ndarray, which: str) -> list[list[np.ndarray]]:
            out = []
            for j in range(low.size):
                half = 0.5 * (high[j] - low[j])
                if half == 0.0:
                    out.append([np.zeros(grid.shape) for _ in x])
                    continue
                shift = np.zeros(low.size)
                shift[j] = half
                args = (
                    [(u_centre + shift, d_centre), (u_centre - shift, d_centre)]
                    if which == "u"
                    else [(u_centre, d_centre + shift), (u_centre, d_centre - shift)]
                )
                up, down = (self._evaluate(x, *pair) for pair in args)
                scale = max(max(float(np.max(np.abs(v))) for v in a), 1.0)
                for k in range(len(x)):
                    if not np.allclose(up[k] + down[k], 2.0 * a[k], rtol=1e-9, atol=1e-9 * scale):
                        name = "control" if which == "u" else "disturbance"
                        raise ValueError(
                            f"`f` is not affine in the {name} (component {j}, state axis {k}): "
                            f"f(c + r e_j) + f(c - r e_j) != 2 f(c)"
                        )
                out.append([(up[k] - down[k]) / (2.0 * half) for k in range(len(x))])
            return out

        return a, columns(u_low, u_high, "u"), columns(d_low, d_high, "d")

    def bounds(self, grid: Grid) -> tuple[np.ndarray, ...]:
        """``alpha_k(x) = |a_k| + sum_j |B_kj| max|u_j| + sum_j |C_kj| max|d_j| >= |dH/dp_k|``."""
        a, b, c = self.fields(grid)
        u_max = np.maximum(np.abs(self.control_bounds[0]), np.abs(self.control_bounds[1]))
        d_max = np.maximum(np.abs(self.disturbance_bounds[0]), np.abs(self.disturbance_bounds[1]))
        out = []
        for k in range(grid.ndim):
            alpha = np.abs(a[k])
            for column, m in zip(b, u_max):
                alpha = alpha + np.abs(column[k]) * m
            for column, m in zip(c, d_max):
                alpha = alpha + np.abs(column[k]) * m
            out.append(alpha)
        return tuple(out)

    def hamiltonian(self, grid: Grid) -> Hamiltonian:
        """The Hamiltonian ``-max_u min_d p . f`` (for the modes given) of the forward-time equation
        ``u_tau + H(x, grad u) = 0`` that :func:`hjsmooth.solvers.hj.solve_hj` solves, as linear forms."""
        a, b, c = self.fields(grid)
        drift = [-v for v in a]
        vectors, signs = [], []
        for columns, (low, high), mode in (
            (b, self.control_bounds, self.control),
            (c, self.disturbance_bounds, self.disturbance),
        ):
            centre, half = 0.5 * (low + high), 0.5 * (high - low)
            for j, column in enumerate(columns):
                for k in range(grid.ndim):
                    drift[k] = drift[k] - centre[j] * column[k]
                if half[j] > 0.0:
                    vectors.append(tuple(half[j] * v for v in column))
                    signs.append(-1.0 if mode == "max" else 1.0)
        forms = LinearForms(tuple(drift), tuple(vectors), tuple(signs))
        return Hamiltonian(forms, bound=self.bounds(grid), forms=forms)

    # -- controls from a value function -------------------------------------------------------------------
    def _extreme(
        self,
        grid: Grid,
        values: Any,
        columns: list[list[np.ndarray]],
        bounds: tuple[np.ndarray, np.ndarray],
        mode: str,
        bc: Any,
    ) -> tuple[Any, ...]:
        xp = array_namespace(values)
        gradient = _gradient(values, grid, axis_conditions(bc, grid.ndim))
        out = []
        for j, column in enumerate(columns):
            direction: Any = None
            for k in range(grid.ndim):
                term = asarray_like(column[k], values) * gradient[k]
                direction = term if direction is None else direction + term
            if mode == "min":
                direction = -direction
            low = xp.full(values.shape, float(bounds[0][j]), dtype=values.dtype)
            high = xp.full(values.shape, float(bounds[1][j]), dtype=values.dtype)
            out.append(xp.where(direction < 0, low, high))
        return tuple(out)

    def optimal_control(self, grid: Grid, values: Any, bc: Any = "extrapolate") -> tuple[Any, ...]:
        """The control that extremises ``grad V . f`` (``argmax`` for ``control="max"``) at every node.

        ``grad V`` by central differences (wrapped on periodic axes of ``bc``, one-sided second
        order at other edges); on a tie (``grad V . B_j = 0``) the upper bound, as hj_reachability.
        Returns one array of ``grid.shape`` per control component, like ``values``."""
        values = as_field(values, "values", grid.shape)
        _, b, _ = self.fields(grid)
        return self._extreme(grid, values, b, self.control_bounds, self.control, bc)

    def optimal_disturbance(self, grid: Grid, values: Any, bc: Any = "extrapolate") -> tuple[Any, ...]:
        """The disturbance that extremises ``grad V . f`` (``argmin`` for ``disturbance="min"``); as
        :meth:`optimal_control`."""
        values = as_field(values, "values", grid.shape)
        _, _, c = self.fields(grid)
        return self._extreme(grid, values, c, self.disturbance_bounds, self.disturbance, bc)


def _gradient(values: Any, grid: Grid, bc: tuple[str, ...]) -> list[Any]:
    """Central differences per axis; periodic axes wrap over the distinct nodes ``0 .. N-2``."""
    xp = array_namespace(values)
    plain = central_gradient(values, grid.spacing)
    out = []
    for axis, (h, rule) in enumerate(zip(grid.spacing, bc)):
        if rule != "periodic":
            out.append(plain[axis, ...])
            continue
        distinct = _take_range(values, axis, 0, values.shape[axis] - 1)
        forward = xp.roll(distinct, -1, axis=axis)
        backward = xp.roll(distinct, 1, axis=axis)
        central = (forward - backward) / (2.0 * h)
        out.append(xp.concat([central, _take_range(central, axis, 0, 1)], axis=axis))
    return out


def _take_range(a: Any, axis: int, start: int, stop: int) -> Any:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def solve_reachability(
    target: Any,
    grid: Grid,
    t: float,
    dynamics: ControlAffineDynamics,
    *,
    tube: bool = False,
    accuracy: str = "weno5",
    scheme: str = "lax_friedrichs",
    bc: str | Sequence[str] = "extrapolate",
    integrator: str = "auto",
    cfl: float | None = None,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> PDESolution:
    """The value function of a backward reachable set (or tube) of horizon ``t``.

    Solves ``V_s + H(x, grad V) = 0`` backward from ``V(., 0) = target`` to ``s = -t``, with
    ``H = max_u min_d grad V . f(x, u, d)`` (modes from ``dynamics``) or, with ``tube``,
    ``min(H, 0)``; see the module docstring.  ``{V <= 0}`` is the set (tube).  Discretised by
    :func:`hjsmooth.solvers.hj.solve_hj` with the Hamiltonian of
    :meth:`ControlAffineDynamics.hamiltonian`.

    Parameters
    ----------
    target : array of ``grid.shape``
        ``V0``, negative inside the target (e.g. a signed distance).
    grid : Grid
        For a periodic angle, put both ends of the period on the grid (``upper - lower`` the
        period) and give that axis ``bc="periodic"``.
    t : float
        Horizon, ``t >= 0``.
    dynamics : ControlAffineDynamics
    tube : bool
        The backward reachable tube (``V`` never grows) instead of the set.
    accuracy, scheme, bc, integrator, cfl, dt, save_at, progress, max_steps
        As in :func:`hjsmooth.solvers.hj.solve_hj` (``scheme`` one of the Lax-Friedrichs
        variants; ``save_at`` times are horizons ``tau = -s``).

    Returns
    -------
    PDESolution
        ``values`` is ``V(., -t)``; ``info["tube"]`` says which problem was solved.
    """
    if not isinstance(dynamics, ControlAffineDynamics):
        raise TypeError(f"`dynamics` must be a ControlAffineDynamics, got {type(dynamics).__name__}")
    check_grid(grid)
    hamiltonian = dynamics.hamiltonian(grid)
    solution = solve_general_hj(
        target,
        grid,
        t,
        hamiltonian,
        scheme=scheme,
        bc=bc,
        accuracy=accuracy,
        integrator=integrator,
        cfl=cfl,
        dt=dt,
        save_at=save_at,
        progress=progress,
        max_steps=max_steps,
        nonincreasing=bool(tube),
        desc="reachable tube" if tube else "reachable set",
    )
    solution.info["tube"] = bool(tube)
    return solution


def air3d(
    evader_speed: float = 5.0,
    pursuer_speed: float = 5.0,
    evader_max_turn_rate: float = 1.0,
    pursuer_max_turn_rate: float = 1.0,
) -> ControlAffineDynamics:
    """The relative dynamics of two Dubins vehicles (hj_reachability's ``Air3d``, Mitchell's air3D).

    State ``(x, y, psi)``: the pursuer's position and heading relative to the evader's; the
    evader turns at rate ``u`` (the control, maximising: it avoids capture), the pursuer at rate
    ``d`` (the disturbance, minimising)::

        dx/ds = -v_a + v_b cos psi + u y,   dy/ds = v_b sin psi - u x,   dpsi/ds = d - u.
    """
    values = [evader_speed, pursuer_speed, evader_max_turn_rate, pursuer_max_turn_rate]
    if not all(math.isfinite(float(v)) and float(v) >= 0 for v in values):
        raise ValueError(f"speeds and turn rates must be finite and >= 0, got {values!r}")
    v_a, v_b = float(evader_speed), float(pursuer_speed)

    def f(x: tuple[Any, ...], u: tuple[float, ...], d: tuple[float, ...]) -> tuple[Any, ...]:
        px, py, psi = x
        return (-v_a + v_b * np.cos(psi) + u[0] * py, v_b * np.sin(psi) - u[0] * px, d[0] - u[0] + 0.0 * psi)

    return ControlAffineDynamics(
        f, ([-evader_max_turn_rate], [evader_max_turn_rate]), ([-pursuer_max_turn_rate], [pursuer_max_turn_rate])
    )
