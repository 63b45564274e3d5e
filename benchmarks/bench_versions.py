"""This source tree against another revision of hjsmooth, interleaved: is the library as fast as it was?

The closed forms (``local_entropy``, ``heat``, ``hopf_lax`` on 2D 256x256), the steady state
(``fokker_planck_steady_state`` on 2D 200x200, for a potential and for a rotational drift)
and two sampler loops (``smoothed_grad`` and ``simulate``) are timed in child processes
that alternate between the two versions, A B A B ...: each child reports the best time of
several repeats after a warm-up, and the ratio (this tree / baseline) is taken round by
round, so that a drift in the speed of a shared machine moves both sides of a ratio.
The medians of the rounds are printed; a ratio below 1 means this tree is faster.

    python benchmarks/bench_versions.py --baseline main          # a git revision of this repository
    python benchmarks/bench_versions.py --baseline main --rounds 5 --quick

The baseline is exported with ``git archive`` into a temporary folder (with the
``hjsmooth.solvers`` and ``hjsmooth.demos`` packages linked in as an install would map
them) and put first on ``PYTHONPATH`` for its children.  Both versions must run the
calls below as written (their signatures have not changed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cases(quick: bool) -> dict:
    """name -> a zero-argument callable, built once per child (the data are fixed)."""
    import numpy as np

    import hjsmooth as hs

    n, m = (64, 50) if quick else (256, 200)
    g = hs.Grid((-3.0, -3.0), (3.0, 3.0), (n, n))
    x, y = g.coords
    f = np.sin(3 * x) * np.cos(2 * y) + 0.1 * (x**2 + y**2)
    s = hs.Grid((-2.5, -2.5), (2.5, 2.5), (m, m))
    sx, sy = s.coords
    potential = (sx**2 - 1) ** 2 / 4 + sy**2 / 2 + 0.1 * sx
    rotation = np.stack([-(sx**3 - sx) - sy, -sy + sx])  # -grad of the potential plus a rotation
    rng_x = np.random.default_rng(0).standard_normal((32, 100))

    def grad(z):
        return z**3 - z

    return {
        f"local_entropy {n}^2": lambda: hs.local_entropy(f, g, 0.5, 10.0),
        f"heat {n}^2": lambda: hs.heat(f, g, 0.5, 10.0),
        f"hopf_lax {n}^2": lambda: hs.hopf_lax(f, g, 0.5),
        f"steady state, potential {m}^2": lambda: hs.fokker_planck_steady_state(s, potential=potential, beta=2.0),
        f"steady state, rotational drift {m}^2": lambda: hs.fokker_planck_steady_state(s, drift=rotation, beta=1.0),
        "smoothed_grad viscous 32x100, 16 chains": lambda: hs.sde.smoothed_grad(
            grad, rng_x, 0.5, 10.0, rng=np.random.default_rng(1), lipschitz=3.0, steps=200, burn_in=50),
        "simulate sgd 2000x10, 500 steps": lambda: hs.sde.simulate(
            np.zeros((2000, 10)), 1.0, beta=2.0, rng=np.random.default_rng(2), grad_f=grad, dt=2e-3),
    }


def child(quick: bool, repeats: int) -> None:
    """Time every case in this process and print ``{name: best seconds}`` as JSON."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import time_call

    out = {name: time_call(fn, repeats=repeats, min_total=0.3, budget=20.0).best
           for name, fn in cases(quick).items()}
    print(json.dumps(out))


def export(revision: str, into: Path) -> Path:
    """``git archive revision`` unpacked under ``into``, laid out as an installed package."""
    tree = into / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    for sub in ("solvers", "demos"):
        link = tree / "hjsmooth" / sub
        if not link.exists():
            link.symlink_to(tree / sub, target_is_directory=True)
    return tree


def run_child(pythonpath: str | None, quick: bool, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--repeats", str(repeats)]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs of child processes (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per call in a child (default 5)")
    parser.add_argument("--quick", action="store_true", help="small grids, a smoke run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.quick, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        baseline = export(args.baseline, Path(tmp))
        ours_rounds, base_rounds = [], []
        for _ in range(args.rounds):
            ours_rounds.append(run_child(None, args.quick, args.repeats))
            base_rounds.append(run_child(str(baseline), args.quick, args.repeats))
    print(f"this tree vs {args.baseline}: best of {args.repeats} repeats per child, {args.rounds} interleaved rounds")
    print(f"{'call':<44} {'this tree':>11} {args.baseline:>11} {'ratio':>7}  (median over rounds; < 1: faster)")
    for name in ours_rounds[0]:
        ours = statistics.median(r[name] for r in ours_rounds)
        base = statistics.median(r[name] for r in base_rounds)
        ratio = statistics.median(o[name] / b[name] for o, b in zip(ours_rounds, base_rounds))
        print(f"{name:<44} {ours * 1e3:9.2f}ms {base * 1e3:9.2f}ms {ratio:7.3f}")


if __name__ == "__main__":
    main()
