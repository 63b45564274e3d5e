r"""The spin glass in a random field: the regime parameter (2.15) and Fyodorov's counts (Theorems 2.7, 2.8).

With :math:`\tilde H = H - h^\top\sigma`, :math:`h \sim N(0, v^2 I)` (2.14), and ``J`` the coupling of ``H``,

.. math:: B = \frac{J^2 p (p-2) - v^2}{J^2 p^2 + v^2} \in (-1, 1 - 2/p],  \qquad (2.15)

and :math:`B = 0` at the critical field :math:`v_c = J\sqrt{p(p-2)}`.  ``B > 0``: exponentially many critical
points; a band :math:`|B| = O(1/N)` around 0: polynomially many; :math:`B < 0` beyond the band: the landscape is
trivial (one minimum, one maximum).  The counts below are the thesis' large-``N`` forms; they are asymptotic
and hold for :math:`|B| N \gg 1` (the scale of ``tau``), not across :math:`B = 0` itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hjsmooth.validation import as_real_array, check_count, check_nonnegative_real, check_positive

__all__ = [
    "critical_field",
    "regime_parameter",
    "field_for_regime",
    "annealed_field",
    "expected_critical_points",
    "critical_points_per_spin",
]


def _p(p: Any) -> int:
    return check_count(p, "p", minimum=2)


def critical_field(p: int, coupling: float = 1.0) -> float:
    r"""The critical field :math:`v_c = J\sqrt{p(p-2)}` where :math:`B = 0` (section 2.3.1)."""
    p = _p(p)
    return check_positive(coupling, "coupling") * math.sqrt(p * (p - 2))


def regime_parameter(field: float, p: int, coupling: float = 1.0) -> float:
    r""":math:`B = (J^2 p(p-2) - v^2) / (J^2 p^2 + v^2)` of (2.15) for the field's standard deviation ``v = field``."""
    p = _p(p)
    v = check_nonnegative_real(field, "field")
    j2 = check_positive(coupling, "coupling") ** 2
    return (j2 * p * (p - 2) - v * v) / (j2 * p * p + v * v)


def field_for_regime(b: float, p: int, coupling: float = 1.0) -> float:
    r"""The field ``v`` with :math:`B(v) = b`: the inverse of (2.15), :math:`v = J\sqrt{(p(p-2) - b p^2)/(1 + b)}`,
    for ``-1 < b <= 1 - 2/p``."""
    p = _p(p)
    j = check_positive(coupling, "coupling")
    arr = as_real_array(b, "b")
    if arr.ndim or not (-1.0 < float(arr) <= 1.0 - 2.0 / p):
        raise ValueError(f"`b` must be a number in (-1, 1 - 2/p] = (-1, {1 - 2 / p:.6g}] for p = {p}, got {b!r}")
    value = float(arr)
    return j * math.sqrt(max(p * (p - 2) - value * p * p, 0.0) / (1.0 + value))


def annealed_field(tau: float, n: int, p: int, coupling: float = 1.0) -> float:
    r"""The field of the annealing scheme (2.19), :math:`v = v_c (1 + 2\tau/N)^{1/2}`: for ``p >> 1`` it puts
    :math:`B \approx -\tau/N` (exactly, :math:`B = -\frac{p-2}{p-1}\frac{\tau}{N} + O(N^{-2})`)."""
    n = check_count(n, "n")
    arr = as_real_array(tau, "tau")
    if arr.ndim or not 1.0 + 2.0 * float(arr) / n >= 0.0:
        raise ValueError(f"`tau` must be a number >= -n/2 = {-n / 2:g}, got {tau!r}")
    tau = float(arr)
    return critical_field(p, coupling) * math.sqrt(1.0 + 2.0 * float(tau) / n)


def expected_critical_points(b: Any, n: int, *, log: bool = False) -> Any:
    r"""The expected number of critical points of :math:`\tilde H` for large ``N``, Theorem 2.7 (2.16):

    .. math:: E\,\mathrm{crt}(\tilde H) \approx \begin{cases}
              4 N^{1/2} \sqrt{\frac{1+B}{\pi B}} \exp\!\big(\frac N2 \log\frac{1+B}{1-B}\big) & B > 0 \\
              \max\!\big(2, \frac{2N}{\sqrt\pi} \tau^{-3/2}\big), \ \tau = -BN & B < 0
              \end{cases}

    The two cases for ``B < 0`` of (2.16) (``2`` for :math:`B = -\Omega(N^{-1})` and :math:`\frac{2N}{\sqrt\pi}
    \tau^{-3/2}` in the band :math:`B = -\tau/N`) are joined by the maximum: a smooth function on the sphere has
    at least one minimum and one maximum.  Both forms diverge at ``B = 0`` (``inf`` is returned): on the scale
    :math:`|B| \lesssim 1/N` they do not apply.  ``b`` may be an array; the result has its shape.  With
    ``log=True`` the natural logarithm of the count is returned (the count overflows float64 once
    :math:`\frac N2 \log\frac{1+B}{1-B} > 709`).
    """
    n = check_count(n, "n")
    b = as_real_array(b, "b")
    if np.isnan(b).any() or np.any(b <= -1.0) or np.any(b >= 1.0):
        raise ValueError(f"`b` must lie in (-1, 1), got {b!r}")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        positive = (
            math.log(4.0)
            + 0.5 * math.log(n)
            + 0.5 * np.log((1.0 + b) / (math.pi * b))
            + 0.5 * n * np.log((1.0 + b) / (1.0 - b))
        )
        tau = -b * n
        band = np.maximum(math.log(2.0), math.log(2.0 * n / math.sqrt(math.pi)) - 1.5 * np.log(tau))
    out = np.where(b > 0, positive, np.where(b < 0, band, np.inf))
    if not log:
        with np.errstate(over="ignore"):
            out = np.exp(out)
    return float(out) if out.ndim == 0 else out


def critical_points_per_spin(tau: Any) -> Any:
    r"""Theorem 2.8 (2.17): :math:`\lim_N E\,\mathrm{crt}(\tilde H) / N` at :math:`B = -\tau/N`, in its two tails,

    .. math:: \frac{2}{\sqrt\pi}\, \tau^{-3/2} \quad (\tau \gg 1), \qquad
              \frac{4\, e^{|\tau|}}{\sqrt{\pi|\tau|}} \quad (\tau \ll -1);

    the first form is used for ``tau > 0``, the second for ``tau < 0`` (``inf`` at 0); near ``|tau| ~ 1`` neither
    tail is accurate.  The second is the ``N -> inf`` limit of the ``B > 0`` case of (2.16) divided by ``N``.
    """
    tau = as_real_array(tau, "tau")
    if np.isnan(tau).any():
        raise ValueError("`tau` must not hold NaN")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = np.where(
            tau > 0,
            2.0 / math.sqrt(math.pi) * np.abs(tau) ** -1.5,
            4.0 * np.exp(np.abs(tau)) / np.sqrt(math.pi * np.abs(tau)),
        )
    out = np.where(tau == 0, np.inf, out)
    return float(out) if out.ndim == 0 else out
