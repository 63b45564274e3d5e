"""Grid PDE solvers: exact (Hopf-Lax, Cole-Hopf, heat kernel) and time-stepping
(monotone Hamilton-Jacobi schemes for the thesis' and any other Hamiltonian, reachability,
Scharfetter-Gummel Fokker-Planck, controlled HJB).  Which implementation runs an operator is
decided by one table, :mod:`hjsmooth.solvers.kernels`.

Installed as ``hjsmooth.solvers``; the main names are re-exported from ``hjsmooth``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
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

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hjsmooth.solvers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
