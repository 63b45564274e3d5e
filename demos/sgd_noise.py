"""Figures 6.1 and 6.3 of the thesis: the gradient-noise covariance D(x) is far from isotropic, and SGD is not Brownian.

A network is trained by plain SGD (constant learning rate, no momentum: the Euler-Maruyama step of the
SGD diffusion (6.2)) on MNIST-1D with an MLP ``40-128-128-10`` (``--quick``: digits, MLP ``64-128-10``).

* Figure 6.1: at 20 %, 40 % and 100 % of training, :func:`hjsmooth.diagnostics.gradient_noise_spectrum`
  gives the eigenvalues of ``D(x) = (1/N) sum_i (grad f_i - grad f)(grad f_i - grad f)^T`` over ``N``
  training samples, their sum, the effective rank ``(tr D)^2 / tr(D^2)`` and the numerical rank.
* Figure 6.3: after training, SGD runs on at the same learning rate for ``T`` more steps while a
  :class:`~hjsmooth.diagnostics.TrajectoryRecorder` keeps 32 random projections of the weights at every
  step.  For Brownian motion the increments ``x_{k+1} - x_k`` would be white noise: a flat power spectrum
  (:func:`~hjsmooth.diagnostics.trajectory_spectrum`) and an autocorrelation inside the 99 % band
  (:func:`~hjsmooth.diagnostics.autocorrelation`).  The figure shows the mean and standard deviation over
  the projections, as the thesis does over the weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, save

__all__ = ["run", "SETTINGS", "INSTANTS"]

#: per mode: training epochs, samples in D(x), steps of the recorded trajectory, lags of the autocorrelation
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 10.0, "samples": 300, "trajectory_steps": 512, "max_lag": 50, "projections": 32},
    "full": {"epochs": 60.0, "samples": 2000, "trajectory_steps": 4096, "max_lag": 200, "projections": 32},
}
#: fractions of the training budget at which D(x) is measured
INSTANTS = (0.2, 0.4, 1.0)
#: eigenvalues of each D(x) written to the text summary (the figure and the returned numbers have them all)
SUMMARY_EIGENVALUES = 20


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train, measure D(x) at three instants, record a trajectory, draw both figures; write ``out`` and its summary.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        Digits, 300 samples in D and 512 recorded steps (seconds) instead of MNIST-1D, 2000 and 4096.
    seed : int
        Seed of the initialisation, the minibatches and the projections.

    Returns
    -------
    dict
        ``noise``: per instant (``"20%"``, ...) the ``eigenvalues`` of D (largest first), ``trace``,
        ``effective_rank``, ``rank``, ``rank_fraction`` (rank / d), ``anisotropy`` (``lambda_max`` over the
        mean eigenvalue ``tr D / d``) and ``gradient_norm``; ``trajectory``: ``steps``, ``low_to_high``
        (mean increment power in the lowest tenth of the frequencies over that in the highest tenth; 1 for
        white noise), ``outside_band`` (fraction of the increments' autocorrelations at lags
        ``1..max_lag`` outside the 99 % white-noise band; 0.01 for white noise), ``lag1`` (mean
        autocorrelation of the increments at lag 1), ``iterate_lag`` (mean autocorrelation of the
        iterates at ``max_lag``), ``parseval`` (largest relative gap between the integrated power and the
        variance); ``val_error``, ``dimension``; plus ``settings``.
    """
    import torch
    import torch.nn.functional as F

    from hjsmooth.demos._nets import task, train_net
    from hjsmooth.demos.study.loop import BATCH
    from hjsmooth.demos.study.tasks import load_split
    from hjsmooth.diagnostics import TrajectoryRecorder, autocorrelation, gradient_noise_spectrum, white_noise_band

    cfg = SETTINGS["quick" if quick else "full"]
    dataset, kind = task(quick)
    data = load_split(dataset).train_val()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    snapshots: dict[str, Any] = {}

    def keep(k: int, outer: int, model: Any) -> None:
        for frac in INSTANTS:
            if k + 1 == max(1, int(round(frac * outer))):
                snapshots[f"{int(frac * 100)}%"] = copy.deepcopy(model)

    try:
        net = train_net("plain SGD", data, kind, cfg["epochs"], seed, drop_lr=False, callback=keep)
        xt, yt = net.data[0], net.data[1]
        sub = (xt[: cfg["samples"]], yt[: cfg["samples"]])
        noise = {}
        for name, model in snapshots.items():
            spec = gradient_noise_spectrum(model, F.cross_entropy, sub)
            d = spec.dimension
            noise[name] = {
                "eigenvalues": spec.eigenvalues,
                "trace": spec.trace,
                "effective_rank": spec.effective_rank,
                "rank": spec.rank,
                "rank_fraction": None if spec.rank is None else spec.rank / d,
                "anisotropy": float(spec.eigenvalues[0] / (spec.trace / d)),
                "gradient_norm": spec.gradient_norm,
            }
        model = net.model
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        recorder = TrajectoryRecorder(model, dim=cfg["projections"], rng=seed)
        gen = torch.Generator().manual_seed(seed + 1)
        recorder.record()
        for _ in range(cfg["trajectory_steps"]):
            idx = torch.randint(len(yt), (BATCH,), generator=gen)
            opt.zero_grad()
            F.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
            recorder.record()
    finally:
        torch.set_num_threads(threads)
    iterates = recorder.iterates
    increments = np.diff(iterates, axis=0)
    spectrum = recorder.spectrum(dt=1.0, increments=True)
    T = increments.shape[0]
    power = spectrum.power
    tenth = max(1, (len(spectrum.frequencies) - 1) // 10)
    ac_inc = autocorrelation(increments, cfg["max_lag"])
    ac_it = autocorrelation(iterates, cfg["max_lag"])
    band = white_noise_band(T, 0.99)
    trajectory = {
        "steps": T,
        "low_to_high": float(power[1 : 1 + tenth].mean() / power[-tenth:].mean()),
        "outside_band": float(np.mean(np.abs(ac_inc[1:]) > band)),
        "band": band,
        "lag1": float(ac_inc[1].mean()),
        "iterate_lag": float(ac_it[-1].mean()),
        "parseval": float(np.max(np.abs(power.sum(axis=0) * spectrum.frequencies[1] / increments.var(axis=0) - 1))),
    }
    numbers = {
        "noise": noise,
        "trajectory": trajectory,
        "val_error": net.val_error,
        "dimension": d,
        "settings": {"dataset": dataset, "model": kind, "lr": 0.1, "batch": BATCH, **cfg},
    }
    _draw(out, numbers, spectrum, ac_inc, ac_it, quick=quick)
    return numbers


def _draw(
    out: Path, numbers: dict[str, Any], spectrum: Any, ac_inc: np.ndarray, ac_it: np.ndarray, *, quick: bool
) -> None:
    fig, axes = new_figure(1, 3, figsize=(17.0, 4.4))
    shades = dict(zip(numbers["noise"], ["0.7", "0.45", "0.0"]))
    for name, r in numbers["noise"].items():
        lam = np.asarray(r["eigenvalues"])
        lam = lam[lam > 0]
        axes[0].semilogy(
            np.arange(1, len(lam) + 1),
            lam,
            color=shades[name],
            label=f"{name} of training: tr D {r['trace']:.3g}, rank {r['rank']} "
            f"({100 * r['rank_fraction']:.2f} % of d), effective rank {r['effective_rank']:.1f}",
        )
    axes[0].set_xlabel("index i (largest first)")
    axes[0].set_ylabel("eigenvalue of D(x)")
    axes[0].set_title(
        f"Fig. 6.1: eigenvalues of D(x) (d = {numbers['dimension']}, N = {numbers['settings']['samples']})", fontsize=10
    )
    top = max(float(r["eigenvalues"][0]) for r in numbers["noise"].values())
    axes[0].set_ylim(bottom=top * 1e-8)
    axes[0].legend(fontsize=7, loc="lower left")
    f = spectrum.frequencies[1:]
    p = spectrum.power[1:]
    mean, sd = p.mean(axis=1), p.std(axis=1)
    axes[1].loglog(f, mean, color="tab:blue", label="increments of SGD (mean over projections)")
    axes[1].fill_between(f, np.maximum(mean - sd, mean * 1e-2), mean + sd, color="tab:blue", alpha=0.2, lw=0)
    axes[1].axhline(float(mean.mean()), color="tab:red", ls="--", label="white noise of the same variance (flat)")
    tr = numbers["trajectory"]
    axes[1].set_title(f"Fig. 6.3a: power spectrum of x_(k+1) - x_k (low / high: {tr['low_to_high']:.2f})", fontsize=10)
    axes[1].set_xlabel("frequency (1 / step)")
    axes[1].set_ylabel("power")
    axes[1].legend(fontsize=8)
    lags = np.arange(ac_inc.shape[0])
    for ac, color, label in [(ac_inc, "tab:blue", "increments"), (ac_it, "0.3", "iterates")]:
        m, s = ac.mean(axis=1), ac.std(axis=1)
        axes[2].plot(lags, m, color=color, label=label)
        axes[2].fill_between(lags, m - s, m + s, color=color, alpha=0.2, lw=0)
    for sign in (1, -1):
        axes[2].axhline(
            sign * tr["band"], color="tab:red", ls=":", label="99 % band of white noise" if sign > 0 else None
        )
    axes[2].set_title(
        f"Fig. 6.3b: autocorrelation ({100 * tr['outside_band']:.1f} % of increment lags outside the band)", fontsize=10
    )
    axes[2].set_xlabel("lag (steps)")
    axes[2].legend(fontsize=8)
    summary = {
        **numbers,
        "noise": {
            name: {**r, "eigenvalues": np.asarray(r["eigenvalues"])[:SUMMARY_EIGENVALUES]}
            for name, r in numbers["noise"].items()
        },
    }
    save(
        fig,
        out,
        "sgd_noise: the gradient-noise covariance D(x) and the frequency content of SGD "
        f"(the {SUMMARY_EIGENVALUES} largest eigenvalues of each)",
        summary,
        quick=quick,
    )
