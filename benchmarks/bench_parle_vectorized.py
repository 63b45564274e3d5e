"""Parle's vectorised replicas (``ReplicaBatches``, one ``torch.func.vmap`` call per inner step)
against running the replicas one after another (``closure(a)``).

Both paths train the same model from the same weights on the same precomputed stacked
minibatches (replica ``a`` reads slice ``a``: its own shard); the sequential closure is
``ReplicaBatches.sequential_closure``, i.e. ``n L`` forward-backward passes per outer step
on batches of ``B``; the vectorised path makes ``L`` vmapped passes on ``n`` stacked
batches.  Reported: the time of one outer step (best of the repeats after three warm-up
steps, with the spread), the ratio sequential / vectorised (above 1: vmap is faster), and
the largest difference of the master weights between the two paths after the three
warm-up steps from the same start (float32 rounding of batched against unbatched
kernels).  The two paths' steps are interleaved, one of each per repeat, so that load
drifts on a shared machine hit both alike.

    python benchmarks/bench_parle_vectorized.py [--threads 1] [--repeats 7] [--device cpu]
        [--method autograd|vmap_grad] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, Timing, print_rows  # noqa: E402

import hjsmooth.optim as O  # noqa: E402


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 10))


def small_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def cnn() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10))


class Cycle:
    """``batches()``: the precomputed stacked minibatches in turn."""

    def __init__(self, data: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.data, self.i = data, 0

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.data[self.i % len(self.data)]
        self.i += 1
        return out


def setup(make_model: Callable[[], torch.nn.Module], n: int, L: int, batch: int, device: str,
          vectorised: bool, method: str = "autograd") -> tuple[torch.nn.Module, Any, Any]:
    torch.manual_seed(0)
    model = make_model().to(device)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(n, batch, 1, 28, 28, generator=g).to(device),
             torch.randint(0, 10, (n, batch), generator=g).to(device)) for _ in range(2 * L)]
    opt = O.Parle(model.parameters(), lr=0.1, gamma=0.1, rho=1.0, n=n, L=L, inner_lr=0.01)
    rb = O.ReplicaBatches(model, torch.nn.functional.cross_entropy, Cycle(data), method=method)
    return model, opt, (rb if vectorised else rb.sequential_closure(opt))


def bench(label: str, make_model: Callable[[], torch.nn.Module], n: int, L: int, batch: int, device: str,
          repeats: int, method: str) -> list[Row]:
    """Both paths, their steps interleaved (sequential, vmap, sequential, ...) so that load drifts hit both."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    runs, finals = [], {}
    for vectorised in (False, True):
        model, opt, closure = setup(make_model, n, L, batch, device, vectorised, method)
        for _ in range(3):  # the three steps compared between the paths, and the warm-up
            opt.step_outer(closure)
        sync()
        finals[vectorised] = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        runs.append((opt, closure))
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        for i, (opt, closure) in enumerate(runs):
            t0 = time.perf_counter()
            opt.step_outer(closure)
            sync()
            times[i].append(time.perf_counter() - t0)
    rows = [Row(f"{label} n={n}: sequential closure(a)", Timing(tuple(times[0]), 0.0), note=f"{n * L} passes of B"),
            Row(f"{label} n={n}: vmap (ReplicaBatches)", Timing(tuple(times[1]), 0.0),
                error=float((finals[True] - finals[False]).abs().max()), note=f"{L} vmapped passes of n x B")]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--L", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--method", default="autograd", choices=["autograd", "vmap_grad"],
                    help="ReplicaBatches(method=...): vmapped forward + one backward, or vmap(grad_and_value)")
    ap.add_argument("--quick", action="store_true", help="n = 4 on the MLP only, 2 repeats")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, L = {args.L}, "
          f"method {args.method!r}, float32; time of one Parle outer step")
    models = [("MLP 784-256-10, B=128", mlp, 128), ("CNN 2 conv + linear, B=64", cnn, 64),
              ("MLP 784-32-10, B=16", small_mlp, 16)]
    ns = (4, 8)
    repeats = args.repeats
    if args.quick:
        models, ns, repeats = models[:1], (4,), 2
    summary = []
    for label, make_model, batch in models:
        for n in ns:
            rows = bench(label, make_model, n, args.L, batch, args.device, repeats, args.method)
            print_rows(f"{label}, Parle n={n} L={args.L} (ratio: sequential / row; max error: "
                       "|x_vmap - x_seq| after 3 steps)", rows, reference=rows[0].name)
            summary.append((label, n, rows[0].best, rows[1].best))
    print("\nsummary (ms per outer step)")
    print(f"{'model':<28} {'n':>3} {'sequential':>12} {'vmap':>12} {'speed-up':>9}")
    for label, n, seq, vec in summary:
        print(f"{label:<28} {n:>3} {1e3 * seq:12.2f} {1e3 * vec:12.2f} {seq / vec:9.2f}")


if __name__ == "__main__":
    main()
