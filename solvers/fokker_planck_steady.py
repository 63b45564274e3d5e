"""The stationary density of the Fokker-Planck equation on a grid: ``L rho = 0``, ``grid.integrate(rho) = 1``.

``L`` is the Scharfetter-Gummel operator of :mod:`hjsmooth.solvers.scharfetter_gummel` for

    rho_t = -div(b rho) + 1/(2 beta) sum_ij d_i d_j (D_ij rho),

whose stationary density is ``exp(-2 beta f) / Z`` for ``b = -grad f`` and ``D = I``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from hjsmooth.backend import from_numpy
from hjsmooth.grid import Grid

from .fokker_planck import check_coefficients, host_float64
from .scharfetter_gummel import build_operator, link_pairs, log_rate_ratios, normalize_diffusion

__all__ = ["fokker_planck_steady_state"]


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
    potential, drift, beta = check_coefficients(grid, potential, drift, beta, bc)
    if bc == "absorbing":
        raise ValueError(
            "`bc` 'absorbing' has no normalisable steady state (mass leaks to zero); "
            "valid values are 'reflecting', 'periodic'"
        )
    like: Any = next(
        (
            a
            for a in (potential, drift, diffusion)
            if hasattr(a, "shape") and hasattr(a, "dtype") and not np.isscalar(a)
        ),
        np.zeros((), dtype=np.float64),
    )
    if not str(like.dtype).endswith(("float32", "float64")):
        like = np.zeros((), dtype=np.float64)
    f, b, diffusion = (
        host_float64(potential, "potential"),
        host_float64(drift, "drift"),
        host_float64(diffusion, "diffusion"),
    )
    diag, cross = normalize_diffusion(diffusion, grid, np.zeros((), dtype=np.float64))  # validates `diffusion`
    if (
        f is None
        and b is None
        and not any(np.any(d != 0) for d in diag)
        and not any(np.any(c != 0) for c in cross.values())
    ):
        raise ValueError(
            f"`diffusion` is zero and there is no `drift` or `potential`: nothing moves, so every "
            f"density is stationary; give a positive `diffusion` (got {diffusion!r}) or a drift"
        )
    spread = _isotropic_constant(diag, cross)
    rho: Any
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
        here, there = link_pairs(np, log_rho, direction, bc == "periodic")  # (x[P], x[P + e]) per link
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
    op = build_operator(
        grid, np.zeros((), dtype=np.float64), potential=f, drift=b, diffusion=diffusion, beta=beta, bc=bc
    )
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
