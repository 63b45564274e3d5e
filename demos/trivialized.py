"""Figure 2.3a-b of the thesis: Trivialized-SGD (Algorithm 1) against Adam on the deep, thin "mnistfc" network.

The network of section 2.4.3: 16 hidden layers of 128 ReLU units (17 linear layers), cross-entropy loss,
trained on MNIST-1D (generated locally by the ``mnist1d`` package, never downloaded; the ``train`` study's
fixed split: 3200 training, 800 validation, 1000 test sequences) instead of MNIST.  Both runs of a seed
share the initial weights and the minibatches:

* Adam, learning rate ``1e-3``, l2 regularisation ``1e-5`` (the thesis' settings);
* :class:`hjsmooth.optim.TrivializedSGD` over the same Adam, ``J = 1e-3``, ``tau_0 = 500`` steps: the
  gradient handed to Adam is ``grad f + (1 + 2 tau_i / N)^{1/2} h`` with ``h ~ J sqrt(p (p - 2)) N(0, I)``
  fixed, ``tau_i = n (e^{-i/tau_0} - 1/2)``;

and two more that tell the effects apart: Trivialized-SGD with a hundred times weaker coupling
``J = 1e-5``, and Adam without the l2 term.

Recorded per epoch and averaged over the seeds: the training loss (mean over the epoch's minibatches),
the validation error, and the smallest back-propagated gradient: for each weight matrix the mean absolute
entry of its gradient, the smallest over the 17 matrices, averaged over the epoch's steps.  It is recorded
twice for Trivialized-SGD: for the gradient of the loss, and for the gradient Adam receives (loss plus
field); for Adam the two are the same.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "SETTINGS", "THESIS", "mnistfc"]

#: Full run: the thesis' 50 epochs, 5 seeds; quick run: scikit-learn's digits, 3 epochs, one seed.
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"dataset": "mnist1d", "epochs": 50, "seeds": 5, "batch": 32},
    "quick": {"dataset": "digits", "epochs": 3, "seeds": 1, "batch": 32},
}
#: Optimizer settings of section 2.4.3 (mnistfc).
HYPER: dict[str, float] = {"lr": 1e-3, "weight_decay": 1e-5, "coupling": 1e-3, "tau0": 500.0}
#: The thesis' final validation errors on MNIST (percent).
THESIS: dict[str, float] = {"Adam": 2.92, "Trivialized-SGD": 2.48}

HIDDEN_LAYERS, WIDTH = 16, 128

#: The runs of each seed: name -> (coupling ``J`` of Trivialized-SGD or ``None`` for plain Adam, l2 weight).
#: The first two are the thesis' comparison; the other two separate the effects seen with its settings.
METHODS: dict[str, tuple[float | None, float]] = {
    "Adam": (None, HYPER["weight_decay"]),
    "Trivialized-SGD": (HYPER["coupling"], HYPER["weight_decay"]),
    "Trivialized-SGD, J = 1e-5": (1e-5, HYPER["weight_decay"]),
    "Adam without l2": (None, 0.0),
}


def mnistfc(n_features: int, classes: int = 10) -> Any:
    """The thesis' "mnistfc": ``HIDDEN_LAYERS`` hidden layers of ``WIDTH`` ReLU units, then a linear read-out."""
    import torch.nn as nn

    layers: list[Any] = []
    width_in = n_features
    for _ in range(HIDDEN_LAYERS):
        layers += [nn.Linear(width_in, WIDTH), nn.ReLU()]
        width_in = WIDTH
    layers.append(nn.Linear(width_in, classes))
    return nn.Sequential(*layers)


def _optimizer(method: str, model: Any, seed: int) -> Any:
    import torch

    coupling, weight_decay = METHODS[method]
    if coupling is None:
        return torch.optim.Adam(model.parameters(), lr=HYPER["lr"], weight_decay=weight_decay)
    from hjsmooth.optim import TrivializedSGD

    return TrivializedSGD(
        model.parameters(),
        torch.optim.Adam,
        coupling=coupling,
        tau0=HYPER["tau0"],
        lr=HYPER["lr"],
        weight_decay=weight_decay,
        generator=torch.Generator().manual_seed(seed + 1000),
    )


def _field_term(opt: Any, weights: list[Any]) -> list[Any] | None:
    """What Trivialized-SGD adds to each weight's gradient at its next step (``None`` for Adam)."""
    if not hasattr(opt, "factor"):
        return None
    c = opt.factor()[0]
    return [c * opt.state[w]["field"] for w in weights]


def _smallest_layer_gradient(weights: list[Any], added: list[Any] | None = None) -> Any:
    """The smallest over ``weights`` of each one's mean absolute gradient entry (plus ``added``), a 0-d tensor."""
    import torch

    grads = [w.grad if added is None else w.grad + a for w, a in zip(weights, added or weights)]
    return torch.stack([g.abs().mean() for g in grads]).min()


def _error(model: Any, x: Any, y: Any) -> float:
    import torch

    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean()) * 100


def train(method: str, data: tuple[Any, ...], epochs: int, batch: int, seed: int) -> dict[str, Any]:
    """Train a fresh mnistfc with ``method`` (one of ``METHODS``) for ``epochs``; return its curves.

    The weights are initialised from ``torch.manual_seed(seed)`` and the minibatches drawn from a generator
    seeded with ``seed``: every method sees the same ones.
    """
    import torch
    import torch.nn.functional as F

    xt, yt, xv, yv, xs, ys = (torch.as_tensor(a) for a in data)
    torch.manual_seed(seed)
    model = mnistfc(xt.shape[1])
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    opt = _optimizer(method, model, seed)
    order = torch.Generator().manual_seed(seed)
    curves: dict[str, list[float]] = {"train_loss": [], "val_error": [], "min_grad_loss": [], "min_grad_used": []}
    for _ in range(epochs):
        losses, g_loss, g_used = [], [], []
        for idx in torch.randperm(len(yt), generator=order).split(batch):
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            g_loss.append(_smallest_layer_gradient(weights))
            g_used.append(_smallest_layer_gradient(weights, _field_term(opt, weights)))
            opt.step()
            losses.append(loss.detach())
        curves["train_loss"].append(float(torch.stack(losses).mean()))
        curves["min_grad_loss"].append(float(torch.stack(g_loss).mean()))
        curves["min_grad_used"].append(float(torch.stack(g_used).mean()))
        curves["val_error"].append(_error(model, xv, yv))
    result: dict[str, Any] = {k: np.asarray(v) for k, v in curves.items()}
    result["test_error"] = _error(model, xs, ys)
    result["steps"] = epochs * len(torch.arange(len(yt)).split(batch))
    if METHODS[method][0] is not None:
        result["field_factor_end"] = opt.factor()[0]
        result["layers"] = opt.layers
    return result


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train mnistfc with Adam and with Trivialized-SGD over Adam; draw Figure 2.3a-b; return the numbers.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        scikit-learn's digits, 3 epochs, one seed (seconds) instead of MNIST-1D, 50 epochs, 5 seeds (minutes).
    seed : int
        The first seed; run ``r`` uses ``seed + r`` for the weights and minibatches of both methods.

    Returns
    -------
    dict
        Per method (the keys of ``METHODS``): ``train_loss``, ``val_error``, ``min_grad_loss``,
        ``min_grad_used`` (per epoch, mean over the seeds), ``final_val_error`` and ``final_test_error``
        (mean over the seeds, %) with ``..._std``,
        ``val_errors`` (every seed's final validation error); the Trivialized-SGD runs also ``field_factor_end``
        and ``layers`` (its ``p``); plus ``thesis`` and ``settings``.
    """
    import torch

    from hjsmooth.demos.study.tasks import load_split

    t0 = time.perf_counter()
    cfg = SETTINGS["quick" if quick else "full"]
    split = load_split(cfg["dataset"])
    data = (*split.train_val(), *split.test_arrays())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small net: one thread is fastest and leaves the other core alone
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    try:
        jobs = [(m, seed + r) for r in range(cfg["seeds"]) for m in METHODS]
        for method, s in progress(jobs, "trivialized runs"):
            runs[method].append(train(method, data, cfg["epochs"], cfg["batch"], s))
    finally:
        torch.set_num_threads(threads)
    numbers: dict[str, Any] = {}
    for method, results in runs.items():
        val = np.array([r["val_error"][-1] for r in results])
        test = np.array([r["test_error"] for r in results])
        entry: dict[str, Any] = {
            key: np.mean([r[key] for r in results], axis=0)
            for key in ("train_loss", "val_error", "min_grad_loss", "min_grad_used")
        }
        entry.update(
            final_val_error=float(val.mean()),
            final_val_error_std=float(val.std()),
            final_test_error=float(test.mean()),
            final_test_error_std=float(test.std()),
            val_errors=val,
        )
        if METHODS[method][0] is not None:
            entry.update(field_factor_end=results[0]["field_factor_end"], layers=results[0]["layers"])
        numbers[method] = entry
    numbers["thesis"] = {f"{m} final val error (MNIST, %)": v for m, v in THESIS.items()}
    numbers["settings"] = {
        **cfg,
        **HYPER,
        "hidden_layers": HIDDEN_LAYERS,
        "width": WIDTH,
        "first_seed": seed,
        "steps_per_run": runs["Adam"][0]["steps"],
        "seconds": time.perf_counter() - t0,
    }
    _draw(out, numbers, quick=quick)
    return numbers


def _draw(out: Path, numbers: dict[str, Any], quick: bool) -> None:
    styles = {
        "Adam": ("tab:blue", "-"),
        "Trivialized-SGD": ("tab:red", "-"),
        "Trivialized-SGD, J = 1e-5": ("tab:orange", "-"),
        "Adam without l2": ("tab:cyan", "--"),
    }
    fig, axes = new_figure(1, 3, figsize=(17.0, 5.0), gridspec_kw={"wspace": 0.25})
    cfg = numbers["settings"]
    for method, (color, ls) in styles.items():
        r = numbers[method]
        epochs = np.arange(1, len(r["train_loss"]) + 1)
        axes[0].semilogy(epochs, r["train_loss"], color=color, ls=ls, lw=1.8, label=method)
        used = np.where(r["min_grad_used"] > 0, r["min_grad_used"], np.nan)
        axes[1].semilogy(epochs, used, color=color, ls=ls, lw=1.8, label=f"{method}: handed to Adam")
        if METHODS[method][0] is not None:
            axes[1].semilogy(
                epochs,
                np.where(r["min_grad_loss"] > 0, r["min_grad_loss"], np.nan),
                color=color,
                lw=1.0,
                ls=":",
                label=f"{method}: of the loss alone",
            )
        thesis = f", thesis (MNIST) {THESIS[method]:.2f} %" if method in THESIS else ""
        axes[2].plot(
            epochs,
            r["val_error"],
            color=color,
            ls=ls,
            lw=1.8,
            label=f"{method}: final {r['final_val_error']:.1f} %{thesis}",
        )
    axes[0].set_title(
        f"Figure 2.3a: mnistfc ({cfg['hidden_layers']} x {cfg['width']} ReLU) on {cfg['dataset']},\n"
        f"Adam lr {cfg['lr']:g}, l2 {cfg['weight_decay']:g}, tau0 {cfg['tau0']:g}; mean of "
        f"{cfg['seeds']} seeds",
        fontsize=10,
    )
    axes[0].set_ylabel("training loss (mean over the epoch)")
    axes[1].set_title(
        "Figure 2.3b: smallest back-propagated gradient\n(min over layers of mean |g|, epoch average; 0 not drawn)",
        fontsize=10,
    )
    axes[1].set_ylabel("smallest layer-mean |gradient|")
    axes[2].set_title("validation error", fontsize=10)
    axes[2].set_ylabel("validation error (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    save(fig, out, "trivialized: Figure 2.3a-b, Trivialized-SGD against Adam on mnistfc", numbers, quick=quick)
