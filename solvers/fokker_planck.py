"""Fokker-Planck equation on a grid: transient solves and the steady state.

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
chosen once per solve by :func:`hjsmooth.solvers.kernels.select_engine`), backward Euler or
TR-BDF2 (scipy sparse LU); ``method="auto"`` picks between forward Euler and TR-BDF2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from hjsmooth.backend import array_namespace, from_numpy, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.solvers.result import PDESolution
from hjsmooth.solvers.kernels import device_kind, select_engine
from hjsmooth.solvers.scharfetter_gummel import (
    BOUNDARY_CONDITIONS,
    FokkerPlanckOperator,
    build_operator,
    log_rate_ratios,
    normalize_diffusion,
)
from hjsmooth.solvers.scharfetter_gummel import _pairs as link_ends
from hjsmooth.solvers.implicit_steps import TRBDF2, AdaptiveTRBDF2, BackwardEuler
from hjsmooth.solvers.stepping import DEFAULT_MAX_STEPS, march, march_adaptive
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

__all__ = ["solve_fokker_planck", "fokker_planck_steady_state", "fokker_planck_operator", "explicit_stepper",
           "METHODS"]

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
#: stencil passes (``n`` the longest side), per number of axes.  A fused pass costs about one
#: memory sweep; error-controlled TR-BDF2 costs a sparse factorisation per step size it settles
#: on (about eight over a transient) and three triangular solves per step, whose cost per node
#: grows with the side in 2D (fill ``n log n`` per node) and with its cube in 3D.  Measured on
#: this library's benchmark machine, one thread: 200^2 (OU to t = 10 and 20) breaks even near
#: 20000 passes (``100 n``); 41^3 factorises in about 30 s, i.e. 3e4 passes of about 1 ms each
#: per factorisation (``3 n^3``); in 1D both are fast and the explicit march is the more accurate.
_AUTO_PASSES = {1: lambda n: 40 * n, 2: lambda n: 100 * n, 3: lambda n: 3 * n**3}


class _ArrayFPStepper:
    """Forward Euler by the operator's array code (any backend)."""

    def __init__(self, operator: FokkerPlanckOperator):
        self.operator = operator

    def start(self, rho: Any) -> Any:
        return array_namespace(rho).asarray(rho, copy=True)

    def read(self, state: Any) -> Any:
        return state

    def step(self, rho: Any, dt: float) -> Any:
        return self.operator.step(rho, dt)


def _fp_supports(engine: str, operator: FokkerPlanckOperator, rho: Any) -> bool:
    from hjsmooth.solvers._fused_fp import axis_links_only, cuda_fp_supports, rates_like

    if engine == "cuda":
        return cuda_fp_supports(operator, rho)
    from hjsmooth.solvers._numba_fp import numba_fp_supports

    return numba_fp_supports(rho) and axis_links_only(operator) and rates_like(operator, rho)


def explicit_stepper(operator: FokkerPlanckOperator, like: Any) -> tuple[str, Any]:
    """``(engine, stepper)`` for forward-Euler steps of ``operator`` on arrays like ``like``.

    The stepper has ``start(rho) -> state``, ``step(state, dt) -> state`` and
    ``read(state) -> array``; the engine is ``"numba"`` or ``"cuda"`` (one fused pass per step
    on buffers allocated once, for operators with axis links only, i.e. diagonal diffusion,
    whose rates live on ``like``'s backend, device and dtype) or ``"array"``.
    """
    engine = select_engine("fp_step", like, supports=lambda e: _fp_supports(e, operator, like))
    if engine == "numba":
        from hjsmooth.solvers._numba_fp import NumbaFPStepper

        return engine, NumbaFPStepper(operator, like)
    if engine == "cuda":
        from hjsmooth.solvers._fused_fp import CudaFPStepper

        return engine, CudaFPStepper(operator, like)
    return engine, _ArrayFPStepper(operator)


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


def _check_coefficients(grid: Grid, potential: Any, drift: Any, beta: Any, bc: Any) -> tuple[Any, Any, float]:
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
            raise ValueError(f"`drift` must have shape (ndim, *grid.shape) = {expected}, got shape {tuple(drift.shape)}")
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
    potential, drift, beta = _check_coefficients(grid, potential, drift, beta, bc)
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
        initial peak).  The error at ``t`` accumulates over the steps: on an OU transient it was
        ``0.15 rtol`` of the peak at ``rtol = 1e-3`` and ``0.7 rtol`` at ``1e-5``
        (``tests/test_fokker_planck.py``).  Unused by the other methods.

    Returns
    -------
    PDESolution
        ``values`` on ``rho0``'s backend, device and dtype; ``steps`` the accepted steps;
        ``info`` holds ``dt`` (for TR-BDF2 the largest step taken), ``min_dt``, ``stable_dt``,
        ``method``, ``bc``, ``accepted_steps``, ``rejected_steps``, the initial and final ``mass``,
        and for TR-BDF2 ``rtol``, ``atol`` (``None`` with a fixed ``dt``) and ``rejected_negative``.
    """
    rho0 = as_field(rho0, "rho0", check_grid(grid).shape)
    potential, drift, beta = _check_coefficients(grid, potential, drift, beta, bc)
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
        return PDESolution(values, times, snaps, 0, True, "t = 0: initial density returned", {"method": method, "bc": bc})

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
        run = march(stepper.start(rho0), t, stepper.step, lambda _: stable, dt=dt, save_at=save_at,
                    progress=progress, desc="Fokker-Planck (explicit)", max_steps=max_steps, read=stepper.read)
        values, snapshots = run.state, run.snapshots
        step_used = stable if dt is None else min(stable, dt)
        threads = stepper.threads.threads if engine == "numba" else None
    else:
        op = build_operator(grid, np.zeros((), dtype=np.float64), potential=_host(potential, "potential"),
                            drift=_host(drift, "drift"), diffusion=_host(diffusion, "diffusion"), beta=beta, bc=bc)
        host0 = np.asarray(to_numpy(rho0), dtype=np.float64).ravel().copy()
        desc = f"Fokker-Planck ({method})"
        if method == "implicit":
            step_used = t / _IMPLICIT_DEFAULT_STEPS if dt is None else dt
            if not step_used > 0.0:  # t / 100 underflows for a subnormal t
                step_used = t
            stepper = BackwardEuler(op.to_sparse(), op.absorption)
            run = march(host0, t, stepper.step, lambda _: math.inf, dt=step_used, save_at=save_at,
                        progress=progress, desc=desc, max_steps=max_steps)
        else:
            if atol is None:
                atol = _ATOL_OF_PEAK * rtol * float(np.max(host0)) or _ATOL_OF_PEAK * rtol
            control = AdaptiveTRBDF2(TRBDF2(op.to_sparse(), op.absorption), rtol, atol, error_control=dt is None)
            if dt is None:  # error control, steps up to where I - c dt L stays well conditioned
                first, largest, growth = control.first_step(host0, t), _conditioned_step(op), 5.0
            else:  # the given step, halved where the density would turn negative
                first, largest, growth = dt, dt, 2.0
            run = march_adaptive(host0, t, control.attempt, first, order=control.order, max_dt=largest,
                                 max_growth=growth, round_step=control.ladder(first), save_at=save_at,
                                 progress=progress, desc=desc, max_steps=max_steps)
            step_used = run.max_dt
            tolerances = {"rtol": rtol if dt is None else None, "atol": atol if dt is None else None,
                          "rejected_steps": run.rejected, "rejected_negative": control.rejected_negative}
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


def _host(x: Any, name: str) -> Any:
    """Float64 numpy copy of the array argument ``name`` (``None`` and scalars pass through; complex is refused)."""
    if x is None or np.isscalar(x):
        return x
    return as_real_array(x, name)


def fokker_planck_steady_state(
    grid: Grid,
    *,
    potential: Any | None = None,
    drift: Any | None = None,
    diffusion: Any | None = None,
    beta: float = 1.0,
    bc: str = "reflecting",
) -> Any:
    """The stationary density of the Scharfetter-Gummel operator: ``L rho = 0``, ``grid.integrate(rho) = 1``.

    Three routes, tried in this order:

    1. **Gibbs.**  A potential with a constant isotropic ``D = d I`` (``diffusion`` ``None``, a
       scalar, equal per-axis values or ``d I``): the discrete Gibbs density
       ``exp(-2 beta (f - min f) / d) / Z``, which balances every link of the operator exactly
       (``B(-z) / B(z) = exp(z)``), for either ``bc``.  It is evaluated with the max shift in
       the log domain, so it is exact for any steepness of ``f``: walls where
       ``2 beta |f(i+1) - f(i)|`` exceeds 745 (where the rates underflow) and barriers that
       no linear solve resolves in float64 alike.
    2. **Detailed balance.**  Otherwise, if every link satisfies detailed balance (any 1D
       problem with reflecting walls, separable potentials with per-axis ``D``, ...):
       ``log rho`` is integrated along a spanning tree of the links from
       ``log(rate(P->Q) / rate(Q->P)) = z + log c_P - log c_Q``
       (:func:`~hjsmooth.solvers.scharfetter_gummel.log_rate_ratios`, no Bernoulli function, no
       underflow) and accepted only if every other link balances too, to rounding, in the
       log domain.
    3. **Sparse solve.**  Otherwise (a non-reversible drift, cross diffusion, ...): the
       columns of ``L`` sum to zero, so the equation of one node ``p`` (the minimiser of the
       potential, else the node of smallest drift) is replaced by ``rho_p = 1`` and the
       sparse system is solved by ``scipy.sparse.linalg.splu``, then solved again pinned at
       the maximum of that solution.  The result is **checked** and refused with
       ``FloatingPointError`` rather than returned unless: the residual is small node by node,
       ``|L rho|_P <= 1e-9 (|L| |rho|)_P`` wherever ``(|L| |rho|)_P`` is above ``1e-290`` of its
       maximum (a componentwise backward error, which unlike the normwise residual sees a
       density lost across steep walls); the two pinned solutions agree to ``1e-6`` of the
       maximum (an LU solve pinned in one well of a metastable chain gets the other wells'
       weights from crossing rates below its rounding: wells separated by barriers of about
       ``exp(-20)`` or deeper are refused, not returned with a wrong split); no entry is below
       ``-1e-12`` of the maximum; the mass is finite and positive.  Entries within rounding of
       zero are set to zero.  These checks are a safeguard, not a proof: with several wells, two
       pins that both lie in wells whose weights the solve got wrong the same way would agree.

    Parameters are those of :func:`solve_fokker_planck`; ``bc`` must be ``"reflecting"`` or
    ``"periodic"`` (with absorbing walls the only steady state is zero).  Returns an array of
    ``grid.shape`` on the backend, device and dtype of ``potential`` (else ``drift``, else an
    array ``diffusion``; float64 numpy when none is an array).  The computation runs on the
    host in float64.
    """
    potential, drift, beta = _check_coefficients(grid, potential, drift, beta, bc)
    if bc == "absorbing":
        raise ValueError("`bc` 'absorbing' has no normalisable steady state (mass leaks to zero); "
                         "valid values are 'reflecting', 'periodic'")
    like = next((a for a in (potential, drift, diffusion) if hasattr(a, "shape") and hasattr(a, "dtype")
                 and not np.isscalar(a)), np.zeros((), dtype=np.float64))
    if not str(like.dtype).endswith(("float32", "float64")):
        like = np.zeros((), dtype=np.float64)
    f, b, diffusion = _host(potential, "potential"), _host(drift, "drift"), _host(diffusion, "diffusion")
    diag, cross = normalize_diffusion(diffusion, grid, np.zeros((), dtype=np.float64))  # validates `diffusion`
    spread = _isotropic_constant(diag, cross)
    if f is not None and b is None and spread is not None:
        rho = _gibbs_density(f, 2.0 * beta / spread)
    else:
        rho = _detailed_balance_density(grid, f, b, diffusion, beta, bc)
        if rho is None:
            rho = _checked_sparse_density(grid, f, b, diffusion, beta, bc)
    rho = rho.reshape(grid.shape)
    return from_numpy(rho / grid.integrate(rho), like)


def _isotropic_constant(diag: list[np.ndarray], cross: dict[Any, np.ndarray]) -> float | None:
    """``d`` if the diffusion is ``d I`` with a constant ``d > 0``, else ``None``."""
    first = float(diag[0].flat[0])
    if not first > 0.0 or any(np.any(dk != first) for dk in diag) or any(np.any(c != 0) for c in cross.values()):
        return None
    return first


def _gibbs_density(f: np.ndarray, weight: float) -> np.ndarray:
    """``exp(-weight (f - min f))``, maximum 1, for any steepness (overflow of the exponent gives 0)."""
    with np.errstate(over="ignore"):
        exponent = weight * (f - np.min(f))
    return np.exp(-exponent)


def _detailed_balance_density(grid: Grid, f: Any, b: Any, diffusion: Any, beta: float, bc: str) -> np.ndarray | None:
    """The density balancing every link, from the log rate ratios; ``None`` if detailed balance fails.

    ``log rho`` starts at 0 at node 0 and is accumulated along axis 0, then along axis 1 from
    every node reached, and so on (a spanning tree of the axis links).  It is accepted only
    if every link, diagonal and periodic wrap ones included, balances in the log domain to
    ``4 eps (n_1 + ... + n_d)`` times the size of the logs (the rounding of the sums).
    """
    ratios = log_rate_ratios(grid, potential=f, drift=b, diffusion=diffusion, beta=beta, bc=bc)
    if ratios is None:
        return None
    shape = grid.shape
    d = grid.ndim
    log_rho = np.zeros(shape)
    for k in range(d):
        ratio = ratios[k][1]
        if bc == "periodic":  # the wrap link is not in the tree (it is checked below)
            ratio = ratio[tuple(slice(0, shape[k] - 1) if a == k else slice(None) for a in range(d))]
        reached = tuple(slice(None) if a < k else slice(0, 1) for a in range(d))
        along = tuple(slice(None) if a == k else reached[a] for a in range(d))
        start = tuple(slice(0, 1) if a == k else reached[a] for a in range(d))
        beyond = tuple(slice(1, None) if a == k else reached[a] for a in range(d))
        steps = ratio[along]
        if not np.all(np.isfinite(steps)):
            return None  # a tree link without transport: the chain may be disconnected
        log_rho[beyond] = log_rho[start] + np.cumsum(steps, axis=k)
    size = 1.0 + float(np.max(np.abs(log_rho)))
    tol = 4.0 * float(np.finfo(np.float64).eps) * sum(shape) * size
    for direction, ratio in ratios:
        here, there = link_ends(np, log_rho, direction, bc == "periodic")  # (x[P], x[P + e]) per link
        defect = np.abs(there - here - ratio)
        if np.any(defect[np.isfinite(ratio)] > tol):
            return None
    return np.exp(log_rho - np.max(log_rho)).ravel()


def _checked_sparse_density(grid: Grid, f: Any, b: Any, diffusion: Any, beta: float, bc: str) -> np.ndarray:
    """The pinned sparse solve of ``L rho = 0``, refused unless it checks out (see :func:`_check_null_vector`).

    Two pins: the heuristic node (the minimiser of the potential, else of ``|b|``, else the
    centre) and the maximum of that first solution.  Pinned in one well of a metastable
    chain, an LU solve gets that well right and the others only through crossing rates
    below its rounding; two pins in different wells then disagree, so the two solutions
    must agree to ``1e-6`` of the maximum.
    """
    op = build_operator(grid, np.zeros((), dtype=np.float64), potential=f, drift=b, diffusion=diffusion,
                        beta=beta, bc=bc)
    generator = op.to_sparse()
    if f is not None:
        pin = int(np.argmin(f))
    elif b is not None:
        pin = int(np.argmin(np.sum(b * b, axis=0)))
    else:
        pin = grid.size // 2
    coo = generator.tocoo()
    first = _pinned_null_vector(coo, pin)
    peak = int(np.argmax(first))
    if peak == pin:
        return _check_null_vector(generator, first)
    rho = _check_null_vector(generator, _pinned_null_vector(coo, peak))
    scaled_first = first / float(np.max(np.abs(first)))
    disagreement = float(np.max(np.abs(scaled_first - rho)))
    if not disagreement <= 1e-6:
        raise FloatingPointError(
            f"the steady-state solve is not accurate: pinned at two nodes it gives densities that differ by "
            f"{disagreement:.2g} of the maximum; the chain is nearly reducible (wells separated by barriers that a "
            f"float64 linear solve cannot resolve); raise the noise (a smaller `beta`) or refine the grid"
        )
    return rho


def _check_null_vector(generator: sp.csr_matrix, rho: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """``rho`` scaled to maximum 1 with rounding-level negatives set to 0, after checking
    ``|L rho| <= rtol |L| |rho|`` node by node (above a floor of ``1e-290`` of the largest
    ``|L| |rho|``), no entry below ``-1e-12``, and a finite positive sum; ``FloatingPointError`` otherwise."""
    peak = float(np.max(np.abs(rho)))
    if not (np.all(np.isfinite(rho)) and peak > 0.0):
        raise FloatingPointError("the steady-state solve produced no usable density (zero or non-finite values)")
    rho = rho / peak
    residual = np.abs(generator @ rho)
    scale = abs(generator) @ np.abs(rho)
    checked = scale > 1e-290 * float(np.max(scale))
    ratio = residual[checked] / scale[checked]
    worst = float(np.max(ratio)) if ratio.size else 0.0
    if worst > rtol:
        node = int(np.flatnonzero(checked)[np.argmax(ratio)])
        raise FloatingPointError(
            f"the steady-state solve is not accurate: at node {node} the net flow is {worst:.2g} of the flows "
            f"through it (tolerance {rtol:g}); the chain is nearly reducible (wells separated by barriers "
            f"that a float64 linear solve cannot resolve); raise the noise (a smaller `beta`) or refine the grid"
        )
    lowest = float(np.min(rho))
    if lowest < -1e-12:
        raise FloatingPointError(f"the steady-state solve returned a negative density ({lowest:.3g} of the maximum)")
    total = float(np.sum(np.maximum(rho, 0.0)))
    if not (math.isfinite(total) and total > 0.0):
        raise FloatingPointError(f"the steady-state solve returned a density of mass {total!r}")
    return np.maximum(rho, 0.0)


def _pinned_null_vector(generator: sp.coo_matrix, pin: int) -> np.ndarray:
    """Solve ``L rho = 0`` with the equation of node ``pin`` replaced by ``rho_pin = 1``."""
    n = generator.shape[0]
    keep = generator.row != pin
    rows = np.concatenate([generator.row[keep], [pin]])
    cols = np.concatenate([generator.col[keep], [pin]])
    vals = np.concatenate([generator.data[keep], [1.0]])
    system = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    rhs = np.zeros(n)
    rhs[pin] = 1.0
    try:
        rho = spla.splu(system, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    except RuntimeError as err:  # exactly singular: the chain has several closed classes
        raise FloatingPointError(f"the steady-state system is singular ({err}); is the operator reducible?") from None
    if not np.all(np.isfinite(rho)):
        raise FloatingPointError("the steady-state solve produced non-finite values (is the operator reducible?)")
    return rho
