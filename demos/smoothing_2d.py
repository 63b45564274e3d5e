"""Two 2D landscapes, their heat / viscous-HJ / inviscid-HJ smoothings, and sampler-driven descents.

Landscapes (:mod:`hjsmooth.landscapes`): ``wide_sharp_2d`` (a wide shallow well and a sharp, slightly
deeper one) and ``rastrigin`` (a quadratic bowl under a lattice of local minima).  For each we draw

* ``f`` with four descents from the same start, each ``x <- x - lr g(x)`` for ``steps`` steps:

  - SGD: ``g = grad f(x) + noise``, the Euler-Maruyama step of ``dX = -grad f dt + beta_sgd^{-1/2} dB``
    (``beta_sgd`` large: the small noise of minibatch gradients);
  - Entropy-SGD: ``g`` = the Langevin estimate of ``grad u(x, t)``, ``u`` the viscous HJ solution
    (Local Entropy), from :func:`hjsmooth.sde.smoothed_grad` with ``kind="viscous"`` (a short inner loop,
    :data:`LANGEVIN`, as Entropy-SGD runs);
  - HJ: the inviscid ``grad u = (x - prox_{t f}(x))/t`` by the proximal gradient flow (``kind="inviscid"``);
  - HEAT: the Gaussian average of ``grad f`` (``kind="heat"``);

* the three smoothings at time ``t`` on the grid (:func:`hjsmooth.heat`, :func:`hjsmooth.local_entropy`,
  :func:`hjsmooth.hopf_lax`), with the minimiser of each at several times.

What it shows: heat and viscous HJ move the minimiser to the wide well; Hopf-Lax never moves a global
minimiser (``min u(., t) = min f`` for every ``t``), it only flattens what lies around it.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "SETTINGS", "descend"]

#: per landscape: the start of every descent, the smoothing time ``t``, ``beta``, the step ``lr``.
SETTINGS: dict[str, dict[str, Any]] = {
    "wide_sharp_2d": {"start": (0.9, 0.7), "t": 1.0, "beta": 2.0, "beta_sgd": 50.0, "lr": 0.2},
    "rastrigin_2d": {"start": (1.95, -1.95), "t": 0.5, "beta": 5.0, "beta_sgd": 50.0, "lr": 0.2},
}
#: the inner Langevin loop of Entropy-SGD: chains per point, burn-in and averaged steps, step size.
LANGEVIN: dict[str, Any] = {"chains": 8, "burn_in": 100, "steps": 300, "step_size": 0.02}
SMOOTHING_TIMES = (0.1, 0.25, 0.5, 1.0)
#: SGD takes steps this many times smaller (and this many times more of them: the same time ``lr * steps``),
#: so that it is stable in the sharp well, whose curvature is about 80.
SGD_STEP_RATIO = 10
METHODS = ("SGD", "Entropy-SGD", "HJ", "HEAT")


def descend(
    landscape: Any,
    method: str,
    start: np.ndarray,
    *,
    t: float,
    beta: float,
    beta_sgd: float,
    lr: float,
    steps: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The iterates of ``x <- x - lr g(x)`` for one of :data:`METHODS`, shape ``(steps + 1, 2)``.

    SGD runs ``SGD_STEP_RATIO`` times more steps, each that many times smaller.
    """
    from hjsmooth.sde import smoothed_grad

    kinds = {"Entropy-SGD": "viscous", "HJ": "inviscid", "HEAT": "heat"}
    x = np.asarray(start, dtype=np.float64).copy()
    path = [x.copy()]
    if method == "SGD":  # ten times smaller steps (stable in the sharp well), ten times more of them
        lr, steps = lr / SGD_STEP_RATIO, steps * SGD_STEP_RATIO
    for _ in progress(range(steps), f"{landscape.name}: {method}"):
        if method == "SGD":
            x = x - lr * landscape.grad(x) + math.sqrt(lr / beta_sgd) * rng.standard_normal(x.shape)
        else:
            kind = kinds[method]
            extra: dict[str, Any] = LANGEVIN if kind == "viscous" else {}
            g = smoothed_grad(
                landscape.grad,
                x,
                t,
                beta=None if kind == "inviscid" else beta,
                kind=kind,
                rng=None if kind == "inviscid" else rng,
                **extra,
            )
            x = x - lr * np.asarray(g.grad)
        path.append(x.copy())
    return np.asarray(path)


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and draw the smoothings and the descents; write ``out`` and its summary; return the numbers.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        A coarser grid and fewer descent steps.
    seed : int
        Seed of the SGD noise and of the samplers.

    Returns
    -------
    dict
        Per landscape: ``argmin`` (minimiser of each smoothing at each of ``times``), ``end`` (final iterate
        of each method), ``end_value`` (``f`` there), ``distance_to`` the wide well / the origin, and the
        settings.
    """
    import hjsmooth as hs
    from hjsmooth.landscapes import rastrigin, wide_sharp_2d

    rng = np.random.default_rng(seed)
    nodes = 101 if quick else 241
    steps = 60 if quick else 150
    numbers: dict[str, Any] = {}
    drawings = []
    for landscape in (wide_sharp_2d(), rastrigin(2)):
        cfg = SETTINGS[landscape.name]
        grid = landscape.grid(nodes)
        f = landscape.on_grid(grid)
        smoothers = {
            "heat": partial(hs.heat, f, grid, beta=cfg["beta"]),
            "viscous": partial(hs.local_entropy, f, grid, beta=cfg["beta"]),
            "inviscid": partial(hs.hopf_lax, f, grid),
        }
        fields = {name: np.asarray(fn(cfg["t"])) for name, fn in smoothers.items()}
        argmins: dict[str, list[list[float]]] = {}
        for name, fn in smoothers.items():
            argmins[name] = []
            for s in SMOOTHING_TIMES:
                u = np.asarray(fn(s))
                idx = np.unravel_index(int(np.argmin(u)), u.shape)
                argmins[name].append([float(c[idx]) for c in grid.coords])
        paths = {
            m: descend(
                landscape,
                m,
                np.asarray(cfg["start"]),
                t=cfg["t"],
                beta=cfg["beta"],
                beta_sgd=cfg["beta_sgd"],
                lr=cfg["lr"],
                steps=steps,
                rng=rng,
            )
            for m in METHODS
        }
        ends = {m: p[-1] for m, p in paths.items()}
        target = np.asarray(landscape.minima[-1] if landscape.name == "wide_sharp_2d" else landscape.minima[0])
        numbers[landscape.name] = {
            "times": SMOOTHING_TIMES,
            "argmin": {k: np.asarray(v) for k, v in argmins.items()},
            "end": ends,
            "end_value": {m: float(landscape.value(e)) for m, e in ends.items()},
            ("distance_to_wide_well" if landscape.name == "wide_sharp_2d" else "distance_to_origin"): {
                m: float(np.linalg.norm(e - target)) for m, e in ends.items()
            },
            "minima": np.asarray(landscape.minima[:2]),
            "settings": {**cfg, "steps": steps, "grid_nodes_per_axis": nodes, **LANGEVIN},
        }
        drawings.append((landscape, grid, f, fields, paths, argmins, cfg))
    numbers["seed"] = seed
    _draw(out, drawings, numbers, quick=quick)
    return numbers


def _draw(out: Path, drawings: list[tuple], numbers: dict[str, Any], *, quick: bool) -> None:
    fig, axes = new_figure(
        len(drawings), 4, figsize=(17.0, 4.4 * len(drawings)), gridspec_kw={"wspace": 0.18, "hspace": 0.32}
    )
    colors = {"SGD": "0.2", "Entropy-SGD": "tab:red", "HJ": "tab:blue", "HEAT": "tab:green"}
    titles = {"heat": "heat $v(x, t)$", "viscous": "viscous HJ (Local Entropy)", "inviscid": "inviscid HJ (Hopf-Lax)"}
    for row, (landscape, grid, f, fields, paths, argmins, cfg) in enumerate(drawings):
        gx, gy = grid.coords
        levels = np.quantile(f, np.linspace(0.0, 0.9, 16))
        ax = axes[row, 0]
        ax.contourf(gx, gy, f, levels=levels, cmap="Greys_r", extend="max")
        for m, p in paths.items():
            ax.plot(p[:, 0], p[:, 1], "-", color=colors[m], lw=1.4, label=m)
            ax.plot(p[-1, 0], p[-1, 1], "o", color=colors[m], ms=6, mec="white")
        ax.plot(*cfg["start"], "*", color="gold", ms=13, mec="black", label="start")
        ax.set_title(f"{landscape.name}: $f$ and four descents")
        ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
        for col, name in enumerate(("heat", "viscous", "inviscid"), start=1):
            ax = axes[row, col]
            u = fields[name]
            ax.contourf(gx, gy, u, levels=np.quantile(u, np.linspace(0.0, 0.9, 16)), cmap="Greys_r", extend="max")
            am = np.asarray(argmins[name])
            ax.plot(
                am[:, 0],
                am[:, 1],
                "x",
                color="tab:orange",
                ms=9,
                mew=2,
                label="minimiser at $t \\in \\{" + ", ".join(f"{s:g}" for s in SMOOTHING_TIMES) + "\\}$",
            )
            beta = "" if name == "inviscid" else f", $\\beta={cfg['beta']:g}$"
            ax.set_title(f"{titles[name]}, $t={cfg['t']:g}${beta}")
            ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
        for ax in axes[row]:
            ax.set_aspect("equal")
            ax.set_xlabel("$x_1$")
        axes[row, 0].set_ylabel("$x_2$")
    save(
        fig, out, "smoothing_2d: heat / viscous / inviscid smoothings and sampler-driven descents", numbers, quick=quick
    )
