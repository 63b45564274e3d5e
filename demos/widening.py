"""Examples 4.12, 4.13 and 4.15 of the thesis: how fast the smoothings widen minima.

A function is semi-concave with constant ``C`` if ``u - C x^2/2`` is concave; in 1D ``C(t) = sup_x u_xx``,
the largest curvature, so a small ``C`` means wide minima.  Three panels:

(a) Example 4.12.  ``f = c x^2/2``.  Both Hamilton-Jacobi equations give ``u_xx = 1/(1/c + t)``, which falls
    from ``c`` to about ``1/t`` at once when ``c`` is large; the heat equation leaves a quadratic's curvature
    at ``c`` for ever.  We measure ``C(t)`` from second differences of :func:`hjsmooth.local_entropy`,
    :func:`hjsmooth.hopf_lax` and :func:`hjsmooth.heat` and draw the closed form beside them.
(b) Example 4.13.  ``f = a sin(x)``, an eigenfunction of the heat equation ``v_t = 1/(2 beta) v_xx``:
    ``C(t) = a e^{-t/(2 beta)}``, while the HJ solutions obey the semi-concavity estimate
    ``C(t) <= 1/(1/a + t)`` (Lemma 4.x: an infimum of functions of curvature ``1/t``), a much faster decrease.
(c) Example 4.15.  Under Hopf-Lax, the convexity interval ``I(t)`` of a minimum of
    :func:`hjsmooth.landscapes.rugged_1d` (the widest interval around it where ``u_xx >= 0``) contains
    ``I(0)`` and grows for ``0 <= t <= t*``, ``t* = 1 / max(-f'')`` the first time characteristics cross (4.36).

Curvatures are measured at interior nodes only (``|x|`` at most half the window), away from the edge of the
grid, where the exact solvers see a truncated domain.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "semiconcavity_constant", "convexity_interval"]


def second_difference(u: np.ndarray, h: float, stride: int = 1) -> np.ndarray:
    """``(u[i+s] - 2 u[i] + u[i-s]) / (s h)^2`` at the nodes ``s .. n-1-s`` (``s = stride``).

    A stride above 1 measures the curvature over a width ``2 s h``: the Hopf-Lax transform on a grid is a
    minimum over parabolas centred at the nodes, piecewise of curvature ``1/t`` with concave kinks between
    pieces, and a stride spanning several pieces sees the curvature of the envelope, not of one piece.
    """
    s = int(stride)
    return (u[2 * s :] - 2 * u[s:-s] + u[: -2 * s]) / (s * h) ** 2


def semiconcavity_constant(u: np.ndarray, x: np.ndarray, inside: float, stride: int = 1) -> float:
    """``max u_xx`` (strided second differences) over the nodes with ``|x| <= inside``."""
    uxx = second_difference(u, x[1] - x[0], stride)
    return float(np.max(uxx[np.abs(x[stride:-stride]) <= inside]))


def convexity_interval(
    u: np.ndarray, x: np.ndarray, i_min: int, stride: int = 1, tol: float = 0.0
) -> tuple[float, float]:
    """The widest interval ``[x_lo, x_hi]`` of nodes around ``x[i_min]`` where ``u_xx >= -tol``.

    ``u_xx`` is the strided second difference; an inflection point between two nodes is placed by linear
    interpolation of ``u_xx``.
    """
    uxx = second_difference(u, x[1] - x[0], stride)  # uxx[k] lives at x[k + stride]
    x = x[stride - 1 :]  # now uxx[k] lives at x[k + 1], as below
    k = i_min - stride
    if uxx[k] < -tol:
        raise ValueError(f"`u` is not convex at x = {x[i_min]:g} (u_xx = {uxx[k]:g})")
    lo = k
    while lo > 0 and uxx[lo - 1] >= -tol:
        lo -= 1
    hi = k
    while hi < uxx.size - 1 and uxx[hi + 1] >= -tol:
        hi += 1

    def crossing(a: int, b: int) -> float:  # zero of the linear interpolant of uxx + tol between nodes a, b
        ya, yb = uxx[a] + tol, uxx[b] + tol
        return float(x[a + 1] + (x[b + 1] - x[a + 1]) * ya / (ya - yb))

    x_lo = crossing(lo, lo - 1) if lo > 0 else float(x[1])
    x_hi = crossing(hi, hi + 1) if hi < uxx.size - 1 else float(x[-2])
    return x_lo, x_hi


def curvatures_over_time(
    f: np.ndarray, grid: Any, times: np.ndarray, beta: float, inside: float, stride: int
) -> dict[str, np.ndarray]:
    """``C(t)`` of the viscous HJ, inviscid HJ and heat solutions from ``f`` at each of ``times``."""
    import hjsmooth as hs

    x = grid.axes[0]
    solvers = {
        "viscous": lambda t: hs.local_entropy(f, grid, t, beta),
        "inviscid": lambda t: hs.hopf_lax(f, grid, t),
        "heat": lambda t: hs.heat(f, grid, t, beta),
    }
    out: dict[str, list[float]] = {name: [] for name in solvers}
    for t in progress(times, "semi-concavity"):
        for name, solve in solvers.items():
            out[name].append(semiconcavity_constant(np.asarray(solve(float(t))), x, inside, stride))
    return {name: np.asarray(values) for name, values in out.items()}


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and draw the three widening examples; write ``out`` and its summary; return the numbers.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        Fewer times and a coarser grid.
    seed : int
        Unused (the demo is deterministic); kept for a uniform interface.

    Returns
    -------
    dict
        ``quadratic``: curvature ``c``, the times, ``C(t)`` measured for ``viscous``, ``inviscid``, ``heat``, the
        closed form ``exact``, and the largest relative error of each HJ solution against it;
        ``sine``: amplitude, ``beta``, times, ``C(t)`` for the three PDEs, the heat closed form
        ``a exp(-t/(2 beta))`` and the HJ bound ``1/(1/a + t)``;
        ``convexity``: the minimum, ``t*``, the times, the interval ends and widths, and whether every
        interval contains the first and the widths never decrease.
    """
    import hjsmooth as hs
    from hjsmooth.grid import Grid
    from hjsmooth.landscapes import rugged_1d

    n_times = 6 if quick else 16
    beta = 1.0

    # (a) Example 4.12: f = c x^2 / 2.
    c = 10.0
    grid = Grid((-6.0,), (6.0,), (1201 if quick else 2401,))
    x = grid.axes[0]
    f = 0.5 * c * x**2
    times_a = np.linspace(0.0, 1.0, n_times)
    stride_a = int(round(0.1 / grid.spacing[0]))  # curvature over a width of 0.2
    quad = curvatures_over_time(f, grid, times_a, beta, inside=1.0, stride=stride_a)
    exact_a = 1.0 / (1.0 / c + times_a)

    # (b) Example 4.13: f = a sin(x), an eigenfunction of the heat equation.
    amplitude = 4.0
    grid_b = Grid((-3 * math.pi,), (3 * math.pi,), (2401 if quick else 3201,))
    xb = grid_b.axes[0]
    fb = amplitude * np.sin(xb)
    times_b = np.linspace(0.0, 2.0, n_times)
    stride_b = int(round(0.1 / grid_b.spacing[0]))
    sine = curvatures_over_time(fb, grid_b, times_b, beta, inside=math.pi, stride=stride_b)
    heat_exact = amplitude * np.exp(-times_b / (2 * beta))
    hj_bound = 1.0 / (1.0 / amplitude + times_b)

    # (c) Example 4.15: the convexity interval of the global minimum of rugged_1d under Hopf-Lax.
    landscape = rugged_1d()
    grid_c = landscape.grid(1201 if quick else 2401)
    xc = grid_c.axes[0]
    fc = landscape.on_grid(grid_c)
    i_min = int(np.argmin(fc))
    stride_c = int(round(0.01 / grid_c.spacing[0]))
    fxx = second_difference(fc, grid_c.spacing[0])
    t_star = float(1.0 / np.max(-fxx))
    times_c = np.linspace(0.0, t_star, n_times)
    snapshots = []
    intervals = []
    for t in progress(times_c, "Example 4.15"):
        u = np.asarray(hs.hopf_lax(fc, grid_c, t))
        snapshots.append(u)
        intervals.append(convexity_interval(u, xc, i_min, stride_c))
    ends = np.asarray(intervals)
    widths = ends[:, 1] - ends[:, 0]
    h_c = stride_c * grid_c.spacing[0]

    numbers: dict[str, Any] = {
        "quadratic": {
            "c": c,
            "stride": stride_a * grid.spacing[0],
            "beta": beta,
            "times": times_a,
            "exact": exact_a,
            **quad,
            "max_rel_error_viscous": float(np.max(np.abs(np.asarray(quad["viscous"]) / exact_a - 1))),
            "max_rel_error_inviscid": float(np.max(np.abs(np.asarray(quad["inviscid"]) / exact_a - 1))),
        },
        "sine": {
            "amplitude": amplitude,
            "stride": stride_b * grid_b.spacing[0],
            "spacing": grid_b.spacing[0],
            "beta": beta,
            "times": times_b,
            "heat_exact": heat_exact,
            "hj_bound": hj_bound,
            **sine,
        },
        "convexity": {
            "minimum": float(xc[i_min]),
            "t_star": t_star,
            "stride": h_c,
            "times": times_c,
            "left": ends[:, 0],
            "right": ends[:, 1],
            "width": widths,
            "contains_initial": bool(np.all(ends[:, 0] <= ends[0, 0] + h_c) and np.all(ends[:, 1] >= ends[0, 1] - h_c)),
            "widths_nondecreasing": bool(np.all(np.diff(widths) >= -h_c)),
        },
    }
    _draw(out, numbers, xc, fc, snapshots, quick=quick)
    return numbers


def _draw(
    out: Path, numbers: dict[str, Any], xc: np.ndarray, fc: np.ndarray, snapshots: list[np.ndarray], *, quick: bool
) -> None:
    fig, axes = new_figure(1, 3, figsize=(15.0, 4.6), gridspec_kw={"wspace": 0.28})
    colors = {"viscous": "tab:red", "inviscid": "tab:blue", "heat": "tab:green"}
    labels = {"viscous": "viscous HJ", "inviscid": "inviscid HJ (Hopf-Lax)", "heat": "heat"}

    q = numbers["quadratic"]
    ax = axes[0]
    ax.plot(q["times"], q["exact"], color="black", lw=6, alpha=0.25, label="HJ exact $1/(1/c + t)$")
    for k in ("viscous", "inviscid", "heat"):
        ax.plot(q["times"], q[k], "o-" if k != "inviscid" else "s--", ms=4, color=colors[k], label=labels[k])
    ax.set_yscale("log")
    ax.set_xlabel("$t$")
    ax.set_ylabel("semi-concavity constant $C(t) = \\max\\, u_{xx}$")
    ax.set_title(f"(a) Example 4.12: $f = c x^2/2$, $c = {q['c']:g}$")
    ax.legend(fontsize=9)

    s = numbers["sine"]
    ax = axes[1]
    ax.plot(s["times"], s["heat_exact"], color="tab:green", lw=6, alpha=0.3, label="heat exact $a e^{-t/(2\\beta)}$")
    ax.plot(s["times"], s["hj_bound"], color="black", lw=1.2, ls=":", label="HJ bound $1/(1/a + t)$")
    for k in ("viscous", "inviscid", "heat"):
        ax.plot(s["times"], s[k], "o-" if k != "inviscid" else "s--", ms=4, color=colors[k], label=labels[k])
    ax.set_xlabel("$t$")
    ax.set_ylabel("$C(t)$ on $|x| \\leq \\pi$")
    ax.set_title(f"(b) Example 4.13: $f = a \\sin x$, $a = {s['amplitude']:g}$, $\\beta = {s['beta']:g}$")
    ax.legend(fontsize=9)

    cv = numbers["convexity"]
    ax = axes[2]
    window = np.abs(xc - cv["minimum"]) <= 1.0
    ax.plot(xc[window], fc[window], color="black", lw=2, label="$f$ (rugged_1d)")
    picks = [0, len(snapshots) // 2, len(snapshots) - 1]
    cmap = ["tab:purple", "tab:orange", "tab:blue"]
    for color, j in zip(cmap, picks[1:]):
        ax.plot(xc[window], snapshots[j][window], color=color, lw=1.5, label=f"Hopf-Lax $u(x, t={cv['times'][j]:.3f})$")
    for color, j in zip(["black"] + cmap[:2], picks):
        for end in (cv["left"][j], cv["right"][j]):
            ax.axvline(end, color=color if j else "0.3", lw=1, ls=":")
    ax.set_xlabel("$x$  (dotted: ends of the convexity interval $I(t)$)")
    ax.set_ylabel("loss")
    ax.set_title(
        f"(c) Example 4.15: Hopf-Lax widens the convexity interval\n"
        f"width of $I(t)$: {cv['width'][0]:.3f} at $t=0$, {cv['width'][-1]:.3f} at $t^* = {cv['t_star']:.3f}$",
        fontsize=11,
    )
    ax.set_ylim(top=1.45 * float(np.max(fc[window])))
    ax.legend(fontsize=9, loc="upper center", ncol=1)
    save(fig, out, "widening: semi-concavity under HJ vs heat, convexity interval under Hopf-Lax", numbers, quick=quick)
