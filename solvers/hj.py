"""Time-stepping solver for the viscous and inviscid Hamilton-Jacobi equation (4.1)/(4.15).

    u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u,     u(x, 0) = f(x)

on a node-centred grid, by a monotone (first order) or high-order upwind (ENO2, WENO5)
finite-difference scheme with TVD Runge-Kutta time stepping and CFL-limited steps.
The closed-form solvers (:func:`hjsmooth.solvers.hopf_lax.hopf_lax`,
:func:`hjsmooth.solvers.cole_hopf.local_entropy`) need no boundary conditions; this one
does (see :mod:`hjsmooth.solvers.boundary`), and it is the building block of the
controlled HJB solver :func:`hjsmooth.solvers.hjb.solve_hjb`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like, device, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import (
    as_field,
    check_beta,
    check_choice,
    check_count,
    check_grid,
    check_positive,
    check_real,
    check_time,
)

from ._fused_hj import axis_slopes, fused_available, fused_first_order_step
from ._numba_hj import numba_available, numba_first_order_step, numba_rates, rate_sum
from .boundary import BOUNDARY_CONDITIONS, boundary_mask, close_periodic, dirichlet_hold, pad_axis
from .derivatives import ACCURACIES, GHOST_WIDTH, laplacian, laplacian_stiffness, one_sided_differences
from .hamiltonians import SCHEMES, flux_and_rate
from .result import PDESolution
from .runge_kutta import integrator_for
from .stepping import DEFAULT_MAX_STEPS, march

__all__ = ["solve_hj", "HamiltonJacobiOperator", "DEFAULT_CFL"]

DEFAULT_CFL = 0.5


class HamiltonJacobiOperator:
    """The semi-discrete right-hand side ``L(u) = -sum_k H_hat_k(p-_k, p+_k) + nu Laplacian u``.

    ``H_hat_k`` is the numerical Hamiltonian of ``g_k(x) p_k + p_k^2 / 2`` (see
    :mod:`hjsmooth.solvers.hamiltonians`; ``g = 0`` for the HJ equation) and
    ``nu = 1/(2 beta)``.  The operator also supplies the CFL-limited time step

        dt = cfl / (sum_k rate_k / h_k + 2 nu (s/4) sum_k 1/h_k^2),

    ``rate_k = max (dH_hat/dp- - dH_hat/dp+)`` (``max |H_p|`` of the axis) and ``s`` the
    stiffness of the Laplacian stencil (4 for three points, so the viscous part is
    ``(1/beta) sum_k 1/h_k^2``), recomputed from the current state at every step.
    With ``cfl <= 1`` a first-order step is monotone.

    Parameters
    ----------
    grid : Grid
    scheme, accuracy, bc : str
        As in :func:`solve_hj`.
    beta : float
        Inverse temperature; ``inf`` for no viscosity.
    cfl : float
        Courant number.
    shift : sequence of arrays or None
        ``g_k`` per axis, each of the grid's shape, or ``None``.
    horizon : float
        Returned as the step when nothing moves (constant data, no viscosity).
    """

    def __init__(self, grid: Grid, scheme: str, accuracy: str, bc: str, beta: float, cfl: float,
                 shift: Sequence[Any] | None = None, horizon: float = 1.0):
        self.spacing = tuple(float(h) for h in grid.spacing)
        self.scheme = scheme
        self.accuracy = accuracy
        self.bc = bc
        self.width = GHOST_WIDTH[accuracy]
        self.nu = 0.0 if math.isinf(beta) else 0.5 / beta
        self.cfl = cfl
        self.shift = None if shift is None else tuple(shift)
        self.horizon = horizon
        self.viscous_rate = 2.0 * self.nu * laplacian_stiffness(accuracy) / 4.0 * sum(1.0 / h**2 for h in self.spacing)
        self._cached_state: Any = None
        self._cached_rhs: Any = None

    def evaluate(self, u: Any) -> tuple[Any, float]:
        """Return ``(L(u), sum_k rate_k / h_k)`` (the rate as a Python float)."""
        padded = [pad_axis(u, axis, self.width, self.bc) for axis in range(u.ndim)]
        rhs = None
        rate = 0.0
        for axis, h in enumerate(self.spacing):
            p_minus, p_plus = one_sided_differences(padded[axis], axis, h, self.accuracy)
            g = None if self.shift is None else self.shift[axis]
            flux, axis_rate = flux_and_rate(p_minus, p_plus, self.scheme, g)
            rhs = -flux if rhs is None else rhs - flux
            rate = rate + axis_rate / h
        if self.nu > 0.0:
            rhs = rhs + self.nu * laplacian(padded, self.spacing, self.width, self.accuracy)
        return rhs, float(rate)

    def rhs(self, u: Any) -> Any:
        """``L(u)``."""
        return self.evaluate(u)[0]

    def stable_dt(self, u: Any) -> float:
        """The CFL step at state ``u`` (and cache ``L(u)`` for the step that follows)."""
        rhs, rate = self.evaluate(u)
        self._cached_state, self._cached_rhs = u, rhs
        return self.step_for_rate(rate)

    def step_for_rate(self, rate: float) -> float:
        """The CFL step ``cfl / (rate + viscous rate)`` for a hyperbolic ``rate = sum_k rate_k / h_k``."""
        denominator = rate + self.viscous_rate
        if not math.isfinite(denominator):
            raise FloatingPointError(f"the solution blew up (wave speed {denominator!r})")
        return self.cfl / denominator if denominator > 0.0 else self.horizon

    def cached_rhs(self, u: Any) -> Any | None:
        """``L(u)`` if :meth:`stable_dt` was just called on this very array, else ``None``."""
        return self._cached_rhs if u is self._cached_state else None


def _initial_state(f: Any, bc: str) -> Any:
    xp = array_namespace(f)
    return close_periodic(f) if bc == "periodic" else xp.asarray(f, copy=True)


class _DirichletHold:
    """The projection ``u -> where(boundary, held, u)``; ``held`` is kept for the fused CPU kernel."""

    def __init__(self, mask: Any, held: Any):
        self.mask, self.held = mask, held

    def __call__(self, u: Any) -> Any:
        return dirichlet_hold(u, self.mask, self.held)


def _dirichlet_projection(u0: Any, bc: str, bc_value: Any) -> Any:
    """The per-stage projection: identity, or holding the boundary nodes at fixed values."""
    xp = array_namespace(u0)
    if bc != "dirichlet":
        if bc_value is not None:
            raise ValueError(f"`bc_value` is only used with bc='dirichlet', got bc={bc!r}")
        return lambda u: u
    if bc_value is None:
        held = xp.asarray(u0, copy=True)
    elif np.isscalar(bc_value) and not isinstance(bc_value, (bool, str)):
        value = check_real(bc_value, "bc_value")
        if not math.isfinite(value):
            raise ValueError(f"`bc_value` must be finite, got {bc_value!r}")
        held = xp.full(u0.shape, value, dtype=u0.dtype, device=device(u0))
    else:
        value = as_field(bc_value, "bc_value", tuple(u0.shape))
        held = asarray_like(to_numpy(value), u0)
    return _DirichletHold(boundary_mask(u0), held)


def validate_common(grid: Any, scheme: str, accuracy: str, bc: str, cfl: Any, dt: Any) -> tuple[float, float | None]:
    """Checks shared by :func:`solve_hj` and the HJB solvers; returns ``(cfl, dt)`` as floats."""
    check_grid(grid)
    check_choice(scheme, "scheme", SCHEMES)
    check_choice(accuracy, "accuracy", ACCURACIES)
    check_choice(bc, "bc", BOUNDARY_CONDITIONS)
    cfl = check_positive(cfl, "cfl")
    if cfl > 1.0:
        raise ValueError(f"`cfl` must be in (0, 1], got {cfl!r}")
    dt = None if dt is None else check_positive(dt, "dt")
    return cfl, dt


def run_scheme(u0: Any, grid: Grid, t: float, operator: HamiltonJacobiOperator, project: Any, *,
               dt: float | None, save_at: Any, progress: bool | None, desc: str,
               max_steps: int = DEFAULT_MAX_STEPS) -> tuple[Any, dict]:
    """March ``u_t = L(u)`` from ``u0`` to time ``t``; return the march result and an info dict."""
    integrate = integrator_for(operator.accuracy)
    fused = fused_available(u0, operator.scheme, operator.accuracy, operator.shift)
    fused_cpu = not fused and numba_available(u0, operator.scheme, operator.accuracy, operator.shift)
    if fused_cpu:
        # numpy, first order: one numba call per step does the step, the boundary (Dirichlet
        # values included, from the _DirichletHold projection) and the CFL rates of the new state,
        # bitwise equal to the array code
        hold = project.held if operator.bc == "dirichlet" else None
        cache: dict[str, Any] = {"state": None, "rates": None}

        def rates_of(u: Any) -> Any:
            if u is not cache["state"]:
                cache["state"], cache["rates"] = u, numba_rates(u, operator.spacing, operator.bc, operator.scheme)
            return cache["rates"]

        def stable_dt(u: Any) -> float:
            return operator.step_for_rate(rate_sum(rates_of(u), operator.spacing))

        def step(u: Any, h: float) -> Any:
            out, rates = numba_first_order_step(u, float(h), operator.spacing, operator.nu, operator.bc,
                                                operator.scheme, rates_of(u), hold)
            cache["state"], cache["rates"] = out, rates
            return out
    elif fused:
        # on a GPU, first order: one fused kernel per step; the CFL rate from one reduction per axis
        slopes_at: dict[int, list[float]] = {}

        def stable_dt(u: Any) -> float:
            slopes = axis_slopes(u, operator.spacing)
            slopes_at.clear()
            slopes_at[id(u)] = slopes
            return operator.step_for_rate(sum(s / h for s, h in zip(slopes, operator.spacing)))

        def step(u: Any, h: float) -> Any:
            slopes = slopes_at.get(id(u)) or axis_slopes(u, operator.spacing)
            return project(fused_first_order_step(u, float(h), operator.spacing, operator.nu, operator.bc,
                                                  operator.scheme, slopes))
    else:
        stable_dt = operator.stable_dt

        def step(u: Any, h: float) -> Any:
            # a NumPy float64 scalar step would promote float32 data: use a Python float
            return integrate(u, float(h), operator.rhs, project, operator.cached_rhs(u))

    result = march(project(u0), t, step, stable_dt, dt=dt, save_at=save_at, progress=progress, desc=desc,
                   max_steps=max_steps)
    info = {
        "scheme": operator.scheme,
        "accuracy": operator.accuracy,
        "bc": operator.bc,
        "cfl": operator.cfl,
        "last_dt": result.last_dt,
        "min_dt": result.min_dt,
        "fused_gpu_kernel": fused,
        "fused_cpu_kernel": fused_cpu,
    }
    return result, info


def solve_hj(
    f: Any,
    grid: Grid,
    t: float,
    beta: float = float("inf"),
    scheme: str = "godunov",
    bc: str = "extrapolate",
    accuracy: str = "first",
    cfl: float = DEFAULT_CFL,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    bc_value: Any = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> PDESolution:
    """Solve ``u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u``, ``u(., 0) = f``, up to time ``t``.

    The Hamiltonian ``|p|^2 / 2`` is discretised per axis by a numerical Hamiltonian of
    the one-sided slopes ``p-, p+`` (``scheme``), the viscous term by central second
    differences, and time by an explicit TVD Runge-Kutta method whose step follows the
    CFL bound ``dt <= cfl / (sum_k max|H_p|_k / h_k + (1/beta) sum_k 1/h_k^2)``,
    recomputed from the solution at every step (see :class:`HamiltonJacobiOperator`).

    Parameters
    ----------
    f : array of ``grid.shape``
        Initial data (numpy, torch or CuPy; float32 or float64).
    grid : Grid
        The grid ``f`` lives on.
    t : float
        Final time, ``t >= 0``; ``t = 0`` returns a copy of ``f``.
    beta : float
        Inverse temperature, ``0 < beta <= inf``; ``inf`` solves the inviscid equation (4.15).
    scheme : {"godunov", "lax_friedrichs", "engquist_osher"}
        Numerical Hamiltonian: Godunov ``1/2 max(max(p-,0)^2, min(p+,0)^2)``, global
        Lax-Friedrichs (``alpha = max |p|`` over the grid), Engquist-Osher
        ``1/2 (max(p-,0)^2 + min(p+,0)^2)``; all monotone with ``accuracy="first"``.
    bc : {"extrapolate", "periodic", "neumann", "dirichlet"}
        Boundary condition, applied as ghost nodes (:mod:`hjsmooth.solvers.boundary`):
        linear extrapolation (characteristics leave freely; nodes within a few
        ``sqrt(t/beta)`` and the inflow region of an edge are disturbed), periodic with
        period ``upper - lower`` (node ``N-1`` *is* node ``0``; ``f``'s last node along
        each axis is replaced by its first), mirror about the end node (zero normal
        derivative), or end nodes held at ``bc_value`` (default: ``f``'s values there).
    accuracy : {"first", "eno2", "weno5"}
        ``"first"``: first-order one-sided differences and forward Euler (monotone);
        ``"eno2"``: ENO2 and TVD RK2; ``"weno5"``: Jiang-Peng WENO5, TVD RK3 and a
        fourth-order five-point Laplacian.
    cfl : float
        Courant number in ``(0, 1]``.
    dt : float, optional
        Largest step to take; a value above the CFL bound is reduced to it.
    save_at : int or sequence of float, optional
        Times at which to keep snapshots (``n`` for ``n`` equally spaced times from 0 to ``t``).
    progress : bool, optional
        Show a progress bar (``None``: only for runs longer than two seconds on a terminal).
    bc_value : float or array, optional
        Boundary values for ``bc="dirichlet"`` (an array of ``grid.shape``; only its
        boundary nodes are used).
    max_steps : int
        The most time steps to take.  A run whose first CFL step says it needs more (``t``
        over that step) is refused before it starts, with the estimate in the message.

    Returns
    -------
    PDESolution
        ``values`` is ``u(., t)`` with ``f``'s array type, device and dtype.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-2.0, 2.0, 201)
    >>> sol = hs.solve_hj(g.coords[0] ** 2 / 2, g, 1.0)
    >>> bool(abs(sol.values[100] - 0.0) < 1e-12 and abs(sol.values[150] - 0.25) < 1e-2)
    True
    """
    cfl, dt = validate_common(grid, scheme, accuracy, bc, cfl, dt)
    f = as_field(f, "f", grid.shape)
    t = check_time(t, "t")
    beta = check_beta(beta, "beta")
    u0 = _initial_state(f, bc)
    project = _dirichlet_projection(u0, bc, bc_value)
    operator = HamiltonJacobiOperator(grid, scheme, accuracy, bc, beta, cfl, horizon=max(t, 1e-300))
    max_steps = check_count(max_steps, "max_steps")
    result, info = run_scheme(u0, grid, t, operator, project, dt=dt, save_at=save_at, progress=progress,
                              desc=f"HJ {scheme}/{accuracy}", max_steps=max_steps)
    info["beta"] = beta
    return PDESolution(
        values=result.state,
        times=result.times,
        snapshots=result.snapshots,
        steps=result.steps,
        success=True,
        message=f"{scheme}/{accuracy} HJ scheme, bc={bc}: {result.steps} steps, last dt={result.last_dt:.3g}",
        info=info,
    )
