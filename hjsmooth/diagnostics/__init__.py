"""Diagnostics of a network's loss landscape: Hessian and gradient-noise spectra, slices, smoothed losses, width.

The thesis' claims are about geometry: most Hessian eigenvalues at a trained network sit near zero
(Figure 3.1), the gradient-noise covariance ``D(x)`` is strongly non-isotropic and of low rank
(Figure 6.1), SGD's iterates are not Brownian (Figure 6.3).  These functions measure all three, and the
width of a minimum through the very smoothings the optimizers descend.

Conventions shared by every function:

* ``model`` is a ``torch.nn.Module``; its trainable parameters (``requires_grad=True``) are the
  coordinates ``x`` (dimension ``d``), and they are never changed (nor their ``.grad``).  The model runs
  in ``eval()`` mode during the call, its training flags restored afterwards.
* ``loss_fn(outputs, targets)`` returns the mean loss of a batch.
* ``data`` is one batch ``(inputs, targets)`` or an iterable of batches; the full-data loss is the
  average over batches weighted by their size.  Everything runs on the model's device and dtype.
* Random draws follow SPEC 7: ``rng=None`` is fresh entropy, an int seeds a new generator, a
  ``torch.Generator`` (or a ``numpy.random.Generator``) is used as is.
* Long work shows a tqdm bar (``progress=False`` silences it); bad input raises an error naming the
  argument.

Functions:

* :func:`hessian_eigenvalues`: extreme eigenvalues (Lanczos on Hessian-vector products);
* :func:`hessian_trace`: Hutchinson's trace estimate with its standard error;
* :func:`hessian_spectrum`: the eigenvalue density by stochastic Lanczos quadrature;
* :func:`gradient_noise_spectrum`: eigenvalues, trace and effective rank of ``D(x)``;
* :func:`loss_slice`: the loss on a 1D/2D grid of filter-normalised directions (an ``hs.Grid``,
  ready for ``hs.heat``, ``hs.local_entropy``, ``hs.hopf_lax``);
* :func:`smoothed_loss`: heat-smoothed loss and Local Entropy at the weights, by Monte Carlo;
* :func:`trajectory_spectrum`, :func:`autocorrelation`, :class:`TrajectoryRecorder`: frequency analysis
  of training trajectories.
"""

from hjsmooth.diagnostics.eigen import ConvergenceWarning, hessian_eigenvalues
from hjsmooth.diagnostics.noise import gradient_noise_spectrum
from hjsmooth.diagnostics.result import (
    HessianEigenpairs,
    LossSlice,
    NoiseSpectrum,
    SmoothedLoss,
    SpectralDensity,
    TraceEstimate,
    TrajectorySpectrum,
)
from hjsmooth.diagnostics.slices import loss_slice, normalize_direction
from hjsmooth.diagnostics.smoothed import smoothed_loss
from hjsmooth.diagnostics.spectrum import hessian_spectrum
from hjsmooth.diagnostics.trace import hessian_trace
from hjsmooth.diagnostics.trajectory import TrajectoryRecorder, autocorrelation, trajectory_spectrum, white_noise_band

__all__ = [
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_spectrum",
    "gradient_noise_spectrum",
    "loss_slice",
    "normalize_direction",
    "smoothed_loss",
    "trajectory_spectrum",
    "autocorrelation",
    "white_noise_band",
    "TrajectoryRecorder",
    "ConvergenceWarning",
    "HessianEigenpairs",
    "TraceEstimate",
    "SpectralDensity",
    "NoiseSpectrum",
    "LossSlice",
    "SmoothedLoss",
    "TrajectorySpectrum",
]
