"""Frequency analysis of optimisation trajectories (thesis section 6.3.3, Figure 6.3).

Brownian iterates have white-noise increments: a flat power spectrum, and an autocorrelation that
vanishes at every nonzero lag.  Peaks in the spectrum, and correlations that persist over long lags,
are the signature of the periodic components ("limit cycles") that a non-gradient force puts into SGD.

A network has too many weights to keep every iterate; :class:`TrajectoryRecorder` keeps ``dim``
random projections of each one instead.  With a Gaussian projection ``P`` of variance ``1/dim``
per entry, ``E |P x|^2 = |x|^2``, so the summed power of the projections is an unbiased estimate of
the summed power of all the weights (and each projection is one "typical" coordinate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from hjsmooth.backend import array_namespace, device
from hjsmooth.diagnostics._rng import torch_generator
from hjsmooth.diagnostics.result import TrajectorySpectrum

__all__ = ["trajectory_spectrum", "autocorrelation", "white_noise_band", "TrajectoryRecorder"]


def _as_series(iterates: Any) -> Any:
    """``iterates`` as a floating ``(T, d)`` array of its own backend (numpy or torch); 1-D becomes ``(T, 1)``."""
    if not isinstance(iterates, (np.ndarray, torch.Tensor)):
        iterates = np.asarray(iterates, dtype=np.float64)
    xp = array_namespace(iterates)
    if not xp.isdtype(iterates.dtype, "real floating"):
        iterates = xp.astype(iterates, xp.float64)
    if iterates.ndim == 1:
        iterates = xp.reshape(iterates, (-1, 1))
    if iterates.ndim != 2:
        raise ValueError(f"`iterates` must have shape (T, d) (time first), got shape {tuple(iterates.shape)}")
    if iterates.shape[0] < 2:
        raise ValueError(f"`iterates` must hold at least 2 time steps, got {iterates.shape[0]}")
    if not bool(xp.all(xp.isfinite(iterates))):
        raise ValueError("`iterates` must be finite everywhere; it holds NaN or inf")
    return iterates


def trajectory_spectrum(iterates: Any, dt: float = 1.0) -> TrajectorySpectrum:
    r"""The one-sided power spectral density of each coordinate of mean-removed iterates.

    For a series :math:`x_0, \dots, x_{T-1}` (one column of ``iterates``) with its time mean removed and
    :math:`X_m = \sum_n x_n e^{-2\pi i m n / T}`,

    .. math::  P_m = c_m \frac{\Delta t}{T} |X_m|^2, \qquad f_m = \frac{m}{T \Delta t},
               \quad m = 0, \dots, \lfloor T/2 \rfloor,

    with :math:`c_m = 2` except at :math:`m = 0` and the Nyquist frequency (:math:`c = 1`), so that
    :math:`\sum_m P_m / (T\Delta t)` is the variance of the series (Parseval).  White noise of variance
    :math:`s^2` has the flat spectrum :math:`2 s^2 \Delta t`.  Pass ``np.diff(iterates, axis=0)`` for the
    spectrum of the increments (the thesis' Figure 6.3a).

    Parameters
    ----------
    iterates : array of shape ``(T, d)`` or ``(T,)``
        Numpy or torch; the result comes back on the same backend, device and dtype.
    dt : float
        Time between iterates (``> 0``).
    """
    from hjsmooth.validation import check_positive

    dt = check_positive(dt, "dt")
    x = _as_series(iterates)
    xp = array_namespace(x)
    T = x.shape[0]
    x = x - xp.mean(x, axis=0, keepdims=True)
    X = xp.fft.rfft(x, axis=0)
    power = (xp.real(X) ** 2 + xp.imag(X) ** 2) * (2.0 * dt / T)
    power[0] = power[0] / 2
    if T % 2 == 0:
        power[-1] = power[-1] / 2
    freqs = xp.arange(T // 2 + 1, dtype=x.dtype, device=device(x)) / (T * dt)
    return TrajectorySpectrum(frequencies=freqs, power=power, dt=dt)


def autocorrelation(iterates: Any, max_lag: int | None = None) -> Any:
    r"""The sample autocorrelation of each coordinate, :math:`r_k = \hat c_k / \hat c_0`, lags ``0..max_lag``.

    :math:`\hat c_k = \frac1T \sum_{n=0}^{T-1-k} (x_n - \bar x)(x_{n+k} - \bar x)` (the usual biased
    estimator, computed by FFT with zero padding).  Shape ``(max_lag + 1, d)``; a constant coordinate has
    ``r = 0`` beyond lag 0.  Default ``max_lag = T - 1``.  Compare with :func:`white_noise_band`.
    """
    x = _as_series(iterates)
    xp = array_namespace(x)
    T = x.shape[0]
    if max_lag is None:
        max_lag = T - 1
    from hjsmooth.validation import check_count

    max_lag = check_count(max_lag, "max_lag", 0)
    if max_lag > T - 1:
        raise ValueError(f"`max_lag` must be <= T - 1 = {T - 1}, got {max_lag}")
    x = x - xp.mean(x, axis=0, keepdims=True)
    size = 1 << (2 * T - 1).bit_length()
    X = xp.fft.rfft(x, n=size, axis=0)
    c = xp.fft.irfft(xp.real(X) ** 2 + xp.imag(X) ** 2, n=size, axis=0)[: max_lag + 1] / T
    c0 = c[:1]
    safe = xp.where(c0 > 0, c0, xp.ones_like(c0))
    r = xp.where(c0 > 0, c / safe, xp.zeros_like(c))
    r[0] = 1.0
    return r


def white_noise_band(length: int, confidence: float = 0.99) -> float:
    """Half-width of the band within which the autocorrelation of ``length`` white-noise samples stays
    at each nonzero lag with probability ``confidence`` (asymptotically ``z / sqrt(T)``)."""
    from scipy.special import ndtri

    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")
    return float(ndtri(0.5 + confidence / 2) / math.sqrt(length))


class TrajectoryRecorder:
    """Keeps ``dim`` random projections of the parameters at each :meth:`record` call.

    Parameters
    ----------
    params : torch.nn.Module or iterable of tensors
        What to record (a module's ``parameters()``); only their values are read.
    dim : int
        Number of projections; memory ``dim x d`` for the projection and ``dim`` numbers per record.
    rng : None, int, torch.Generator or numpy.random.Generator
        Source of the projection (SPEC 7).

    Attributes
    ----------
    projection : torch.Tensor, shape ``(dim, d)``
        Entries ``N(0, 1/dim)``, on the parameters' device and dtype.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 2)
    >>> rec = TrajectoryRecorder(model, dim=3, rng=0)
    >>> for _ in range(8):
    ...     with torch.no_grad():
    ...         model.weight.add_(0.1)
    ...     rec.record()
    >>> rec.iterates.shape
    (8, 3)
    """

    def __init__(self, params: torch.nn.Module | Iterable[torch.Tensor], dim: int = 32, rng: Any = None):
        from hjsmooth.validation import check_count

        self.params = list(params.parameters() if isinstance(params, torch.nn.Module) else params)
        if not self.params:
            raise ValueError("`params` is empty")
        self.dim = check_count(dim, "dim")
        first = self.params[0]
        d = sum(p.numel() for p in self.params)
        gen = torch_generator(rng, first.device)
        self.projection = torch.randn((self.dim, d), generator=gen, device=first.device, dtype=first.dtype)
        self.projection /= math.sqrt(self.dim)
        self._rows: list[np.ndarray] = []

    def record(self) -> None:
        """Store the projection of the parameters now."""
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.params])
            self._rows.append((self.projection @ flat).double().cpu().numpy())

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def iterates(self) -> np.ndarray:
        """The recorded projections, float64, shape ``(records, dim)``."""
        return np.stack(self._rows) if self._rows else np.zeros((0, self.dim))

    def spectrum(self, dt: float = 1.0, increments: bool = False) -> TrajectorySpectrum:
        """:func:`trajectory_spectrum` of the recorded projections (of their increments if ``increments``)."""
        x = self.iterates
        return trajectory_spectrum(np.diff(x, axis=0) if increments else x, dt)
