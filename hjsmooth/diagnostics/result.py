"""Result objects of the diagnostics.

Scalars are Python floats, spectra and grids float64 numpy arrays; vectors in parameter space
(eigenvectors, slice directions) are lists of parameter-shaped tensors on the model's device and dtype,
in the order of the model's trainable parameters.  Optional fields are ``None`` when not computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "HessianEigenpairs",
    "TraceEstimate",
    "SpectralDensity",
    "NoiseSpectrum",
    "LossSlice",
    "SmoothedLoss",
    "TrajectorySpectrum",
]


@dataclass(frozen=True)
class HessianEigenpairs:
    """Extreme eigenvalues of the Hessian of the full-data loss (:func:`hessian_eigenvalues`).

    Attributes
    ----------
    eigenvalues : numpy.ndarray, shape ``(k,)``
        Largest first (``which="largest"``) or smallest first (``which="smallest"``).
    eigenvectors : list of k lists of tensors, or None
        Unit eigenvectors, each a list of parameter-shaped tensors (when asked for).
    residuals : numpy.ndarray, shape ``(k,)``
        ``|H y - lambda y|`` of each pair.
    converged : numpy.ndarray of bool, shape ``(k,)``
        Whether each pair met the tolerance.
    which : str
        ``"largest"`` or ``"smallest"``.
    matvecs : int
        Hessian-vector products computed.
    restarts : int
        Thick restarts of the Lanczos basis.
    dimension : int
        Number of trainable parameters ``d``.
    """

    eigenvalues: np.ndarray
    eigenvectors: list[list[Any]] | None
    residuals: np.ndarray
    converged: np.ndarray
    which: str
    matvecs: int
    restarts: int
    dimension: int


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate of ``tr H`` (:func:`hessian_trace`).

    Attributes
    ----------
    estimate : float
        ``deflated + mean(values)``.
    stderr : float
        Standard error of the estimate: ``std(values) / sqrt(samples)`` (the deflated part is exact).
    samples : int
        Rademacher vectors used.
    values : numpy.ndarray, shape ``(samples,)``
        The quadratic forms ``z^T P H P z`` (``P = I`` without deflation).
    deflated : float
        ``tr(V^T H V)`` over the ``deflation`` Lanczos vectors ``V`` (0 without deflation).
    deflation : int
        Number of Lanczos vectors projected out.
    matvecs : int
        Hessian-vector products computed.
    """

    estimate: float
    stderr: float
    samples: int
    values: np.ndarray
    deflated: float
    deflation: int
    matvecs: int


@dataclass(frozen=True)
class SpectralDensity:
    """The stochastic Lanczos quadrature estimate of the Hessian's eigenvalue density (:func:`hessian_spectrum`).

    Attributes
    ----------
    grid : numpy.ndarray, shape ``(points,)``
        Equally spaced eigenvalue axis.
    density : numpy.ndarray, shape ``(points,)``
        Mean over each grid cell of the Gaussian-smoothed quadrature measure, normalised so that
        ``density.sum() * spacing == 1``.  Multiply by ``dimension`` for eigenvalues per unit.
    nodes : numpy.ndarray, shape ``(runs, steps)``
        Ritz values of each run (a run that met an invariant subspace early pads with zero weight).
    weights : numpy.ndarray, shape ``(runs, steps)``
        Gauss quadrature weights, each row summing to 1.
    bandwidth : float
        Standard deviation of the Gaussian put on each node (0: cell averages of the nodes themselves).
    dimension : int
        Number of trainable parameters ``d``.
    matvecs : int
        Hessian-vector products computed.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    bandwidth: float
    dimension: int
    matvecs: int

    @property
    def spacing(self) -> float:
        """Distance between grid points."""
        return float(self.grid[1] - self.grid[0])

    def moment(self, power: int) -> float:
        """``mean over runs of sum_j w_j theta_j^power``, an unbiased estimate of ``tr(H^power) / d``.

        Exact for each run's start vector ``v``: ``v^T H^p v / |v|^2`` for ``p <= 2 steps - 1``.
        """
        return float(np.mean(np.sum(self.weights * self.nodes ** int(power), axis=1)))


@dataclass(frozen=True)
class NoiseSpectrum:
    """Eigenvalues of the gradient-noise covariance ``D(x)`` (:func:`gradient_noise_spectrum`).

    ``D(x) = (1/N) sum_i (grad f_i - grad f)(grad f_i - grad f)^T``, over the ``N`` samples of the data.

    Attributes
    ----------
    eigenvalues : numpy.ndarray, shape ``(k,)``
        The ``k`` largest eigenvalues, largest first.
    trace : float
        ``tr D = (1/N) sum_i |grad f_i - grad f|^2``.
    effective_rank : float
        The participation ratio ``(tr D)^2 / tr(D^2)``: the number of equal eigenvalues that would
        give the same trace and Frobenius norm.
    rank : int or None
        Numerical rank: eigenvalues above ``lambda_max * d * eps`` (the thesis' threshold, ``eps`` of the
        model's dtype); None when not every eigenvalue was computed.
    gradient_norm : float
        ``|grad f|``, the norm of the full-data gradient.
    samples : int
        ``N``.
    dimension : int
        ``d``.
    """

    eigenvalues: np.ndarray
    trace: float
    effective_rank: float
    rank: int | None
    gradient_norm: float
    samples: int
    dimension: int


@dataclass(frozen=True)
class LossSlice:
    """The loss on a 1D or 2D grid of ``x + a d_1 (+ b d_2)`` (:func:`loss_slice`).

    Attributes
    ----------
    grid : hjsmooth.Grid
        The grid of coefficients ``(a, b)``.
    values : numpy.ndarray of ``grid.shape``
        ``values[i, j] = f(x + grid.axes[0][i] d_1 + grid.axes[1][j] d_2)``.
    directions : list of ``grid.ndim`` lists of tensors
        ``d_1`` (and ``d_2``), each a list of parameter-shaped tensors.
    normalization : str or None
        How the directions were scaled: ``"filter"``, ``"layer"`` or None.
    """

    grid: Any
    values: np.ndarray
    directions: list[list[Any]]
    normalization: str | None


@dataclass(frozen=True)
class SmoothedLoss:
    """A Monte Carlo value of the heat-smoothed loss or of Local Entropy at the model's weights (:func:`smoothed_loss`).

    Attributes
    ----------
    estimate : float
        ``E f(x + sqrt(t/beta) z)`` (heat) or ``-(1/beta) log E exp(-beta f(x + sqrt(t/beta) z))`` (viscous).
    stderr : float
        Its standard error (viscous: by the delta method).
    loss : float
        ``f(x)``, the loss at the weights themselves; ``estimate - loss`` measures how much the loss
        rises around ``x`` at scale ``sqrt(t/beta)``, i.e. the width of the minimum.
    kind : str
        ``"heat"`` or ``"viscous"``.
    t : float
        PDE time.
    beta : float
        Inverse temperature.
    samples : int
        Gaussian perturbations evaluated.
    values : numpy.ndarray, shape ``(samples,)``
        The losses at the perturbed weights.
    """

    estimate: float
    stderr: float
    loss: float
    kind: str
    t: float
    beta: float
    samples: int
    values: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class TrajectorySpectrum:
    """The power spectrum of mean-removed iterates (:func:`trajectory_spectrum`).

    Attributes
    ----------
    frequencies : array, shape ``(T // 2 + 1,)``
        ``0, 1/(T dt), ..., 1/(2 dt)``.
    power : array, shape ``(T // 2 + 1, d)``
        One-sided power spectral density of each coordinate, normalised so that
        ``power.sum(0) * frequencies[1]`` is each coordinate's variance over time (Parseval).
    dt : float
        Time between iterates.
    """

    frequencies: Any
    power: Any
    dt: float

    @property
    def mean_power(self) -> Any:
        """The power averaged over the coordinates, shape ``(T // 2 + 1,)``."""
        return self.power.mean(1)
