"""Time-stepping solver for Hamilton-Jacobi equations: the thesis' (4.1)/(4.15) and any other.

    u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u,     u(x, 0) = f(x),

or, with a ``hamiltonian``, ``u_t + H(x, grad u) = 1/(2 beta) Laplacian u``, on a node-centred
grid, by a monotone (first order), hybrid central/upwind (second order where the grid resolves
the viscous scale) or high-order upwind (ENO2, WENO5) finite-difference scheme with Runge-Kutta
time stepping and CFL-limited steps.  The semi-discrete operators live in
:mod:`hjsmooth.solvers.hj_operator` (the thesis' ``|p|^2/2``, its fast path) and
:mod:`hjsmooth.solvers.general_hj` (any ``H``); the implementation that runs the steps (fused
numba stages, a fused CUDA kernel, or the array code) is chosen once per solve by the stepper
registry, :mod:`hjsmooth.solvers.kernels`.  The closed-form solvers
(:func:`hjsmooth.solvers.hopf_lax.hopf_lax`, :func:`hjsmooth.solvers.cole_hopf.local_entropy`)
need no boundary conditions; this one does (see :mod:`hjsmooth.solvers.boundary`), and it is
the building block of the controlled HJB solver :func:`hjsmooth.solvers.hjb.solve_hjb` and of
:mod:`hjsmooth.solvers.reachability`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_beta, check_choice, check_count, check_stencil, check_time

from .derivatives import ACCURACIES
from .general_hj import solve_general_hj
from .hamiltonians import SCHEMES
from .hj_operator import DEFAULT_CFLS, INTEGRATORS, HamiltonJacobiOperator, method_for, resolve_scheme
from .hj_stepping import initial_state, run_scheme, stage_projection, validate_common
from .result import PDESolution
from .stepping import DEFAULT_MAX_STEPS

__all__ = ["solve_hj"]


def solve_hj(
    f: Any,
    grid: Grid,
    t: float,
    beta: float = float("inf"),
    scheme: str = "auto",
    bc: str | Sequence[str] = "extrapolate",
    accuracy: str = "first",
    cfl: float | None = None,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    bc_value: Any = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    *,
    hamiltonian: Any = None,
    integrator: str = "auto",
) -> PDESolution:
    """Solve ``u_t + H(x, grad u) = 1/(2 beta) Laplacian u``, ``u(., 0) = f``, up to time ``t``.

    Without ``hamiltonian``, ``H(x, p) = |p|^2 / 2``: the thesis' ``u_t = -1/2 |grad u|^2 +
    1/(2 beta) Laplacian u`` on its fast path.  The Hamiltonian is discretised by a numerical
    Hamiltonian of the one-sided slopes ``p-, p+`` (``scheme``), the viscous term by central
    differences, and time by an explicit Runge-Kutta method with step coefficient ``C`` whose
    step follows the CFL bound
    ``dt <= C cfl / (sum_k max|H_p|_k / h_k + (1/beta) sum_k 1/h_k^2)``, recomputed from the
    slopes of the solution at every step (see
    :class:`~hjsmooth.solvers.hj_operator.HamiltonJacobiOperator` and
    :class:`~hjsmooth.solvers.general_hj.GeneralHJOperator`).

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
    scheme : str
        Numerical Hamiltonian.  For ``|p|^2/2`` (no ``hamiltonian``): ``"hybrid"``: central
        differences where the cell Peclet number ``max(|p-|, |p+|) h / (2 nu)`` is at most one,
        local Lax-Friedrichs dissipation beyond, with a four-stage second-order SSP Runge-Kutta
        method (second order in space and time on smooth viscous problems; three-point stencil
        only); Godunov ``1/2 max(max(p-,0)^2, min(p+,0)^2)``, global Lax-Friedrichs
        (``alpha = max |p|`` over the grid), Engquist-Osher ``1/2 (max(p-,0)^2 + min(p+,0)^2)``:
        monotone with ``accuracy="first"`` and forward Euler, the choice for kinks and the
        inviscid equation.  ``"auto"``: ``"hybrid"`` for finite ``beta`` and
        ``accuracy="first"``, else ``"godunov"``.  For a ``hamiltonian``:
        ``"lax_friedrichs"`` (the bound over all slopes on the grid), ``"local_lax_friedrichs"``,
        ``"local_local_lax_friedrichs"`` (bounds over each node's own slopes), or ``"godunov"``
        for a Hamiltonian declared convex (see :mod:`hjsmooth.solvers.hamiltonians`);
        ``"auto"``: Godunov if declared convex, else ``"lax_friedrichs"``.
    bc : str or sequence of str
        Boundary condition, for all axes or one per axis, applied as ghost nodes
        (:mod:`hjsmooth.solvers.boundary`): ``"extrapolate"`` (linear extrapolation;
        characteristics leave freely; nodes within a few ``sqrt(t/beta)`` and the inflow region
        of an edge are disturbed), ``"periodic"`` with period ``upper - lower`` (node ``N-1``
        *is* node ``0``; ``f``'s last node along the axis is replaced by its first),
        ``"neumann"`` (mirror about the end node: zero normal derivative), or ``"dirichlet"``
        (all axes: end nodes held at ``bc_value``, default ``f``'s values there).
    accuracy : {"first", "eno2", "weno5"}
        ``"first"``: the three-point stencil (one-sided first differences; forward Euler
        for the monotone schemes); ``"eno2"``: ENO2 and TVD RK2; ``"weno5"``: Jiang-Peng
        WENO5, a fifth-order Runge-Kutta method and a fourth-order five-point Laplacian (fifth
        order in space and time on smooth solutions).
    cfl : float, optional
        Courant number in ``(0, 1]``; default 0.9 for ``"hybrid"``, 0.5 otherwise.
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
    hamiltonian : callable or Hamiltonian, optional
        ``H(x, p)``: ``x`` and ``p`` are tuples of ``grid.ndim`` arrays of ``grid.shape`` (the
        coordinates and the partial derivatives of ``u``), the result an array of
        ``grid.shape``.  Wrap it in :class:`~hjsmooth.solvers.general_hj.Hamiltonian` to give a
        bound on ``|dH/dp|``, declare it convex, give a numba-compiled twin for the fused CPU
        engine, or make it depend on the time or the value.  ``None``: ``|p|^2 / 2``.
    integrator : {"auto", "euler", "ssp22", "ssp33", "ssp42", "rk5"}
        The Runge-Kutta method (:mod:`hjsmooth.solvers.runge_kutta`); ``"auto"``: forward Euler
        for ``"first"``, Heun for ``"eno2"``, the fifth-order ``"rk5"`` for ``"weno5"`` (six
        evaluations per step: twice TVD RK3's cost, which ``"ssp33"`` still selects), SSP-RK(4,2)
        for ``"hybrid"``.

    Returns
    -------
    PDESolution
        ``values`` is ``u(., t)`` with ``f``'s array type, device and dtype; ``info["engine"]``
        names the implementation that ran, ``info["method"]`` the integrator.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-2.0, 2.0, 201)
    >>> sol = hs.solve_hj(g.coords[0] ** 2 / 2, g, 1.0)          # inviscid: Godunov, forward Euler
    >>> bool(abs(sol.values[100] - 0.0) < 1e-12 and abs(sol.values[150] - 0.25) < 1e-2)
    True
    >>> eikonal = hs.Hamiltonian(lambda x, p: np.sqrt(p[0] ** 2), convex=True, bound=1.0)
    >>> front = hs.solve_hj(np.abs(g.coords[0]) - 1.0, g, 0.5, hamiltonian=eikonal)
    >>> bool(abs(front.values[200] - 0.5) < 1e-12)            # u = |x| - 1 - t where |x| > t
    True
    """
    if hamiltonian is not None:
        return solve_general_hj(
            f,
            grid,
            t,
            hamiltonian,
            beta=beta,
            scheme=scheme,
            bc=bc,
            accuracy=accuracy,
            integrator=integrator,
            cfl=cfl,
            dt=dt,
            save_at=save_at,
            progress=progress,
            bc_value=bc_value,
            max_steps=max_steps,
        )
    beta = check_beta(beta, "beta")
    check_choice(scheme, "scheme", ("auto", *SCHEMES))
    check_choice(accuracy, "accuracy", ACCURACIES)
    check_choice(integrator, "integrator", INTEGRATORS)
    scheme = resolve_scheme(scheme, accuracy, beta)
    check_stencil(scheme, accuracy)
    method = method_for(scheme, accuracy, integrator)
    if cfl is None:
        cfl = DEFAULT_CFLS[method.name]
    bc, cfl, dt = validate_common(grid, bc, cfl, dt)
    f = as_field(f, "f", grid.shape)
    t = check_time(t, "t")
    u0 = initial_state(f, bc)
    project = stage_projection(u0, bc, bc_value)
    operator = HamiltonJacobiOperator(grid, scheme, accuracy, bc, beta, cfl, horizon=max(t, 1e-300), method=method)
    max_steps = check_count(max_steps, "max_steps")
    result, info = run_scheme(
        u0,
        grid,
        t,
        operator,
        project,
        dt=dt,
        save_at=save_at,
        progress=progress,
        desc=f"HJ {scheme}/{accuracy}",
        max_steps=max_steps,
    )
    info["beta"] = beta
    return PDESolution(
        values=result.state,
        times=result.times,
        snapshots=result.snapshots,
        steps=result.steps,
        success=True,
        message=f"{scheme}/{accuracy} HJ scheme, bc={info['bc']}: {result.steps} steps, last dt={result.last_dt:.3g}",
        info=info,
    )
