r"""Chapter 2 of the thesis: the loss of a deep network as a spherical p-spin glass, and its trivialization.

* :class:`SphericalSpinGlass` — the Hamiltonian (2.4) on :math:`S^{N-1}(\sqrt N)` with an optional random
  field (2.14): energy, Riemannian gradient and Hessian, index; batched, numpy and torch.
* :func:`complexity`, :func:`rate_function`, :func:`threshold_energy`, :func:`ground_state_energy` — Lemma 2.2:
  :math:`\Theta(u)`, :math:`\Theta_k(u)`, :math:`I_1(u)`, :math:`E_\infty`, :math:`E_0` (energies per spin).
* :func:`regime_parameter`, :func:`critical_field`, :func:`field_for_regime`, :func:`annealed_field`,
  :func:`expected_critical_points`, :func:`critical_points_per_spin` — the field's regime ``B`` (2.15),
  :math:`v_c`, the annealing (2.19) and Fyodorov's counts (Theorems 2.7, 2.8).
* :func:`projected_gradient_descent`, :func:`uniform_on_sphere`, :func:`mean_cosine_distance` — the
  experiment of section 2.4.1.

Sign and scale: ``energy`` returns :math:`\tilde H(\sigma) = H(\sigma) - h^\top\sigma` itself (order ``N``); the
complexity functions take the energy per spin ``u = H / N``; minima lie near :math:`-E_0 N`.  See
``docs/spinglass.md``.
"""

from __future__ import annotations

from hjsmooth.spinglass.complexity import complexity, ground_state_energy, rate_function, threshold_energy
from hjsmooth.spinglass.descent import DescentResult, projected_gradient_descent
from hjsmooth.spinglass.field import (
    annealed_field,
    critical_field,
    critical_points_per_spin,
    expected_critical_points,
    field_for_regime,
    regime_parameter,
)
from hjsmooth.spinglass.model import SphericalSpinGlass
from hjsmooth.spinglass.sphere import mean_cosine_distance, project_to_sphere, tangent_projection, uniform_on_sphere

__all__ = [
    "SphericalSpinGlass",
    "complexity",
    "rate_function",
    "threshold_energy",
    "ground_state_energy",
    "regime_parameter",
    "critical_field",
    "field_for_regime",
    "annealed_field",
    "expected_critical_points",
    "critical_points_per_spin",
    "projected_gradient_descent",
    "DescentResult",
    "uniform_on_sphere",
    "project_to_sphere",
    "tangent_projection",
    "mean_cosine_distance",
]
