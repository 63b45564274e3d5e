"""Cost of one time step of ``solve_hj`` per stencil, against a fused first-order step.

The viscous Hamilton-Jacobi problem of ``bench_viscous_hj_pypde.py`` (``f = |x|^2 / 2`` on
``[-4, 4]^2``, 256x256 nodes, ``beta = 10``, ``bc="extrapolate"``) is stepped with each
configuration below by the stepper ``solve_hj`` would use, and one step is timed as
``solve_hj``'s time loop runs it: the CFL step from the current state (``stable_dt``) and the
Runge-Kutta step (``step``).  The reference is the fused first-order Godunov step (forward
Euler); the ratios say what a step of a higher order costs in units of it.

========================  ==========================  =====================  ======
row                       scheme / stencil            time integrator        stages
========================  ==========================  =====================  ======
``first godunov``         Godunov, three points       forward Euler          1
``default hybrid``        hybrid, three points        SSP-RK(4,2)            4
``eno2 godunov``          Godunov, ENO2               TVD RK2 (Heun)         2
``weno5 godunov``         Godunov, WENO5              TVD RK3                3
``weno5 lax_friedrichs``  global Lax-Friedrichs       TVD RK3                3
========================  ==========================  =====================  ======

Every row runs on the numba engine (fused stages, ``hjsmooth.solvers._numba_hj``) and, with
``--array``, also on the array-API engine.  The configurations are timed interleaved
(A B C ... A B C ...) for ``--rounds`` rounds of ``--steps`` steps each, so that the load of a
shared machine hits all of them alike; the table gives the median and the best per-step time
over the rounds and the ratio against the reference, taken round by round (the median of the
per-round ratios, so that a change of load between rounds moves both sides of a ratio).  The
last columns are the cost of one unit of time, the median per-step time over the CFL step at
the initial state, and its ratio.

Run::

    NUMBA_NUM_THREADS=1 python benchmarks/bench_hj_stencils.py            # 256^2, float64 and float32
    python benchmarks/bench_hj_stencils.py --array                        # also the array engine
    python benchmarks/bench_hj_stencils.py --quick                        # smoke run, 64^2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers.hj_operator import HamiltonJacobiOperator, method_for
from hjsmooth.solvers.hj_stepping import HJCase, stage_projection

CONFIGS = [
    ("first godunov", "godunov", "first"),
    ("default hybrid", "hybrid", "first"),
    ("eno2 godunov", "godunov", "eno2"),
    ("weno5 godunov", "godunov", "weno5"),
    ("weno5 lax_friedrichs", "lax_friedrichs", "weno5"),
]


def build(label: str, scheme: str, accuracy: str, engine: str, f: np.ndarray, grid: hs.Grid, beta: float) -> dict:
    cfl = 0.9 if method_for(scheme, accuracy).name == "ssp42" else 0.5
    op = HamiltonJacobiOperator(grid, scheme, accuracy, "extrapolate", beta, cfl)
    project = stage_projection(f, "extrapolate", None)
    stepper = kernels.build("hj_step", f, HJCase(op, project), engine=engine)[1]
    state = stepper.start(f)
    dt0 = stepper.stable_dt(state)
    state = stepper.step(state, dt0)  # compiled and warm
    return dict(label=f"{label} [{engine}]", stepper=stepper, start=state, dt0=dt0,
                stages=op.method.stage_count, times=[])


def time_steps(case: dict, steps: int) -> float:
    stepper = case["stepper"]
    state = case["start"]
    t0 = time.perf_counter()
    for _ in range(steps):
        state = stepper.step(state, stepper.stable_dt(state))
    elapsed = (time.perf_counter() - t0) / steps
    case["start"] = state  # march on from here in the next round
    return elapsed


def run(dtype: Any, args: argparse.Namespace) -> None:
    grid = hs.Grid((-4.0, -4.0), (4.0, 4.0), (args.n, args.n))
    x, y = grid.coords
    f = (0.5 * (x**2 + y**2)).astype(dtype)
    engines = ["numba", "array"] if args.array else ["numba"]
    cases = [build(label, scheme, accuracy, engine, f, grid, args.beta)
             for engine in engines for label, scheme, accuracy in CONFIGS]
    for _ in range(args.rounds):
        for case in cases:
            steps = args.steps if not case["label"].endswith("[array]") else max(1, args.steps // 20)
            case["times"].append(time_steps(case, steps))
    nodes = grid.size
    print(f"\n{np.dtype(dtype).name}, {args.n}x{args.n}, beta={args.beta}, {args.rounds} rounds of {args.steps} steps"
          f" (array engine: {max(1, args.steps // 20)}), interleaved")
    print(f"{'row':36s} {'median/step':>12s} {'best/step':>11s} {'x first':>8s} {'M node-stages/s':>16s}"
          f" {'dt0':>9s} {'per unit time':>14s} {'x first':>8s}")
    for case in cases:
        median = statistics.median(case["times"])
        best = min(case["times"])
        ratio = statistics.median(a / b for a, b in zip(case["times"], cases[0]["times"]))
        rate = nodes * case["stages"] / best / 1e6
        unit = median / case["dt0"]
        unit_ratio = ratio * cases[0]["dt0"] / case["dt0"]
        print(f"{case['label']:36s} {median * 1e3:10.3f}ms {best * 1e3:9.3f}ms {ratio:7.2f}x"
              f" {rate:16.0f} {case['dt0']:9.2e} {unit:12.3f} s {unit_ratio:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--beta", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=40, help="steps per configuration and round (numba engine)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--array", action="store_true", help="also time the array-API engine")
    parser.add_argument("--quick", action="store_true", help="64x64, 3 rounds of 5 steps")
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds, args.steps = 64, 3, 5
    import numba

    print(f"numba threads: {numba.get_num_threads()}; engine table row: {kernels.ENGINES[('hj_step', 'cpu')]}")
    for dtype in (np.float64, np.float32):
        run(dtype, args)


if __name__ == "__main__":
    main()
