"""Explicit strong-stability-preserving (TVD) Runge-Kutta steps for ``u_t = L(u)``.

Each method is a convex combination of forward Euler steps (Shu-Osher form), so any
property a forward Euler step has under the CFL bound (monotonicity, a maximum
principle) is kept under the same bound.  ``project`` is applied after every stage;
the solvers use it to hold Dirichlet boundary values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["INTEGRATORS", "forward_euler", "tvd_rk2", "tvd_rk3", "integrator_for"]

Rhs = Callable[[Any], Any]
Project = Callable[[Any], Any]


def _identity(u: Any) -> Any:
    return u


def forward_euler(u: Any, dt: float, rhs: Rhs, project: Project = _identity, rhs_u: Any | None = None) -> Any:
    """``u + dt L(u)``; ``rhs_u`` is ``L(u)`` when the caller already has it."""
    lu = rhs(u) if rhs_u is None else rhs_u
    return project(u + dt * lu)


def tvd_rk2(u: Any, dt: float, rhs: Rhs, project: Project = _identity, rhs_u: Any | None = None) -> Any:
    """Heun's method: ``u1 = u + dt L(u)``, ``u_new = (u + u1 + dt L(u1)) / 2`` (second order)."""
    u1 = forward_euler(u, dt, rhs, project, rhs_u)
    return project(0.5 * u + 0.5 * (u1 + dt * rhs(u1)))


def tvd_rk3(u: Any, dt: float, rhs: Rhs, project: Project = _identity, rhs_u: Any | None = None) -> Any:
    """Shu-Osher third-order TVD Runge-Kutta.

    ``u1 = u + dt L(u)``, ``u2 = 3/4 u + 1/4 (u1 + dt L(u1))``,
    ``u_new = 1/3 u + 2/3 (u2 + dt L(u2))``.
    """
    u1 = forward_euler(u, dt, rhs, project, rhs_u)
    u2 = project(0.75 * u + 0.25 * (u1 + dt * rhs(u1)))
    return project(u / 3.0 + (2.0 / 3.0) * (u2 + dt * rhs(u2)))


INTEGRATORS = {"first": forward_euler, "eno2": tvd_rk2, "weno5": tvd_rk3}


def integrator_for(accuracy: str) -> Callable[..., Any]:
    """The time integrator matching a spatial accuracy: Euler, TVD RK2 or TVD RK3."""
    return INTEGRATORS[accuracy]
