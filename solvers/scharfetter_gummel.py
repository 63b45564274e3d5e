"""Scharfetter-Gummel finite-volume operator of the Fokker-Planck equation.

The operator discretises

    rho_t = L rho = -div(b rho) + 1/(2 beta) sum_ij d_i d_j (D_ij rho)

on a node-centred :class:`~hjsmooth.grid.Grid`.  Every node owns the cell of volume
``h_1 ... h_d`` centred on it, so the cells tile the box ``[lower - h/2, upper + h/2]``
and the mass is ``grid.integrate(rho) = h^d sum(rho)``.

The discrete operator is a sum of *links* between lattice neighbours ``P`` and
``Q = P + e``.  A link moves mass at the rate

    T = forward * rho_P - backward * rho_Q          (from P to Q),

with ``forward, backward >= 0``, and ``(L rho)_P`` collects ``-T`` over the links leaving
``P`` and ``+T`` over the links entering it.  Whatever the coefficients, mass moves from
cell to cell and is conserved to rounding; because the rates are non-negative, ``L`` is
the transpose of a Markov generator, so forward Euler keeps ``rho >= 0`` for
``dt * max_P(total outflow rate of P) <= 1`` and backward Euler (``I - dt L``, an
M-matrix) keeps it for every ``dt``.

Axis links (``e = e_k``) carry the drift and the diagonal diffusion with the
Scharfetter-Gummel (exponential fitting) flux.  With ``c = D'_kk / (2 beta)`` and ``w = c rho``
the axis flux ``J = b_k rho - d_k (c rho) = (b_k / c) w - d_k w`` is integrated exactly
across the face for a constant ``mu = b_face / c_face``:

    J_{P+1/2} = (1/h) [ B(-z) c_P rho_P - B(z) c_Q rho_Q ],   z = h b_face / c_face,

``B(z) = z / (e^z - 1)`` the Bernoulli function, so ``forward = B(-z) c_P / h^2`` and
``backward = B(z) c_Q / h^2``.  The face drift is ``-(f_Q - f_P)/h`` for a potential
``f`` (then ``exp(-2 beta f)`` balances every link exactly when ``D = I``: it is the
discrete stationary state) and the mean ``(b_P + b_Q)/2`` for a drift field.

Mixed derivatives ``2 d_k d_j (D_kj rho)`` use the monotone seven-point stencil: with
``D_kj = D+ - D-`` (positive and negative parts)

    2 h_k h_j d_k d_j q  ~  delta^2_{e_k+e_j}(D+ rho) + delta^2_{e_k-e_j}(D- rho)
                          - delta^2_{e_k}(|D_kj| rho) - delta^2_{e_j}(|D_kj| rho),

``delta^2_e q(P) = q(P+e) - 2 q(P) + q(P-e)``: pure diffusion along the diagonal links
``e_k +- e_j`` with rates ``|D_kj| / (2 beta h_k h_j)``, while the axis diffusion is reduced to
``D'_kk = D_kk - sum_{j != k} |D_kj| h_k / h_j``.  All rates are non-negative, hence the
scheme positive, exactly when ``D'_kk >= 0`` on every axis ("diagonally dominant on the
grid", ``D_kk / h_k >= sum_j |D_kj| / h_j``).  In 2D every positive semi-definite constant
``D`` satisfies this for some spacing ratio ``h_1 / h_2``; where it fails the operator is
refused with a ``ValueError`` rather than silently losing positivity.

Boundaries (one ``bc`` for all axes):

``"reflecting"``
    no links leave the box: zero flux through the outer faces, mass conserved exactly.
``"periodic"``
    the last node of an axis links to the first one across a face of the same size, so
    the period along axis ``k`` is ``n_k h_k = upper_k - lower_k + h_k``.
``"absorbing"``
    the density is zero at the ghost nodes one spacing outside the box (Dirichlet data at
    ``lower - h`` and ``upper + h``); the flux into them is the Scharfetter-Gummel flux with
    the drift of the end node (for a potential, the one-sided difference next to the end)
    and, across diagonal links, the outflow ``|D_kj| / (2 beta h_k h_j) rho_P``.  Mass leaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import scipy.sparse as sp

from hjsmooth.backend import array_namespace, device, from_numpy, is_numpy_array, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import as_real_array, check_real

__all__ = [
    "BOUNDARY_CONDITIONS",
    "bernoulli",
    "scharfetter_gummel_rates",
    "Link",
    "FokkerPlanckOperator",
    "build_operator",
    "normalize_diffusion",
    "log_rate_ratios",
    "link_pairs",
]

BOUNDARY_CONDITIONS = ("reflecting", "periodic", "absorbing")
_SERIES_BELOW = 1e-4


def bernoulli(z: Any) -> Any:
    """The Bernoulli function ``B(z) = z / (exp(z) - 1)``, with ``B(0) = 1``, for any array.

    With ``a = |z|``: ``B(a) = a e^{-a} / (1 - e^{-a})``, evaluated as such (``e^{-a}`` correctly
    rounded) up to ``a = 700``, as ``exp(log a - a)`` beyond, where ``e^{-a}`` alone would reach the
    subnormal range and lose digits (relative error about ``eps a`` until the result underflows
    near ``a = 745``; ``B(inf) = 0``), and by the series ``1 - a/2 + a^2/12`` for ``a < 1e-4``
    (truncation error below ``1e-19``); then ``B(-a) = B(a) + a`` (``B(-inf) = inf``).  No
    overflow, no cancellation, no NaN.
    """
    xp = array_namespace(z)
    a = xp.abs(z)
    small = a < _SERIES_BELOW
    large = a > 700.0
    a_mid = xp.where(small | large, xp.ones_like(a), a)
    a_big = xp.where(large, xp.minimum(a, xp.full_like(a, 1e308)), xp.ones_like(a))
    mid_branch = a_mid * xp.exp(-a_mid) / (-xp.expm1(-a_mid))
    big_branch = xp.exp(xp.log(a_big) - a_big)  # 1 - e^{-a} = 1 here
    a_small = xp.where(small, a, xp.zeros_like(a))
    series = 1.0 - a_small / 2.0 + a_small * a_small / 12.0
    b_of_a = xp.where(small, series, xp.where(large, big_branch, mid_branch))
    return xp.where(z < 0, b_of_a + a, b_of_a)


def scharfetter_gummel_rates(velocity: Any, c_from: Any, c_to: Any, h: float) -> tuple[Any, Any]:
    """Forward and backward transfer rates of one axis link ``P -> Q = P + h e_k``.

    Solves the face problem ``J = v rho - d(c rho)`` exactly for a constant ``v / c`` on the
    face: ``J = (1/h) [B(-z) c_P rho_P - B(z) c_Q rho_Q]`` with ``z = h v / c_face`` and
    ``c_face = (c_P + c_Q) / 2``; the rates are ``J / h`` per unit density, i.e.
    ``forward = B(-z) c_P / h^2`` and ``backward = B(z) c_Q / h^2``.  Where ``c_face = 0`` the
    limit is first-order upwinding, ``forward = max(v, 0) / h``, ``backward = max(-v, 0) / h``, and
    where ``|z| > 1e3`` (the exponential part is below rounding) the same upwind flux weighted by
    ``c_P / c_face`` and ``c_Q / c_face``, which stays finite for any tiny diffusivity.

    Parameters
    ----------
    velocity : array
        Drift component ``v`` on each face.
    c_from, c_to : array
        Diffusivity ``c >= 0`` at the two ends of each face (same shape as ``velocity``).
    h : float
        Spacing along the link.
    """
    xp = array_namespace(velocity)
    c_face = 0.5 * c_from + 0.5 * c_to
    diffusive = c_face > 0
    c_safe = xp.where(diffusive, c_face, xp.ones_like(c_face))
    with np.errstate(over="ignore"):
        z = h * velocity / c_safe
    # beyond |z| = 1e3, B(|z|) is 0 and B(-|z|) = |z| to rounding: the flux is the upwind one, written
    # without z, which would overflow for a vanishing diffusivity
    exponential = diffusive & (xp.abs(z) <= 1e3)
    z = xp.where(exponential, z, xp.zeros_like(z))
    scale = c_safe / (h * h)
    zero = xp.zeros_like(velocity)
    from_weight = xp.where(diffusive, c_from / c_safe, xp.ones_like(c_safe))
    to_weight = xp.where(diffusive, c_to / c_safe, xp.ones_like(c_safe))
    forward = xp.where(exponential, bernoulli(-z) * scale * from_weight, from_weight * xp.maximum(velocity, zero) / h)
    backward = xp.where(exponential, bernoulli(z) * scale * to_weight, to_weight * xp.maximum(-velocity, zero) / h)
    return forward, backward


@dataclass(frozen=True)
class Link:
    """All links of one lattice direction ``e``: rates on the links ``P -> P + e``.

    For non-periodic boundaries the rate arrays cover the links inside the box, i.e. the
    nodes ``P`` selected by ``source`` and their neighbours ``P + e`` selected by ``target``
    (``n_k - 1`` entries along every axis with ``e_k != 0``).  For periodic boundaries they
    have the grid's shape and ``P + e`` wraps around.
    """

    direction: tuple[int, ...]
    forward: Any
    backward: Any
    source: tuple[slice, ...]
    target: tuple[slice, ...]


def _link_slices(direction: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices selecting ``P`` and ``P + e`` for every link ``P -> P + e`` inside the box."""
    src, dst = [], []
    for e in direction:
        if e == 1:
            src.append(slice(None, -1))
            dst.append(slice(1, None))
        elif e == -1:
            src.append(slice(1, None))
            dst.append(slice(None, -1))
        else:
            src.append(slice(None))
            dst.append(slice(None))
    return tuple(src), tuple(dst)


def _shift(xp: Any, x: Any, direction: Sequence[int], sign: int = 1) -> Any:
    """Periodic neighbour field: ``out[P] = x[P + sign * e]``."""
    axes = tuple(k for k, e in enumerate(direction) if e)
    shifts = tuple(-sign * direction[k] for k in axes)
    return xp.roll(x, shift=shifts, axis=axes)


def link_pairs(xp: Any, x: Any, direction: Sequence[int], periodic: bool) -> tuple[Any, Any]:
    """``(x[P], x[P + e])`` over all links of direction ``e``."""
    if periodic:
        return x, _shift(xp, x, direction)
    src, dst = _link_slices(direction)
    return x[src], x[dst]


@dataclass(frozen=True)
class FokkerPlanckOperator:
    """The assembled rates of the Scharfetter-Gummel Fokker-Planck operator ``L``.

    Build it with :func:`build_operator`.  ``apply(rho)`` returns ``L rho``, ``step(rho, dt)``
    the forward-Euler update ``rho + dt L rho`` (a plain vectorised stencil on the rates,
    no per-step precomputation), ``stable_dt`` the largest positivity-preserving explicit
    step, and ``to_sparse()`` the matrix of ``L`` (scipy, float64) for implicit solves.

    Attributes
    ----------
    grid : Grid
    bc : str
    links : tuple of Link
    absorption : array or None
        Outflow rate from each node into the absorbing exterior (``None`` unless absorbing).
    outflow : array
        Total outflow rate of each node (links and absorption); ``stable_dt = 1 / max``.
    """

    grid: Grid
    bc: str
    links: tuple[Link, ...]
    absorption: Any | None
    outflow: Any

    @property
    def stable_dt(self) -> float:
        """``1 / max_P outflow_P``: forward Euler with a smaller step keeps ``rho >= 0``."""
        worst = float(array_namespace(self.outflow).max(self.outflow))
        return math.inf if worst <= 0 else 1.0 / worst

    def apply(self, rho: Any) -> Any:
        """``L rho``: the net mass gained per unit time by each cell."""
        xp = array_namespace(rho)
        periodic = self.bc == "periodic"
        out = -self.absorption * rho if self.absorption is not None else xp.zeros_like(rho)
        for link in self.links:
            if periodic:
                flow = link.forward * rho - link.backward * _shift(xp, rho, link.direction)
                out = out - flow + _shift(xp, flow, link.direction, sign=-1)
            else:
                flow = link.forward * rho[link.source] - link.backward * rho[link.target]
                out[link.source] -= flow
                out[link.target] += flow
        return out

    def step(self, rho: Any, dt: float) -> Any:
        """One forward-Euler step ``rho + dt L rho`` (positive for ``dt <= stable_dt``), by the array
        code of :meth:`apply`; the solvers choose a fused kernel once per solve instead where one
        applies (:func:`hjsmooth.solvers.fokker_planck.explicit_stepper`)."""
        return rho + float(dt) * self.apply(rho)  # a Python float keeps float32 as float32

    def to_sparse(self) -> sp.csr_matrix:
        """The matrix of ``L`` on C-ordered nodes (scipy CSR, float64), assembled without loops over nodes."""
        shape = self.grid.shape
        index = np.arange(self.grid.size).reshape(shape)
        rows, cols, vals = [], [], []
        for link in self.links:
            fwd = np.asarray(to_numpy(link.forward), dtype=np.float64).ravel()
            bwd = np.asarray(to_numpy(link.backward), dtype=np.float64).ravel()
            if self.bc == "periodic":
                src = index.ravel()
                dst = _shift(np, index, link.direction).ravel()
            else:
                src = index[link.source].ravel()
                dst = index[link.target].ravel()
            # T = fwd rho_src - bwd rho_dst leaves src and enters dst
            rows += [dst, src, src, dst]
            cols += [src, src, dst, dst]
            vals += [fwd, -fwd, bwd, -bwd]
        if self.absorption is not None:
            all_nodes = index.ravel()
            rows.append(all_nodes)
            cols.append(all_nodes)
            vals.append(-np.asarray(to_numpy(self.absorption), dtype=np.float64).ravel())
        n = self.grid.size
        if not rows:
            return sp.csr_matrix((n, n))
        matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        return matrix.tocsr()  # duplicate entries are summed

    def astype(self, like: Any) -> FokkerPlanckOperator:
        """The same operator with its rates on ``like``'s backend, device and dtype."""

        def cast(x: Any) -> Any:
            if x is None:
                return None
            xp = array_namespace(like)
            if array_namespace(x) is xp and str(device(x)) == str(device(like)):
                return xp.astype(x, like.dtype)
            return from_numpy(np.asarray(to_numpy(x)), like)

        links = tuple(Link(k.direction, cast(k.forward), cast(k.backward), k.source, k.target) for k in self.links)
        return FokkerPlanckOperator(self.grid, self.bc, links, cast(self.absorption), self.outflow)


def normalize_diffusion(diffusion: Any, grid: Grid, like: Any) -> tuple[list[Any], dict[tuple[int, int], Any]]:
    """Turn any accepted ``diffusion`` into per-axis fields ``D_kk`` and cross fields ``D_kj`` (k < j).

    Accepted: ``None`` (identity), a positive scalar, a per-axis vector of shape ``(d,)``,
    an isotropic field of ``grid.shape``, a constant tensor ``(d, d)`` or a field of
    tensors ``(d, d, *grid.shape)``; tensors must be symmetric.  Fields come back as
    float64 arrays on ``like``'s backend and device, broadcast to ``grid.shape``.
    """
    xp = array_namespace(like)
    d = grid.ndim
    ones = xp.ones(grid.shape, dtype=xp.float64, device=device(like))
    if diffusion is None:
        return [ones] * d, {}
    if np.isscalar(diffusion) or (hasattr(diffusion, "shape") and tuple(diffusion.shape) == ()):
        value = check_real(diffusion, "diffusion")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"`diffusion` must be finite and >= 0, got {value!r}")
        return [ones * value] * d, {}
    arr = _as_float64_like(diffusion, like, "diffusion")
    shape = tuple(arr.shape)
    if not bool(xp.all(xp.isfinite(arr))):
        raise ValueError("`diffusion` must be finite everywhere")
    if shape == (d,) or shape == (d, d) or shape == (d, d, *grid.shape):
        pass
    elif shape == tuple(grid.shape):
        if float(xp.min(arr)) < 0:
            raise ValueError(f"`diffusion` must be >= 0 everywhere, got a minimum of {float(xp.min(arr))!r}")
        return [arr] * d, {}
    else:
        raise ValueError(
            f"`diffusion` must be a scalar or have shape ({d},), {tuple(grid.shape)}, ({d}, {d}) or "
            f"({d}, {d}, {', '.join(map(str, grid.shape))}), got shape {shape}"
        )
    if shape == (d,):
        if float(xp.min(arr)) < 0:
            raise ValueError(f"`diffusion` per-axis values must be >= 0, got {to_numpy(arr).tolist()!r}")
        return [ones * arr[k] for k in range(d)], {}
    asym = float(xp.max(xp.abs(arr - xp.permute_dims(arr, (1, 0, *range(2, arr.ndim))))))
    if asym > 1e-12 * max(1.0, float(xp.max(xp.abs(arr)))):
        raise ValueError(f"`diffusion` tensor must be symmetric, got |D - D^T| up to {asym:.3g}")
    diag = [ones * arr[k, k] for k in range(d)]
    if min(float(xp.min(x)) for x in diag) < 0:
        raise ValueError("`diffusion` tensor must have non-negative diagonal entries")
    cross = {(k, j): ones * arr[k, j] for k, j in combinations(range(d), 2)}
    return diag, cross


def _as_float64_like(x: Any, like: Any, name: str) -> Any:
    """``x`` (numpy, torch or CuPy) as a float64 array on ``like``'s backend and device."""
    xp = array_namespace(like)
    if (
        hasattr(x, "shape")
        and not is_numpy_array(x)
        and array_namespace(x) is xp
        and str(device(x)) == str(device(like))
        and not xp.isdtype(x.dtype, "complex floating")
    ):
        return xp.astype(x, xp.float64)
    return from_numpy(as_real_array(x, name), xp.zeros((), dtype=xp.float64, device=device(like)))


def build_operator(
    grid: Grid,
    like: Any,
    *,
    potential: Any | None = None,
    drift: Any | None = None,
    diffusion: Any | None = None,
    beta: float = 1.0,
    bc: str = "reflecting",
) -> FokkerPlanckOperator:
    """Assemble the link rates of ``L`` for ``rho_t = -div(b rho) + 1/(2 beta) sum d_i d_j (D_ij rho)``.

    Parameters
    ----------
    grid : Grid
    like : array
        Any array of the backend and device the rates should live on; the rates are
        computed in float64 there and cast to ``like.dtype``.
    potential : array of ``grid.shape``, optional
        ``f`` with ``b = -grad f`` (face drift ``-(f_Q - f_P)/h``).
    drift : array of shape ``(ndim, *grid.shape)``, optional
        ``b`` at the nodes (face drift: the mean of the two ends).
    diffusion : see :func:`normalize_diffusion`
    beta : float
        Inverse temperature, ``0 < beta < inf``.
    bc : {"reflecting", "periodic", "absorbing"}

    Arguments are assumed validated (``solve_fokker_planck`` does it); the diagonal
    dominance of ``diffusion`` on the grid is checked here (``ValueError``).
    """
    xp = array_namespace(like)
    dev = device(like)
    d = grid.ndim
    h = grid.spacing
    periodic = bc == "periodic"
    f = _as_float64_like(potential, like, "potential") if potential is not None else None
    b = _as_float64_like(drift, like, "drift") if drift is not None else None
    diag, cross = normalize_diffusion(diffusion, grid, like)
    half_over_beta = 0.5 / beta

    # axis diffusivity reduced by the mixed-derivative stencil
    reduced = _reduced_diffusivity(xp, grid, diag, cross)

    links: list[Link] = []
    outflow = xp.zeros(grid.shape, dtype=xp.float64, device=dev)
    absorption = xp.zeros(grid.shape, dtype=xp.float64, device=dev) if bc == "absorbing" else None

    with np.errstate(over="ignore", invalid="ignore"):  # overflowing rates are refused below, by name
        _add_axis_links(xp, grid, f, b, reduced, half_over_beta, periodic, links, absorption)
        for (k, j), dkj in cross.items():
            for sign, part in ((1, xp.maximum(dkj, xp.zeros_like(dkj))), (-1, xp.maximum(-dkj, xp.zeros_like(dkj)))):
                if float(xp.max(part)) == 0.0:
                    continue
                e = tuple(1 if i == k else (sign if i == j else 0) for i in range(d))
                w = part * (half_over_beta / (h[k] * h[j]))
                w_p, w_q = link_pairs(xp, w, e, periodic)
                links.append(_make_link(e, w_p, w_q, periodic))
                if absorption is not None:
                    exits = _lacks_neighbour(xp, grid.shape, e, +1, dev) + _lacks_neighbour(xp, grid.shape, e, -1, dev)
                    absorption += w * exits

        for link in links:
            if periodic:
                outflow = outflow + link.forward + _shift(xp, link.backward, link.direction, sign=-1)
            else:
                outflow[link.source] += link.forward
                outflow[link.target] += link.backward
        if absorption is not None:
            outflow = outflow + absorption
    if not bool(xp.all(xp.isfinite(outflow))):
        culprit = "potential" if f is not None else ("drift" if b is not None else "diffusion")
        raise ValueError(
            f"`{culprit}` is too large for this grid and beta: the Scharfetter-Gummel link rates overflow "
            f"(they scale like |b| / h + D / (2 beta h^2)); rescale it, refine the grid, or raise beta"
        )
    op = FokkerPlanckOperator(grid, bc, tuple(links), absorption, outflow)
    return op.astype(like) if like.dtype != xp.float64 else op


def _axis_face_terms(xp: Any, f: Any, b: Any, c: Any, k: int, h: float, periodic: bool) -> tuple[Any, Any, Any]:
    """Face drift ``v`` and the diffusivities ``c_P``, ``c_Q`` at the two ends of every link along axis ``k``.

    ``v = -(f_Q - f_P) / h`` for a potential, ``(b_P + b_Q) / 2`` for a drift field, else 0.
    """
    e = tuple(1 if i == k else 0 for i in range(c.ndim))
    c_p, c_q = link_pairs(xp, c, e, periodic)
    if f is not None:
        f_p, f_q = link_pairs(xp, f, e, periodic)
        v = -(f_q - f_p) / h
    elif b is not None:
        b_p, b_q = link_pairs(xp, b[k], e, periodic)
        v = 0.5 * (b_p + b_q)
    else:
        v = xp.zeros_like(c_p)
    return v, c_p, c_q


def _reduced_diffusivity(xp: Any, grid: Grid, diag: list[Any], cross: dict[tuple[int, int], Any]) -> list[Any]:
    """``D'_kk = D_kk - sum_{j != k} |D_kj| h_k / h_j`` per axis; ``ValueError`` where it is negative."""
    h = grid.spacing
    reduced = list(diag)
    for (k, j), dkj in cross.items():
        a = xp.abs(dkj)
        reduced[k] = reduced[k] - a * (h[k] / h[j])
        reduced[j] = reduced[j] - a * (h[j] / h[k])
    for k in range(grid.ndim):
        margin = float(xp.min(reduced[k]))
        if margin < -1e-12 * max(1.0, float(xp.max(diag[k]))):
            raise ValueError(
                f"`diffusion` is not diagonally dominant on this grid along axis {k}: "
                f"D_kk - sum_j |D_kj| h_k/h_j reaches {margin:.4g} < 0, so the mixed-derivative stencil "
                f"would not keep the density positive; change the spacing ratio or the tensor"
            )
        reduced[k] = xp.maximum(reduced[k], xp.zeros_like(reduced[k]))
    return reduced


def log_rate_ratios(
    grid: Grid,
    *,
    potential: Any | None = None,
    drift: Any | None = None,
    diffusion: Any | None = None,
    beta: float = 1.0,
    bc: str = "reflecting",
) -> list[tuple[tuple[int, ...], np.ndarray]] | None:
    """``log(forward / backward)`` on every link of :func:`build_operator`'s operator, in float64 numpy.

    Computed without the Bernoulli function: on an axis link the ratio of the
    Scharfetter-Gummel rates is ``B(-z) c_P / (B(z) c_Q) = exp(z) c_P / c_Q`` exactly, so its log is
    ``z + log c_P - log c_Q`` for any ``z`` (the rates themselves underflow for ``|z| > ~745``);
    on a diagonal link it is ``log w_P - log w_Q``.  Links with both rates zero (no transport
    at all) are left out.  Returns ``None`` if some link carries mass one way only (a zero
    rate opposite a positive one): no positive density can then balance it.  Entries of the
    arrays follow :class:`Link` (``P`` over the link sources).  Arguments as in
    :func:`build_operator`, assumed validated; arrays are read on the host.
    """
    xp = np
    periodic = bc == "periodic"
    f = None if potential is None else as_real_array(potential, "potential")
    b = None if drift is None else as_real_array(drift, "drift")
    like = np.zeros((), dtype=np.float64)
    diag, cross = normalize_diffusion(diffusion, grid, like)
    reduced = _reduced_diffusivity(xp, grid, diag, cross)
    half_over_beta = 0.5 / beta
    out: list[tuple[tuple[int, ...], np.ndarray]] = []
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for k in range(grid.ndim):
            e = tuple(1 if i == k else 0 for i in range(grid.ndim))
            v, c_p, c_q = _axis_face_terms(xp, f, b, reduced[k] * half_over_beta, k, grid.spacing[k], periodic)
            c_face = 0.5 * c_p + 0.5 * c_q
            ratio = np.log(c_p) - np.log(c_q) + grid.spacing[k] * v / c_face
            still = (c_face == 0) & (v == 0)
            if np.any(~still & ~np.isfinite(ratio)):
                return None
            out.append((e, np.where(still, 0.0, ratio)))
        for (k, j), dkj in cross.items():
            for sign, part in ((1, np.maximum(dkj, 0.0)), (-1, np.maximum(-dkj, 0.0))):
                if float(np.max(part)) == 0.0:
                    continue
                e = tuple(1 if i == k else (sign if i == j else 0) for i in range(grid.ndim))
                w_p, w_q = link_pairs(xp, part, e, periodic)
                ratio = np.log(w_p) - np.log(w_q)
                still = (w_p == 0) & (w_q == 0)
                if np.any(~still & ~np.isfinite(ratio)):
                    return None
                out.append((e, np.where(still, 0.0, ratio)))
    return out


def _add_axis_links(
    xp: Any,
    grid: Grid,
    f: Any,
    b: Any,
    reduced: list[Any],
    half_over_beta: float,
    periodic: bool,
    links: list[Link],
    absorption: Any | None,
) -> None:
    """Append the Scharfetter-Gummel links of every axis to ``links`` (and the wall outflow to ``absorption``)."""
    d = grid.ndim
    h = grid.spacing
    for k in range(d):
        e = tuple(1 if i == k else 0 for i in range(d))
        c = reduced[k] * half_over_beta
        v, c_p, c_q = _axis_face_terms(xp, f, b, c, k, h[k], periodic)
        fwd, bwd = scharfetter_gummel_rates(v, c_p, c_q, h[k])
        links.append(_make_link(e, fwd, bwd, periodic))
        if absorption is not None:
            lo, hi = _end_slices(d, k)
            lo2, hi2 = _end_slices(d, k, width=2)
            c_lo, c_hi = c[lo], c[hi]
            if f is not None:
                v_lo = -(f[lo2][_take(d, k, 1)] - f[lo2][_take(d, k, 0)]) / h[k]
                v_hi = -(f[hi2][_take(d, k, 1)] - f[hi2][_take(d, k, 0)]) / h[k]
            elif b is not None:
                v_lo, v_hi = b[k][lo], b[k][hi]
            else:
                v_lo, v_hi = xp.zeros_like(c_lo), xp.zeros_like(c_hi)
            _, out_lo = scharfetter_gummel_rates(v_lo, c_lo, c_lo, h[k])  # ghost -> node 0, backward
            out_hi, _ = scharfetter_gummel_rates(v_hi, c_hi, c_hi, h[k])  # node n-1 -> ghost, forward
            absorption[lo] += out_lo
            absorption[hi] += out_hi


def _make_link(direction: tuple[int, ...], forward: Any, backward: Any, periodic: bool) -> Link:
    if periodic:
        full = tuple(slice(None) for _ in direction)
        return Link(direction, forward, backward, full, full)
    src, dst = _link_slices(direction)
    return Link(direction, forward, backward, src, dst)


def _end_slices(d: int, k: int, width: int = 1) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices of the first and last ``width`` layers of nodes along axis ``k``."""
    lo = tuple(slice(0, width) if i == k else slice(None) for i in range(d))
    hi = tuple(slice(-width, None) if i == k else slice(None) for i in range(d))
    return lo, hi


def _take(d: int, k: int, i: int) -> tuple[slice, ...]:
    """Slice keeping layer ``i`` (as a layer of width one) along axis ``k``."""
    return tuple(slice(i, i + 1) if a == k else slice(None) for a in range(d))


def _lacks_neighbour(xp: Any, shape: tuple[int, ...], direction: Sequence[int], sign: int, dev: Any) -> Any:
    """1.0 at nodes ``P`` whose neighbour ``P + sign * e`` lies outside the box, else 0.0."""
    has = xp.zeros(shape, dtype=xp.float64, device=dev)
    src, dst = _link_slices(direction)
    has[src if sign > 0 else dst] = 1.0
    return 1.0 - has
