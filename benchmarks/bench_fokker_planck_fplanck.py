"""Fokker-Planck on 2D 200x200: fplanck vs hjsmooth (steady state and an OU transient).

Equation (DESIGN.md)::

    rho_t = div(grad f rho) + 1/(2 beta) Laplacian rho,   f(x) = |x|^2 / 2   (Ornstein-Uhlenbeck)

with reflecting walls.  Exact solutions:

* steady state: the Gibbs density restricted to the box, ``exp(-2 beta f) / Z_box``
  (reflecting walls keep it exactly stationary), ``Z_box = (sqrt(pi/beta) erf(c sqrt(beta)))^2``
  for the box ``[-c, c]^2`` bounded by the outer cell faces;
* transient from a Gaussian of mean ``m0`` and variance ``s0`` per coordinate: a Gaussian
  of mean ``m0 e^{-t}`` and variance ``s0 e^{-2t} + (1 - e^{-2t}) / (2 beta)`` (on the whole
  plane; the walls are ten standard deviations away, so they change nothing visible).

Peer: fplanck 0.2 (exponential-fitting finite volumes, a sparse matrix assembled by a
Python loop; ``steady_state`` by shift-invert ``eigs``, ``propagate`` by
``expm_multiply``).  The transient is compared with its assembly plus ``propagate`` (as
hjsmooth's times include building its operator); ``propagate`` alone is printed too.  Its units are physical: ``temperature`` with ``k_B T = 1/(2 beta)``,
``drag = 1`` and ``potential = f`` give exactly the equation above.  fplanck's nodes are
``(i - (n-1)/2) h``, which with ``h = 2 c / n`` are exactly hjsmooth's node-centred grid
on ``[-c + h/2, c - h/2]``, so both solvers use the very same points.  fplanck returns
probabilities per cell (sum 1); they are divided by ``h^2`` to compare densities.

hjsmooth: ``hs.fokker_planck_steady_state`` (one sparse LU solve) and
``hs.solve_fokker_planck`` (Scharfetter-Gummel): its default ``method="auto"``, and
``"explicit"`` (fused numba step, and the array engine forced by hiding numba from the
kernel table), ``"implicit"`` and ``"tr_bdf2"`` (error-controlled at its default ``rtol = 1e-4``
and at ``rtol = 1e-3``, and with fixed steps).  Explicit rows print node updates per second
(nodes times steps over the best time) and the number of numba threads; TR-BDF2 rows the
accepted and rejected steps.

Errors are ``max |rho - exact| / max exact`` (fraction of the peak) on all nodes.

Run::

    python benchmarks/bench_fokker_planck_fplanck.py           # 200x200
    python benchmarks/bench_fokker_planck_fplanck.py --quick   # smoke run, 60x60
"""

from __future__ import annotations

import argparse
import math
from unittest import mock

import numpy as np
from _common import Row, print_ratios, print_rows, relative_max_error, time_call


def gaussian_density(x: np.ndarray, y: np.ndarray, mean: tuple[float, float], var: float) -> np.ndarray:
    """Isotropic 2D Gaussian density of ``mean`` and variance ``var`` per coordinate."""
    return np.exp(-((x - mean[0]) ** 2 + (y - mean[1]) ** 2) / (2.0 * var)) / (2.0 * math.pi * var)


def steady_exact(x: np.ndarray, y: np.ndarray, beta: float, box_half: float) -> np.ndarray:
    """``exp(-2 beta f) / Z_box`` with ``f = |x|^2/2`` on the box ``[-box_half, box_half]^2``."""
    z1 = math.sqrt(math.pi / beta) * math.erf(box_half * math.sqrt(beta))
    return np.exp(-beta * (x**2 + y**2)) / z1**2


def transient_exact(x, y, t, beta, mean0, var0):
    """The OU transient: Gaussian with mean ``mean0 e^{-t}``, variance ``var0 e^{-2t} + (1-e^{-2t})/(2 beta)``."""
    decay = math.exp(-t)
    var = var0 * decay**2 + (1.0 - decay**2) / (2.0 * beta)
    return gaussian_density(x, y, (mean0[0] * decay, mean0[1] * decay), var)


def fplanck_module():
    """Import fplanck with the numpy 2 shim it needs (it calls the removed ``np.product``)."""
    if not hasattr(np, "product"):
        np.product = np.prod
    import fplanck

    return fplanck


def run_fplanck(args, x_nodes) -> tuple[list[Row], list[Row]]:
    fplanck = fplanck_module()
    from scipy import constants

    n, h, beta = args.n, args.h, args.beta
    temperature = 1.0 / (2.0 * beta * constants.k)  # k_B T = 1/(2 beta)
    extent = n * h * (1.0 - 1e-12)  # fplanck takes ceil(extent / h) points: keep it at n

    def assemble():
        return fplanck.fokker_planck(
            temperature=temperature,
            drag=1.0,
            extent=[extent, extent],
            resolution=h,
            boundary=fplanck.boundary.reflecting,
            potential=fplanck.harmonic_potential([0.0, 0.0], 1.0),
        )

    sim = assemble()
    if tuple(sim.Ngrid) != (n, n) or not np.allclose(sim.axes[0], x_nodes, atol=1e-12):
        raise RuntimeError(f"fplanck grid {tuple(sim.Ngrid)} does not match the {n}x{n} benchmark grid")
    x, y = sim.grid
    box_half = n * h / 2
    steady_rows, transient_rows = [], []

    def assemble_and_solve():
        s = assemble()
        return s.steady_state() / h**2

    timing = time_call(assemble_and_solve, repeats=args.repeats, warmup=0, min_total=0.0)
    steady_rows.append(Row("fplanck assembly + steady_state", timing,
                           relative_max_error(timing.result, steady_exact(x, y, beta, box_half))))
    timing_asm = time_call(assemble, repeats=args.repeats, warmup=0, min_total=0.0)
    steady_rows[-1].note = f"assembly alone {timing_asm.best:.2f} s"

    mean0, var0 = tuple(args.mean0), args.var0
    initial = lambda xx, yy: gaussian_density(xx, yy, mean0, var0)  # noqa: E731
    exact_t = transient_exact(x, y, args.t, beta, mean0, var0)
    timing = time_call(lambda: assemble().propagate(initial, args.t) / h**2, repeats=args.repeats, warmup=1,
                       min_total=0.0)
    transient_rows.append(Row("fplanck assembly + propagate", timing, relative_max_error(timing.result, exact_t),
                              "what hjsmooth's rows include: building the operator"))
    timing = time_call(lambda: sim.propagate(initial, args.t) / h**2, repeats=args.repeats, warmup=1, min_total=0.0)
    transient_rows.append(Row("fplanck propagate (expm_multiply)", timing, relative_max_error(timing.result, exact_t),
                              "assembled matrix reused"))
    return steady_rows, transient_rows


def run_hjsmooth(args) -> tuple[list[Row], list[Row]]:
    import hjsmooth as hs

    n, h, beta = args.n, args.h, args.beta
    c = (n - 1) * h / 2
    grid = hs.Grid(lower=(-c, -c), upper=(c, c), shape=(n, n))
    x, y = grid.coords
    f = 0.5 * (x**2 + y**2)
    box_half = n * h / 2
    steady, transient = [], []

    def add(rows, name, fn, exact, note=""):
        try:
            timing = time_call(fn, repeats=args.repeats, warmup=1)
            rows.append(Row(name, timing, relative_max_error(np.asarray(timing.result), exact), note))
        except Exception as exc:
            rows.append(Row(name, None, note=f"FAILED: {type(exc).__name__}: {exc}"))

    add(steady, "hjsmooth fokker_planck_steady_state", lambda: hs.fokker_planck_steady_state(grid, potential=f, beta=beta),
        steady_exact(x, y, beta, box_half), "assembly included")

    mean0, var0 = tuple(args.mean0), args.var0
    rho0 = gaussian_density(x, y, mean0, var0)
    exact_t = transient_exact(x, y, args.t, beta, mean0, var0)
    steps: dict[str, int] = {}

    from hjsmooth.solvers import kernels

    infos: dict[str, dict] = {}

    def solve(name, method, dt=None, dtype=np.float64, generic=False, **options):
        def run():
            with mock.patch.dict(kernels._PACKAGES, {"numba": lambda: False} if generic else {}):
                sol = hs.solve_fokker_planck(rho0.astype(dtype), grid, args.t, potential=f.astype(dtype), beta=beta,
                                             method=method, dt=dt, progress=False, **options)
            steps[name] = sol.steps
            infos[name] = sol.info
            return sol.values

        add(transient, name, run, exact_t)
        if name in steps and transient[-1].timing is not None:
            info = infos[name]
            note = f"{info['method']}, {info['engine']}, {steps[name]} steps"
            if info["method"] == "explicit":
                rate = n * n * steps[name] / transient[-1].timing.best / 1e6
                note += f", {rate:.0f} M node-updates/s ({info['numba_threads'] or '-'} numba threads)"
            if info["method"] == "tr_bdf2":
                note += f" (+{info['rejected_steps']} rejected), dt {info['min_dt']:.2g} .. {info['dt']:.2g}"
            transient[-1].note = note

    solve("hjsmooth solve_fokker_planck default f64", "auto")
    solve("hjsmooth solve_fokker_planck default f32", "auto", dtype=np.float32)
    solve("hjsmooth solve_fokker_planck explicit f64", "explicit")
    solve("hjsmooth solve_fokker_planck explicit f32", "explicit", dtype=np.float32)
    solve("hjsmooth solve_fokker_planck explicit, array engine, f64", "explicit", generic=True)
    for dt in (None,) if args.quick else (None, 2e-3, 5e-4):
        label = "t/100" if dt is None else f"{dt:g}"
        solve(f"hjsmooth solve_fokker_planck implicit dt={label}", "implicit", dt)
    solve("hjsmooth solve_fokker_planck tr_bdf2 rtol=1e-4 (default)", "tr_bdf2")
    if not args.quick:
        solve("hjsmooth solve_fokker_planck tr_bdf2 rtol=1e-3", "tr_bdf2", rtol=1e-3)
    for dt in () if args.quick else (0.05, 0.02):
        solve(f"hjsmooth solve_fokker_planck tr_bdf2 dt={dt:g}", "tr_bdf2", dt)
    return steady, transient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 60x60, fewer repeats")
    parser.add_argument("--n", type=int, default=200, help="points per axis (default 200)")
    parser.add_argument("--h", type=float, default=0.03, help="grid spacing (default 0.03: box [-3, 3]^2)")
    parser.add_argument("--beta", type=float, default=1.0, help="inverse temperature (default 1)")
    parser.add_argument("--t", type=float, default=1.0, help="final time of the transient (default 1)")
    parser.add_argument("--mean0", type=float, nargs=2, default=(0.8, -0.5), help="initial mean (default 0.8 -0.5)")
    parser.add_argument("--var0", type=float, default=0.05, help="initial variance per coordinate (default 0.05)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.h, args.repeats = 60, 0.1, 2
    x_nodes = (np.arange(args.n) - (args.n - 1) / 2) * args.h
    print(
        f"Fokker-Planck rho_t = div(grad f rho) + Lap rho/(2 beta), f = |x|^2/2, beta = {args.beta:g}, reflecting walls; "
        f"{args.n}x{args.n} nodes, h = {args.h:g} (nodes {x_nodes[0]:.4g} .. {x_nodes[-1]:.4g}); "
        f"transient from N({tuple(args.mean0)}, {args.var0:g} I) to t = {args.t:g}; errors relative to the peak"
    )
    try:
        peer_steady, peer_transient = run_fplanck(args, x_nodes)
    except Exception as exc:
        peer_steady = [Row("fplanck assembly + steady_state", None, note=f"FAILED: {type(exc).__name__}: {exc}")]
        peer_transient = [Row("fplanck assembly + propagate", None, note=f"FAILED: {type(exc).__name__}: {exc}")]
    try:
        our_steady, our_transient = run_hjsmooth(args)
    except Exception as exc:  # e.g. hjsmooth not importable
        failed = Row("hjsmooth", None, note=f"FAILED: {type(exc).__name__}: {exc}")
        our_steady, our_transient = [failed], [failed]
    print_rows(f"steady state, {args.n}x{args.n}", peer_steady + our_steady, reference=peer_steady[0].name)
    print_ratios(peer_steady, our_steady)
    print_rows(f"OU transient to t={args.t:g}, {args.n}x{args.n}", peer_transient + our_transient,
               reference=peer_transient[0].name)
    print_ratios(peer_transient, our_transient)


if __name__ == "__main__":
    main()
