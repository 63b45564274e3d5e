"""Numerical Hamiltonians: for the thesis' ``H(x, p) = sum_k (g_k(x) p_k + p_k^2 / 2)``, and for any ``H``.

The thesis' Hamiltonian
-----------------------

With ``g = 0`` this is the Hamilton-Jacobi Hamiltonian ``|p|^2 / 2`` of (4.1); with
``g = grad f`` it is the Hamiltonian of the controlled HJB equation (4.31) in reversed
time.  ``H`` is separable and convex in each ``p_k``, and completing the square,

    g p + p^2 / 2 = (p + g)^2 / 2 - g^2 / 2,

shows that each axis' Hamiltonian is the quadratic one of the *shifted* slope
``q = p + g`` (its minimiser is ``p = -g``) minus a constant.  So every flux below is
the flux of ``q^2 / 2`` evaluated at ``q- = p- + g``, ``q+ = p+ + g``, minus ``g^2 / 2``:

``"godunov"``
    ``1/2 max(max(q-, 0)^2, min(q+, 0)^2) - g^2/2`` (the exact Riemann solution for a
    convex Hamiltonian: upwinding by the sign of ``H_p = p + g``).
``"lax_friedrichs"``
    ``1/2 ((q- + q+)/2)^2 - alpha_k/2 (q+ - q-) - g^2/2`` with the *global*
    ``alpha_k = max |q|`` over the grid and both sides, which keeps it monotone.
``"engquist_osher"``
    ``1/2 (max(q-, 0)^2 + min(q+, 0)^2) - g^2/2``.
``"hybrid"``
    ``1/2 ((q- + q+)/2)^2 - theta/2 (q+ - q-) - g^2/2`` with the *local* dissipation
    ``theta = max(0, max(|q-|, |q+|) - 2 nu / h_k)``: central differences (second order)
    wherever the cell Peclet number ``max |q| h_k / (2 nu)`` is at most one, local
    Lax-Friedrichs beyond (Spalding's hybrid differencing).  With the viscous term
    ``nu (p+ - p-) / h`` of the equation added and ``theta`` held fixed, the three-point
    update is nondecreasing in both neighbours, and its CFL rate is the largest ``theta``.
    Without viscosity it is local Lax-Friedrichs.

For a first-order update ``u - dt * H_hat(p-, p+)`` each flux is nondecreasing in
``p-`` and nonincreasing in ``p+``; the scheme is monotone when
``dt * sum_k rate_k / h_k <= 1`` with ``rate_k = max (dH_hat/dp- - dH_hat/dp+)``,
the quantity :func:`flux_and_rate` returns.

Any Hamiltonian
---------------
For a general ``H(x, p)`` (:mod:`hjsmooth.solvers.general_hj`) the numerical Hamiltonian of the
one-sided slope vectors ``p-``, ``p+`` at a node is one of

Lax-Friedrichs (:func:`lax_friedrichs_flux`)
    ``H(x, (p- + p+)/2) - sum_k alpha_k (p+_k - p-_k) / 2`` with ``alpha_k >= |dH/dp_k|`` over a
    box of slopes: the box of all slopes on the grid (``"lax_friedrichs"``, global), the node's
    own interval along axis ``k`` and the global one along the others (``"local_lax_friedrichs"``),
    or the node's own intervals along every axis (``"local_local_lax_friedrichs"``).  It is
    nondecreasing in every ``p-_k`` and nonincreasing in every ``p+_k``, i.e. monotone under the
    step ``dt sum_k alpha_k / h_k <= 1``, for any ``H``.
Godunov (:func:`godunov_slopes`)
    ``H(x, q)`` with ``q_k = p*_k + max(p-_k - p*_k, 0)`` or ``p*_k + min(p+_k - p*_k, 0)``,
    whichever lies farther from ``p*_k``, for a Hamiltonian that does not decrease as any
    ``|p_k - p*_k|`` grows (``p*`` its minimiser): convex separable ``H`` and convex functions of a
    norm of ``p - p*`` with per-axis weights (``F(x) |p|`` of the eikonal equation, ``|p|^2/2``...).
    For these it is the exact Godunov flux ``ext_{p_1} .. ext_{p_d} H`` over the intervals between
    the one-sided slopes (minimum where ``p-_k <= p+_k``, maximum where not), monotone and
    upwind, and it adds no dissipation where the solution is smooth.
"""

from __future__ import annotations

from typing import Any

from hjsmooth.backend import array_namespace

__all__ = ["SCHEMES", "GENERAL_SCHEMES", "flux_and_rate", "three_point_rate", "lax_friedrichs_flux", "godunov_slopes"]

#: the numerical Hamiltonians of the thesis' Hamiltonian
SCHEMES = ("godunov", "lax_friedrichs", "engquist_osher", "hybrid")
#: the numerical Hamiltonians of a general Hamiltonian (Godunov only where ``H`` is declared convex)
GENERAL_SCHEMES = ("lax_friedrichs", "local_lax_friedrichs", "local_local_lax_friedrichs", "godunov")


def _positive_part(xp: Any, q: Any) -> Any:
    """``max(q, 0)``, computed as ``(q + |q|) / 2`` (exact in floating point, and cheaper
    than a clip with a scalar bound on every backend)."""
    return 0.5 * (q + xp.abs(q))


def _negative_part(xp: Any, q: Any) -> Any:
    """``min(q, 0)`` as ``(q - |q|) / 2`` (exact)."""
    return 0.5 * (q - xp.abs(q))


def flux_and_rate(
    p_minus: Any, p_plus: Any, scheme: str, shift: Any | None = None, peclet_slope: float = 0.0
) -> tuple[Any, Any]:
    """Numerical Hamiltonian of one axis and its monotonicity rate.

    Parameters
    ----------
    p_minus, p_plus : array
        Left- and right-biased slopes along the axis.
    scheme : {"godunov", "lax_friedrichs", "engquist_osher"}
        The numerical Hamiltonian (see the module docstring).
    shift : array or None
        ``g_k(x)``, the advection velocity along the axis (``None`` for ``g = 0``).
    peclet_slope : float
        ``2 nu / h_k``, the slope up to which ``"hybrid"`` adds no dissipation.

    Returns
    -------
    flux : array
        ``H_hat(p-, p+)`` at every node.
    rate : 0-d array
        ``max over the grid of dH_hat/dp- - dH_hat/dp+`` (the wave speed that the
        time step must resolve).
    """
    xp = array_namespace(p_minus)
    if shift is None:
        q_minus, q_plus = p_minus, p_plus
    else:
        q_minus, q_plus = p_minus + shift, p_plus + shift
    if scheme == "godunov":
        left, right = _positive_part(xp, q_minus), _negative_part(xp, q_plus)
        flux = 0.5 * xp.maximum(left * left, right * right)
        rate = xp.max(xp.maximum(left, -right))
    elif scheme == "engquist_osher":
        left, right = _positive_part(xp, q_minus), _negative_part(xp, q_plus)
        flux = 0.5 * (left * left + right * right)
        rate = xp.max(left - right)
    elif scheme == "lax_friedrichs":
        alpha = xp.maximum(xp.max(xp.abs(q_minus)), xp.max(xp.abs(q_plus)))
        mean = 0.5 * (q_minus + q_plus)
        flux = 0.5 * mean * mean - 0.5 * alpha * (q_plus - q_minus)
        rate = alpha
    elif scheme == "hybrid":
        steepest = xp.maximum(xp.abs(q_minus), xp.abs(q_plus))
        theta = _positive_part(xp, steepest - peclet_slope)
        mean = 0.5 * (q_minus + q_plus)
        flux = 0.5 * mean * mean - 0.5 * theta * (q_plus - q_minus)
        rate = xp.max(theta)
    else:
        raise ValueError(f"unknown `scheme` {scheme!r}; valid values are {', '.join(map(repr, SCHEMES))}")
    if shift is not None:
        flux = flux - 0.5 * shift * shift
    return flux, rate


def three_point_rate(scheme: str, slope: Any, peclet_slope: Any) -> Any:
    """An axis' CFL rate of the three-point scheme from the largest ``|p|`` along it, ``slope``.

    Godunov and Lax-Friedrichs: ``slope`` (exact); hybrid: ``max(slope - 2 nu / h, 0)`` (exact, a NaN
    carried); Engquist-Osher: ``2 slope`` (a bound; its exact rate ``max(max(p-,0) - min(p+,0))``
    needs both slopes of every node).  The fused kernels (numba, CUDA) find ``slope`` in one
    reduction and take the rate from here; the array code forms the same rates from every node in
    :func:`flux_and_rate`.
    """
    if scheme == "hybrid":
        excess = slope - peclet_slope
        return excess if (excess > 0 or excess != excess) else excess - excess
    if scheme == "engquist_osher":
        return slope + slope
    return slope


def lax_friedrichs_flux(h_mean: Any, alphas: tuple[Any, ...], p_minus: tuple[Any, ...], p_plus: tuple[Any, ...]) -> Any:
    """``H(x, (p- + p+)/2) - sum_k alpha_k (p+_k - p-_k) / 2``, given ``h_mean = H(x, (p- + p+)/2)``.

    ``alphas`` are per-axis bounds of ``|dH/dp_k|`` (arrays of the grid's shape or scalars)."""
    flux = h_mean
    for alpha, minus, plus in zip(alphas, p_minus, p_plus):
        flux = flux - 0.5 * alpha * (plus - minus)
    return flux


def godunov_slopes(p_minus: tuple[Any, ...], p_plus: tuple[Any, ...], minimizer: tuple[Any, ...]) -> tuple[Any, ...]:
    """The slopes ``q`` at which Godunov's flux evaluates ``H`` (see the module docstring).

    ``q_k = p*_k + max(p-_k - p*_k, 0)`` where that lies at least as far from ``p*_k`` as
    ``p*_k + min(p+_k - p*_k, 0)``, else the latter; ``minimizer`` holds ``p*_k`` per axis."""
    xp = array_namespace(p_minus[0])
    out = []
    for minus, plus, centre in zip(p_minus, p_plus, minimizer):
        left = _positive_part(xp, minus - centre)
        right = _negative_part(xp, plus - centre)
        out.append(centre + xp.where(left >= -right, left, right))
    return tuple(out)
