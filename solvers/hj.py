"""Time-stepping solver for the viscous and inviscid Hamilton-Jacobi equation (4.1)/(4.15).

    u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u,     u(x, 0) = f(x)

on a node-centred grid, by a monotone (first order), hybrid central/upwind (second order
where the grid resolves the viscous scale) or high-order upwind (ENO2, WENO5)
finite-difference scheme with SSP Runge-Kutta time stepping and CFL-limited steps.
The implementation that runs the steps (fused numba stages, a fused CUDA kernel, or the
array code of :class:`HamiltonJacobiOperator`) is chosen once per solve by
:func:`hjsmooth.solvers.kernels.select_engine`.
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
    check_stencil,
    check_time,
)

from .boundary import BOUNDARY_CONDITIONS, boundary_mask, close_periodic, dirichlet_hold, pad_axis
from .derivatives import ACCURACIES, GHOST_WIDTH, laplacian, laplacian_stiffness, one_sided_differences
from .hamiltonians import SCHEMES, flux_and_rate
from .kernels import select_engine
from .result import PDESolution
from .runge_kutta import SSP_METHODS, SSPMethod, ssp_step
from .stepping import DEFAULT_MAX_STEPS, march

__all__ = ["solve_hj", "HamiltonJacobiOperator", "DEFAULT_CFL", "method_for", "resolve_scheme"]

DEFAULT_CFL = 0.5
#: Courant number per time integrator when ``cfl`` is not given: the SSP methods' forward-Euler
#: bound is monotone at 1; the hybrid scheme's four-stage method runs close to it
DEFAULT_CFLS = {"euler": DEFAULT_CFL, "ssp22": DEFAULT_CFL, "ssp33": DEFAULT_CFL, "ssp42": 0.9}


def resolve_scheme(scheme: str, accuracy: str, beta: float) -> str:
    """``"auto"``: ``"hybrid"`` for a viscous problem on the three-point stencil, else ``"godunov"``."""
    if scheme != "auto":
        return scheme
    return "hybrid" if (accuracy == "first" and math.isfinite(beta)) else "godunov"


def method_for(scheme: str, accuracy: str) -> SSPMethod:
    """The time integrator of a (scheme, accuracy) pair.

    First-order monotone schemes: forward Euler (monotone for ``cfl <= 1``); the hybrid
    scheme, second order in space where it is central: Kraaijevanger's four-stage
    second-order SSP method (SSP coefficient 3); ENO2: Heun (TVD RK2); WENO5: TVD RK3.
    """
    if scheme == "hybrid":
        return SSP_METHODS["ssp42"]
    return SSP_METHODS[{"first": "euler", "eno2": "ssp22", "weno5": "ssp33"}[accuracy]]


class HamiltonJacobiOperator:
    """The semi-discrete right-hand side ``L(u) = -sum_k H_hat_k(p-_k, p+_k) + nu Laplacian u``.

    ``H_hat_k`` is the numerical Hamiltonian of ``g_k(x) p_k + p_k^2 / 2`` (see
    :mod:`hjsmooth.solvers.hamiltonians`; ``g = 0`` for the HJ equation) and
    ``nu = 1/(2 beta)``.  The operator also supplies the CFL-limited time step

        dt = C cfl / (sum_k rate_k / h_k + 2 nu (s/4) sum_k 1/h_k^2),

    ``rate_k = max (dH_hat/dp- - dH_hat/dp+)`` (``max |H_p|`` of the axis, from the actual
    slopes of the current state), ``s`` the stiffness of the Laplacian stencil (4 for three
    points, so the viscous part is ``(1/beta) sum_k 1/h_k^2``) and ``C`` the SSP coefficient
    of the time integrator (:func:`method_for`), recomputed at every step.  With
    ``cfl <= 1`` a first-order forward-Euler step is monotone.

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
        self.method = method_for(scheme, accuracy)
        self.peclet_slopes = tuple(2.0 * self.nu / h for h in self.spacing)
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
            flux, axis_rate = flux_and_rate(p_minus, p_plus, self.scheme, g, self.peclet_slopes[axis])
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
        """The CFL step ``C cfl / (rate + viscous rate)`` for a hyperbolic ``rate = sum_k rate_k / h_k``."""
        denominator = rate + self.viscous_rate
        if not math.isfinite(denominator):
            raise FloatingPointError(f"the solution blew up (wave speed {denominator!r})")
        return self.method.coefficient * self.cfl / denominator if denominator > 0.0 else self.horizon

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
    check_stencil(scheme, accuracy)
    cfl = check_positive(cfl, "cfl")
    if cfl > 1.0:
        raise ValueError(f"`cfl` must be in (0, 1], got {cfl!r}")
    dt = None if dt is None else check_positive(dt, "dt")
    return cfl, dt


class _ArrayStepper:
    """The array-API path: :func:`hjsmooth.solvers.runge_kutta.ssp_step` on the operator's ``rhs``."""

    def __init__(self, operator: HamiltonJacobiOperator, project: Any):
        self.operator, self.project = operator, project
        self.stable_dt = operator.stable_dt

    def start(self, u: Any) -> Any:
        return self.project(u)

    def read(self, state: Any) -> Any:
        return state

    def step(self, u: Any, h: float) -> Any:
        # a NumPy float64 scalar step would promote float32 data: use a Python float
        op = self.operator
        return ssp_step(u, float(h), op.rhs, op.method, self.project, op.cached_rhs(u))


def _supports(engine: str, u0: Any, operator: HamiltonJacobiOperator) -> bool:
    if engine == "numba":
        from ._numba_hj import numba_supports

        return numba_supports(u0, operator.scheme, operator.accuracy, operator.shift)
    from ._fused_hj import cuda_supports

    return cuda_supports(u0, operator.scheme, operator.accuracy, operator.shift)


def _stepper(engine: str, u0: Any, operator: HamiltonJacobiOperator, project: Any) -> Any:
    """The object that marches this solve: ``start``, ``stable_dt``, ``step``, ``read``."""
    if engine == "array":
        return _ArrayStepper(operator, project)
    held = project.held if operator.bc == "dirichlet" else None
    if engine == "numba":
        from ._numba_hj import NumbaHJStepper

        return NumbaHJStepper(u0, operator.spacing, operator.nu, operator.bc, operator.scheme, operator.method,
                              operator.step_for_rate, held, operator.accuracy)
    from ._fused_hj import CudaHJStepper

    return CudaHJStepper(u0, operator.spacing, operator.nu, operator.bc, operator.scheme, operator.method,
                         operator.step_for_rate, project)


def run_scheme(u0: Any, grid: Grid, t: float, operator: HamiltonJacobiOperator, project: Any, *,
               dt: float | None, save_at: Any, progress: bool | None, desc: str,
               max_steps: int = DEFAULT_MAX_STEPS) -> tuple[Any, dict]:
    """March ``u_t = L(u)`` from ``u0`` to time ``t``; return the march result and an info dict.

    The engine (numba, CUDA or array code) is chosen here, once, for ``u0`` and the operator."""
    engine = select_engine("hj_step", u0, supports=lambda e: _supports(e, u0, operator))
    stepper = _stepper(engine, u0, operator, project)
    result = march(stepper.start(u0), t, stepper.step, stepper.stable_dt, dt=dt, save_at=save_at,
                   progress=progress, desc=desc, max_steps=max_steps, read=stepper.read)
    info = {
        "scheme": operator.scheme,
        "accuracy": operator.accuracy,
        "method": operator.method.name,
        "bc": operator.bc,
        "cfl": operator.cfl,
        "last_dt": result.last_dt,
        "min_dt": result.min_dt,
        "engine": engine,
        "fused_gpu_kernel": engine == "cuda",
        "fused_cpu_kernel": engine == "numba",
    }
    if engine == "numba":
        info["numba_threads"] = stepper.threads.threads
    return result, info


def solve_hj(
    f: Any,
    grid: Grid,
    t: float,
    beta: float = float("inf"),
    scheme: str = "auto",
    bc: str = "extrapolate",
    accuracy: str = "first",
    cfl: float | None = None,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    bc_value: Any = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> PDESolution:
    """Solve ``u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u``, ``u(., 0) = f``, up to time ``t``.

    The Hamiltonian ``|p|^2 / 2`` is discretised per axis by a numerical Hamiltonian of
    the one-sided slopes ``p-, p+`` (``scheme``), the viscous term by central second
    differences, and time by an explicit SSP Runge-Kutta method with SSP coefficient ``C``
    whose step follows the CFL bound
    ``dt <= C cfl / (sum_k max|H_p|_k / h_k + (1/beta) sum_k 1/h_k^2)``, recomputed from the
    slopes of the solution at every step (see :class:`HamiltonJacobiOperator`).

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
    scheme : {"auto", "hybrid", "godunov", "lax_friedrichs", "engquist_osher"}
        Numerical Hamiltonian: ``"hybrid"``: central differences where the cell Peclet
        number ``max(|p-|, |p+|) h / (2 nu)`` is at most one, local Lax-Friedrichs
        dissipation beyond, with a four-stage second-order SSP Runge-Kutta method (second
        order in space and time on smooth viscous problems; three-point stencil only);
        Godunov ``1/2 max(max(p-,0)^2, min(p+,0)^2)``, global Lax-Friedrichs
        (``alpha = max |p|`` over the grid), Engquist-Osher ``1/2 (max(p-,0)^2 + min(p+,0)^2)``:
        monotone with ``accuracy="first"`` and forward Euler, the choice for kinks and the
        inviscid equation.  ``"auto"``: ``"hybrid"`` for finite ``beta`` and
        ``accuracy="first"``, else ``"godunov"``.
    bc : {"extrapolate", "periodic", "neumann", "dirichlet"}
        Boundary condition, applied as ghost nodes (:mod:`hjsmooth.solvers.boundary`):
        linear extrapolation (characteristics leave freely; nodes within a few
        ``sqrt(t/beta)`` and the inflow region of an edge are disturbed), periodic with
        period ``upper - lower`` (node ``N-1`` *is* node ``0``; ``f``'s last node along
        each axis is replaced by its first), mirror about the end node (zero normal
        derivative), or end nodes held at ``bc_value`` (default: ``f``'s values there).
    accuracy : {"first", "eno2", "weno5"}
        ``"first"``: the three-point stencil (one-sided first differences; forward Euler
        for the monotone schemes); ``"eno2"``: ENO2 and TVD RK2; ``"weno5"``: Jiang-Peng
        WENO5, TVD RK3 and a fourth-order five-point Laplacian.
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

    Returns
    -------
    PDESolution
        ``values`` is ``u(., t)`` with ``f``'s array type, device and dtype.

    Examples
    --------
    >>> import numpy as np, hjsmooth as hs
    >>> g = hs.Grid(-2.0, 2.0, 201)
    >>> sol = hs.solve_hj(g.coords[0] ** 2 / 2, g, 1.0)          # inviscid: Godunov, forward Euler
    >>> bool(abs(sol.values[100] - 0.0) < 1e-12 and abs(sol.values[150] - 0.25) < 1e-2)
    True
    """
    beta = check_beta(beta, "beta")
    check_choice(scheme, "scheme", ("auto", *SCHEMES))
    scheme = resolve_scheme(scheme, accuracy, beta)
    if cfl is None and accuracy in ACCURACIES and scheme in SCHEMES:
        cfl = DEFAULT_CFLS[method_for(scheme, accuracy).name]
    cfl, dt = validate_common(grid, scheme, accuracy, bc, cfl, dt)
    f = as_field(f, "f", grid.shape)
    t = check_time(t, "t")
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
