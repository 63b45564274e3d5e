"""Figure 3.1 of the thesis: the Hessian's eigenvalues at a trained network, SGD against Entropy-SGD.

Two copies of the same network are trained from the same initialisation for the same budget of
effective epochs (an Entropy-SGD step costs ``L`` minibatch gradients): MNIST-1D with an MLP
``40-128-128-10`` (``--quick``: scikit-learn's digits with an MLP ``64-128-10``).  At each end point,
on the training set (:mod:`hjsmooth.diagnostics`):

* the eigenvalue density of the Hessian by stochastic Lanczos quadrature (:func:`hessian_spectrum`),
  drawn as eigenvalues per unit on a log scale, over the whole range and near zero (the thesis' insets
  and central plot);
* its five largest eigenvalues (Lanczos, :func:`hessian_eigenvalues`) and its trace (Hutchinson,
  :func:`hessian_trace`);
* the width of the minimum: how much the heat-smoothed loss and Local Entropy exceed the loss at scale
  ``sqrt(t/beta)`` (:func:`smoothed_loss`).

What the thesis says: most eigenvalues sit near zero, the few large ones are positive, and the left
(negative) tail is short; Entropy-SGD seeks wide minima.  The numbers and the figure say how much of
that holds here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "SETTINGS", "NEAR_ZERO"]

#: per mode: effective epochs, training samples measured, SLQ steps and runs, Hutchinson samples and deflation,
#: smoothing (t, beta, samples)
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {
        "epochs": 20.0,
        "measured": 600,
        "steps": 20,
        "runs": 3,
        "samples": 20,
        "deflation": 10,
        "t": 1.0,
        "beta": 1000.0,
        "smoothing_samples": 20,
    },
    "full": {
        "epochs": 100.0,
        "measured": 3200,
        "steps": 80,
        "runs": 3,
        "samples": 100,
        "deflation": 20,
        "t": 1.0,
        "beta": 1000.0,
        "smoothing_samples": 100,
    },
}
#: an eigenvalue counts as "near zero" when its magnitude is below this fraction of the largest one
NEAR_ZERO = 0.01
OPTIMIZER_NAMES = ("SGD", "Entropy-SGD")


def measure(model: Any, data: tuple[Any, Any], cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every Hessian and width diagnostic of ``model`` on ``data`` (one batch)."""
    import torch.nn.functional as F

    from hjsmooth import diagnostics as dg

    loss = F.cross_entropy
    top = dg.hessian_eigenvalues(model, loss, data, k=5, rng=seed)
    trace = dg.hessian_trace(model, loss, data, samples=cfg["samples"], deflation=cfg["deflation"], rng=seed)
    spectrum = dg.hessian_spectrum(model, loss, data, steps=cfg["steps"], runs=cfg["runs"], rng=seed)
    heat = dg.smoothed_loss(model, loss, data, cfg["t"], cfg["beta"], "heat", cfg["smoothing_samples"], rng=seed)
    viscous = dg.smoothed_loss(
        model, loss, data, cfg["t"], cfg["beta"], "viscous", cfg["smoothing_samples"], rng=seed
    )  # the same perturbations as heat: Jensen holds sample by sample
    lam_max = float(top.eigenvalues[0])
    per_run = np.sum(spectrum.weights * spectrum.nodes, axis=1) * spectrum.dimension
    return {
        "top_eigenvalues": top.eigenvalues,
        "top_converged": bool(top.converged.all()),
        "trace": trace.estimate,
        "trace_stderr": trace.stderr,
        "slq_trace": float(per_run.mean()),
        "slq_trace_stderr": float(per_run.std(ddof=1) / np.sqrt(len(per_run))),
        "slq_max_node": float(spectrum.nodes.max()),
        "slq_min_node": float(spectrum.nodes.min()),
        "near_zero_fraction": float(
            np.mean(np.sum(spectrum.weights * (np.abs(spectrum.nodes) < NEAR_ZERO * lam_max), axis=1))
        ),
        "negative_fraction": float(np.mean(np.sum(spectrum.weights * (spectrum.nodes < 0), axis=1))),
        "density_mass": float(spectrum.density.sum() * spectrum.spacing),
        "loss": heat.loss,
        "heat_width": heat.estimate - heat.loss,
        "heat_width_stderr": heat.stderr,
        "viscous_width": viscous.estimate - viscous.loss,
        "viscous_width_stderr": viscous.stderr,
        "dimension": spectrum.dimension,
        "_spectrum": spectrum,
    }


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train both networks, measure their Hessians, draw the spectra; write ``out`` and its summary.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        Digits, 20 effective epochs, 600 training samples measured and shorter Lanczos runs (seconds),
        instead of MNIST-1D, 100 epochs and its 3200 training samples.
    seed : int
        Seed of the initialisation (the same for both), the minibatches and every random vector.

    Returns
    -------
    dict
        Per optimizer: ``val_error`` (%), ``loss`` (training loss), ``top_eigenvalues``, ``trace`` and
        ``trace_stderr``, ``slq_trace`` (SLQ's estimate of the same trace), ``near_zero_fraction`` and
        ``negative_fraction`` (spectral mass with ``|lambda| < 0.01 lambda_max`` and with ``lambda < 0``),
        ``heat_width`` and ``viscous_width`` (smoothed loss minus loss) with their stderr; plus ``settings``.
    """
    import torch

    from hjsmooth.demos._nets import task, train_net
    from hjsmooth.demos.study.tasks import load_split

    cfg = SETTINGS["quick" if quick else "full"]
    dataset, kind = task(quick)
    data = load_split(dataset).train_val()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is fastest and does not fight other processes
    numbers: dict[str, Any] = {}
    try:
        for name in progress(OPTIMIZER_NAMES, "hessian demo"):
            net = train_net(name, data, kind, cfg["epochs"], seed)
            subset = (net.data[0][: cfg["measured"]], net.data[1][: cfg["measured"]])
            measured = measure(net.model, subset, cfg, seed)
            numbers[name] = {"val_error": net.val_error, **measured}
    finally:
        torch.set_num_threads(threads)
    spectra = {name: numbers[name].pop("_spectrum") for name in OPTIMIZER_NAMES}
    numbers["settings"] = {"dataset": dataset, "model": kind, **cfg}
    _draw(out, spectra, numbers, quick=quick)
    return numbers


def _draw(out: Path, spectra: dict[str, Any], numbers: dict[str, Any], *, quick: bool) -> None:
    from hjsmooth.diagnostics.spectrum import smoothed_density

    colors = {"SGD": "0.2", "Entropy-SGD": "tab:red"}
    fig, axes = new_figure(1, 2, figsize=(12.5, 4.4))
    for name, sp in spectra.items():
        r = numbers[name]
        label = (
            f"{name}: val. error {r['val_error']:.1f} %, lambda_max {r['top_eigenvalues'][0]:.3g}, "
            f"tr H {r['trace']:.3g}"
        )
        axes[0].semilogy(sp.grid, sp.density * sp.dimension, color=colors[name], label=label)
        top = float(r["top_eigenvalues"][0])
        grid, density, _ = smoothed_density(sp.nodes / top, sp.weights, bandwidth=2e-3, points=4001)
        near = np.abs(grid) <= 0.05
        axes[1].semilogy(
            grid[near],
            density[near],
            color=colors[name],
            label=f"{name}: {100 * r['near_zero_fraction']:.1f} % within 1 % of lambda_max, "
            f"{100 * r['negative_fraction']:.1f} % negative",
        )
    axes[0].set_title("Hessian eigenvalue density (SLQ), whole range")
    axes[0].set_xlabel("eigenvalue")
    axes[0].set_ylabel("eigenvalues per unit (density x d)")
    axes[0].set_ylim(bottom=0.1)  # below: less than one eigenvalue in ten units of the axis
    axes[1].set_title("near zero, relative to each network's largest eigenvalue")
    axes[1].set_xlabel("eigenvalue / lambda_max")
    axes[1].set_ylabel("density of eigenvalue / lambda_max")
    axes[1].set_ylim(bottom=1e-2)
    for ax in axes:
        ax.legend(fontsize=8)
    save(fig, out, "hessian: Hessian spectra at the end of SGD and Entropy-SGD", numbers, quick=quick)
