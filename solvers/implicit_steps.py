"""Implicit steps of a linear system ``rho' = L rho`` with a sparse ``L`` (the Fokker-Planck generator).

``L`` is the matrix of :meth:`hjsmooth.solvers.scharfetter_gummel.FokkerPlanckOperator.to_sparse`:
its off-diagonal entries (the rates) are non-negative and each column sums to ``-a_j``, the
rate at which mass leaves through absorbing walls (0 elsewhere), so ``sum(rho)`` changes by
``-a^T rho`` and ``I - c dt L`` is a column-diagonally dominant M-matrix for every ``dt``.

* :class:`BackwardEuler`: ``(I - dt L) rho_1 = rho_0``; first order, positive for every ``dt``.
* :class:`TRBDF2`: the L-stable second-order TR-BDF2 of Bank et al. (1985), two solves with one
  factorisation; positive only for ``dt`` up to a few times the explicit bound.
* :class:`AdaptiveTRBDF2`: TR-BDF2 under error control, with the embedded estimate of Hosea and
  Shampine (1996), filtered through the factorised matrix, and a positivity check; it supplies
  the ``attempt`` and first step of :func:`hjsmooth.solvers.stepping.march_adaptive`.

Every solve is rescaled onto its exact discrete mass balance (see :meth:`BackwardEuler._solve`),
so mass is conserved to rounding whatever ``dt`` is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["BackwardEuler", "TRBDF2", "AdaptiveTRBDF2", "NEGATIVE_ROUNDING"]

#: entries of a new density down to ``-NEGATIVE_ROUNDING * max(rho)`` are rounding and are set to
#: zero (the density is rescaled to its mass); an entry below that makes the step be rejected
NEGATIVE_ROUNDING = 16 * float(np.finfo(np.float64).eps)


class BackwardEuler:
    """``rho <- (I - dt L)^{-1} rho`` with one sparse LU factorisation per distinct ``dt``.

    Mass: summing ``(I - c dt L) x = b`` over the nodes gives the exact balance
    ``sum(x) + c dt a^T x = sum(b)`` (``a`` the absorption rates; the columns of ``L`` sum to
    ``-a``).  For large ``dt`` the matrix is nearly singular along the steady state, which is
    the mass direction, so the LU solution carries a mass error of order ``eps dt |L|``
    (``1e-4`` at ``dt = 1e8``) while its shape is accurate.  Every solve is therefore rescaled
    so that the balance holds to rounding (:meth:`_solve`); the factor differs from 1 by
    that rounding error only, and a rescaling keeps the sign of every entry.
    """

    #: ``c`` of the factorised matrix ``I - c dt L``
    implicit_weight = 1.0

    def __init__(self, generator: sp.csr_matrix, absorption: np.ndarray | None = None):
        self.generator = generator
        self.absorption = None if absorption is None else np.asarray(absorption, dtype=np.float64).ravel()
        self.identity = sp.identity(generator.shape[0], format="csr")
        self.factors: dict[float, Any] = {}

    def _solver(self, dt: float) -> Any:
        lu = self.factors.get(dt)
        if lu is None:
            if len(self.factors) > 8:
                self.factors.clear()
            try:  # a column-diagonally dominant M-matrix: no pivoting needed, so keep the symmetric
                # fill-reducing order of the (structurally symmetric) stencil
                lu = spla.splu(
                    (self.identity - (self.implicit_weight * dt) * self.generator).tocsc(),
                    permc_spec="MMD_AT_PLUS_A",
                    diag_pivot_thresh=0.0,
                    options={"SymmetricMode": True},
                )
            except RuntimeError as err:  # "Factor is exactly singular": the identity was lost to rounding
                rate = float(np.abs(self.generator.diagonal()).max())
                raise FloatingPointError(
                    f"`dt`={dt:g} is too large for this operator: dt times its largest rate ({rate:.3g}) makes "
                    f"I - dt L singular in float64 ({err}); use a smaller `dt`, or fokker_planck_steady_state "
                    f"for the long-time limit"
                ) from None
            self.factors[dt] = lu
        return lu

    def _leaving(self, rho: np.ndarray) -> float:
        """``a^T rho``: the rate at which mass leaves through absorbing walls."""
        return 0.0 if self.absorption is None else float(self.absorption @ rho)

    def _solve(self, dt: float, rhs: np.ndarray, rhs_mass: float) -> np.ndarray:
        """``x = (I - c dt L)^{-1} rhs``, rescaled so that ``sum(x) + c dt a^T x = rhs_mass`` exactly."""
        x = self._solver(dt).solve(rhs)
        balance = float(np.sum(x)) + self.implicit_weight * dt * self._leaving(x)
        if balance > 0.0 and rhs_mass > 0.0:
            x *= rhs_mass / balance
        return x

    def step(self, rho: np.ndarray, dt: float) -> np.ndarray:
        return self._solve(dt, rho, float(np.sum(rho)))


class TRBDF2(BackwardEuler):
    """TR-BDF2 (Bank et al. 1985) with ``g = 2 - sqrt 2``: one step of ``rho' = L rho`` is

        (I - c dt L) rho_g = (I + c dt L) rho                       trapezoid to t + g dt
        (I - c dt L) rho_1 = (rho_g - (1 - g)^2 rho) / (g (2 - g))  BDF2 to t + dt

    with ``c = g / 2 = (1 - g) / (2 - g) = 1 - 1/sqrt 2``, so both stages use one LU.  The
    right-hand weights sum to one and ``1^T L = -a^T``, so the mass of each right-hand side
    is known exactly (``sum(rho) - c dt a^T rho`` for the first stage) and each stage is
    solved with :meth:`BackwardEuler._solve`, which keeps the balance to rounding.
    """

    implicit_weight = 1.0 - 1.0 / math.sqrt(2.0)
    _g = 2.0 - math.sqrt(2.0)
    _new_weight = 1.0 / (_g * (2.0 - _g))
    _old_weight = (1.0 - _g) ** 2 / (_g * (2.0 - _g))

    def stages(self, rho: np.ndarray, dt: float, slope: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rho_g, rho_1)``: the trapezoidal stage and the step; ``slope`` is ``L rho`` if known."""
        c_dt = self.implicit_weight * dt
        mass = float(np.sum(rho))
        slope = self.generator @ rho if slope is None else slope
        stage = self._solve(dt, rho + c_dt * slope, mass - c_dt * self._leaving(rho))
        stage_mass = float(np.sum(stage))
        new = self._solve(
            dt,
            self._new_weight * stage - self._old_weight * rho,
            self._new_weight * stage_mass - self._old_weight * mass,
        )
        return stage, new

    def step(self, rho: np.ndarray, dt: float) -> np.ndarray:
        return self.stages(rho, dt)[1]


class AdaptiveTRBDF2:
    """TR-BDF2 steps under error control and a positivity check, for :func:`~hjsmooth.solvers.stepping.march_adaptive`.

    Written as a Runge-Kutta method, a TR-BDF2 step is ``rho_1 = rho + dt (w f_0 + w f_g + d f_1)``
    with ``f = L rho`` at the start, the stage and the end, ``w = sqrt(2) / 4`` and ``d = c``;
    the same three slopes give the third-order ``rho + dt ((1 - w)/3 f_0 + (3w + 1)/3 f_g + d/3 f_1)``
    (Hosea and Shampine 1996), so the local error of the step is estimated by

        e = dt ((1 - 4w)/3 f_0 + 1/3 f_g - 2d/3 f_1) = (dt / 3) ((1 - sqrt 2) f_0 + f_g - (2 - sqrt 2) f_1),

    ``C dt^3 rho'''`` to leading order.  For stiff components (``dt |lambda| >> 1``) that raw
    difference of slopes is far larger than the error the L-stable step makes, so it is
    filtered through the factorised matrix, ``e <- (I - c dt L)^{-1} e`` (Shampine's device; one
    more triangular solve), which leaves it asymptotically unchanged where ``dt |lambda|`` is
    small.  A step is accepted when

        max_i |e_i| / (atol + rtol max(|rho_i|, |rho_1,i|)) <= 1

    and when ``rho_1`` has no entry below ``-NEGATIVE_ROUNDING max(rho_1)`` (rounding); entries
    between that and zero are set to zero and ``rho_1`` is rescaled to its mass.  With
    ``error_control=False`` only the positivity check decides (the error returned is 0).

    Parameters
    ----------
    scheme : TRBDF2
        The stepper (generator, absorption, factorisations).
    rtol, atol : float
        Relative and absolute tolerances of the local error.
    error_control : bool
        Whether the error estimate decides acceptance.
    """

    order = 2  # the local error is O(dt^3)

    def __init__(self, scheme: TRBDF2, rtol: float, atol: float, error_control: bool = True):
        self.scheme, self.rtol, self.atol, self.error_control = scheme, rtol, atol, error_control
        self._slope_of: tuple[Any, np.ndarray] | None = None
        self.rejected_negative = 0

    def _slope(self, rho: np.ndarray) -> np.ndarray:
        """``L rho``, kept for the retries of a rejected step from the same ``rho``."""
        if self._slope_of is None or self._slope_of[0] is not rho:
            self._slope_of = (rho, self.scheme.generator @ rho)
        return self._slope_of[1]

    def _weights(self, rho: np.ndarray, new: np.ndarray | None = None) -> np.ndarray:
        size = np.abs(rho) if new is None else np.maximum(np.abs(rho), np.abs(new))
        return self.atol + self.rtol * size

    def ladder(self, first: float) -> Any:
        """``round_step`` for :func:`~hjsmooth.solvers.stepping.march_adaptive`: a proposal rounded
        down to ``first * 2^k``, so that the factorisations of ``I - c dt L`` are few and reused."""

        def round_step(h: float) -> float:
            if not h > 0.0 or not math.isfinite(h):
                return h
            return first * 2.0 ** math.floor(math.log2(h / first) + 1e-9)

        return round_step

    def first_step(self, rho: np.ndarray, t: float) -> float:
        """A starting step from the size of ``rho``, ``L rho`` and ``L (L rho)`` in the error norm
        (Hairer, Norsett and Wanner's heuristic, as scipy's ``solve_ivp`` uses it)."""
        if not self.error_control:
            return t
        weights = self._weights(rho)
        slope = self._slope(rho)
        d0 = float(np.max(np.abs(rho) / weights))
        d1 = float(np.max(np.abs(slope) / weights))
        h0 = 1e-6 * t if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, t)
        d2 = float(np.max(np.abs(self.scheme.generator @ (rho + h0 * slope) - slope) / weights)) / h0
        largest = max(d1, d2)
        h1 = max(1e-6 * t, h0 * 1e-3) if largest <= 1e-15 else (0.01 / largest) ** (1.0 / (self.order + 1))
        return min(100.0 * h0, h1, t)

    def attempt(self, rho: np.ndarray, dt: float) -> tuple[np.ndarray, float]:
        """One TR-BDF2 step from ``rho``: ``(rho_1, scaled error)``, the error ``inf`` when ``rho_1``
        is negative beyond rounding (or not finite)."""
        scheme = self.scheme
        slope = self._slope(rho)
        stage, new = scheme.stages(rho, dt, slope)
        peak = float(np.max(new)) if new.size else 0.0
        lowest = float(np.min(new)) if new.size else 0.0
        if not (math.isfinite(peak) and math.isfinite(lowest)) or lowest < -NEGATIVE_ROUNDING * peak:
            self.rejected_negative += 1
            return new, math.inf
        error = 0.0
        if self.error_control:
            generator = scheme.generator
            raw = (dt / 3.0) * (
                (1.0 - math.sqrt(2.0)) * slope + generator @ stage - (2.0 - math.sqrt(2.0)) * (generator @ new)
            )
            estimate = scheme._solver(dt).solve(raw)
            error = float(np.max(np.abs(estimate) / self._weights(rho, new)))
        if lowest < 0.0:  # rounding below zero: clip, and keep the mass the solve balanced
            mass = float(np.sum(new))
            new = np.maximum(new, 0.0)
            kept = float(np.sum(new))
            if kept > 0.0:
                new *= mass / kept
        return new, error
