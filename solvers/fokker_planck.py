"""Fokker-Planck equation on a grid: transient solves (the steady state is in
:mod:`hjsmooth.solvers.fokker_planck_steady`).

The equation is the forward Kolmogorov equation of the Ito diffusion
``dX = b(X) dt + beta^{-1/2} sigma(X) dB``, ``D = sigma sigma^T``:

    rho_t = -div(b rho) + 1/(2 beta) sum_ij d_i d_j (D_ij rho).

With ``b = -grad f`` and ``D = I`` this is the thesis' (4.9) and the stationary density is
``exp(-2 beta f) / Z``; the thesis' (4.10) prints ``exp(-beta f)``, which drops the factor
2 that the ``1/(2 beta)`` diffusion of (4.9) implies.

Space is discretised with the Scharfetter-Gummel finite volumes of
:mod:`hjsmooth.solvers.scharfetter_gummel` (cells centred at the nodes, mass
``grid.integrate(rho)``, positivity, exact discrete Gibbs state for a potential); time with
forward Euler (any backend; a fused numba or CUDA stencil where the diffusion is diagonal,
chosen once per solve by the stepper registry, :mod:`hjsmooth.solvers.kernels`), backward Euler or
TR-BDF2 (scipy sparse LU); ``method="auto"`` picks between forward Euler and TR-BDF2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, from_numpy, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import (
    as_field,
    as_real_array,
    check_beta,
    check_choice,
    check_count,
    check_grid,
    check_nonnegative,
    check_positive,
    check_time,
)

from .implicit_steps import TRBDF2, AdaptiveTRBDF2, BackwardEuler
from .kernels import build, device_kind
from .result import PDESolution
from .scharfetter_gummel import BOUNDARY_CONDITIONS, FokkerPlanckOperator, build_operator
from .stepping import DEFAULT_MAX_STEPS, march, march_adaptive

__all__ = [
    "solve_fokker_planck",
    "fokker_planck_operator",
    "explicit_stepper",
    "check_coefficients",
    "host_float64",
    "ArrayFPStepper",
    "METHODS",
]

METHODS = ("auto", "explicit", "implicit", "tr_bdf2")
_EXPLICIT_SAFETY = 0.9
_IMPLICIT_DEFAULT_STEPS = 100
#: TR-BDF2's default ``atol`` as a fraction of ``rtol * max(rho0)``
_ATOL_OF_PEAK = 1e-3
#: the largest ``c dt max|L_ii|`` TR-BDF2's error control lets its step reach: ``I - c dt L`` stays
#: well conditioned (the exact mass balance of each solve takes care of the nearly singular
#: mass direction; at ``1e16`` the identity is lost to rounding)
_CONDITION_LIMIT = 1e12
#: ``method="auto"`` marches explicitly while the positivity bound needs at most ``passes(n)``
#: stencil passes (``n`` the longest side), per number of axes, else runs TR-BDF2: a fused
#: explicit pass costs about one memory sweep, TR-BDF2 a sparse factorisation per step size and
#: three triangular solves per step.  The thresholds are break-even points measured by
#: benchmarks/bench_fokker_planck_fplanck.py (docs/benchmarks.md, "Fokker-Planck: choosing the method").
_AUTO_PASSES = {1: lambda n: 40 * n, 2: lambda n: 100 * n, 3: lambda n: 3 * n**3}


class ArrayFPStepper:
    """Forward Euler by the operator's array code (any backend): the registry's ``"array"`` engine."""

    def __init__(self, operator: FokkerPlanckOperator, like: Any = None):
        self.operator = operator

    def start(self, rho: Any) -> Any:
        return array_namespace(rho).asarray(rho, copy=True)

    def read(self, state: Any) -> Any:
        return state

    def step(self, rho: Any, dt: float) -> Any:
        return self.operator.step(rho, dt)


def explicit_stepper(operator: FokkerPlanckOperator, like: Any) -> tuple[str, Any]:
    """``(engine, stepper)`` for forward-Euler steps of ``operator`` on arrays like ``like``.

    The stepper has ``start(rho) -> state``, ``step(state, dt) -> state`` and
    ``read(state) -> array``; the engine is ``"numba"`` or ``"cuda"`` (one fused pass per step
    on buffers allocated once, for operators with axis links only, i.e. diagonal diffusion,
    whose rates live on ``like``'s backend, device and dtype) or ``"array"``, as the stepper
    registry (:mod:`hjsmooth.solvers.kernels`, row ``"fp_step"``) decides.
    """
    return build("fp_step", like, operator)


def _auto_method(op: FokkerPlanckOperator, rho0: Any, t: float, grid: Grid) -> str:
    """``"explicit"`` when the positivity-bound march is short for the grid, or off the host; else TR-BDF2."""
    if device_kind(rho0) != "cpu":
        return "explicit"  # no sparse factorisation on a GPU
    passes = t / (_EXPLICIT_SAFETY * op.stable_dt) if math.isfinite(op.stable_dt) else 1.0
    return "explicit" if passes <= _AUTO_PASSES[grid.ndim](max(grid.shape)) else "tr_bdf2"


def _conditioned_step(op: FokkerPlanckOperator) -> float:
    """The step at which ``c dt max|L_ii|`` (``max|L_ii| = 1 / stable_dt``, the largest outflow rate)
    reaches :data:`_CONDITION_LIMIT`; ``inf`` with no transport."""
    return _CONDITION_LIMIT * op.stable_dt / TRBDF2.implicit_weight


def check_coefficients(grid: Grid, potential: Any, drift: Any, beta: Any, bc: Any) -> tuple[Any, Any, float]:
    """Validate the drift description, ``beta`` and ``bc``; return ``(potential, drift, beta)``."""
    check_grid(grid)
    if potential is not None and drift is not None:
        raise ValueError("give at most one of `potential` and `drift` (got both)")
    if potential is not None:
        potential = as_field(potential, "potential", grid.shape)
    if drift is not None:
        expected = (grid.ndim, *grid.shape)
        if not hasattr(drift, "shape"):
            drift = np.asarray(drift, dtype=np.float64)
        if tuple(drift.shape) != expected:
            raise ValueError(
                f"`drift` must have shape (ndim, *grid.shape) = {expected}, got shape {tuple(drift.shape)}"
            )
        drift = as_field(drift, "drift")
    beta = check_beta(beta)
    if not math.isfinite(beta):
        raise ValueError(f"`beta` must be finite for the Fokker-Planck equation (it sets the noise), got {beta!r}")
    check_choice(bc, "bc", BOUNDARY_CONDITIONS)
    return potential, drift, beta


def fokker_planck_operator(
    grid: Grid,
    like: Any | None = None,
    *,
    potential: Any | None = None,
    drift: Any | None = None,
    diffusion: Any | None = None,
    beta: float = 1.0,
    bc: str = "reflecting",
) -> FokkerPlanckOperator:
    """The validated Scharfetter-Gummel operator ``L`` (rates on ``like``'s backend, device, dtype).

    Its ``step(rho, dt)`` is the explicit stencil ``rho + dt L rho``, ``stable_dt`` the
    positivity bound and ``to_sparse()`` the scipy matrix; see
    :class:`~hjsmooth.solvers.scharfetter_gummel.FokkerPlanckOperator`.  ``like=None`` means
    a float64 numpy array.
    """
    potential, drift, beta = check_coefficients(grid, potential, drift, beta, bc)
    if like is None:
        like = np.zeros((), dtype=np.float64)
    return build_operator(grid, like, potential=potential, drift=drift, diffusion=diffusion, beta=beta, bc=bc)


def solve_fokker_planck(
    rho0: Any,
    grid: Grid,
    t: float,
    *,
    potential: Any | None = None,
    drift: Any | None = None,
    diffusion: Any | None = None,
    beta: float = 1.0,
    bc: str = "reflecting",
    method: str = "auto",
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    rtol: float = 1e-4,
    atol: float | None = None,
) -> PDESolution:
    """Evolve a density by ``rho_t = -div(b rho) + 1/(2 beta) sum_ij d_i d_j (D_ij rho)`` up to time ``t``.

    Parameters
    ----------
    rho0 : array of ``grid.shape``
        Initial density, finite and non-negative (numpy, torch or CuPy; float32 or float64).
        It need not be normalised; the solver conserves ``grid.integrate(rho)``.
    grid : Grid
        Node-centred grid; node ``P`` owns the cell of volume ``prod h_k`` centred on it.
    t : float
        Final time, ``>= 0``; ``t = 0`` returns a copy of ``rho0``.
    potential : array of ``grid.shape``, optional
        ``f`` with drift ``b = -grad f``; with ``D = I`` the discrete ``exp(-2 beta f)`` is
        exactly stationary.
    drift : array of shape ``(ndim, *grid.shape)``, optional
        A general drift ``b`` at the nodes.  Give at most one of ``potential``/``drift``;
        neither means pure diffusion.
    diffusion : None, float, array
        ``D``: ``None`` (identity), a scalar, a per-axis vector ``(ndim,)``, an isotropic field
        of ``grid.shape``, a constant tensor ``(ndim, ndim)`` or a tensor field
        ``(ndim, ndim, *grid.shape)`` (symmetric, with ``D_kk / h_k >= sum_j |D_kj| / h_j``).
    beta : float
        Inverse temperature, ``0 < beta < inf``.
    bc : {"reflecting", "periodic", "absorbing"}
        Edge of the grid: zero flux through the outer cell faces (mass conserved exactly),
        wrap-around with period ``n_k h_k``, or zero density at ghost nodes one spacing
        outside the box (mass leaves).
    method : {"auto", "explicit", "implicit", "tr_bdf2"}
        ``"auto"``: ``"explicit"`` when the positivity bound needs at most ``40 n``, ``100 n`` or
        ``3 n^3`` steps in 1D, 2D or 3D (``n = max(grid.shape)``; always on GPU arrays), else
        ``"tr_bdf2"``; ``info["method"]`` says which ran.
        ``"explicit"``: forward Euler on any backend, step ``min(dt, 0.9 / max outflow rate)``
        (the positivity bound, which also gives stability); with a diagonal diffusion one fused
        numba (CPU) or CUDA pass per step.  ``"implicit"``: backward Euler
        with the scipy sparse matrix, one ``splu`` factorisation per distinct step; first
        order in time, positive for every ``dt``.  ``"tr_bdf2"``: the L-stable, second-order
        TR-BDF2 scheme (a trapezoidal stage to ``t + (2 - sqrt 2) dt``, then BDF2), whose two
        stages share one factorisation of ``I - (1 - 1/sqrt 2) dt L``; it conserves mass and
        keeps the discrete Gibbs state exactly.  Its steps are chosen by error control (the
        embedded estimate of Hosea and Shampine, see ``rtol``) and by positivity: a step whose
        density has an entry below zero beyond rounding (``-16 eps`` of the maximum; entries
        above that are set to zero, the mass kept) is rejected and retried at half the size.
        The step sizes are powers of two times the first, so that the factorisations are few
        and reused; a step never reaches where ``I - c dt L`` loses its conditioning
        (``c dt max|L_ii| <= 1e12``).  ``info`` counts the ``accepted_steps`` and the
        ``rejected_steps`` (``rejected_negative`` of them for positivity).
        Both implicit methods conserve mass to rounding for every ``dt`` (each sparse solve
        is rescaled onto the exact discrete mass balance; tested to ``1e-12`` for ``dt`` up to
        ``1e8``), and solve torch and CuPy inputs on the host in float64, returning them on
        their own device and dtype.
    dt : float, optional
        Time step.  Explicit: an upper bound (the positivity bound is used if smaller).
        Implicit: the step (default ``t / 100``).  TR-BDF2: the step, without error control
        (``None``, the default: error-controlled steps); a step that would turn the density
        negative is still rejected and halved, and the step grows back to ``dt`` (doubling)
        after it.
    save_at : int or sequence of float, optional
        Also return snapshots at these times (see ``hjsmooth.solvers.stepping.output_times``).
    progress : bool, optional
        Show a progress bar (``None``: only for runs longer than two seconds).
    max_steps : int
        The most time steps to take; a run that needs more (``t`` over the step) is refused
        before it starts, with the estimate in the message.  For error-controlled TR-BDF2 it
        bounds the attempted steps, accepted and rejected.
    rtol, atol : float
        Tolerances of TR-BDF2's error control (``dt=None``): a step is accepted when its
        estimated local error satisfies ``|e_i| <= atol + rtol max(|rho_i|, |rho_new,i|)`` at
        every node.  Defaults ``rtol = 1e-4`` and ``atol = 1e-3 rtol max(rho0)`` (``1e-7`` of the
        initial peak).  The error at ``t`` accumulates over the steps (a few tenths of ``rtol`` of
        the peak on an OU transient, docs/benchmarks.md).  Unused by the other methods.

    Returns
    -------
    PDESolution
        ``values`` on ``rho0``'s backend, device and dtype; ``steps`` the accepted steps;
        ``info`` holds ``dt`` (for TR-BDF2 the largest step taken), ``min_dt``, ``stable_dt``,
        ``method``, ``bc``, ``accepted_steps``, ``rejected_steps``, the initial and final ``mass``,
        and for TR-BDF2 ``rtol``, ``atol`` (``None`` with a fixed ``dt``) and ``rejected_negative``.
    """
    rho0 = as_field(rho0, "rho0", check_grid(grid).shape)
    potential, drift, beta = check_coefficients(grid, potential, drift, beta, bc)
    check_nonnegative(rho0, "rho0")
    t = check_time(t)
    check_choice(method, "method", METHODS)
    if dt is not None:
        dt = check_positive(dt, "dt")
    max_steps = check_count(max_steps, "max_steps")
    xp = array_namespace(rho0)
    if t == 0.0:
        values = xp.asarray(rho0, copy=True)
        snaps = xp.stack([values]) if save_at is not None else None
        times = np.array([0.0])
        return PDESolution(
            values, times, snaps, 0, True, "t = 0: initial density returned", {"method": method, "bc": bc}
        )

    rtol = check_positive(rtol, "rtol")
    if atol is not None:
        atol = check_positive(atol, "atol")
    engine, threads, tolerances = "scipy", None, {}
    if method in ("auto", "explicit"):
        op = build_operator(grid, rho0, potential=potential, drift=drift, diffusion=diffusion, beta=beta, bc=bc)
        if method == "auto":
            method = _auto_method(op, rho0, t, grid)
    if method == "explicit":
        stable = _EXPLICIT_SAFETY * op.stable_dt
        if not math.isfinite(stable):
            stable = t if dt is None else dt  # no transport at all: any step is exact
        engine, stepper = explicit_stepper(op, rho0)
        run = march(
            stepper.start(rho0),
            t,
            stepper.step,
            lambda _: stable,
            dt=dt,
            save_at=save_at,
            progress=progress,
            desc="Fokker-Planck (explicit)",
            max_steps=max_steps,
            read=stepper.read,
        )
        values, snapshots = run.state, run.snapshots
        step_used = stable if dt is None else min(stable, dt)
        threads = stepper.threads.threads if engine == "numba" else None
    else:
        op = build_operator(
            grid,
            np.zeros((), dtype=np.float64),
            potential=host_float64(potential, "potential"),
            drift=host_float64(drift, "drift"),
            diffusion=host_float64(diffusion, "diffusion"),
            beta=beta,
            bc=bc,
        )
        host0 = np.asarray(to_numpy(rho0), dtype=np.float64).ravel().copy()
        desc = f"Fokker-Planck ({method})"
        if method == "implicit":
            step_used = t / _IMPLICIT_DEFAULT_STEPS if dt is None else dt
            if not step_used > 0.0:  # t / 100 underflows for a subnormal t
                step_used = t
            stepper = BackwardEuler(op.to_sparse(), op.absorption)
            run = march(
                host0,
                t,
                stepper.step,
                lambda _: math.inf,
                dt=step_used,
                save_at=save_at,
                progress=progress,
                desc=desc,
                max_steps=max_steps,
            )
        else:
            if atol is None:
                atol = _ATOL_OF_PEAK * rtol * float(np.max(host0)) or _ATOL_OF_PEAK * rtol
            control = AdaptiveTRBDF2(TRBDF2(op.to_sparse(), op.absorption), rtol, atol, error_control=dt is None)
            if dt is None:  # error control, steps up to where I - c dt L stays well conditioned
                first, largest, growth = control.first_step(host0, t), _conditioned_step(op), 5.0
            else:  # the given step, halved where the density would turn negative
                first, largest, growth = dt, dt, 2.0
            run = march_adaptive(
                host0,
                t,
                control.attempt,
                first,
                order=control.order,
                max_dt=largest,
                max_growth=growth,
                round_step=control.ladder(first),
                save_at=save_at,
                progress=progress,
                desc=desc,
                max_steps=max_steps,
            )
            step_used = run.max_dt
            tolerances = {
                "rtol": rtol if dt is None else None,
                "atol": atol if dt is None else None,
                "rejected_steps": run.rejected,
                "rejected_negative": control.rejected_negative,
            }
        values = from_numpy(run.state.reshape(grid.shape), rho0)
        snapshots = None
        if run.snapshots is not None:
            snapshots = from_numpy(run.snapshots.reshape((-1, *grid.shape)), rho0)

    info = {
        "method": method,
        "engine": engine,
        "numba_threads": threads,
        "bc": bc,
        "dt": step_used,
        "stable_dt": op.stable_dt,
        "min_dt": run.min_dt,
        "accepted_steps": run.steps,
        "rejected_steps": 0,
        "mass0": float(grid.integrate(rho0)),
        "mass": float(grid.integrate(values)),
    }
    if method == "tr_bdf2":
        info.update(tolerances)
    message = f"{method} Scharfetter-Gummel, bc={bc}, {run.steps} steps of dt<={step_used:.3g}"
    if run.rejected:
        message += f" ({run.rejected} rejected)"
    return PDESolution(values, run.times, snapshots, run.steps, True, message, info)


def host_float64(x: Any, name: str) -> Any:
    """Float64 numpy copy of the array argument ``name`` (``None`` and scalars pass through; complex is refused)."""
    if x is None or np.isscalar(x):
        return x
    return as_real_array(x, name)
