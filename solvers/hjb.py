"""The controlled Hamilton-Jacobi-Bellman equation (4.31) and the forward-backward system (4.33).

Dynamics (4.29), for ``0 <= s <= T`` (the horizon ``T`` is the solvers' final time ``t``)::

    dX = -grad f(X) ds - alpha(X, s) ds + beta^{-1/2} dB,      cost  E[V(X_T) + 1/2 int |alpha|^2 ds].

The value function solves the terminal-value problem (4.31)::

    -u_s = -grad f . grad u - 1/2 |grad u|^2 + 1/(2 beta) Laplacian u,     u(., T) = V,

and the optimal feedback control is ``alpha*(x, s) = grad u(x, s)`` (4.32).  Under that
control the density of ``X`` solves the Fokker-Planck equation of the drift
``b = -(grad f + grad u)``::

    rho_s = div((grad f + grad u) rho) + 1/(2 beta) Laplacian rho,     rho(., 0) = rho0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like, device, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import (
    as_field,
    check_beta,
    check_choice,
    check_count,
    check_grid,
    check_nonnegative,
    check_stencil,
    check_time,
    renamed_argument,
)

from .derivatives import ACCURACIES, central_gradient
from .fokker_planck import solve_fokker_planck
from .hamiltonians import SCHEMES
from .hj_operator import DEFAULT_CFL, HamiltonJacobiOperator
from .hj_stepping import initial_state, run_scheme, stage_projection, validate_common
from .result import PDESolution
from .stepping import DEFAULT_MAX_STEPS, output_times

__all__ = ["solve_hjb", "optimal_control", "solve_forward_backward", "ForwardBackwardSolution"]


def _potential_gradient(like: Any, grid: Grid, potential: Any, grad_f: Any) -> Any | None:
    """``grad f`` as an array ``(ndim, *grid.shape)`` on ``like``'s backend, or ``None`` for ``f = 0``."""
    if potential is not None and grad_f is not None:
        raise ValueError("give either `potential` or `grad_f`, not both")
    if potential is not None:
        f = as_field(potential, "potential", grid.shape)
        gradient = central_gradient(asarray_like(to_numpy(f), like), grid.spacing)
    elif grad_f is not None:
        g = as_field(grad_f, "grad_f", (grid.ndim, *grid.shape))
        gradient = asarray_like(to_numpy(g), like)
    else:
        return None
    return gradient


def solve_hjb(
    V: Any,
    grid: Grid,
    t: float | None = None,
    grad_f: Any = None,
    beta: float = float("inf"),
    *,
    potential: Any = None,
    scheme: str = "godunov",
    accuracy: str = "first",
    bc: str | tuple[str, ...] = "extrapolate",
    cfl: float = DEFAULT_CFL,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    bc_value: Any = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    T: float | None = None,
) -> PDESolution:
    """Solve the controlled HJB equation (4.31) backward from ``u(., t) = V``.

    The final time (the horizon of the control problem, ``T`` in the thesis) is ``t``, as in
    every solver.  In reversed time ``tau = t - s`` (4.31) is the initial-value problem

        u_tau = -grad f . grad u - 1/2 |grad u|^2 + 1/(2 beta) Laplacian u,   u(., tau=0) = V,

    i.e. ``u_tau + H(x, grad u) = 1/(2 beta) Laplacian u`` with the Hamiltonian
    ``H(x, p) = grad f(x) . p + |p|^2 / 2``.  The advection part must be upwinded by the
    sign of ``H_p = grad f + p``.  ``H`` is separable and, per axis,
    ``g p + p^2/2 = (p + g)^2/2 - g^2/2`` with ``g = d f / d x_k``: the quadratic
    Hamiltonian of the shifted slope ``q = p + g``.  So the monotone fluxes of
    :func:`hjsmooth.solvers.hj.solve_hj` apply to the shifted one-sided slopes
    ``q- = p- + g``, ``q+ = p+ + g``: Godunov ``1/2 max(max(q-,0)^2, min(q+,0)^2) - g^2/2``
    (exact upwinding by the sign of ``q``), Engquist-Osher, or global Lax-Friedrichs
    with ``alpha_k = max |q|`` (see :mod:`hjsmooth.solvers.hamiltonians`).  The CFL step
    resolves the wave speed ``max |grad f + p|``.  With ``f = 0`` the equation is (4.1) in
    reversed time.

    Parameters
    ----------
    V : array of ``grid.shape``
        Terminal value ``u(., t)`` (numpy, torch or CuPy; float32 or float64).
    grid : Grid
    t : float
        Final time (the horizon), ``t >= 0``.
    grad_f : array of shape ``(grid.ndim, *grid.shape)``, optional
        ``grad f`` on the grid.  Alternatively pass ``potential``; neither means ``f = 0``.
    beta : float
        Inverse temperature (``inf``: the deterministic control problem).
    potential : array of ``grid.shape``, optional
        ``f`` on the grid; its gradient is taken by second-order central differences
        (one-sided at the edges).
    scheme, accuracy, bc, cfl, dt, progress, bc_value, max_steps
        As in :func:`hjsmooth.solvers.hj.solve_hj` (boundary conditions act in the same
        way on the reversed-time problem).
    save_at : int or sequence of float, optional
        **Physical** times ``s`` in ``[0, t]`` at which to keep ``u(., s)``
        (``n``: ``n`` equally spaced times).
    T : float, optional
        Deprecated name of ``t`` (accepted with a ``DeprecationWarning``).

    Returns
    -------
    PDESolution
        ``values`` is ``u(., 0)``.  ``times`` are physical times in increasing order
        (ending at ``t`` when snapshots were asked for: ``snapshots[-1]`` is ``V``, up
        to the boundary treatment), ``snapshots[j] = u(., times[j])``; without
        ``save_at``, ``times = [0]``.  Feed it to :func:`optimal_control` for
        ``alpha* = grad u``.
    """
    T = check_time(renamed_argument(t, T, "t", "T"), "t")
    check_choice(scheme, "scheme", SCHEMES)
    check_choice(accuracy, "accuracy", ACCURACIES)
    check_stencil(scheme, accuracy)
    bc, cfl, dt = validate_common(grid, bc, cfl, dt)
    V = as_field(V, "V", grid.shape)
    beta = check_beta(beta, "beta")
    gradient = _potential_gradient(V, grid, potential, grad_f)
    shift = None if gradient is None else [gradient[k, ...] for k in range(grid.ndim)]
    if save_at is None:
        tau_save = None
    else:
        physical = output_times(T, save_at)
        tau_save = np.unique(T - physical)
    u0 = initial_state(V, bc)
    project = stage_projection(u0, bc, bc_value)
    operator = HamiltonJacobiOperator(grid, scheme, accuracy, bc, beta, cfl, shift=shift, horizon=max(T, 1e-300))
    max_steps = check_count(max_steps, "max_steps")
    result, info = run_scheme(
        u0,
        grid,
        T,
        operator,
        project,
        dt=dt,
        save_at=tau_save,
        progress=progress,
        desc=f"HJB {scheme}/{accuracy}",
        max_steps=max_steps,
    )
    info.update(beta=beta, t=T, time="physical")
    if tau_save is None:
        times = np.array([0.0])
        snapshots = None
    else:
        xp = array_namespace(V)
        times = T - result.times[::-1]
        times[0] = max(times[0], 0.0)
        order = xp.asarray(list(range(len(result.times) - 1, -1, -1)), dtype=xp.int64, device=device(V))
        snapshots = xp.take(result.snapshots, order, axis=0)
    return PDESolution(
        values=result.state,
        times=times,
        snapshots=snapshots,
        steps=result.steps,
        success=True,
        message=f"{scheme}/{accuracy} HJB scheme, bc={info['bc']}: {result.steps} steps backward from t={T:g}",
        info=info,
    )


def optimal_control(solution: PDESolution, grid: Grid) -> Any:
    """The optimal feedback control ``alpha*(x, s) = grad u(x, s)`` (4.32) of an HJB solution.

    Gradients by second-order central differences (one-sided second order at the
    edge nodes, see :func:`hjsmooth.solvers.derivatives.central_gradient`).

    Returns
    -------
    array
        Shape ``(len(solution.times), grid.ndim, *grid.shape)`` when the solution has
        snapshots (``[j]`` at ``solution.times[j]``), else ``(grid.ndim, *grid.shape)``
        for ``u(., 0)``.
    """
    if not isinstance(solution, PDESolution):
        raise TypeError(f"`solution` must be a PDESolution, got {type(solution).__name__}")
    check_grid(grid)
    if tuple(solution.values.shape) != grid.shape:
        raise ValueError(f"`solution` lives on shape {tuple(solution.values.shape)}, not the grid's {grid.shape}")
    if solution.snapshots is None:
        return central_gradient(solution.values, grid.spacing)
    xp = array_namespace(solution.snapshots)
    return xp.stack(
        [central_gradient(solution.snapshots[j, ...], grid.spacing) for j in range(solution.snapshots.shape[0])]
    )


class ForwardBackwardSolution(NamedTuple):
    """Result of :func:`solve_forward_backward`.

    Attributes
    ----------
    value : PDESolution
        The HJB solution ``u``, snapshots at the interval ends ``s_j = j T / n``.
    density : PDESolution
        The controlled density ``rho``, snapshots at the same times.
    control : array
        ``alpha*(., s_j) = grad u(., s_j)``, shape ``(n + 1, ndim, *grid.shape)``.
    """

    value: PDESolution
    density: PDESolution
    control: Any


def solve_forward_backward(
    V: Any,
    rho0: Any,
    grid: Grid,
    t: float | None = None,
    potential: Any = None,
    beta: float = float("inf"),
    n_intervals: int = 50,
    *,
    grad_f: Any = None,
    scheme: str = "godunov",
    accuracy: str = "first",
    bc: str = "extrapolate",
    cfl: float = DEFAULT_CFL,
    progress: bool | None = None,
    fokker_planck_options: dict | None = None,
    T: float | None = None,
) -> ForwardBackwardSolution:
    """Solve the forward-backward system of the optimally controlled dynamics (4.29).

    Backward: the HJB equation (4.31) for the value function ``u`` with ``u(., t) = V`` (``t`` the
    final time, the thesis' horizon ``T``)
    (:func:`solve_hjb`).  Forward: the density of (4.29) under the optimal control
    ``alpha* = grad u`` (4.32).  The drift of (4.29) is ``b = -(grad f + grad u)`` and the
    noise ``beta^{-1/2} dB``, so the Fokker-Planck equation is

        rho_s = div((grad f + grad u(., s)) rho) + 1/(2 beta) Laplacian rho,   rho(., 0) = rho0.

    The printed (4.33), ``rho_t = -div(grad u rho) + Laplacian rho``, has the wrong sign
    of the control drift, drops ``grad f`` and uses diffusion 1 instead of
    ``1/(2 beta)``; this function solves the equation derived above.

    Method: ``u`` is solved once, with snapshots at ``s_j = j t / n`` (``n = n_intervals``).
    On each ``[s_j, s_{j+1}]`` the drift is frozen at
    ``-(grad f + (alpha*(s_j) + alpha*(s_{j+1})) / 2)`` (the trapezoidal average of the
    interval's control, second order in ``T/n``) and the density is advanced by
    :func:`hjsmooth.solvers.fokker_planck.solve_fokker_planck` with that drift.

    Parameters
    ----------
    V : array of ``grid.shape``
        Terminal cost.
    rho0 : array of ``grid.shape``
        Initial density (non-negative; it is not renormalised).
    grid : Grid
    t : float
        Final time (the horizon), ``t >= 0``.
    potential : array of ``grid.shape``, optional
        The loss ``f``; or pass ``grad_f`` (shape ``(ndim, *grid.shape)``); neither means ``f = 0``.
    beta : float
        Inverse temperature of the noise, ``0 < beta < inf`` (the Fokker-Planck solver
        needs noise).
    n_intervals : int
        Number of intervals on which the control is frozen for the forward equation.
    scheme, accuracy, bc, cfl, progress
        For the HJB solve (:func:`solve_hjb`).
    fokker_planck_options : dict, optional
        Extra keyword arguments for ``solve_fokker_planck`` (``bc``, ``method``, ``dt``);
        by default its reflecting (zero-flux) boundary, which conserves mass exactly.
    T : float, optional
        Deprecated name of ``t`` (accepted with a ``DeprecationWarning``).

    Returns
    -------
    ForwardBackwardSolution
        ``(value, density, control)``.
    """
    T = check_time(renamed_argument(t, T, "t", "T"), "t")
    n_intervals = check_count(n_intervals, "n_intervals")
    rho0 = as_field(rho0, "rho0", getattr(grid, "shape", None))
    check_nonnegative(rho0, "rho0")
    if fokker_planck_options is not None and not isinstance(fokker_planck_options, Mapping):
        raise TypeError(
            "`fokker_planck_options` must be a dict of keyword arguments for solve_fokker_planck "
            f"(e.g. {{'method': 'explicit'}}), got {fokker_planck_options!r}"
        )
    value = solve_hjb(
        V,
        grid,
        T,
        grad_f=grad_f,
        beta=beta,
        potential=potential,
        scheme=scheme,
        accuracy=accuracy,
        bc=bc,
        cfl=cfl,
        save_at=n_intervals + 1,
        progress=progress,
    )
    xp = array_namespace(rho0)
    control = optimal_control(value, grid)
    control = asarray_like(to_numpy(control), rho0)
    gradient = _potential_gradient(rho0, grid, potential, grad_f)
    options = dict(fokker_planck_options or {})
    rho = xp.asarray(rho0, copy=True)
    densities = [rho]
    steps = 0
    times = value.times
    for j in range(n_intervals):
        length = float(times[j + 1] - times[j])
        mean_control = 0.5 * (control[j, ...] + control[j + 1, ...])
        drift = -mean_control if gradient is None else -(gradient + mean_control)
        if length > 0.0:
            part = solve_fokker_planck(rho, grid, length, drift=drift, beta=beta, **options)
            rho = part.values
            steps += part.steps
        densities.append(rho)
    density = PDESolution(
        values=rho,
        times=np.asarray(times, dtype=float),
        snapshots=xp.stack(densities),
        steps=steps,
        success=True,
        message=f"controlled Fokker-Planck over {n_intervals} intervals: {steps} steps",
        info={"n_intervals": n_intervals, "beta": beta, "drift": "-(grad f + grad u), frozen per interval"},
    )
    return ForwardBackwardSolution(value, density, control)
