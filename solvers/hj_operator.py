"""The semi-discrete Hamilton-Jacobi operator of the thesis' Hamiltonian ``g(x).p + |p|^2 / 2``.

    L(u) = -sum_k H_hat_k(p-_k, p+_k) + nu Laplacian u,      nu = 1 / (2 beta),

with ``H_hat_k`` the numerical Hamiltonian of ``g_k(x) p_k + p_k^2 / 2`` (``g = 0`` for the
HJ equation (4.1), ``g = grad f`` for the HJB equation (4.31); see
:mod:`hjsmooth.solvers.hamiltonians`), and the time integrator and step rule that go with each
scheme and stencil.  Any other Hamiltonian has its operator in :mod:`hjsmooth.solvers.general_hj`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hjsmooth.grid import Grid

from .boundary import axis_conditions, pad_axis
from .derivatives import GHOST_WIDTH, laplacian, laplacian_stiffness, one_sided_differences
from .hamiltonians import flux_and_rate
from .runge_kutta import RK_METHODS, RKMethod

__all__ = [
    "HamiltonJacobiOperator",
    "DEFAULT_CFL",
    "DEFAULT_CFLS",
    "method_for",
    "resolve_scheme",
    "default_integrator",
    "INTEGRATORS",
]

DEFAULT_CFL = 0.5
#: Courant number per time integrator when ``cfl`` is not given: the SSP methods' forward-Euler
#: bound is monotone at 1; the hybrid scheme's four-stage method runs close to it
DEFAULT_CFLS = {"euler": DEFAULT_CFL, "ssp22": DEFAULT_CFL, "ssp33": DEFAULT_CFL, "ssp42": 0.9, "rk5": DEFAULT_CFL}
#: the names ``integrator`` accepts
INTEGRATORS = ("auto", *RK_METHODS)


def resolve_scheme(scheme: str, accuracy: str, beta: float) -> str:
    """``"auto"``: ``"hybrid"`` for a viscous problem on the three-point stencil, else ``"godunov"``."""
    if scheme != "auto":
        return scheme
    return "hybrid" if (accuracy == "first" and math.isfinite(beta)) else "godunov"


def default_integrator(scheme: str, accuracy: str) -> str:
    """The time integrator whose order matches the scheme's order in space.

    First-order monotone schemes: forward Euler (monotone for ``cfl <= 1``); the hybrid scheme,
    second order in space where it is central: Kraaijevanger's four-stage second-order SSP method
    (SSP coefficient 3); ENO2: Heun (TVD RK2); WENO5: the six-stage fifth-order Dormand-Prince
    weights (``"rk5"``), so that smooth solutions converge at fifth order at the CFL step (TVD RK3,
    ``"ssp33"``, limits WENO5 to third order there; it costs half as much per step and keeps
    the SSP property).
    """
    if scheme == "hybrid":
        return "ssp42"
    return {"first": "euler", "eno2": "ssp22", "weno5": "rk5"}[accuracy]


def method_for(scheme: str, accuracy: str, integrator: str = "auto") -> RKMethod:
    """The time integrator of a (scheme, accuracy) pair: ``integrator``, or for ``"auto"`` the
    :func:`default_integrator`."""
    return RK_METHODS[default_integrator(scheme, accuracy) if integrator == "auto" else integrator]


class HamiltonJacobiOperator:
    """The semi-discrete right-hand side ``L(u) = -sum_k H_hat_k(p-_k, p+_k) + nu Laplacian u``.

    ``H_hat_k`` is the numerical Hamiltonian of ``g_k(x) p_k + p_k^2 / 2`` (see
    :mod:`hjsmooth.solvers.hamiltonians`; ``g = 0`` for the HJ equation) and
    ``nu = 1/(2 beta)``.  The operator also supplies the CFL-limited time step

        dt = C cfl / (sum_k rate_k / h_k + 2 nu (s/4) sum_k 1/h_k^2),

    ``rate_k = max (dH_hat/dp- - dH_hat/dp+)`` (``max |H_p|`` of the axis, from the actual
    slopes of the current state), ``s`` the stiffness of the Laplacian stencil (4 for three
    points, so the viscous part is ``(1/beta) sum_k 1/h_k^2``) and ``C`` the step coefficient
    of the time integrator (:func:`method_for`), recomputed at every step.  With
    ``cfl <= 1`` a first-order forward-Euler step is monotone.

    Parameters
    ----------
    grid : Grid
    scheme, accuracy : str
        As in :func:`hjsmooth.solvers.hj.solve_hj`.
    bc : tuple of str
        The boundary condition of every axis.
    beta : float
        Inverse temperature; ``inf`` for no viscosity.
    cfl : float
        Courant number.
    shift : sequence of arrays or None
        ``g_k`` per axis, each of the grid's shape, or ``None``.
    horizon : float
        Returned as the step when nothing moves (constant data, no viscosity).
    method : RKMethod, optional
        The time integrator (default: :func:`method_for` the scheme and stencil).
    """

    def __init__(
        self,
        grid: Grid,
        scheme: str,
        accuracy: str,
        bc: str | tuple[str, ...],
        beta: float,
        cfl: float,
        shift: Sequence[Any] | None = None,
        horizon: float = 1.0,
        method: RKMethod | None = None,
    ):
        self.spacing = tuple(float(h) for h in grid.spacing)
        self.scheme = scheme
        self.accuracy = accuracy
        self.bc = axis_conditions(bc, grid.ndim)
        self.width = GHOST_WIDTH[accuracy]
        self.nu = 0.0 if math.isinf(beta) else 0.5 / beta
        self.cfl = cfl
        self.shift = None if shift is None else tuple(shift)
        self.horizon = horizon
        self.method = method_for(scheme, accuracy) if method is None else method
        self.peclet_slopes = tuple(2.0 * self.nu / h for h in self.spacing)
        self.viscous_rate = 2.0 * self.nu * laplacian_stiffness(accuracy) / 4.0 * sum(1.0 / h**2 for h in self.spacing)
        self._cached_state: Any = None
        self._cached_rhs: Any = None

    def evaluate(self, u: Any, t: float = 0.0) -> tuple[Any, float]:
        """Return ``(L(u), sum_k rate_k / h_k)`` (the rate as a Python float)."""
        padded = [pad_axis(u, axis, self.width, self.bc[axis]) for axis in range(u.ndim)]
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

    def rhs(self, u: Any, t: float = 0.0) -> Any:
        """``L(u)``."""
        return self.evaluate(u, t)[0]

    def stable_dt(self, u: Any, t: float = 0.0) -> float:
        """The CFL step at state ``u`` (and cache ``L(u)`` for the step that follows)."""
        rhs, rate = self.evaluate(u, t)
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
