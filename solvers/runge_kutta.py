"""Explicit Runge-Kutta steps for ``u_t = L(u, t)``: the SSP ("TVD") methods and a fifth-order method.

The strong-stability-preserving methods are written in Shu-Osher form with each stage a convex
combination of the step's initial value and one forward-Euler substep,

    u_0 = u^n,   u_k = a_k u^n + b_k (u_{k-1} + c_k dt L(u_{k-1})),   u^{n+1} = u_s,

so any property a forward-Euler step has under a step bound ``dt_FE`` (monotonicity, a
maximum principle) is kept for ``dt <= C dt_FE``, ``C`` the method's SSP coefficient
(:class:`SSPMethod`).  No explicit SSP method exceeds order four, so the fifth-order time
integrator that matches WENO5's fifth order in space is not one of them: :data:`RK5` takes the
Dormand-Prince weights (six stages, Butcher form ``u_k = u^n + dt sum_j a_kj L(u_j)``,
``u^{n+1} = u^n + dt sum_k b_k L(u_k)``; :class:`ButcherMethod`).  Its stability region holds
the spectrum of linearised WENO5 up to a Courant number of 1.79 (TVD RK3: 1.43), so it runs at
the same step as the SSP methods and costs six evaluations of ``L`` where TVD RK3 costs three.

The stage tables are data, shared by the array code below and the fused kernels, which read the
same coefficients.  ``project`` is applied after every stage; the solvers use it to hold
Dirichlet boundary values.  ``L`` is called as ``rhs(u, t)`` at the stage times ``t + tau_k dt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SSPMethod", "ButcherMethod", "RKMethod", "SSP_METHODS", "RK5", "RK_METHODS", "rk_step", "butcher_form"]

Rhs = Callable[[Any, float], Any]
Project = Callable[[Any], Any]


@dataclass(frozen=True)
class SSPMethod:
    """An explicit SSP Runge-Kutta method in Shu-Osher form.

    Attributes
    ----------
    name : str
    order : int
        Order of accuracy in time.
    coefficient : float
        SSP coefficient ``C``: the step may be ``C`` times the forward-Euler bound.
    stages : tuple of (a, b, c)
        ``u_k = a u^n + b (u_{k-1} + c dt L(u_{k-1}))``.
    """

    name: str
    order: int
    coefficient: float
    stages: tuple[tuple[float, float, float], ...]

    @property
    def cost_per_unit_time(self) -> float:
        """Evaluations of ``L`` per forward-Euler step bound of time: ``stages / C``."""
        return len(self.stages) / self.coefficient

    @property
    def stage_count(self) -> int:
        """Evaluations of ``L`` per step."""
        return len(self.stages)

    @property
    def stage_times(self) -> tuple[float, ...]:
        """``tau_k``: stage ``k`` evaluates ``L`` at time ``t + tau_k dt`` (``tau_0 = 0``)."""
        times = [0.0]
        for _, b, c in self.stages[:-1]:
            times.append(b * (times[-1] + c))
        return tuple(times)


@dataclass(frozen=True)
class ButcherMethod:
    """An explicit Runge-Kutta method in Butcher form.

    Attributes
    ----------
    name : str
    order : int
    coefficient : float
        The step as a multiple of the forward-Euler (CFL) bound that the solvers allow it.
    a : tuple of tuples
        ``a[k]`` holds ``a_kj`` for ``j < k`` (``a[0] = ()``).
    b : tuple of float
        The weights of the stage derivatives in the new value.
    """

    name: str
    order: int
    coefficient: float
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    @property
    def cost_per_unit_time(self) -> float:
        """Evaluations of ``L`` per forward-Euler step bound of time."""
        return len(self.b) / self.coefficient

    @property
    def stage_count(self) -> int:
        """Evaluations of ``L`` per step."""
        return len(self.b)

    @property
    def stage_times(self) -> tuple[float, ...]:
        """``c_k = sum_j a_kj``."""
        return tuple(sum(row) for row in self.a)


RKMethod = SSPMethod | ButcherMethod

SSP_METHODS = {
    "euler": SSPMethod("euler", 1, 1.0, ((0.0, 1.0, 1.0),)),
    "ssp22": SSPMethod("ssp22", 2, 1.0, ((0.0, 1.0, 1.0), (0.5, 0.5, 1.0))),
    # Kraaijevanger's optimal four-stage second-order method: three Euler substeps of dt/3,
    # then a fourth averaged with u^n; C = 3, i.e. 4/3 evaluations per Euler bound of time
    "ssp42": SSPMethod("ssp42", 2, 3.0, ((0.0, 1.0, 1 / 3), (0.0, 1.0, 1 / 3), (0.0, 1.0, 1 / 3), (0.25, 0.75, 1 / 3))),
    "ssp33": SSPMethod("ssp33", 3, 1.0, ((0.0, 1.0, 1.0), (0.75, 0.25, 1.0), (1 / 3, 2 / 3, 1.0))),
}

#: Dormand-Prince's fifth-order solution (the stages of DOPRI5 without the embedded estimate)
RK5 = ButcherMethod(
    "rk5",
    5,
    1.0,
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)

#: every time integrator by name
RK_METHODS: dict[str, RKMethod] = {**SSP_METHODS, "rk5": RK5}


def butcher_form(method: RKMethod) -> ButcherMethod:
    """``method`` in Butcher form: an SSP method's stages ``u_k = a_k u^n + b_k (u_{k-1} + c_k dt L_{k-1})``
    (``a_k + b_k = 1``) are ``u^n + dt sum_j A_kj L_j`` with ``A_k = b_k (A_{k-1} + c_k e_{k-1})``."""
    if isinstance(method, ButcherMethod):
        return method
    rows: list[tuple[float, ...]] = [()]
    previous: list[float] = []
    for _, b, c in method.stages:
        current = [b * w for w in previous] + [b * c]
        rows.append(tuple(current))
        previous = current
    return ButcherMethod(method.name, method.order, method.coefficient, a=tuple(rows[:-1]), b=rows[-1])


def _identity(u: Any) -> Any:
    return u


def rk_step(
    u: Any,
    dt: float,
    rhs: Rhs,
    method: RKMethod,
    project: Project = _identity,
    rhs_u: Any | None = None,
    t: float = 0.0,
) -> Any:
    """One step of ``method`` from ``u`` at time ``t``; ``rhs_u`` is ``L(u, t)`` when the caller already has it."""
    if isinstance(method, ButcherMethod):
        return _butcher_step(u, dt, rhs, method, project, rhs_u, t)
    current = u
    for k, ((a, b, c), tau) in enumerate(zip(method.stages, method.stage_times)):
        lu = rhs_u if (k == 0 and rhs_u is not None) else rhs(current, t + tau * dt)
        euler = current + (c * dt) * lu
        if a != 0.0:
            euler = a * u + b * euler
        elif b != 1.0:
            euler = b * euler
        current = project(euler)
    return current


def _butcher_step(
    u: Any, dt: float, rhs: Rhs, method: ButcherMethod, project: Project, rhs_u: Any | None, t: float
) -> Any:
    slopes: list[Any] = []
    for k, (row, tau) in enumerate(zip(method.a, method.stage_times)):
        stage = u
        for weight, slope in zip(row, slopes):
            if weight != 0.0:
                stage = stage + (weight * dt) * slope
        if k > 0:
            stage = project(stage)
        slopes.append(rhs_u if (k == 0 and rhs_u is not None) else rhs(stage, t + tau * dt))
    new = u
    for weight, slope in zip(method.b, slopes):
        if weight != 0.0:
            new = new + (weight * dt) * slope
    return project(new)
