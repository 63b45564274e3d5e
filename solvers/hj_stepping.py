"""What every Hamilton-Jacobi solve shares: the initial state, the stage projection, the array-code
stepper, and the march that asks the stepper registry (:mod:`hjsmooth.solvers.kernels`) once
which engine runs the steps.

An operator handed to :func:`run_scheme` supplies ``rhs(u, t)``, ``stable_dt(u, t)``,
``cached_rhs(u)``, ``step_for_rate(rate)`` and the attributes ``scheme``, ``accuracy``,
``method``, ``bc``, ``cfl`` (:class:`hjsmooth.solvers.hj_operator.HamiltonJacobiOperator` for
the thesis' Hamiltonian, :class:`hjsmooth.solvers.general_hj.GeneralHJOperator` for any other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like, device, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_grid, check_positive, check_real

from .boundary import axis_conditions, boundary_mask, close_periodic, dirichlet_hold
from .kernels import build
from .runge_kutta import rk_step
from .stepping import DEFAULT_MAX_STEPS, march

__all__ = [
    "HJCase",
    "ArrayStepper",
    "DirichletHold",
    "initial_state",
    "stage_projection",
    "validate_common",
    "run_scheme",
]


@dataclass(frozen=True)
class HJCase:
    """What a stepper factory of the registry gets: the semi-discrete operator and the projection
    applied after every Runge-Kutta stage (identity, or the Dirichlet hold)."""

    operator: Any
    project: Any


def initial_state(f: Any, bc: str | tuple[str, ...]) -> Any:
    """A copy of ``f``, with node ``N-1`` of every periodic axis set to node ``0``."""
    xp = array_namespace(f)
    bc = axis_conditions(bc, f.ndim)
    periodic = tuple(b == "periodic" for b in bc)
    return close_periodic(f, periodic) if any(periodic) else xp.asarray(f, copy=True)


class DirichletHold:
    """The projection ``u -> where(boundary, held, u)``; ``held`` is kept for the fused CPU kernels."""

    def __init__(self, mask: Any, held: Any):
        self.mask, self.held = mask, held

    def __call__(self, u: Any) -> Any:
        return dirichlet_hold(u, self.mask, self.held)


def _identity(u: Any) -> Any:
    return u


def stage_projection(u0: Any, bc: str | tuple[str, ...], bc_value: Any) -> Any:
    """The per-stage projection: the identity, or (``bc`` Dirichlet) the hold of the face nodes at
    ``bc_value`` (a number, an array of the grid's shape, or ``None`` for ``u0``'s values)."""
    xp = array_namespace(u0)
    bc = axis_conditions(bc, u0.ndim)
    if bc[0] != "dirichlet":
        if bc_value is not None:
            raise ValueError(
                f"`bc_value` is only used with bc='dirichlet', got bc={bc[0] if len(set(bc)) == 1 else bc!r}"
            )
        return _identity
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
    return DirichletHold(boundary_mask(u0), held)


def validate_common(grid: Any, bc: Any, cfl: Any, dt: Any) -> tuple[tuple[str, ...], float, float | None]:
    """Checks shared by every Hamilton-Jacobi solver; returns ``(bc per axis, cfl, dt)``."""
    check_grid(grid)
    bc = axis_conditions(bc, grid.ndim)
    cfl = check_positive(cfl, "cfl")
    if cfl > 1.0:
        raise ValueError(f"`cfl` must be in (0, 1], got {cfl!r}")
    dt = None if dt is None else check_positive(dt, "dt")
    return bc, cfl, dt


class ArrayStepper:
    """The array-API path: :func:`hjsmooth.solvers.runge_kutta.rk_step` on the operator's ``rhs``,
    any backend, any operator.  It keeps the time of its state (the march calls it in order)."""

    def __init__(self, case: HJCase, like: Any = None):
        self.operator, self.project = case.operator, case.project
        self.time = 0.0

    def start(self, u: Any) -> Any:
        self.time = 0.0
        return self.project(u)

    def read(self, state: Any) -> Any:
        return state

    def stable_dt(self, u: Any) -> float:
        return self.operator.stable_dt(u, self.time)

    def step(self, u: Any, h: float) -> Any:
        # a NumPy float64 scalar step would promote float32 data: use a Python float
        op = self.operator
        new = rk_step(u, float(h), op.rhs, op.method, self.project, op.cached_rhs(u), self.time)
        self.time += float(h)
        return new


def _refuse_stiff_viscosity(operator: Any, u0: Any, t: float, dt: float | None, max_steps: int) -> None:
    """Refuse, naming ``beta``, a run that the viscous step bound alone makes longer than ``max_steps``
    steps where a step ``C cfl / sum_k max |D_k u0| / h_k`` (the transport scale of the data) would
    not: a long ``t`` is the march's to refuse."""
    if operator.nu <= 0.0 or t <= 0.0:
        return
    viscous = operator.step_for_rate(0.0)
    if dt is not None:
        viscous = min(viscous, dt)
    if t / viscous <= max_steps:
        return
    xp = array_namespace(u0)
    rate = sum(float(xp.max(xp.abs(xp.diff(u0, axis=k)))) / h for k, h in enumerate(operator.spacing))
    hyperbolic = operator.method.coefficient * operator.cfl / rate if rate > 0.0 else math.inf
    if dt is not None:
        hyperbolic = min(hyperbolic, dt)
    if t / hyperbolic > max_steps:
        return
    beta = 0.5 / operator.nu
    raise ValueError(
        f"`beta`={beta:g} makes the viscous term 1/(2 beta) Laplacian u so stiff that the explicit "
        f"step is {viscous:.3g}: `t`={t:g} would take about {t / viscous:.3g} steps (without it, "
        f"about {math.ceil(t / hyperbolic)}), more than `max_steps`={max_steps}; raise `beta` or coarsen "
        f"the grid"
    )


def run_scheme(
    u0: Any,
    grid: Grid,
    t: float,
    operator: Any,
    project: Any,
    *,
    dt: float | None,
    save_at: Any,
    progress: bool | None,
    desc: str,
    max_steps: int = DEFAULT_MAX_STEPS,
    kind: str = "hj_step",
) -> tuple[Any, dict]:
    """March ``u_t = L(u)`` from ``u0`` to time ``t``; return the march result and an info dict.

    The engine (numba, CUDA or array code) is chosen here, once, by the stepper registry's
    ``kind`` row (``"hj_step"`` for the thesis' Hamiltonian, ``"hj_general_step"`` for any other)."""
    _refuse_stiff_viscosity(operator, u0, t, dt, max_steps)
    engine, stepper = build(kind, u0, HJCase(operator, project))
    result = march(
        stepper.start(u0),
        t,
        stepper.step,
        stepper.stable_dt,
        dt=dt,
        save_at=save_at,
        progress=progress,
        desc=desc,
        max_steps=max_steps,
        read=stepper.read,
    )
    bc = operator.bc
    info = {
        "scheme": operator.scheme,
        "accuracy": operator.accuracy,
        "method": operator.method.name,
        "bc": bc[0] if len(set(bc)) == 1 else bc,
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
