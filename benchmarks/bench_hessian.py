"""hjsmooth.diagnostics against PyHessian: the top Hessian eigenvalue(s) and the Hessian trace, at equal accuracy.

The same trained network, the same data (one batch, as PyHessian's ``data=`` mode), float32 on the CPU:

* **top eigenvalue**: PyHessian's power iteration with its defaults (``maxIter=100, tol=1e-3`` on the
  relative change of the estimate) against :func:`hjsmooth.diagnostics.hessian_eigenvalues` (thick-restart
  Lanczos, default tolerance).  Accuracy: the relative error against a float64 Lanczos reference
  converged to 1e-10; a speed-up counts only where hjsmooth's error is at most PyHessian's.  Also the
  top 5 (PyHessian deflates and restarts power iteration per eigenvalue).  A second hjsmooth row for the
  top eigenvalue sets ``tol`` to PyHessian's achieved relative error (its error is measured all the same).
* **trace**: PyHessian's Hutchinson (``maxIter=n, tol=0``: exactly ``n`` Rademacher vectors) against
  :func:`hjsmooth.diagnostics.hessian_trace` with the same ``n`` (the same estimator: equal accuracy in
  distribution), and against hjsmooth's deflated estimator stopped once its standard error is at most the
  one of PyHessian's ``n`` samples (equal accuracy by the standard error).
* **memory**: each method runs once more in a fresh subprocess, which samples its resident memory
  every half millisecond and reports the peak above what it held after loading the model and data
  (the graph of the double backward pass and the vectors), beside the size of hjsmooth's vectors
  (``basis + k + 1`` vectors of ``d`` floats for the eigenvalues, ``deflation + 1`` for the trace).

Timings are interleaved (PyHessian, hjsmooth, PyHessian, hjsmooth, ...) and the medians compared; the
ratio is PyHessian's median over hjsmooth's (above 1: hjsmooth faster).  PyHessian lives in its own
virtual environment (see ``benchmarks/README.md``); torch runs on one thread by default (``--threads``).

Run::

    python benchmarks/bench_hessian.py                  # MNIST-1D MLP 40-128-128-10, 4000 samples (~3-6 min)
    python benchmarks/bench_hessian.py --model cnn --samples 1000
    python benchmarks/bench_hessian.py --quick          # digits-sized smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--samples", type=int, default=4000, help="training samples in the batch (default 4000)")
    p.add_argument("--epochs", type=float, default=20.0, help="SGD epochs before measuring (default 20)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every timing (default 3)")
    p.add_argument("--trace-samples", type=int, default=100, help="Rademacher vectors of PyHessian's trace")
    p.add_argument("--deflation", type=int, default=20, help="Lanczos vectors deflated by hjsmooth's trace")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quick", action="store_true", help="small smoke run: 500 samples, 20 trace vectors, 1 repeat")
    p.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurements")
    p.add_argument("--memory-only", action="store_true", help="only the memory measurements")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--state", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.samples, args.trace_samples, args.repeats, args.epochs = 500, 20, 1, 5.0
    return args


# ----------------------------------------------------------------------------- the problem
def build(args: argparse.Namespace) -> dict[str, Any]:
    """Train the network once and return its state and the batch (saved for the memory workers)."""
    import torch

    from hjsmooth.demos._nets import train_net
    from hjsmooth.demos.study.tasks import load_split

    data = load_split("mnist1d").train_val()
    net = train_net("SGD", data, args.model, args.epochs, seed=0)
    x, y = net.data[0][: args.samples].clone(), net.data[1][: args.samples].clone()
    return {"state": net.model.state_dict(), "x": x, "y": y, "model": args.model, "n_features": x.shape[1]}


def load(problem: dict[str, Any], dtype: Any = None) -> tuple[Any, Any, Any]:
    import torch

    from hjsmooth.demos.study.tasks import make_model

    model = make_model(problem["model"], problem["n_features"])
    model.load_state_dict(problem["state"])
    x, y = problem["x"], problem["y"]
    if dtype is not None:
        model, x = model.to(dtype), x.to(dtype)
    return model.eval(), x, y


# ----------------------------------------------------------------------------- the contenders
class Counter:
    """Counts PyHessian's Hessian-vector products (its module-level ``hessian_vector_product``)."""

    def __init__(self) -> None:
        import pyhessian.hessian  # noqa: F401 - the package re-exports the class under the module's name

        ph = sys.modules["pyhessian.hessian"]
        self.calls = 0
        original = ph.hessian_vector_product

        def counted(*a: Any, **k: Any) -> Any:
            self.calls += 1
            return original(*a, **k)

        ph.hessian_vector_product = counted


def pyhessian_top(model: Any, x: Any, y: Any, k: int, seed: int) -> tuple[list[float], float]:
    import torch
    from pyhessian import hessian

    torch.manual_seed(seed)
    start = time.perf_counter()
    h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    values, _ = h.eigenvalues(top_n=k)  # defaults: maxIter=100, tol=1e-3
    elapsed = time.perf_counter() - start
    for p in model.parameters():  # PyHessian leaves a graph in .grad: drop it
        p.grad = None
    return values, elapsed


def hjsmooth_top(model: Any, x: Any, y: Any, k: int, seed: int, tol: float | None = None) -> tuple[Any, float, int]:
    import torch.nn.functional as F

    from hjsmooth.diagnostics import hessian_eigenvalues

    start = time.perf_counter()
    res = hessian_eigenvalues(model, F.cross_entropy, (x, y), k=k, tol=tol, rng=seed, progress=False)
    return res.eigenvalues, time.perf_counter() - start, res.matvecs


def pyhessian_trace(model: Any, x: Any, y: Any, n: int, seed: int) -> tuple[np.ndarray, float]:
    import torch
    from pyhessian import hessian

    torch.manual_seed(seed)
    start = time.perf_counter()
    h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    values = np.asarray(h.trace(maxIter=n, tol=0.0))
    elapsed = time.perf_counter() - start
    for p in model.parameters():
        p.grad = None
    return values, elapsed


def hjsmooth_trace(model: Any, x: Any, y: Any, n: int, seed: int, deflation: int = 0, tol: float | None = None
                   ) -> tuple[Any, float]:
    import torch.nn.functional as F

    from hjsmooth.diagnostics import hessian_trace

    start = time.perf_counter()
    res = hessian_trace(model, F.cross_entropy, (x, y), samples=n, deflation=deflation, tol=tol, rng=seed,
                        progress=False)
    return res, time.perf_counter() - start


# ----------------------------------------------------------------------------- memory workers
def current_rss_mb() -> float:
    """Resident memory of this process now (Linux ``/proc/self/statm``), in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the resident memory every half millisecond in a thread; ``peak`` is the largest sample."""

    def __enter__(self) -> "PeakRSS":
        import threading

        self.start = self.peak = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mb())
            time.sleep(5e-4)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    problem = torch.load(args.state, weights_only=False)
    model, x, y = load(problem)
    with torch.no_grad():
        model(x)
    import pyhessian  # noqa: F401 - imports are not part of the measurement
    import scipy.special  # noqa: F401
    import tqdm.auto  # noqa: F401

    import hjsmooth.diagnostics  # noqa: F401
    import hjsmooth.validation  # noqa: F401

    spec = json.loads(args.worker)
    name = spec["name"]
    with PeakRSS() as rss:
        if name == "pyhessian_top":
            pyhessian_top(model, x, y, spec["k"], 0)
        elif name == "hjsmooth_top":
            hjsmooth_top(model, x, y, spec["k"], 0)
        elif name == "pyhessian_trace":
            pyhessian_trace(model, x, y, spec["n"], 0)
        elif name == "hjsmooth_trace":
            hjsmooth_trace(model, x, y, spec["n"], 0, spec.get("deflation", 0))
    print(json.dumps({"extra_peak_mb": rss.peak - rss.start}))


def measure_memory(args: argparse.Namespace, state: str, spec: dict[str, Any]) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec), "--state", state,
                          "--threads", str(args.threads)], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["extra_peak_mb"])


# ----------------------------------------------------------------------------- main
def median_ratio(peer: list[float], ours: list[float]) -> tuple[float, float, float]:
    a, b = statistics.median(peer), statistics.median(ours)
    return a, b, a / b


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
        return
    import pyhessian

    from hjsmooth.diagnostics import hessian_eigenvalues, hessian_trace

    t0 = time.perf_counter()
    problem = build(args)
    model, x, y = load(problem)
    d = sum(p.numel() for p in model.parameters())
    print(f"model: MNIST-1D {args.model}, d = {d} parameters, batch of {len(y)} samples, float32, "
          f"{torch.get_num_threads()} torch thread(s); torch {torch.__version__}, "
          f"PyHessian {getattr(pyhessian, '__version__', '0.1')}; setup {time.perf_counter() - t0:.1f} s")

    if not args.memory_only:
        # references: float64 Lanczos to 1e-10, and a long deflated float64 trace
        m64, x64, _ = load(problem, torch.float64)
        import torch.nn.functional as F

        ref = hessian_eigenvalues(m64, F.cross_entropy, (x64, y), k=5, tol=1e-10, max_iter=3000, rng=0,
                                  progress=False)
        ref_trace = hessian_trace(m64, F.cross_entropy, (x64, y), samples=200, deflation=4 * args.deflation, rng=0,
                                  progress=False)
        print(f"reference (float64): top eigenvalues {np.array2string(ref.eigenvalues, precision=6)}; "
              f"trace {ref_trace.estimate:.4f} +- {ref_trace.stderr:.4f}")
        lam = ref.eigenvalues

        counter = Counter()
        rows: dict[str, dict[str, list[float]]] = {}

        def add(name: str, **values: float) -> None:
            for key, v in values.items():
                rows.setdefault(name, {}).setdefault(key, []).append(float(v))

        n = args.trace_samples
        for r in range(args.repeats):
            for k in (1, 5):
                counter.calls = 0
                vals, t = pyhessian_top(model, x, y, k, r)
                peer_err = max(abs(v - l) / abs(l) for v, l in zip(sorted(vals, reverse=True), lam[:k]))
                add(f"top{k}/PyHessian", time=t, error=peer_err, hvp=counter.calls)
                vals, t, mv = hjsmooth_top(model, x, y, k, r)
                err = max(abs(v - l) / abs(l) for v, l in zip(vals, lam[:k]))
                add(f"top{k}/hjsmooth", time=t, error=err, hvp=mv)
                if k == 1:
                    # tol = PyHessian's relative error: each Ritz value then lies within that of an eigenvalue
                    # (the residual bound); the error against the reference is measured, not assumed
                    vals, t, mv = hjsmooth_top(model, x, y, k, r, tol=peer_err)
                    err = abs(vals[0] - lam[0]) / abs(lam[0])
                    add("top1/hjsmooth matched tol", time=t, error=err, hvp=mv)
            values, t = pyhessian_trace(model, x, y, n, r)
            stderr = values.std(ddof=1) / math.sqrt(len(values))
            add("trace/PyHessian", time=t, estimate=values.mean(), stderr=stderr, hvp=len(values))
            res, t = hjsmooth_trace(model, x, y, n, r)
            add("trace/hjsmooth", time=t, estimate=res.estimate, stderr=res.stderr, hvp=res.matvecs)
            res, t = hjsmooth_trace(model, x, y, 100 * n, r, deflation=args.deflation,
                                    tol=stderr / abs(values.mean()))
            add("trace/hjsmooth deflated", time=t, estimate=res.estimate, stderr=res.stderr, hvp=res.matvecs)

        print(f"\n{'task / package':<28}{'median time':>13}{'hvp':>7}{'accuracy':>34}")
        for name, r in rows.items():
            t = statistics.median(r["time"])
            if "error" in r:
                acc = f"max rel. error {statistics.median(r['error']):.2e}"
            else:
                acc = (f"{statistics.median(r['estimate']):.3f} +- {statistics.median(r['stderr']):.3f} "
                       f"(ref {ref_trace.estimate:.3f})")
            print(f"{name:<28}{t:>11.3f} s{statistics.median(r['hvp']):>7.0f}{acc:>34}")

        print("\nratio = PyHessian median time / hjsmooth median time (above 1: hjsmooth faster)")
        for task, ours in [("top1", "top1/hjsmooth"), ("top1", "top1/hjsmooth matched tol"), ("top5", "top5/hjsmooth"),
                           ("trace", "trace/hjsmooth"), ("trace", "trace/hjsmooth deflated")]:
            peer = rows[f"{task}/PyHessian"]
            a, b, ratio = median_ratio(peer["time"], rows[ours]["time"])
            if "error" in peer:
                equal = statistics.median(rows[ours]["error"]) <= statistics.median(peer["error"])
                what = "error <= PyHessian's" if equal else "LESS ACCURATE than PyHessian"
            else:
                equal = statistics.median(rows[ours]["stderr"]) <= 1.05 * statistics.median(peer["stderr"])
                what = ("same estimator and samples" if ours == "trace/hjsmooth" else "stderr <= PyHessian's") \
                    if equal else "LARGER stderr than PyHessian"
            print(f"  {ours:<30} {ratio:7.2f}x   ({what})")

    n = args.trace_samples
    if not args.no_memory:
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "problem.pt")
            torch.save(problem, state)
            print("\npeak resident memory above the loaded model and data (fresh process each):")
            basis = min(d, 20)
            for spec, note in [
                ({"name": "pyhessian_top", "k": 1}, ""),
                ({"name": "hjsmooth_top", "k": 1}, f"vectors {(basis + 2) * d * 4 / 2**20:.2f} MB"),
                ({"name": "pyhessian_top", "k": 5}, ""),
                ({"name": "hjsmooth_top", "k": 5}, f"vectors {(basis + 6) * d * 4 / 2**20:.2f} MB"),
                ({"name": "pyhessian_trace", "n": n}, ""),
                ({"name": "hjsmooth_trace", "n": n}, ""),
                ({"name": "hjsmooth_trace", "n": n, "deflation": args.deflation},
                 f"vectors {(args.deflation + 1) * d * 4 / 2**20:.2f} MB"),
            ]:
                mb = measure_memory(args, state, spec)
                label = " ".join(f"{k}={v}" for k, v in spec.items())
                print(f"  {label:<45} {mb:8.1f} MB  {note}")


if __name__ == "__main__":
    main()
