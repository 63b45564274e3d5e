"""Theorem 4.11 in 1D: the optimally controlled SDE beats SGD on the terminal loss, by the control's cost.

SGD (4.2) is ``dX = -f'(X) ds + beta^{-1/2} dB``; the controlled SDE (4.29) is
``dX = -(f'(X) + alpha(X, s)) ds + beta^{-1/2} dB``.  With the optimal control ``alpha* = u_x`` of the HJB
equation (4.31), ``u(., T) = V``, Theorem 4.11 states

    E[V(X_csgd(T))]  <=  E[V(X_sgd(T))]  -  1/2 E[ int_0^T |alpha*(X_csgd(s), s)|^2 ds ].

We take the loss of Figure 4.1 (:func:`hjsmooth.landscapes.rugged_1d`) for both ``f`` and ``V``, a narrow
initial density in a local minimum on the left, and for each horizon ``T``:

* ``E[V(X_sgd(T))]`` from the Fokker-Planck density of SGD (:func:`hjsmooth.solve_fokker_planck`);
* ``E[V(X_csgd(T))]`` and the running cost ``1/2 E int |alpha*|^2`` from the forward-backward system
  (:func:`hjsmooth.solve_forward_backward`: HJB backward, the controlled density forward);
* the value ``E[u(X(0), 0)]``, which equals ``E[V(X_csgd(T))] + 1/2 E int |alpha*|^2`` (the dynamic
  programming identity, a check of the numerics) and is at most ``E[V(X_sgd(T))]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "PARAMETERS"]

PARAMETERS: dict[str, float] = {"beta": 10.0, "start": -0.95, "width": 0.15, "T_max": 2.0}


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and draw Theorem 4.11's two sides over the horizon ``T``; write ``out`` and its summary.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        A coarser grid and fewer horizons.
    seed : int
        Unused (every number comes from a PDE); kept for a uniform interface.

    Returns
    -------
    dict
        ``horizons``; ``sgd`` (``E[V(X_sgd(T))]``), ``controlled`` (``E[V(X_csgd(T))]``), ``running_cost``
        (``1/2 E int |alpha*|^2``), ``bound`` (``sgd - running_cost``), ``value`` (``E[u(X(0), 0)]``), and
        ``identity_gap`` (``value - controlled - running_cost``), one entry per horizon; the parameters.
    """
    import hjsmooth as hs
    from hjsmooth.landscapes import rugged_1d

    p = dict(PARAMETERS)
    landscape = rugged_1d()
    grid = landscape.grid(241 if quick else 601)
    x = grid.axes[0]
    f = landscape.on_grid(grid)
    V = f
    rho0 = np.exp(-0.5 * ((x - p["start"]) / p["width"]) ** 2)
    rho0 /= grid.integrate(rho0)
    horizons = np.linspace(p["T_max"] / (4 if quick else 8), p["T_max"], 4 if quick else 8)
    n_intervals = 20 if quick else 40

    rows: dict[str, list[float]] = {k: [] for k in ("sgd", "controlled", "running_cost", "value")}
    last = None
    for T in progress(horizons, "horizons"):
        rho_sgd = np.asarray(hs.solve_fokker_planck(rho0, grid, float(T), potential=f, beta=p["beta"]).values)
        fb = hs.solve_forward_backward(V, rho0, grid, float(T), potential=f, beta=p["beta"], n_intervals=n_intervals)
        densities = np.asarray(fb.density.snapshots)
        control = np.asarray(fb.control)[:, 0]
        times = np.asarray(fb.density.times)
        cost_rate = [grid.integrate(densities[j] * control[j] ** 2) for j in range(len(times))]
        rows["sgd"].append(float(grid.integrate(rho_sgd * V)))
        rows["controlled"].append(float(grid.integrate(np.asarray(fb.density.values) * V)))
        rows["running_cost"].append(0.5 * float(np.trapezoid(cost_rate, times)))
        u0 = np.asarray(fb.value.snapshots)[0]
        rows["value"].append(float(grid.integrate(rho0 * u0)))
        last = (T, rho_sgd, np.asarray(fb.density.values), u0)

    arr = {k: np.asarray(v) for k, v in rows.items()}
    numbers: dict[str, Any] = {
        "horizons": horizons,
        **arr,
        "bound": arr["sgd"] - arr["running_cost"],
        "identity_gap": arr["value"] - arr["controlled"] - arr["running_cost"],
        "grid_nodes": int(x.size),
        "n_intervals": n_intervals,
        "parameters": p,
    }
    assert last is not None  # there is at least one horizon
    _draw(out, x, f, rho0, last, numbers, quick=quick)
    return numbers


def _draw(
    out: Path, x: np.ndarray, f: np.ndarray, rho0: np.ndarray, last: tuple, numbers: dict[str, Any], *, quick: bool
) -> None:
    T, rho_sgd, rho_c, u0 = last
    fig, (left, right) = new_figure(1, 2, figsize=(15.0, 4.6), gridspec_kw={"wspace": 0.25})
    h = numbers["horizons"]
    left.plot(h, numbers["sgd"], "o-", color="0.25", label="$E[V(X_{sgd}(T))]$")
    left.plot(
        h,
        numbers["bound"],
        "s--",
        color="tab:purple",
        label="bound: $E[V(X_{sgd}(T))] - \\frac{1}{2} E\\int_0^T |\\alpha^*|^2 ds$",
    )
    left.plot(h, numbers["controlled"], "o-", color="tab:red", label="$E[V(X_{csgd}(T))]$, optimal control")
    left.set_xlabel("horizon $T$")
    left.set_ylabel("expected terminal loss")
    left.set_title(f"Theorem 4.11, $V = f$ = rugged_1d, $\\beta = {numbers['parameters']['beta']:g}$")
    left.legend(fontsize=9)

    right.plot(x, f, color="black", lw=1.8, label="$f = V$")
    right.plot(x, u0, color="tab:orange", lw=1.5, label=f"value $u(x, 0)$ for $T = {T:g}$")
    right.set_xlabel("$x$")
    right.set_ylabel("loss")
    right.set_ylim(-0.05, 1.5)
    twin = right.twinx()
    twin.fill_between(x, rho0, color="0.85", label="initial density")
    twin.plot(x, rho_sgd, color="0.25", lw=1.5, label=f"SGD density at $T = {T:g}$")
    twin.plot(x, rho_c, color="tab:red", lw=1.5, label=f"controlled density at $T = {T:g}$")
    twin.set_ylabel("density")
    twin.set_ylim(bottom=0.0)
    lines = right.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    right.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left", bbox_to_anchor=(1.13, 1.0))
    right.set_title("loss, value function and densities at the longest horizon")
    save(fig, out, "control: Theorem 4.11, SGD vs the optimally controlled SDE", numbers, quick=quick)
