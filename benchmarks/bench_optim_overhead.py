"""Per-gradient-evaluation overhead of the hjsmooth optimizers against torch.optim.SGD (foreach).

Each optimizer trains the same model on the same precomputed minibatches; the time of
one outer step is divided by the number of closure calls it makes (``L`` for the Local
Entropy family and Heat, ``n L`` for Parle) and compared with one step of
``torch.optim.SGD(momentum=0.9, nesterov=True, foreach=True)`` (one closure call).

    python benchmarks/bench_optim_overhead.py [--threads 1] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import hjsmooth.optim as O


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def cnn() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10))


OPTIMIZERS: dict[str, tuple[Callable[[Any], Any], int, bool]] = {
    # name: (factory, closure calls per step, closure takes a replica index)
    "SGD(foreach)": (lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, foreach=True), 1, False),
    "EntropySGD L=20": (lambda p: O.EntropySGD(p, lr=0.01, gamma=1.0, L=20, foreach=True), 20, False),
    "EntropySGD L=20 noise": (lambda p: O.EntropySGD(p, lr=0.01, gamma=1.0, L=20, noise=1e-8, foreach=True), 20,
                              False),
    "HJ L=5": (lambda p: O.HJ(p, lr=0.01, gamma=1.0, L=5, foreach=True), 5, False),
    "Heat L=20": (lambda p: O.Heat(p, lr=0.01, gamma=1e-4, L=20, foreach=True), 20, False),
    "Parle n=2 L=20": (lambda p: O.Parle(p, lr=0.5, gamma=1.0, rho=1.0, n=2, L=20, foreach=True), 40, True),
}


def bench(make_model: Callable[[], torch.nn.Module], batch: int, repeats: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    data = [(torch.randn(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device))
            for _ in range(64)]
    runs = {}
    for name, (factory, calls, _) in OPTIMIZERS.items():
        model = make_model().to(device)
        opt = factory(list(model.parameters()))
        k = {"i": 0}

        def closure(*_: Any, model: torch.nn.Module = model, opt: Any = opt, k: dict = k) -> torch.Tensor:
            x, y = data[k["i"] % len(data)]
            k["i"] += 1
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        for _ in range(2):  # warm-up
            opt.step(closure)
        runs[name] = (opt, closure, calls, max(1, 40 // calls))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # round robin, so that load drifts hit every optimizer alike
        for name, (opt, closure, calls, steps) in runs.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step(closure)
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t0) / (steps * calls))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    for label, make_model, batch in (("MLP 784-256-256-10, batch 128", mlp, 128),
                                     ("CNN 2 conv + linear, batch 64", cnn, 64)):
        res = bench(make_model, batch, args.repeats, args.device)
        base = res["SGD(foreach)"]
        print(f"\n{label}")
        print(f"{'optimizer':24s} {'ms / gradient evaluation':>26s} {'overhead vs SGD':>16s}")
        for name, t in res.items():
            print(f"{name:24s} {1e3 * t:26.3f} {100 * (t / base - 1):15.1f}%")


if __name__ == "__main__":
    main()
