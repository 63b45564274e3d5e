"""General Hamiltonians against hj_reachability: the nonconvex 2-D problem and Air3D.

1. **Nonconvex 2-D** (Jiang-Peng 2000): ``u_t - cos(u_x + u_y + 1) = 0`` on the periodic box
   ``[-2, 2]^2``, ``u(x, 0) = -cos(pi (x + y) / 2)``, ``t = 0.5 / pi^2`` (smooth).  With
   ``xi = (x + y) / 2`` it is the 1-D Osher-Shu problem ``v_t - cos(v_xi + 1) = 0``, solved
   exactly along characteristics: every solver is compared with the exact solution at its nodes.
2. **Air3D** (hj_reachability's own example): the relative dynamics of two Dubins vehicles on its
   grid ``[-6, 20] x [-10, 10] x [0, 2 pi)``, 51 x 40 x 50 nodes (hjsmooth: 51 x 40 x 51, the last
   angle node being the first), target ``|(x, y)| <= 5``, the backward reachable tube at
   ``t = 2.8``.  No closed form: the reference is hjsmooth's WENO5 / fifth-order Runge-Kutta solution
   on the grid refined twice per axis (its nodes include the coarse ones), computed once per run
   (or read from ``--reference``); errors are the largest and the mean difference at the coarse
   nodes at least three nodes from the ``x``/``y`` edges (the largest sits on the value's kinks),
   and the count of nodes that the zero level set puts on the other side.

Peer: hj_reachability 0.7 (JAX).  It integrates from 0 to ``-t``: the forward equation
``u_t + H(grad u) = 0`` is its ``hj.step(..., 0, v0, -t)`` with Hamiltonian ``-H``.  Presets "low"
(first order, forward Euler) and "very_high" (WENO5, TVD RK3), global Lax-Friedrichs, CFL 0.75.
JAX computes in float32 unless ``JAX_ENABLE_X64=1`` is set before it is imported: ``--x64`` sets it
(and hjsmooth then runs in float64 only).

hjsmooth runs ``solve_hj(..., hamiltonian=...)`` (a numba-compiled ``H`` for problem 1, the linear
forms of :mod:`hjsmooth.solvers.reachability` for Air3D: both on the fused CPU engine) in the same
scheme family as the peer (first order / forward Euler, WENO5 / TVD RK3 at CFL 0.75) and with its
defaults (WENO5 / fifth-order Runge-Kutta at CFL 0.5).

Timing: every solver is called once to compile, then the solvers run in interleaved rounds
(peer, hjsmooth, peer, hjsmooth, ...) and the figure is the median of the rounds, so that a busy
spell of the shared machine hits every solver alike.  The ratio column is the peer preset's median
over the row's (above 1: hjsmooth faster).

Run::

    python benchmarks/bench_general_hj_reachability.py           # float32 peer; hjsmooth f32 and f64
    python benchmarks/bench_general_hj_reachability.py --x64     # float64 everywhere
    python benchmarks/bench_general_hj_reachability.py --quick   # small grids, two rounds
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

T_NONCONVEX = 0.5 / math.pi**2
T_AIR3D = 2.8


@dataclass
class Case:
    """One solver on one problem: ``run()`` returns its values on the hjsmooth grid (numpy float64)."""

    name: str
    run: Callable[[], np.ndarray]
    peer: str | None = None  # the peer preset this row is compared with
    times: list[float] = field(default_factory=list)
    values: np.ndarray | None = None
    compile_time: float = math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan


def interleaved(cases: list[Case], rounds: int) -> None:
    """One untimed call of every case (compilation), then ``rounds`` timed rounds in turn."""
    for case in cases:
        t0 = time.perf_counter()
        case.values = case.run()
        case.compile_time = time.perf_counter() - t0
    for _ in range(rounds):
        for case in cases:
            t0 = time.perf_counter()
            case.run()
            case.times.append(time.perf_counter() - t0)


# ----------------------------------------------------------------------------- problem 1: nonconvex 2-D
def osher_shu_exact(xi: np.ndarray, t: float) -> np.ndarray:
    """``v_t - cos(v_xi + 1) = 0``, ``v(xi, 0) = -cos(pi xi)``, before the kink, along characteristics."""
    y = xi.copy()
    for _ in range(60):
        p = math.pi * np.sin(math.pi * y)
        residual = y + t * np.sin(p + 1.0) - xi
        y = y - residual / (1.0 + t * np.cos(p + 1.0) * math.pi**2 * np.cos(math.pi * y))
    p = math.pi * np.sin(math.pi * y)
    return -np.cos(math.pi * y) + t * (p * np.sin(p + 1.0) + np.cos(p + 1.0))


def nonconvex_hamiltonian(x, p):
    """``H(p) = -cos(p_x + p_y + 1)``: vectorised, and per node once compiled by numba."""
    return -np.cos(p[0] + p[1] + 1.0)


def nonconvex_cases(n: int, x64: bool, peer_dtype: str) -> tuple[list[Case], np.ndarray]:
    import numba

    import hjsmooth as hs

    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (n + 1, n + 1))
    x, y = grid.coords
    u0 = -np.cos(math.pi * (x + y) / 2.0)
    exact = osher_shu_exact((x + y) / 2.0, T_NONCONVEX)
    h = hs.Hamiltonian(nonconvex_hamiltonian, bound=(1.0, 1.0), compiled=numba.njit(nonconvex_hamiltonian))
    cases = peer_nonconvex_cases(n, peer_dtype)
    dtypes = ("float64",) if x64 else ("float32", "float64")
    for dtype in dtypes:
        f = u0.astype(dtype)
        for label, kwargs, peer in [("first", dict(accuracy="first", cfl=0.75), "low"),
                                    ("weno5/ssp33 cfl 0.75", dict(accuracy="weno5", integrator="ssp33", cfl=0.75),
                                     "very_high"),
                                    ("weno5/rk5 (default)", dict(accuracy="weno5"), "very_high")]:
            def run(f=f, kwargs=kwargs):
                sol = hs.solve_hj(f, grid, T_NONCONVEX, hamiltonian=h, bc="periodic", progress=False, **kwargs)
                return np.asarray(sol.values, dtype=np.float64)

            cases.append(Case(f"hjsmooth {label} (f{dtype[5:]})", run, peer))
    return cases, exact


def peer_nonconvex_cases(n: int, dtype: str) -> list[Case]:
    import jax.numpy as jnp
    import hj_reachability as hj

    class Nonconvex(hj.dynamics.Dynamics):
        """hj_reachability's Hamiltonian ``cos(p_x + p_y + 1) = -H`` (it marches backwards in time)."""

        def __init__(self):
            empty = hj.sets.Box(jnp.zeros(2), jnp.zeros(2))
            super().__init__("max", "min", empty, empty)

        def __call__(self, state, control, disturbance, time):
            return jnp.zeros_like(state)

        def optimal_control_and_disturbance(self, state, time, grad_value):
            return jnp.zeros(2), jnp.zeros(2)

        def hamiltonian(self, state, time, value, grad_value):
            return jnp.cos(grad_value[0] + grad_value[1] + 1.0)

        def partial_max_magnitudes(self, state, time, value, grad_value_box):
            return jnp.ones(2)

    grid = hj.Grid.from_lattice_parameters_and_boundary_conditions(
        hj.sets.Box(np.array([-2.0, -2.0]), np.array([2.0, 2.0])), (n, n), periodic_dims=(0, 1))
    states = np.asarray(grid.states, dtype=np.float64)
    v0 = jnp.asarray(-np.cos(math.pi * (states[..., 0] + states[..., 1]) / 2.0))
    dynamics = Nonconvex()
    cases = []
    for preset in ("low", "very_high"):
        settings = hj.SolverSettings.with_accuracy(preset)

        def run(settings=settings):
            v = np.asarray(hj.step(settings, dynamics, grid, 0.0, v0, -T_NONCONVEX, progress_bar=False)
                           .block_until_ready(), dtype=np.float64)
            return close_periodic(v, (0, 1))

        cases.append(Case(f"hj_reachability {preset} (jax {dtype})", run))
    return cases


def close_periodic(v: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Append the first node of every periodic axis at its end (hjsmooth's periodic grids hold both ends)."""
    for axis in axes:
        v = np.concatenate([v, np.take(v, [0], axis=axis)], axis=axis)
    return v


# ----------------------------------------------------------------------------- problem 2: Air3D
def air3d_grid(refine: int = 1):
    import hjsmooth as hs

    shape = tuple(refine * (n - 1) + 1 for n in (51, 40, 51))
    return hs.Grid((-6.0, -10.0, 0.0), (20.0, 10.0, 2 * math.pi), shape)


def air3d_solve(grid, dtype: str, **kwargs) -> np.ndarray:
    import hjsmooth as hs
    from hjsmooth.solvers.reachability import air3d

    x, y, _ = grid.coords
    target = (np.hypot(x, y) - 5.0).astype(dtype)
    sol = hs.solve_reachability(target, grid, T_AIR3D, air3d(), tube=True, progress=False,
                                bc=("extrapolate", "extrapolate", "periodic"), **kwargs)
    return np.asarray(sol.values, dtype=np.float64)


def air3d_reference(path: str | None) -> np.ndarray:
    """hjsmooth WENO5 / rk5 on the grid refined twice, at the coarse nodes (cached in ``path``)."""
    if path and os.path.exists(path):
        return np.load(path)
    t0 = time.perf_counter()
    fine = air3d_solve(air3d_grid(2), "float64", accuracy="weno5")[::2, ::2, ::2]
    print(f"Air3D reference (twice refined, WENO5/rk5): {time.perf_counter() - t0:.1f} s", flush=True)
    if path:
        np.save(path, fine)
    return fine


def air3d_cases(x64: bool, peer_dtype: str) -> list[Case]:
    import hj_reachability as hj
    import jax.numpy as jnp

    grid = hj.Grid.from_lattice_parameters_and_boundary_conditions(
        hj.sets.Box(np.array([-6.0, -10.0, 0.0]), np.array([20.0, 10.0, 2 * np.pi])), (51, 40, 50), periodic_dims=2)
    values = jnp.linalg.norm(grid.states[..., :2], axis=-1) - 5
    dynamics = hj.systems.Air3d()
    cases = []
    for preset in ("low", "very_high"):
        settings = hj.SolverSettings.with_accuracy(preset, hamiltonian_postprocessor=hj.solver.backwards_reachable_tube)

        def run(settings=settings):
            v = hj.step(settings, dynamics, grid, 0.0, values, -T_AIR3D, progress_bar=False).block_until_ready()
            return close_periodic(np.asarray(v, dtype=np.float64), (2,))

        cases.append(Case(f"hj_reachability {preset} (jax {peer_dtype})", run))
    ours = air3d_grid()
    for dtype in (("float64",) if x64 else ("float32", "float64")):
        for label, kwargs, peer in [("first", dict(accuracy="first", cfl=0.75), "low"),
                                    ("weno5/ssp33 cfl 0.75", dict(accuracy="weno5", integrator="ssp33", cfl=0.75),
                                     "very_high"),
                                    ("weno5/rk5 (default)", dict(accuracy="weno5"), "very_high")]:
            cases.append(Case(f"hjsmooth {label} (f{dtype[5:]})",
                              lambda kwargs=kwargs, dtype=dtype: air3d_solve(ours, dtype, **kwargs), peer))
    return cases


# ----------------------------------------------------------------------------- report
def report(title: str, cases: list[Case], errors: dict[str, str]) -> None:
    peers = {c.name.split()[1]: c for c in cases if c.name.startswith("hj_reachability")}
    print(f"\n== {title}")
    header = f"{'solver':<40} {'median':>10} {'rounds':>7} {'compile':>9} {'ratio':>7}  error"
    print(header)
    print("-" * len(header))
    for case in cases:
        peer = peers.get(case.peer) if case.peer else None
        ratio = f"{peer.median / case.median:7.2f}" if peer is not None else f"{'':>7}"
        print(f"{case.name:<40} {case.median:9.3f}s {len(case.times):>7} {case.compile_time:8.1f}s {ratio}  "
              f"{errors[case.name]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--x64", action="store_true", help="JAX in float64 (JAX_ENABLE_X64=1); hjsmooth float64 only")
    parser.add_argument("--quick", action="store_true", help="small nonconvex grid, two rounds, no Air3D reference")
    parser.add_argument("--n", type=int, nargs="+", default=[128, 256], help="nonconvex grids (nodes per axis)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (default 5)")
    parser.add_argument("--reference", default=None, help="a .npy file caching the Air3D reference")
    parser.add_argument("--skip", choices=["nonconvex", "air3d"], nargs="*", default=[])
    args = parser.parse_args()
    if args.x64:
        os.environ["JAX_ENABLE_X64"] = "1"
    if args.quick:
        args.n, args.rounds = [64], 2
    import jax

    peer_dtype = "f64" if jax.config.read("jax_enable_x64") else "f32"
    print(f"python {sys.version.split()[0]}, jax {jax.__version__} ({peer_dtype}), rounds {args.rounds}")
    if "nonconvex" not in args.skip:
        for n in args.n:
            cases, exact = nonconvex_cases(n, args.x64, peer_dtype)
            interleaved(cases, args.rounds)
            errors = {c.name: f"{np.abs(c.values - exact).max():.2e} (max, exact solution)" for c in cases}
            report(f"nonconvex 2-D, {n} x {n} periodic, t = 0.5/pi^2", cases, errors)
    if "air3d" not in args.skip:
        cases = air3d_cases(args.x64, peer_dtype)
        interleaved(cases, max(2, args.rounds // 2) if not args.quick else 1)
        reference = None if args.quick else air3d_reference(args.reference)
        inner = (slice(3, -3), slice(3, -3), slice(None))
        errors = {}
        for case in cases:
            if reference is None:
                errors[case.name] = f"tube nodes {int(np.sum(case.values[:, :, :-1] <= 0))}"
                continue
            diff = np.abs(case.values - reference)[inner]
            flipped = int(np.sum((case.values[:, :, :-1] <= 0) != (reference[:, :, :-1] <= 0)))
            errors[case.name] = (f"{diff.max():.2e} max / {diff.mean():.1e} mean (interior), "
                                 f"{flipped} nodes on the other side of the tube")
        peer = next(c for c in cases if "very_high" in c.name)
        for case in cases:
            if case.name.startswith("hjsmooth"):
                errors[case.name] += f"; vs {peer.name.split()[1]}: {np.abs(case.values - peer.values)[inner].max():.1e}"
        report("Air3D tube, hj_reachability's grid, t = 2.8", cases, errors)


if __name__ == "__main__":
    main()
