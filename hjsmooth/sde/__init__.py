"""SDE homogenization samplers: the PDE-smoothed losses of chapter 4 in any dimension.

* :func:`smoothed_grad` estimates ``grad u(x, t)`` of the viscous HJ (Local Entropy), inviscid HJ
  (Hopf-Lax), and heat smoothings of ``f`` at a batch of points, from ``grad f`` alone, by Langevin
  time averages, replica averages, a proximal gradient flow or Gaussian perturbations.
* :func:`simulate` integrates the slow dynamics by Euler-Maruyama: SGD (4.2), Entropy-SGD /
  Elastic-SGD in continuous time (4.21), (4.25), the controlled SDE (4.29) and the general SDE
  (6.2), for many paths at once, returning paths or their density on a grid.

Both run on numpy and torch (CPU or CUDA) through one implementation; the random generator is an
argument (``numpy.random.Generator`` or ``torch.Generator``).
"""

from hjsmooth.sde._rng import make_generator, normal
from hjsmooth.sde.control import grid_control, riccati_control
from hjsmooth.sde.result import Paths, SmoothedGradient
from hjsmooth.sde.simulate import SIMULATION_KINDS, histogram_density, simulate
from hjsmooth.sde.smoothed_grad import DEFAULTS, KINDS, smoothed_grad

__all__ = [
    "smoothed_grad",
    "simulate",
    "histogram_density",
    "grid_control",
    "riccati_control",
    "SmoothedGradient",
    "Paths",
    "KINDS",
    "SIMULATION_KINDS",
    "DEFAULTS",
    "make_generator",
    "normal",
]
