r"""The complexity of the spherical p-spin glass: Lemma 2.2 of the thesis (Auffinger, Ben Arous and Cerny 2013).

The expected number of critical points of index ``k`` with energy below ``N u`` grows like
:math:`e^{N \Theta_k(u)}`, and of all critical points like :math:`e^{N \Theta(u)}` ((2.9), (2.10)):

.. math::

    \Theta(u) = \begin{cases}
        \tfrac12 \log(p-1) - \tfrac{p-2}{4(p-1)} u^2 - I_1(u) & u \le -E_\infty \\
        \tfrac12 \log(p-1) - \tfrac{p-2}{4(p-1)} u^2 & -E_\infty \le u \le 0 \\
        \tfrac12 \log(p-1) & u \ge 0
    \end{cases}  \qquad (2.11)

    \Theta_k(u) = \begin{cases}
        \tfrac12 \log(p-1) - \tfrac{p-2}{4(p-1)} u^2 - (k+1) I_1(u) & u \le -E_\infty \\
        \tfrac12 \log(p-1) - \tfrac{p-2}{p} & u \ge -E_\infty
    \end{cases}  \qquad (2.12)

with the threshold :math:`E_\infty = 2\sqrt{(p-1)/p}` and the rate function

.. math:: I_1(u) = \frac{2}{E_\infty^2} \int_u^{-E_\infty} \sqrt{z^2 - E_\infty^2}\, dz
          = -\frac{u}{E_\infty^2}\sqrt{u^2 - E_\infty^2} - \log\!\big(-u + \sqrt{u^2 - E_\infty^2}\big) + \log E_\infty.

:math:`-E_0`, the zero of :math:`\Theta_0`, is the ground-state energy per spin as ``N -> inf``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hjsmooth.validation import as_real_array, check_count

__all__ = ["threshold_energy", "ground_state_energy", "rate_function", "complexity"]


def _order(p: Any) -> int:
    return check_count(p, "p", minimum=2)


def threshold_energy(p: int) -> float:
    r"""The threshold :math:`E_\infty = 2\sqrt{(p-1)/p}` (energy per spin): below :math:`-E_\infty` critical points
    of bounded index are exponentially rare, above it they have every index (Lemma 2.2, Figure 2.1)."""
    p = _order(p)
    return 2.0 * math.sqrt((p - 1) / p)


def _energies(u: Any) -> tuple[np.ndarray, bool]:
    arr = as_real_array(u, "u")
    if np.isnan(arr).any():
        raise ValueError("`u` must not hold NaN")
    return arr, arr.ndim == 0


def _out(values: np.ndarray, scalar: bool) -> Any:
    return float(values) if scalar else values


def _rate(u: np.ndarray, e_inf: float) -> np.ndarray:
    """:math:`I_1(u)` for ``u <= -E_inf`` (exact zero at ``-E_inf``); ``-inf`` maps to ``inf``."""
    with np.errstate(over="ignore", invalid="ignore"):
        root = np.sqrt(np.maximum(u * u - e_inf * e_inf, 0.0))
        out = -u / e_inf**2 * root - np.log(-u + root) + math.log(e_inf)
    return np.where(np.isneginf(u), np.inf, np.maximum(out, 0.0))


def rate_function(u: Any, p: int) -> Any:
    r"""The rate function :math:`I_1(u)` of Lemma 2.2 for :math:`u \le -E_\infty` (the large-deviation cost, per
    spin, of one eigenvalue of the Hessian leaving the semicircle), in closed form.

    Non-negative, decreasing, 0 at :math:`u = -E_\infty`.  ``u`` may be a number or an array (the result has its
    shape); values above :math:`-E_\infty` raise ``ValueError``: the defining integral is not real there.
    """
    p = _order(p)
    arr, scalar = _energies(u)
    e_inf = threshold_energy(p)
    if np.any(arr > -e_inf):
        bad = float(np.max(arr))
        raise ValueError(
            f"`u` must be <= -E_inf = {-e_inf:.6g} for p = {p} (I_1 is defined below the threshold), got {bad!r}"
        )
    return _out(_rate(arr, e_inf), scalar)


def complexity(u: Any, p: int, k: int | None = None) -> Any:
    r"""The complexity :math:`\Theta_k(u)` of (2.12), or :math:`\Theta(u)` of (2.11) for ``k=None``.

    Parameters
    ----------
    u : float or array_like
        Energy per spin (``H / N``); ``-inf`` is allowed and gives ``-inf``.
    p : int
        Order of the interaction, ``>= 2``.
    k : int, optional
        The index of the critical points (0: local minima).  ``None``: all critical points.

    Returns
    -------
    float or numpy.ndarray
        :math:`\lim_N \frac1N \log E\,\mathrm{crt}_k(u)`, non-decreasing in ``u``, of ``u``'s shape.
    """
    p = _order(p)
    if k is not None:
        k = check_count(k, "k", minimum=0)
    arr, scalar = _energies(u)
    e_inf = threshold_energy(p)
    base = 0.5 * math.log(p - 1)
    curvature = (p - 2) / (4 * (p - 1))
    low = np.minimum(arr, -e_inf)
    with np.errstate(invalid="ignore", over="ignore"):
        below = base - curvature * low * low - (1 if k is None else k + 1) * _rate(low, e_inf)
    if k is None:
        middle = base - curvature * np.minimum(arr, 0.0) ** 2
        values = np.where(arr <= -e_inf, below, middle)
    else:
        values = np.where(arr <= -e_inf, below, base - (p - 2) / p)
    values = np.where(np.isneginf(arr), -np.inf, values)
    return _out(values.astype(np.float64), scalar)


def ground_state_energy(p: int) -> float:
    r""":math:`E_0`: :math:`-E_0` is the zero of :math:`\Theta_0` below :math:`-E_\infty` (Figure 2.1), the limit of
    :math:`\min_\sigma H(\sigma)/N` (for ``p = 2``, :math:`E_0 = E_\infty = \sqrt 2`).  Found by Brent's method on
    the closed form of (2.12); for ``p = 3``, :math:`E_0 \approx 1.6571`."""
    from scipy.optimize import brentq

    p = _order(p)
    e_inf = threshold_energy(p)
    if p == 2:
        return e_inf
    upper = e_inf + 1.0
    while complexity(-upper, p, 0) > 0:
        upper *= 2.0
    return float(brentq(lambda e: complexity(-e, p, 0), e_inf, upper, xtol=1e-14, rtol=4 * np.finfo(float).eps))
