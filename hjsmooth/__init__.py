"""hjsmooth: smoothing non-convex loss landscapes with PDEs.

Local Entropy, Entropy-SGD, the HJ and HEAT optimizers, Elastic-SGD and Parle all
descend a loss smoothed by a PDE: the viscous Hamilton-Jacobi equation, its inviscid
limit, or the heat equation.  ``hjsmooth.solvers`` solves those PDEs on 1D-3D grids
(exactly where a closed form exists); the samplers and optimizers compute the
gradient of the same smoothed loss in any dimension.

Conventions (see ``docs/conventions.md``)::

    viscous HJ    u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u,   u(., 0) = f
    inviscid HJ   u_t = -1/2 |grad u|^2                              (beta = inf)
    any HJ        u_t + H(x, grad u) = 1/(2 beta) Laplacian u        (solve_hj(..., hamiltonian=H))
    heat          v_t = 1/(2 beta) Laplacian v
    Fokker-Planck rho_t = -div(b rho) + 1/(2 beta) sum_ij d_i d_j (D_ij rho)

Submodules and names are imported on first use, so ``import hjsmooth`` stays fast
and never imports torch or CuPy.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Grid": "hjsmooth.grid",
    "PDESolution": "hjsmooth.solvers.result",
    "hopf_lax": "hjsmooth.solvers.hopf_lax",
    "hopf_lax_prox": "hjsmooth.solvers.hopf_lax",
    "HopfLaxSolution": "hjsmooth.solvers.hopf_lax",
    "local_entropy": "hjsmooth.solvers.cole_hopf",
    "local_entropy_mean": "hjsmooth.solvers.cole_hopf",
    "LocalEntropySolution": "hjsmooth.solvers.cole_hopf",
    "heat": "hjsmooth.solvers.cole_hopf",
    "solve_hj": "hjsmooth.solvers.hj",
    "Hamiltonian": "hjsmooth.solvers.general_hj",
    "ControlAffineDynamics": "hjsmooth.solvers.reachability",
    "solve_reachability": "hjsmooth.solvers.reachability",
    "solve_fokker_planck": "hjsmooth.solvers.fokker_planck",
    "fokker_planck_steady_state": "hjsmooth.solvers.fokker_planck_steady",
    "solve_hjb": "hjsmooth.solvers.hjb",
    "solve_forward_backward": "hjsmooth.solvers.hjb",
}
_SUBMODULES = {
    "solvers",
    "landscapes",
    "backend",
    "validation",
    "grid",
    "sde",
    "optim",
    "diagnostics",
    "demos",
    "spinglass",
}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"hjsmooth.{name}")
    raise AttributeError(f"module 'hjsmooth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
