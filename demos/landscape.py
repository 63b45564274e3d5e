"""A 2D slice of a trained network's loss and its three PDE smoothings: the bridge between hjsmooth's two halves.

A network is trained by SGD (MNIST-1D with an MLP ``40-128-128-10``; ``--quick``: digits with an MLP
``64-128-10``).  :func:`hjsmooth.diagnostics.loss_slice` evaluates the training loss on a grid of
``x + a d_1 + b d_2``, with two random directions normalised filter by filter (Li et al. 2018), so
that ``a = 1`` moves every filter by its own norm.  The slice is an array on an ``hs.Grid``, so the grid
solvers smooth it directly, with the library's conventions (``docs/conventions.md``):

* ``hs.heat(f, grid, t, beta)``: the Gaussian average of variance ``t/beta`` (the HEAT optimizer's loss);
* ``hs.local_entropy(f, grid, t, beta)``: the viscous HJ solution, Local Entropy (Entropy-SGD's loss);
* ``hs.hopf_lax(f, grid, t)``: the inviscid HJ solution (the HJ optimizer's loss).

These are the smoothings of the loss *restricted to the plane*; in the network's ``d`` dimensions the
samplers and optimizers estimate the same PDEs' solutions.  What the picture shows: the heat flow lifts
and blurs the valley, Local Entropy lies below the heat flow (Jensen), and Hopf-Lax keeps the minimum
value while flattening what lies around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, save

__all__ = ["run", "SETTINGS", "VALLEY_DEPTH"]

#: per mode: training epochs, samples of the training set used, grid spacing, half-width of the window
#: shown, and the smoothing (PDE time t, inverse temperature beta) in slice coordinates.  The slice is
#: computed on a window wider by 4 sqrt(t/beta) on each side, so that the Gaussian of the heat flow and
#: of Local Entropy is not cut by the edge in the part shown.
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 20.0, "samples": 400, "spacing": 0.1, "half_width": 1.0, "t": 2.0, "beta": 50.0},
    "full": {"epochs": 100.0, "samples": 1000, "spacing": 0.02, "half_width": 0.5, "t": 0.5, "beta": 50.0},
}
#: the valley of a field is where it lies less than this above the loss's minimum on the window shown
VALLEY_DEPTH = 0.05


def laplacian_at(u: np.ndarray, idx: tuple[int, int], h: float) -> float:
    """Five-point Laplacian of ``u`` at interior node ``idx``."""
    i, j = idx
    return float((u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4 * u[i, j]) / h**2)


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train a network, slice its loss, smooth the slice three ways; write ``out`` and its summary.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        Digits, a window of half-width 1 at spacing 0.1 and 400 samples (seconds), instead of MNIST-1D,
        half-width 0.5 at spacing 0.02 and 1000 samples (its valley is narrower), with ``t = 0.5``.
    seed : int
        Seed of the training and of the slice's directions.

    Returns
    -------
    dict
        ``loss_at_weights`` (``f(x)``), and per field (``loss``, ``heat``, ``viscous``, ``inviscid``): ``min``,
        ``argmin`` (slice coordinates), ``centre`` (value at ``a = b = 0``), ``laplacian`` (five-point, at the
        centre); ``jensen_gap`` (the smallest ``heat - viscous`` in the interior), ``hopf_lax_excess`` (the
        largest ``inviscid - loss``), ``val_error``; plus ``settings``.
    """
    import torch
    import torch.nn.functional as F

    import hjsmooth as hs
    from hjsmooth.demos._nets import task, train_net
    from hjsmooth.demos.study.tasks import load_split
    from hjsmooth.diagnostics import loss_slice

    cfg = SETTINGS["quick" if quick else "full"]
    dataset, kind = task(quick)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = train_net("SGD", load_split(dataset).train_val(), kind, cfg["epochs"], seed)
        pad = 4 * np.sqrt(cfg["t"] / cfg["beta"])
        half = int(np.ceil((cfg["half_width"] + pad) / cfg["spacing"]))  # nodes on each side of the weights
        reach = half * cfg["spacing"]
        grid = hs.Grid(lower=(-reach, -reach), upper=(reach, reach), shape=(2 * half + 1, 2 * half + 1))
        data = (net.data[0][: cfg["samples"]], net.data[1][: cfg["samples"]])
        sl = loss_slice(net.model, F.cross_entropy, data, grid, normalization="filter", rng=seed)
    finally:
        torch.set_num_threads(threads)
    f = sl.values
    t, beta = cfg["t"], cfg["beta"]
    fields = {
        "loss": f,
        "heat": hs.heat(f, grid, t, beta),
        "viscous": hs.local_entropy(f, grid, t, beta),
        "inviscid": hs.hopf_lax(f, grid, t),
    }
    h = cfg["spacing"]
    shown_half = int(round(cfg["half_width"] / h))
    inner = (slice(half - shown_half, half + shown_half + 1),) * 2  # the window shown, away from the edge
    centre = (shown_half, shown_half)  # the weights, in the inner window
    shown = hs.Grid(lower=(-shown_half * h,) * 2, upper=(shown_half * h,) * 2, shape=(2 * shown_half + 1,) * 2)
    fields = {name: u[inner] for name, u in fields.items()}
    numbers: dict[str, Any] = {"val_error": net.val_error, "loss_at_weights": float(fields["loss"][centre])}
    for name, u in fields.items():
        idx = np.unravel_index(int(np.argmin(u)), u.shape)
        numbers[name] = {
            "min": float(u.min()),
            "argmin": [float(c[idx]) for c in shown.coords],
            "centre": float(u[centre]),
            "laplacian": laplacian_at(u, centre, h),
            "valley_area": float(np.count_nonzero(u <= fields["loss"].min() + VALLEY_DEPTH) * h * h),
        }
    numbers["jensen_gap"] = float((fields["heat"] - fields["viscous"]).min())
    numbers["hopf_lax_excess"] = float((fields["inviscid"] - fields["loss"]).max())
    numbers["heat_lift_expected"] = float(t / (2 * beta) * numbers["loss"]["laplacian"])
    numbers["settings"] = {"dataset": dataset, "model": kind, "computed_half_width": reach, **cfg}
    _draw(out, shown, fields, numbers, quick=quick)
    return numbers


def _draw(out: Path, grid: Any, fields: dict[str, np.ndarray], numbers: dict[str, Any], *, quick: bool) -> None:
    cfg = numbers["settings"]
    titles = {
        "loss": "training loss on the slice",
        "heat": f"hs.heat (t = {cfg['t']:g}, beta = {cfg['beta']:g})",
        "viscous": f"hs.local_entropy (t = {cfg['t']:g}, beta = {cfg['beta']:g})",
        "inviscid": f"hs.hopf_lax (t = {cfg['t']:g})",
    }
    fig, axes = new_figure(1, 4, figsize=(18.0, 4.4))
    a, b = grid.coords
    # a log colour scale: the loss spans orders of magnitude between the valley floor and the window's edge
    floor = max(min(float(u.min()) for u in fields.values()), 1e-12)
    levels = np.linspace(np.log10(floor), np.log10(np.quantile(fields["loss"], 0.95)), 25)
    for ax, (name, u) in zip(axes, fields.items()):
        cs = ax.contourf(
            a, b, np.clip(np.log10(np.maximum(u, floor)), levels[0], levels[-1]), levels=levels, cmap="viridis"
        )
        r = numbers[name]
        ax.plot(*r["argmin"], "r*", ms=10, label=f"min {r['min']:.3g}")
        ax.plot(0, 0, "w+", ms=10, label=f"weights: {r['centre']:.3g}, Laplacian {r['laplacian']:.3g}")
        ax.contour(a, b, u, levels=[fields["loss"].min() + VALLEY_DEPTH], colors="tab:orange", linewidths=1.2)
        ax.plot(
            [], [], "-", color="tab:orange", label=f"valley (< min f + {VALLEY_DEPTH:g}): area {r['valley_area']:.2f}"
        )
        ax.set_title(titles[name], fontsize=10)
        ax.set_xlabel("a (direction 1, filter-normalised)")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("b (direction 2)")
    fig.colorbar(cs, ax=axes, shrink=0.8, label="log10 loss")
    save(
        fig,
        out,
        "landscape: a filter-normalised slice and its heat, viscous and inviscid HJ smoothings",
        numbers,
        quick=quick,
    )
