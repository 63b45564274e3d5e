"""Runnable demos: the thesis' pictures and experiments, reproduced.

Each demo is a module of this package with one public function
``run(out: Path, quick: bool = False, seed: int = 0) -> dict``: it computes, draws its
figure to ``out`` (a PNG), writes the numbers it computed to ``out.with_suffix(".txt")``,
and returns those numbers as a dict (the tests assert on them).  ``quick=True`` runs a
coarser, shorter version that takes a few seconds.

The command line runs the same code::

    hjsmooth demo                       # list the demos
    hjsmooth demo fig4_1 --out fig4_1.png [--quick] [--seed N]
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "DEMOS",
    "REQUIRES",
    "DISTRIBUTIONS",
    "TORCH_CPU",
    "get",
    "run",
    "install_hint",
    "missing_packages",
    "check_requirements",
]

#: name -> one-line description, in the order the command line lists them.
DEMOS: dict[str, str] = {
    "fig4_1": "Figure 4.1: a rugged 1D loss, its viscous and inviscid HJ smoothings, and Fokker-Planck "
    "densities of SGD vs gradient descent on each smoothed loss",
    "widening": "Examples 4.12, 4.13, 4.15: semi-concavity over time for HJ vs heat, and the convexity "
    "interval of a 1D minimum widening under Hopf-Lax",
    "limit_cycles": "Example 6.43 / Figure 6.4: double well with a rotating force; Fokker-Planck steady "
    "state and SDE paths circling the saddle",
    "smoothing_2d": "wide-vs-sharp and Rastrigin landscapes: heat, viscous and inviscid HJ smoothings, and "
    "SGD / Entropy-SGD / HJ / HEAT descents driven by the samplers",
    "control": "Theorem 4.11 in 1D: E[V] under SGD and under the optimally controlled SDE over the horizon, "
    "with the bound",
    "train": "the training study: SGD, SGD-EMA, SWA, Adam, SAM, ASAM, Entropy-SGD, HJ, HEAT, Elastic-SGD and "
    "Parle on digits and MNIST-1D, each tuned on validation data, test error over 5 seeds, paired comparisons, "
    "the width of every minimum, and Table 5.1 on two processes (about an hour on 2 cores; --quick: a minute)",
    "hessian": "Figure 3.1: the Hessian's eigenvalue density (SLQ), largest eigenvalues, trace and width at "
    "MNIST-1D nets trained by SGD and Entropy-SGD",
    "landscape": "a filter-normalised 2D slice of the loss around a trained net, beside its smoothings on the "
    "slice's grid by heat, Local Entropy and Hopf-Lax",
    "sgd_noise": "Figures 6.1 and 6.3: the spectrum of the gradient-noise covariance D(x) during training, and "
    "the power spectrum and autocorrelation of an SGD trajectory",
    "spin_glass": "Figures 2.1 and 2.2: complexity of the spherical 3-spin glass, and the minima projected gradient "
    "descent finds from 2000 starts in the exponential, polynomial and trivial regimes of a random "
    "field (t-SNE, energies, cosine distances; a few minutes)",
    "trivialized": "Figure 2.3a-b: Trivialized-SGD over Adam against Adam on the 16-layer mnistfc network "
    "(MNIST-1D): training loss, smallest back-propagated gradient, validation error over 5 seeds "
    "(10-20 minutes on 2 cores)",
}


#: name -> the optional packages (import names) the demo needs beyond hjsmooth's own dependencies;
#: a demo absent from this table needs none.  ``pip install -e ".[demos]"`` installs them all.
REQUIRES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "sklearn", "mnist1d"),
    "hessian": ("torch", "sklearn", "mnist1d"),
    "landscape": ("torch", "sklearn", "mnist1d"),
    "sgd_noise": ("torch", "sklearn", "mnist1d"),
    "spin_glass": ("sklearn",),
    "trivialized": ("torch", "sklearn", "mnist1d"),
}

#: import name -> distribution name, where they differ
DISTRIBUTIONS: dict[str, str] = {"sklearn": "scikit-learn"}

#: The CPU build of torch: a few hundred MB, where a plain ``pip install torch`` fetches the multi-GB
#: CUDA build on Linux (see pytorch.org for a GPU build).
TORCH_CPU = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def install_hint(package: str) -> str:
    """The command that installs the package imported as ``package`` (torch: its CPU build)."""
    if package == "torch":
        return TORCH_CPU
    return f"pip install {DISTRIBUTIONS.get(package, package)}"


def missing_packages(name: str) -> list[str]:
    """The packages of ``REQUIRES[name]`` that are not installed (import names), found without importing them."""
    import importlib.util

    return [package for package in REQUIRES.get(name, ()) if importlib.util.find_spec(package) is None]


def check_requirements(name: str) -> None:
    """Raise ``ModuleNotFoundError`` if the demo ``name`` misses packages; the message says how to install them."""
    missing = missing_packages(name)
    if missing:
        names = ", ".join(DISTRIBUTIONS.get(package, package) for package in missing)
        commands = "; ".join(install_hint(package) for package in missing)
        raise ModuleNotFoundError(
            f"the {name} demo needs {names}, not installed (install with: {commands})", name=missing[0]
        )


def get(name: str) -> ModuleType:
    """The module of the demo ``name`` (one of :data:`DEMOS`)."""
    from hjsmooth.validation import check_choice

    check_choice(name, "name", DEMOS)
    return importlib.import_module(f"hjsmooth.demos.{name}")


def run(name: str, out: Path | str, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run the demo ``name``: write its PNG to ``out`` and its summary next to it; return its numbers.

    ``out`` (a file name ending in ``.png`` that can be created: it is created and removed again),
    ``seed`` (an integer ``>= 0``) and the optional packages the demo needs (:data:`REQUIRES`) are
    checked before anything is computed.
    """
    from hjsmooth.demos._report import summary_path
    from hjsmooth.validation import check_output_path, check_seed, probe_output_file

    module = get(name)
    out = check_output_path(out, "out")
    check_output_path(summary_path(out), "out (its summary)", suffixes=(".txt",))
    seed = check_seed(seed)
    check_requirements(name)
    probe_output_file(out, "out")
    probe_output_file(summary_path(out), "out (its summary)")
    return module.run(out, quick=quick, seed=seed)
