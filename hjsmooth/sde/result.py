"""Result objects of the samplers (:func:`smoothed_grad`) and of the path simulator (:func:`simulate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SmoothedGradient", "Paths"]


@dataclass(frozen=True)
class SmoothedGradient:
    """An estimate of ``grad u(x, t)`` at a batch of points, with its error bar and diagnostics.

    All arrays are on the backend, device and dtype of the input ``x``.

    Attributes
    ----------
    grad : array, shape of ``x``
        The estimate of the gradient of the smoothed loss.
    stderr : array, shape of ``x``
        Its estimated standard error, per coordinate (zero for the deterministic inviscid flow).
        How it is obtained is in ``stderr_method``:

        * ``"chains"``: the spread of the independent per-chain (per-replica, per-sample)
          estimates divided by ``sqrt(chains)``.  The chains are independent given ``x``, so this
          needs no assumption on the autocorrelation of a chain; it is the default whenever
          there are at least two chains.
        * ``"batch_means"``: one chain only; its post-burn-in trajectory is cut into 20
          consecutive batches whose means are treated as independent (valid when a batch is
          much longer than the autocorrelation time).
        * ``"none"``: the deterministic inviscid flow (only its convergence is reported).
    mean_y : array, shape of ``x``
        The average of the fast variable: ``<y>`` under ``rho_1`` (viscous, elastic), the
        proximal point ``y*`` (inviscid), ``x`` plus the mean perturbation (heat).
    cov_y : array of shape ``x.shape + (d,)`` or None
        The sampled covariance of ``y`` (viscous and elastic with ``return_cov=True``).
    kind : str
        ``"viscous"``, ``"inviscid"``, ``"heat"`` or ``"elastic"``.
    steps : int
        Number of Langevin / gradient-flow steps after burn-in (samples per chain for heat).
    burn_in : int
        Steps discarded before averaging.
    step_size : float
        The Langevin (or gradient-flow) step ``eta``; ``nan`` for heat.
    chains : int
        Independent chains (replicas, samples) per point.
    ess : array, shape of ``x``
        Effective sample size per coordinate: the sampled variance of the averaged quantity divided
        by ``stderr**2`` (``inf`` where the variance is zero).
    stderr_method : str
        See ``stderr``.
    converged : array of bool, shape ``x.shape[:-1]``, or None
        Inviscid only: whether ``|grad_y H| <= tol`` was reached at the last step.
    convex : array of bool, shape ``x.shape[:-1]``, or None
        Inviscid only: whether Lemma 4.3's condition ``I + t Hess f > 0`` held at the points checked
        (five points on the segment from ``x`` to ``y*``, ends included).  Where it fails the flow
        may have stopped at a local proximal point and ``grad`` need not be ``grad u``.  The check is
        local: ``convex=True`` does not prove that ``y*`` is the global proximal point (a better
        minimiser beyond a convex stretch is not seen); ``convex=False`` says Lemma 4.3 does not apply.
    min_curvature : array, shape ``x.shape[:-1]``, or None
        Inviscid only: the smallest eigenvalue of ``I + t Hess f`` found at those points.
    info : dict
        Settings (averaging, form, alpha, ...).
    """

    grad: Any
    stderr: Any
    mean_y: Any
    kind: str
    steps: int
    burn_in: int
    step_size: float
    chains: int
    ess: Any
    stderr_method: str
    cov_y: Any | None = None
    converged: Any | None = None
    convex: Any | None = None
    min_curvature: Any | None = None
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"SmoothedGradient(kind={self.kind!r}, shape={tuple(self.grad.shape)}, steps={self.steps}, "
            f"burn_in={self.burn_in}, step_size={self.step_size:.3g}, chains={self.chains}, "
            f"stderr_method={self.stderr_method!r})"
        )


@dataclass(frozen=True)
class Paths:
    """Trajectories of an SDE integrated by Euler-Maruyama, for many independent paths at once.

    Attributes
    ----------
    x : array, shape ``(n, d)``
        The state of every path at the final time (the backend, device and dtype of ``x0``).
    times : numpy.ndarray
        The times of ``paths`` (just ``[t]`` without ``save_at``).
    paths : array of shape ``(len(times), n, d)`` or None
        The states at ``times`` when ``save_at`` was given.
    steps : int
        Euler-Maruyama steps taken.
    dt : float
        The (largest) step.
    running_cost : array of shape ``(n,)`` or None
        Controlled dynamics only: ``int_0^t |alpha(X(s), s)|^2 ds`` along each path (left-point rule).
    density : array of ``grid.shape`` or None
        With ``grid``: the histogram density of the final states on the grid's nodes (each node owns
        the cell of points nearer to it than to any other node, half cells at the edges), normalised
        by the number of paths, so that ``grid.integrate(density) = inside``.
    inside : float or None
        With ``grid``: the fraction of paths that ended inside the grid's box.
    fast : array or None
        Entropy-SGD (4.21) only: the fast variable ``Y`` at the final time, shape ``(n, d)``.
    info : dict
        Settings (kind, beta, ...).
    """

    x: Any
    times: np.ndarray
    steps: int
    dt: float
    paths: Any | None = None
    running_cost: Any | None = None
    density: Any | None = None
    counts: Any | None = None
    inside: float | None = None
    fast: Any | None = None
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Paths(n={self.x.shape[0]}, d={self.x.shape[-1]}, t={float(self.times[-1]):g}, "
            f"steps={self.steps}, dt={self.dt:.3g}, kind={self.info.get('kind')!r})"
        )
