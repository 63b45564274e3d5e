"""Benchmark of the samplers: seconds per estimate at 10^4 points x 32 chains in 2D, numpy vs torch.

    python benchmarks/bench_sde.py [--points 10000] [--chains 32] [--steps 400] [--burn-in 100]
                                   [--repeat 2] [--device cpu|cuda] [--out results.json]

Each estimate is one call of ``hjsmooth.sde.smoothed_grad`` on ``double_well(2)`` with ``t = 0.5``,
``beta = 2`` and a fixed step ``eta = 0.1 / (1/t + 3)`` (so every backend runs the same number of
steps), for the viscous kind (``burn_in + steps`` Langevin steps) and the heat kind (``chains``
Gaussian draws per point, antithetic pairs).  The noise comes from a ``torch.Generator`` for torch
and a numpy ``Generator`` for numpy.  Reported: the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import hjsmooth as hs
from hjsmooth.landscapes import double_well


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--burn-in", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    land = double_well(2)
    t, beta = 0.5, 2.0
    eta = 0.1 / (1 / t + 3.0)
    x_np = np.random.default_rng(0).uniform(-1.5, 1.5, size=(args.points, 2))
    results = {"points": args.points, "chains": args.chains, "steps": args.steps, "burn_in": args.burn_in,
               "machine": platform.processor() or platform.machine(), "timings_s": {}}

    backends = {"numpy": (x_np, lambda: np.random.default_rng(1))}
    try:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        x_t = torch.as_tensor(x_np, device=args.device)
        backends[f"torch-{args.device}"] = (x_t, lambda: torch.Generator(device=args.device).manual_seed(1))
        results["torch"] = torch.__version__
    except ImportError:
        pass
    results["numpy"] = np.__version__

    for name, (x, make_rng) in backends.items():
        def viscous():
            r = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=make_rng(), chains=args.chains,
                                     steps=args.steps, burn_in=args.burn_in, step_size=eta)
            _sync(r.grad)

        def heat():
            r = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, kind="heat", rng=make_rng(),
                                     chains=args.chains, antithetic=True)
            _sync(r.grad)

        v = _time(viscous, args.repeat)
        h = _time(heat, args.repeat)
        n_steps = args.steps + args.burn_in
        results["timings_s"][name] = {"viscous_estimate": v, "viscous_per_step": v / n_steps, "heat_estimate": h}
        print(f"{name:12s} viscous: {v:7.3f} s per estimate ({1e3 * v / n_steps:6.2f} ms per Langevin step "
              f"of {args.points}x{args.chains}x2)   heat: {h:7.4f} s per estimate")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


def _sync(a) -> None:
    if hasattr(a, "device") and getattr(a.device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
