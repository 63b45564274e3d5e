"""Explicit strong-stability-preserving (SSP, "TVD") Runge-Kutta steps for ``u_t = L(u)``.

Every method here is written in Shu-Osher form with each stage a convex combination of the
step's initial value and one forward-Euler substep,

    u_0 = u^n,   u_k = a_k u^n + b_k (u_{k-1} + c_k dt L(u_{k-1})),   u^{n+1} = u_s,

so any property a forward-Euler step has under a step bound ``dt_FE`` (monotonicity, a
maximum principle) is kept for ``dt <= C dt_FE``, ``C`` the method's SSP coefficient.  The
stage tables are data (:class:`SSPMethod`), shared by the array code below and the fused
kernels, which read the same ``(a_k, b_k, c_k)``.  ``project`` is applied after every stage;
the solvers use it to hold Dirichlet boundary values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SSPMethod", "SSP_METHODS", "ssp_step", "forward_euler", "tvd_rk2", "tvd_rk3", "integrator_for"]

Rhs = Callable[[Any], Any]
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


SSP_METHODS = {
    "euler": SSPMethod("euler", 1, 1.0, ((0.0, 1.0, 1.0),)),
    "ssp22": SSPMethod("ssp22", 2, 1.0, ((0.0, 1.0, 1.0), (0.5, 0.5, 1.0))),
    # Kraaijevanger's optimal four-stage second-order method: three Euler substeps of dt/3,
    # then a fourth averaged with u^n; C = 3, i.e. 4/3 evaluations per Euler bound of time
    "ssp42": SSPMethod("ssp42", 2, 3.0, ((0.0, 1.0, 1 / 3), (0.0, 1.0, 1 / 3), (0.0, 1.0, 1 / 3),
                                         (0.25, 0.75, 1 / 3))),
    "ssp33": SSPMethod("ssp33", 3, 1.0, ((0.0, 1.0, 1.0), (0.75, 0.25, 1.0), (1 / 3, 2 / 3, 1.0))),
}


def _identity(u: Any) -> Any:
    return u


def ssp_step(u: Any, dt: float, rhs: Rhs, method: SSPMethod, project: Project = _identity,
             rhs_u: Any | None = None) -> Any:
    """One step of ``method`` from ``u``; ``rhs_u`` is ``L(u)`` when the caller already has it."""
    current = u
    for k, (a, b, c) in enumerate(method.stages):
        lu = rhs_u if (k == 0 and rhs_u is not None) else rhs(current)
        euler = current + (c * dt) * lu
        if a != 0.0:
            euler = a * u + b * euler
        elif b != 1.0:
            euler = b * euler
        current = project(euler)
    return current


def forward_euler(u: Any, dt: float, rhs: Rhs, project: Project = _identity, rhs_u: Any | None = None) -> Any:
    """``u + dt L(u)``."""
    return ssp_step(u, dt, rhs, SSP_METHODS["euler"], project, rhs_u)


def tvd_rk2(u: Any, dt: float, rhs: Rhs, project: Project = _identity, rhs_u: Any | None = None) -> Any:
    """Heun's method: ``u1 = u + dt L(u)``, ``u_new = u/2 + (u1 + dt L(u1))/2`` (second order)."""
    return ssp_step(u, dt, rhs, SSP_METHODS["ssp22"], project, rhs_u)


def tvd_rk3(u: Any, dt: float, rhs: Rhs, project: Project = _identity, rhs_u: Any | None = None) -> Any:
    """Shu-Osher third-order TVD Runge-Kutta: ``u1 = u + dt L(u)``,
    ``u2 = 3/4 u + 1/4 (u1 + dt L(u1))``, ``u_new = 1/3 u + 2/3 (u2 + dt L(u2))``."""
    return ssp_step(u, dt, rhs, SSP_METHODS["ssp33"], project, rhs_u)


_BY_ACCURACY = {"first": "euler", "eno2": "ssp22", "weno5": "ssp33"}


def integrator_for(accuracy: str) -> Callable[..., Any]:
    """The time integrator matching a spatial accuracy: Euler, TVD RK2 or TVD RK3."""
    return {"first": forward_euler, "eno2": tvd_rk2, "weno5": tvd_rk3}[accuracy]
