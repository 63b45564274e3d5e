"""Example 6.43 / Figure 6.4 of the thesis: SGD out of equilibrium, circling a saddle.

The dynamics is ``dX = -grad f(X) dt + sqrt(2) dB`` with ``-grad f = j - grad Phi``,

    Phi(x) = (x_1^2 - 1)^2 / 4 + x_2^2 / 2,    j = lam e^Phi J_ss,    J_ss = e^{-(x_1^2 + x_2^2)^2 / 4} (-x_2, x_1)

(:func:`hjsmooth.landscapes.limit_cycles`).  ``j e^{-Phi} = lam J_ss`` is divergence free, so the
steady state is ``e^{-Phi}/Z`` for every ``lam``: the force does not change *where* SGD spends its time,
but it makes the dynamics rotate.  In hjsmooth's convention (noise ``beta^{-1/2} dB``) the noise
``sqrt(2) dB`` is ``beta = 1/2``.  For ``lam = 0``, ``0.5`` and a large ``lam`` we compute

* the steady state of the Fokker-Planck equation ``rho_t = -div(b rho) + 1/(2 beta) Lap rho`` on the
  box ``[-2.5, 2.5]^2`` with no flux through its edge (:func:`hjsmooth.fokker_planck_steady_state`),
  and its L1 distance to ``e^{-Phi}/Z``;
* noisy SDE paths (:func:`hjsmooth.sde.simulate`, Euler-Maruyama) and their mean angular velocity
  ``E[theta(T) - theta(0)] / T`` with its standard error: zero for ``lam = 0``, positive for ``lam > 0``;
* noise-free paths of ``dx = b(x) dt``: for ``lam = 0`` they stop at the minima ``(+-1, 0)``, for
  ``lam = 0.5`` at critical points shifted off the axis (Theorem 6.48), for large ``lam`` they end on a
  limit cycle around the saddle at the origin.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "LAMBDAS", "angular_velocity"]

#: The force strengths of Figure 6.4 (a), (b), (c).
LAMBDAS: tuple[float, ...] = (0.0, 0.5, 5.0)


def angular_velocity(paths: np.ndarray, duration: float) -> np.ndarray:
    """Mean angular velocity of each path, ``(theta(T) - theta(0)) / T``, from positions ``(times, n, 2)``.

    The angle is unwrapped between saved times, so the saved times must be close enough that no path turns
    by more than half a turn between two of them.
    """
    theta = np.unwrap(np.arctan2(paths[..., 1], paths[..., 0]), axis=0)
    return (theta[-1] - theta[0]) / duration


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and draw Figure 6.4 with its numbers; write ``out`` and its summary; return the numbers.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        A coarser grid, fewer and shorter paths.
    seed : int
        Seed of the SDE's Brownian increments.

    Returns
    -------
    dict
        One entry per ``lam`` (keys ``"lam=0"``, ...): ``steady_state_l1`` (``int |rho - e^{-Phi}/Z|``),
        ``steady_state_mass``, ``omega_mean`` and ``omega_stderr`` (mean angular velocity of the noisy paths
        and its standard error), ``omega_z`` (their ratio), ``deterministic_end`` (where the noise-free
        paths are at the end), ``deterministic_radius`` and ``deterministic_omega`` (radius and angular
        velocity over the last fifth of the noise-free run); plus the settings.
    """
    import hjsmooth as hs
    from hjsmooth.landscapes import limit_cycles
    from hjsmooth.sde import simulate

    n_grid = 101 if quick else 201
    n_paths = 200 if quick else 1000
    duration = 10.0 if quick else 40.0
    dt = 0.01
    det_duration = 30.0
    starts = np.array([[1.0, 0.3], [-1.5, 1.0], [0.2, 0.0], [1.8, -1.5]])
    rng = np.random.default_rng(seed)

    results: dict[str, Any] = {}
    drawings = []
    for lam in progress(LAMBDAS, "lambda"):
        model = limit_cycles(lam)
        grid = model.potential.grid(n_grid)
        drift = model.drift_on_grid(grid)
        rho = np.asarray(hs.fokker_planck_steady_state(grid, drift=drift, beta=model.beta))
        gibbs = np.exp(-model.potential.on_grid(grid))
        gibbs /= grid.integrate(gibbs)

        x0 = np.repeat(np.array([[1.0, 0.0], [-1.0, 0.0]]), n_paths // 2, axis=0)
        noisy = simulate(
            x0,
            duration,
            kind="sde",
            drift=model.drift,
            beta=model.beta,
            rng=rng,
            dt=dt,
            save_at=int(round(duration / dt)) + 1,
        )
        omega = angular_velocity(np.asarray(noisy.paths), duration)
        clean = simulate(
            starts,
            det_duration,
            kind="sde",
            drift=model.drift,
            beta=math.inf,
            rng=rng,
            dt=dt,
            save_at=int(round(det_duration / dt)) + 1,
        )
        clean_paths = np.asarray(clean.paths)
        tail = clean_paths[-len(clean_paths) // 5 :]
        tail_duration = float(clean.times[-1] - clean.times[-len(tail)])
        mean, stderr = float(omega.mean()), float(omega.std(ddof=1) / math.sqrt(omega.size))
        results[f"lam={lam:g}"] = {
            "steady_state_l1": float(grid.integrate(np.abs(rho - gibbs))),
            "steady_state_mass": float(grid.integrate(rho)),
            "omega_mean": mean,
            "omega_stderr": stderr,
            "omega_z": mean / stderr,
            "deterministic_end": clean_paths[-1],
            "deterministic_radius": np.hypot(tail[-1, :, 0], tail[-1, :, 1]),
            "deterministic_omega": angular_velocity(tail, tail_duration),
        }
        drawings.append((lam, model, grid, rho, np.asarray(noisy.paths), clean_paths))

    numbers = {
        **results,
        "settings": {
            "beta": 0.5,
            "grid_nodes_per_axis": n_grid,
            "noisy_paths": n_paths,
            "duration": duration,
            "dt": dt,
            "seed": seed,
        },
    }
    _draw(out, drawings, numbers, quick=quick)
    return numbers


def _draw(out: Path, drawings: list[tuple], numbers: dict[str, Any], *, quick: bool) -> None:
    fig, axes = new_figure(
        1, len(drawings), figsize=(5.2 * len(drawings), 5.4), sharey=True, gridspec_kw={"wspace": 0.06}
    )
    for ax, (lam, model, grid, rho, noisy, clean) in zip(axes, drawings):
        xs, ys = grid.axes
        gx, gy = grid.coords
        phi = model.potential.on_grid(grid)
        ax.contour(gx, gy, phi, levels=np.linspace(0.05, 2.5, 8), colors="0.7", linewidths=0.6)
        ax.contour(gx, gy, rho, levels=4, colors="tab:purple", linewidths=1.0)
        coarse = slice(None, None, max(1, (len(xs) - 1) // 40))
        b = model.drift_on_grid(grid)[:, coarse, coarse]
        speed = np.hypot(b[0], b[1])
        ax.streamplot(
            xs[coarse],
            ys[coarse],
            b[0].T,
            b[1].T,
            color="0.55",
            density=0.6,
            linewidth=0.3 + 1.5 * (speed / speed.max()).T,
            arrowsize=0.7,
        )
        shown = int(round(3.0 / numbers["settings"]["dt"]))
        for k in range(2):
            ax.plot(
                noisy[:shown, k, 0],
                noisy[:shown, k, 1],
                color="tab:orange",
                lw=0.6,
                alpha=0.9,
                label="SDE paths ($\\beta = 1/2$), $t \\leq 3$" if k == 0 else None,
            )
        early = clean[: max(2, len(clean) // 5)]
        for k in range(clean.shape[1]):
            ax.plot(
                early[:, k, 0],
                early[:, k, 1],
                color="tab:blue",
                lw=1.6,
                label="noise-free paths $\\dot x = -\\nabla f$, first fifth" if k == 0 else None,
            )
            ax.plot(
                clean[-1, k, 0],
                clean[-1, k, 1],
                "o",
                color="tab:blue",
                ms=5,
                label="where they end" if k == 0 else None,
            )
        ax.plot([-1, 1], [0, 0], "o", color="tab:red", ms=7, label="maxima of $e^{-\\Phi}$")
        r = numbers[f"lam={lam:g}"]
        ax.set_title(
            f"$\\lambda = {lam:g}$: mean angular velocity {r['omega_mean']:.3f} $\\pm$ "
            f"{r['omega_stderr']:.3f}\nsteady state vs $e^{{-\\Phi}}/Z$: L1 error {r['steady_state_l1']:.1e}",
            fontsize=10,
        )
        ax.set_xlim(grid.lower[0], grid.upper[0])
        ax.set_ylim(grid.lower[1], grid.upper[1])
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
    axes[0].set_ylabel("$x_2$")
    axes[0].plot([], [], color="0.7", lw=0.6, label="contours of $\\Phi$")
    axes[0].plot([], [], color="tab:purple", lw=0.9, label="Fokker-Planck steady state")
    axes[0].plot([], [], color="0.55", lw=1.2, label="drift $-\\nabla f$ (width $\\propto |\\nabla f|$)")
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="lower center",
        ncol=4,
        fontsize=9,
        bbox_to_anchor=(0.5, -0.06),
        frameon=False,
    )
    fig.suptitle(
        "Example 6.43 / Figure 6.4: the force $j$ keeps the steady state $e^{-\\Phi}$ but makes SGD rotate", y=1.0
    )
    save(fig, out, "limit_cycles: Example 6.43, steady state and angular velocity per lambda", numbers, quick=quick)
