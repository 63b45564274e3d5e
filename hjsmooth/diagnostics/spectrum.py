"""The eigenvalue density of a network's Hessian by stochastic Lanczos quadrature (SLQ)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr

from hjsmooth.diagnostics._problem import LossFn, LossProblem, evaluation_mode
from hjsmooth.diagnostics._progress import progress_bar
from hjsmooth.diagnostics._rng import torch_generator
from hjsmooth.diagnostics.hvp import HessianOperator
from hjsmooth.diagnostics.lanczos import lanczos_basis
from hjsmooth.diagnostics.result import SpectralDensity
from hjsmooth.diagnostics.trace import rademacher

__all__ = ["hessian_spectrum", "smoothed_density"]

#: default bandwidth as a fraction of the spread of the Ritz values
RELATIVE_BANDWIDTH = 0.01
#: the grid reaches this many bandwidths beyond the extreme Ritz values
PADDING = 6.0


def smoothed_density(
    nodes: np.ndarray, weights: np.ndarray, bandwidth: float | None = None, points: int = 1001
) -> tuple[np.ndarray, np.ndarray, float]:
    r"""The measure :math:`\frac1R\sum_r\sum_j w_{rj}\,\delta_{\theta_{rj}}` smoothed by a Gaussian, on a grid.

    Returns ``(grid, density, bandwidth)``: ``density[i]`` is the mean over the cell
    ``[grid[i] - h/2, grid[i] + h/2]`` of the smoothed density (exact, by the normal CDF), so that it
    integrates to the mass inside the grid's cells even when the bandwidth is below the spacing
    (``bandwidth=0`` gives the histogram of the nodes); it is then normalised to ``sum * h = 1``.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64) / nodes.shape[0]
    lo, hi = float(nodes.min()), float(nodes.max())
    spread = hi - lo if hi > lo else max(abs(hi), 1.0)
    sigma = RELATIVE_BANDWIDTH * spread if bandwidth is None else float(bandwidth)
    pad = max(PADDING * sigma, 0.01 * spread)
    grid = np.linspace(lo - pad, hi + pad, points)
    h = grid[1] - grid[0]
    edges = np.concatenate([grid - h / 2, grid[-1:] + h / 2])
    theta, w = nodes.ravel(), weights.ravel()
    if sigma > 0:
        cdf = ndtr((edges[:, None] - theta[None, :]) / sigma) @ w
        density = np.diff(cdf) / h
    else:
        density = np.histogram(theta, bins=edges, weights=w)[0] / h
    return grid, density / (density.sum() * h), sigma


def hessian_spectrum(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Any,
    steps: int = 64,
    runs: int = 4,
    *,
    bandwidth: float | None = None,
    points: int = 1001,
    rng: Any = None,
    progress: bool = True,
) -> SpectralDensity:
    r"""The density of the Hessian's eigenvalues by stochastic Lanczos quadrature.

    The spectral density :math:`\phi(\lambda) = \frac1d \sum_i \delta(\lambda - \lambda_i)` satisfies
    :math:`\int g\,d\phi = \frac1d\operatorname{tr} g(H) = \frac1d E[v^T g(H) v]` for Rademacher
    :math:`v` (:math:`|v|^2 = d`).  For each of ``runs`` such vectors, ``steps`` Lanczos steps with full
    reorthogonalisation give the Gauss quadrature of :math:`v^T g(H) v / |v|^2`: nodes :math:`\theta_j`
    (Ritz values) and weights :math:`w_j` (squared first components of the eigenvectors of the Lanczos
    matrix), exact for polynomials of degree ``<= 2 steps - 1``.  The density is the average of the
    runs' measures, each node smoothed by a Gaussian of standard deviation ``bandwidth``.

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hessian_eigenvalues`.
    steps : int
        Lanczos steps (Hessian-vector products) per run, ``1 <= steps <= d``.
    runs : int
        Independent start vectors; the spread between runs is the error of the stochastic part.
    bandwidth : float, optional
        Standard deviation of the Gaussian on each node, ``>= 0``; default 1 % of the spread of the
        Ritz values.  0 gives the weighted histogram of the nodes.
    points : int
        Points of the eigenvalue grid, ``>= 3``.
    rng : None, int, torch.Generator or numpy.random.Generator
        Source of the start vectors (SPEC 7).
    progress : bool
        Show a progress bar when the work lasts over two seconds.

    Returns
    -------
    SpectralDensity
        ``.grid``, ``.density`` (integrating to 1), ``.nodes``, ``.weights``, ``.moment(p)``.
    """
    from hjsmooth.validation import check_count

    problem = LossProblem(model, loss_fn, data)
    d = problem.dim
    steps = problem.check_count(steps, "steps")
    runs = check_count(runs, "runs")
    points = check_count(points, "points", 3)
    if bandwidth is not None:
        bandwidth = float(bandwidth)
        if not (math.isfinite(bandwidth) and bandwidth >= 0):
            raise ValueError(f"`bandwidth` must be >= 0 and finite, got {bandwidth!r}")
    gen = torch_generator(rng, problem.device)
    like = problem.space.params[0]
    nodes = np.zeros((runs, steps))
    weights = np.zeros((runs, steps))
    with evaluation_mode(model):
        problem.check()
        hvp = HessianOperator(problem)
        with progress_bar(runs * steps, "Hessian spectrum (SLQ)", progress) as bar:
            for r in range(runs):
                basis = lanczos_basis(hvp, rademacher(d, gen, like), steps, progress=bar)
                theta, w = basis.quadrature()
                nodes[r, : len(theta)], weights[r, : len(theta)] = theta, w
                if len(theta) < steps:  # invariant subspace: the quadrature is exact with fewer nodes
                    nodes[r, len(theta) :] = theta[-1]
    grid, density, sigma = smoothed_density(nodes, weights, bandwidth, points)
    return SpectralDensity(
        grid=grid, density=density, nodes=nodes, weights=weights, bandwidth=sigma, dimension=d, matvecs=hvp.matvecs
    )
