"""Viscous Hamilton-Jacobi on 2D 256x256: py-pde's explicit Euler stepper vs hjsmooth.

Equation (DESIGN.md, (4.1))::

    u_t = -1/2 |grad u|^2 + nu Laplacian u,   nu = 1/(2 beta),   u(x, 0) = f(x) = |x|^2 / 2

with the exact solution (Cole-Hopf, checked by substitution)::

    u(x, t) = |x|^2 / (2 (1 + t)) + (d / (2 beta)) log(1 + t).

All solvers run on the window [-L, L]^2 with the same number of points per axis, to the
same final time, in this one process; each is compared with the exact solution at its
own points (py-pde's grid is cell-centred, hjsmooth's node-centred).  The error is
measured on the central region |x|_inf <= L/2: characteristics of this problem run
inward (the minimiser of Hopf-Lax is x / (1 + t)), so the edge only disturbs the
solution within a few diffusion lengths sqrt(2 nu t) of it; L/2 = 2 is more than six
diffusion lengths (0.32) away.  Both sides close the window the same way: py-pde's
``curvature = 0`` condition and hjsmooth's ``bc="extrapolate"`` are both linear
extrapolation into the ghost cell.

Peer: py-pde (numba backend) with ``PDE("-0.5*gradient_squared(u) + nu*laplace(u)")``;
its ``eq.solve`` recompiles the stepping loop on every call, so the fair figure is its
stepper built once (``EulerSolver(eq).make_stepper(state, dt)``), timed without the build.

hjsmooth: ``hs.local_entropy`` (the exact Cole-Hopf solution on the grid, no time
stepping) and ``hs.solve_hj(beta=...)``: its default (``scheme="auto"``: the hybrid
central/upwind scheme with the four-stage second-order SSP Runge-Kutta method) and the
monotone first-order Godunov scheme with forward Euler, each as it runs on numpy arrays
(fused numba stages, ``hjsmooth.solvers._numba_hj``) and on the generic array-API engine
(forced here by hiding numba from the kernel table), in float64 and float32.

Besides times and errors the script prints, for every time stepper, node updates per
second: grid nodes times steps (and times Runge-Kutta stages) over the best time, with the
number of numba threads; ``NUMBA_NUM_THREADS=1`` gives the per-core figure.

Run::

    python benchmarks/bench_viscous_hj_pypde.py            # 256x256, t=1
    python benchmarks/bench_viscous_hj_pypde.py --quick    # smoke run, 64x64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import Row, max_error, print_ratios, print_rows, time_call


def exact_solution(x: np.ndarray, y: np.ndarray, t: float, beta: float) -> np.ndarray:
    """``|x|^2 / (2 (1 + t)) + (d / (2 beta)) log(1 + t)`` in d = 2."""
    return (x**2 + y**2) / (2.0 * (1.0 + t)) + (2.0 / (2.0 * beta)) * np.log1p(t)


def run_pypde(args: argparse.Namespace) -> tuple[list[Row], float]:
    """py-pde's Euler stepper, built once; returns its row and the build (compile) time."""
    import pde

    n, half, beta, t_end = args.n, args.half_width, args.beta, args.t
    nu = 1.0 / (2.0 * beta)
    grid = pde.CartesianGrid([[-half, half], [-half, half]], [n, n])
    x, y = grid.cell_coords[..., 0], grid.cell_coords[..., 1]
    state = pde.ScalarField(grid, 0.5 * (x**2 + y**2))
    eq = pde.PDE({"u": f"-0.5*gradient_squared(u) + {nu!r}*laplace(u)"}, bc={"curvature": 0.0})
    solver = pde.solvers.EulerSolver(eq, backend="numba")
    t0 = time.perf_counter()
    stepper = solver.make_stepper(state, dt=args.pypde_dt)
    stepper(state.copy(), 0.0, args.pypde_dt)  # first call compiles
    build = time.perf_counter() - t0

    def run() -> np.ndarray:
        field = state.copy()
        stepper(field, 0.0, t_end)
        return field.data

    timing = time_call(run, repeats=args.repeats, warmup=1)
    mask = (np.abs(x) <= half / 2) & (np.abs(y) <= half / 2)
    err = max_error(timing.result, exact_solution(x, y, t_end, beta), mask)
    steps = int(round(t_end / args.pypde_dt))
    rate = n * n * steps / timing.best / 1e6
    return [Row("py-pde EulerSolver (numba, stepper built once)", timing, err,
                f"dt={args.pypde_dt:g}, {steps} steps, {rate:.0f} M node-updates/s")], build


def run_hjsmooth(args: argparse.Namespace) -> list[Row]:
    """hs.local_entropy (exact) and hs.solve_hj (Godunov, explicit) on the node-centred grid."""
    import hjsmooth as hs

    n, half, beta, t_end = args.n, args.half_width, args.beta, args.t
    grid = hs.Grid(lower=(-half, -half), upper=(half, half), shape=(n, n))
    x, y = grid.coords
    f = 0.5 * (x**2 + y**2)
    exact = exact_solution(x, y, t_end, beta)
    mask = (np.abs(x) <= half / 2) & (np.abs(y) <= half / 2)
    rows = []

    def add(name: str, fn, note: str = "") -> None:
        try:
            timing = time_call(fn, repeats=args.repeats, warmup=1)
            rows.append(Row(name, timing, max_error(np.asarray(timing.result), exact, mask), note))
        except Exception as exc:  # one failing solver must not hide the others
            rows.append(Row(name, None, note=f"FAILED: {type(exc).__name__}: {exc}"))

    add("hjsmooth local_entropy (exact, numpy f64)", lambda: hs.local_entropy(f, grid, t_end, beta))
    add("hjsmooth local_entropy (exact, numpy f32)", lambda: hs.local_entropy(f.astype(np.float32), grid, t_end, beta))
    try:
        import torch

        ft = torch.from_numpy(f)
        add("hjsmooth local_entropy (exact, torch-cpu f64)", lambda: hs.local_entropy(ft, grid, t_end, beta).numpy())
    except ImportError:
        pass
    def solve(dtype, scheme: str, generic: bool, accuracy: str = "first"):
        """solve_hj as it runs (fused numba stages) or on the array engine (numba hidden from the table)."""
        from unittest import mock

        from hjsmooth.solvers import kernels

        data = f.astype(dtype)
        holder: dict = {}

        def run():
            with mock.patch.dict(kernels._PACKAGES, {"numba": lambda: False} if generic else {}):
                holder["sol"] = hs.solve_hj(data, grid, t_end, beta=beta, scheme=scheme, accuracy=accuracy,
                                            progress=False)
            return holder["sol"].values

        return run, holder

    from hjsmooth.solvers.hj_operator import method_for

    cases = [("auto", np.float64, False), ("auto", np.float32, False), ("godunov", np.float64, False),
             ("godunov", np.float32, False), ("auto", np.float64, True), ("godunov", np.float64, True)]
    if args.weno5:
        cases.append(("godunov", np.float64, False, "weno5"))
    for scheme, dtype, generic, *accuracy in cases:
        accuracy = accuracy[0] if accuracy else "first"
        run, holder = solve(dtype, scheme, generic, accuracy)
        label = "default" if scheme == "auto" else f"{scheme}/{accuracy}"
        add(f"hjsmooth solve_hj {label}, {'array engine' if generic else 'numba'}, {np.dtype(dtype).name}", run)
        sol = holder.get("sol")
        if sol is not None and rows[-1].timing is not None:
            stages = len(method_for(sol.info["scheme"], sol.info["accuracy"]).stages)
            per_step = n * n * sol.steps / rows[-1].timing.best / 1e6
            rows[-1].note = (f"{sol.info['scheme']}/{sol.info['method']}, {sol.steps} CFL steps, "
                             f"{per_step:.0f} M node-updates/s ({per_step * stages:.0f} M node-stages/s, "
                             f"{sol.info.get('numba_threads', '-')} numba threads)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 64x64, fewer repeats")
    parser.add_argument("--n", type=int, default=256, help="points per axis (default 256)")
    parser.add_argument("--t", type=float, default=1.0, help="final time (default 1)")
    parser.add_argument("--beta", type=float, default=10.0, help="inverse temperature; nu = 1/(2 beta) (default 10)")
    parser.add_argument("--half-width", type=float, default=4.0, help="window [-L, L]^2 (default L=4)")
    parser.add_argument("--pypde-dt", type=float, default=2e-3, help="py-pde Euler step (default 2e-3)")
    parser.add_argument("--weno5", action="store_true", help="also time solve_hj with accuracy='weno5' (slow)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default 5)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 64, 2
    print(
        f"viscous HJ  u_t = -|grad u|^2/2 + nu Lap u, nu = 1/(2 beta) = {1 / (2 * args.beta):g}; f = |x|^2/2 on "
        f"[-{args.half_width:g}, {args.half_width:g}]^2, {args.n}x{args.n} points, t = {args.t:g}; "
        f"error on |x|_inf <= {args.half_width / 2:g}"
    )
    peers = []
    try:
        peers, build = run_pypde(args)
        print(f"py-pde stepper build + first call (numba compile), not in the timing: {build:.2f} s")
    except Exception as exc:
        peers = [Row("py-pde EulerSolver (numba, stepper built once)", None, note=f"FAILED: {type(exc).__name__}: {exc}")]
    try:
        ours = run_hjsmooth(args)
    except Exception as exc:  # e.g. hjsmooth not importable
        ours = [Row("hjsmooth", None, note=f"FAILED: {type(exc).__name__}: {exc}")]
    print_rows(
        f"viscous HJ, {args.n}x{args.n}, t={args.t:g} (best of {args.repeats}; ratio = py-pde time / row time)",
        peers + ours,
        reference="py-pde EulerSolver (numba, stepper built once)",
    )
    print_ratios(peers, ours)


if __name__ == "__main__":
    main()
