"""Figure 4.1 of the thesis: PDE smoothing lets gradient descent escape the local minima that trap SGD.

The loss is :func:`hjsmooth.landscapes.rugged_1d`, a wide quadratic basin under ripples,
on ``[-3, 3]``.  We smooth it to time ``T`` with

* the viscous Hamilton-Jacobi equation ``u_t = -1/2 u_x^2 + 1/(2 beta) u_xx`` (Local Entropy,
  solved exactly by Cole-Hopf: :func:`hjsmooth.local_entropy`), and
* the inviscid one ``u_t = -1/2 u_x^2`` (Hopf-Lax: :func:`hjsmooth.hopf_lax`),

and evolve one initial density, a narrow Gaussian centred in a local minimum left of the global
one, by the Fokker-Planck equation

    rho_t = (V' rho)_x + 1/(2 beta_fp) rho_xx,     no flux through x = -3 and x = 3,

of the SDE ``dX = -V'(X) dt + beta_fp^{-1/2} dB`` for three potentials ``V``: the loss ``f``
itself (continuous-time SGD, (4.2)), ``u_viscous(., T)`` and ``u_inviscid(., T)`` (gradient
descent on the smoothed losses, with the same noise).  At time ``t_fp`` the SGD density is still
in the local minimum it started in; the densities driven by the smoothed losses have moved into
the basin of the global minimum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, save

__all__ = ["run", "PARAMETERS"]

#: The settings of the figure: smoothing time and inverse temperature, the Fokker-Planck noise
#: and duration, and the initial density.
PARAMETERS: dict[str, float] = {
    "T": 2.0,  # PDE time of both smoothings (the scope gamma)
    "beta": 20.0,  # inverse temperature of the viscous HJ equation
    "beta_fp": 20.0,  # inverse temperature of the Fokker-Planck noise (the same for all three)
    "t_fp": 25.0,  # how long the densities evolve
    "start": -0.95,  # centre of the initial density (a local minimum of f, left of the global one)
    "width": 0.15,  # standard deviation of the initial density
}


def basin_around(f: np.ndarray, i_min: int) -> tuple[int, int]:
    """Indices ``(lo, hi)`` of the local maxima (or grid ends) of ``f`` that enclose the minimum at ``i_min``."""
    lo = i_min
    while lo > 0 and f[lo - 1] >= f[lo]:
        lo -= 1
    hi = i_min
    while hi < f.size - 1 and f[hi + 1] >= f[hi]:
        hi += 1
    return lo, hi


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and draw Figure 4.1; write ``out`` (PNG) and its summary; return the numbers.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        Use 301 grid nodes instead of 601 (the story is the same).
    seed : int
        Unused: the demo is deterministic (every number comes from a PDE); kept for a uniform interface.

    Returns
    -------
    dict
        ``mass`` (total mass of each terminal density, ``sgd``/``viscous``/``inviscid``), ``mode`` (where
        each terminal density peaks), ``global_basin_mass`` and ``start_basin_mass`` (the mass of each in the
        basin of f's global minimum and in the basin it started in), ``global_min``, ``start_min``,
        ``global_basin`` and ``start_basin`` (the basins as ``[left maximum, right maximum]``),
        ``smoothed_min`` (the minimiser of each smoothed loss), and the ``parameters``.
    """
    import hjsmooth as hs
    from hjsmooth.landscapes import rugged_1d

    p = dict(PARAMETERS)
    landscape = rugged_1d()
    grid = landscape.grid(301 if quick else 601)
    x = grid.axes[0]
    h = grid.spacing[0]
    f = landscape.on_grid(grid)

    u_viscous = np.asarray(hs.local_entropy(f, grid, p["T"], p["beta"]))
    u_inviscid = np.asarray(hs.hopf_lax(f, grid, p["T"]))

    rho0 = np.exp(-0.5 * ((x - p["start"]) / p["width"]) ** 2)
    rho0 /= grid.integrate(rho0)
    potentials = {"sgd": f, "viscous": u_viscous, "inviscid": u_inviscid}
    densities = {}
    for name, potential in potentials.items():
        sol = hs.solve_fokker_planck(rho0, grid, p["t_fp"], potential=potential, beta=p["beta_fp"], progress=None)
        densities[name] = np.asarray(sol.values)

    i_global = int(np.argmin(f))
    i_start = int(np.argmin(np.abs(x - p["start"])))
    while 0 < i_start < x.size - 1 and not (f[i_start] <= f[i_start - 1] and f[i_start] <= f[i_start + 1]):
        i_start += -1 if f[i_start - 1] < f[i_start] else 1
    g_lo, g_hi = basin_around(f, i_global)
    s_lo, s_hi = basin_around(f, i_start)

    def mass_in(rho: np.ndarray, lo: int, hi: int) -> float:
        return float(np.sum(rho[lo : hi + 1]) * h)

    numbers: dict[str, Any] = {
        "mass": {k: float(grid.integrate(r)) for k, r in densities.items()},
        "mode": {k: float(x[np.argmax(r)]) for k, r in densities.items()},
        "global_basin_mass": {k: mass_in(r, g_lo, g_hi) for k, r in densities.items()},
        "start_basin_mass": {k: mass_in(r, s_lo, s_hi) for k, r in densities.items()},
        "global_min": float(x[i_global]),
        "start_min": float(x[i_start]),
        "global_basin": [float(x[g_lo]), float(x[g_hi])],
        "start_basin": [float(x[s_lo]), float(x[s_hi])],
        "smoothed_min": {"viscous": float(x[np.argmin(u_viscous)]), "inviscid": float(x[np.argmin(u_inviscid)])},
        "grid_nodes": int(x.size),
        "parameters": p,
    }
    _draw(out, x, f, u_viscous, u_inviscid, rho0, densities, numbers, quick=quick)
    return numbers


def _draw(
    out: Path,
    x: np.ndarray,
    f: np.ndarray,
    u_viscous: np.ndarray,
    u_inviscid: np.ndarray,
    rho0: np.ndarray,
    densities: dict[str, np.ndarray],
    numbers: dict[str, Any],
    *,
    quick: bool,
) -> None:
    p = numbers["parameters"]
    fig, (top, bottom) = new_figure(
        2, 1, figsize=(8.0, 7.0), sharex=True, gridspec_kw={"height_ratios": [1.2, 1.0], "hspace": 0.08}
    )
    top.plot(x, f, color="black", lw=2.0, label="loss $f(x)$")
    top.plot(x, u_viscous, color="tab:red", lw=1.8, label=f"viscous HJ $u(x, T)$, $\\beta={p['beta']:g}$")
    top.plot(x, u_inviscid, color="tab:blue", lw=1.8, label="inviscid HJ (Hopf-Lax) $u(x, T)$")
    top.axvspan(*numbers["global_basin"], color="tab:green", alpha=0.08, lw=0, label="basin of the global minimum")
    top.set_ylabel("loss")
    top.set_title(
        f"Figure 4.1: smoothing to $T={p['T']:g}$, then Fokker-Planck to $t={p['t_fp']:g}$ "
        f"($\\beta_{{fp}}={p['beta_fp']:g}$)"
    )
    top.legend(loc="upper center", fontsize=9, framealpha=0.9)
    top.set_ylim(-0.1, max(1.6, float(np.max(f[np.abs(x) <= 2.5]))))

    bottom.fill_between(x, rho0, color="0.85", label="initial density")
    styles = {
        "sgd": ("0.25", "SGD: drift $-f'$"),
        "viscous": ("tab:red", "drift $-u_x$, viscous HJ"),
        "inviscid": ("tab:blue", "drift $-u_x$, inviscid HJ"),
    }
    for name, rho in densities.items():
        color, label = styles[name]
        mass = numbers["global_basin_mass"][name]
        bottom.plot(x, rho, color=color, lw=1.8, label=f"{label} (mass in global basin {mass:.2f})")
    bottom.axvspan(*numbers["global_basin"], color="tab:green", alpha=0.08, lw=0)
    bottom.set_xlabel("$x$")
    bottom.set_ylabel("density at the final time")
    bottom.legend(loc="upper right", fontsize=9, framealpha=0.9)
    bottom.set_xlim(float(x[0]), float(x[-1]))
    save(fig, out, "fig4_1: rugged 1D loss, HJ smoothings and Fokker-Planck densities", numbers, quick=quick)
