"""Per-gradient-evaluation overhead of the hjsmooth optimizers against torch.optim.SGD (foreach).

Each optimizer trains the same model on the same precomputed minibatches in two ways: the
plain loop (``loss.backward(); opt.step()``, one gradient per call) and the closure path
(``opt.step_outer(closure)``, ``L`` closure calls for the Local Entropy family and Heat, ``n``
for Elastic-SGD, ``n L`` for Parle; ``opt.step(closure)`` in versions without ``step_outer``).
The time per gradient evaluation of each is compared with one step of
``torch.optim.SGD(momentum=0.9, nesterov=True, foreach=True)`` in the plain loop, measured
round robin in the same process.  "SGD + N(0,1) per weight" is the floor of the noisy
optimizers (Heat, and Entropy-SGD/Parle with ``noise > 0``): SGD that also draws the one
Gaussian number per weight per gradient evaluation that they need.

    python benchmarks/bench_optim_overhead.py [--threads 1] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import inspect
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


class NoisySGD(torch.optim.SGD):
    """The floor for the noisy optimizers: SGD that also draws one N(0, 1) per weight per step (and discards it)."""

    def __init__(self, params: Any, **kw: Any) -> None:
        super().__init__(params, **kw)
        self._gen = torch.Generator(device=self.param_groups[0]["params"][0].device).manual_seed(0)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = super().step(closure)
        n = sum(p.numel() for g in self.param_groups for p in g["params"])
        dev = self.param_groups[0]["params"][0].device
        torch.randn(n, generator=self._gen, device=dev)
        return loss


_SGD = dict(lr=0.01, momentum=0.9, nesterov=True, foreach=True)


def _make(cls: Any, params: Any, **kw: Any) -> Any:
    """``cls(params, **kw)`` without the keywords this version of ``cls`` does not take.

    So the script also runs against earlier versions of hjsmooth (``PYTHONPATH=<old checkout>``), for a
    before/after comparison: the first rows' extra keywords state what the earlier versions did anyway
    (no inner momentum, an absolute perturbation).  A row that cannot be built there is reported n/a.
    """
    accepted = inspect.signature(cls).parameters
    return cls(params, **{k: v for k, v in kw.items() if k in accepted})


def _default(cls: Any, name: str) -> Any:
    """The default of argument ``name`` of ``cls`` (closure calls per step of the default rows)."""
    return inspect.signature(cls).parameters[name].default
# name: (factory, closure calls per step).  The first five rows keep the settings measured before the
# optimizers were rebuilt (inner loop without momentum, Heat's absolute perturbation), so that before and
# after compare the same algorithm; the rows marked "default" are today's defaults.
OPTIMIZERS: dict[str, tuple[Callable[[Any], Any], int]] = {
    "SGD(foreach)": (lambda p: torch.optim.SGD(p, **_SGD), 1),
    "SGD + N(0,1) per weight": (lambda p: NoisySGD(p, **_SGD), 1),
    "EntropySGD L=20": (lambda p: _make(O.EntropySGD, p, lr=0.01, gamma=1.0, L=20, inner_momentum=0.0,
                                        scale_by_gamma=False, foreach=True), 20),
    "EntropySGD L=20 noise": (lambda p: _make(O.EntropySGD, p, lr=0.01, gamma=1.0, L=20, noise=1e-8,
                                              inner_momentum=0.0, scale_by_gamma=False, foreach=True), 20),
    "HJ L=5": (lambda p: _make(O.HJ, p, lr=0.01, gamma=1.0, L=5, inner_momentum=0.0, momentum=0.9,
                               scale_by_gamma=False, foreach=True), 5),
    "Heat L=20": (lambda p: _make(O.Heat, p, lr=0.01, gamma=1e-4, L=20, perturbation="absolute", foreach=True), 20),
    "Parle n=2 L=20": (lambda p: _make(O.Parle, p, lr=0.5, gamma=1.0, rho=1.0, n=2, L=20, inner_momentum=0.0,
                                       foreach=True), 40),
    "EntropySGD default": (lambda p: O.EntropySGD(p), _default(O.EntropySGD, "L")),
    "HJ default": (lambda p: O.HJ(p), _default(O.HJ, "L")),
    "Heat default": (lambda p: O.Heat(p), _default(O.Heat, "L")),
    "ElasticSGD default n=2": (lambda p: O.ElasticSGD(p, n=2), 2),
    "Parle default n=2": (lambda p: O.Parle(p, n=2), 2 * _default(O.Parle, "L")),
    "TrivializedSGD default": (lambda p: O.TrivializedSGD(p), 1),
}


def bench(make_model: Callable[[], torch.nn.Module], batch: int, repeats: int, device: str
          ) -> dict[tuple[str, str], float]:
    """Median seconds per gradient evaluation, keyed by (optimizer, "plain" or "closure")."""
    torch.manual_seed(0)
    data = [(torch.randn(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device))
            for _ in range(64)]
    runs = {}
    for name, (factory, calls) in OPTIMIZERS.items():
        for path in ("plain", "closure"):
            model = make_model().to(device)
            try:
                opt = factory(list(model.parameters()))
            except TypeError:  # this version of hjsmooth has no such defaults or arguments
                continue
            k = {"i": 0}

            def closure(*_: Any, model: torch.nn.Module = model, opt: Any = opt, k: dict = k) -> torch.Tensor:
                x, y = data[k["i"] % len(data)]
                k["i"] += 1
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                return loss

            if path == "plain":
                if not hasattr(opt, "step_outer") and calls > 1:
                    continue  # before the one-gradient convention: step() needed a closure

                def one(opt: Any = opt, closure: Callable[..., Any] = closure) -> None:
                    closure()
                    opt.step()

                per = 1
            else:
                outer = getattr(opt, "step_outer", opt.step)

                def one(outer: Callable[..., Any] = outer, closure: Callable[..., Any] = closure) -> None:
                    outer(closure)

                per = calls
            for _ in range(2 * max(1, calls // per)):  # warm-up
                one()
            runs[(name, path)] = (one, per, max(1, 40 // per))
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for _ in range(repeats):  # round robin, so that load drifts hit every optimizer alike
        for key, (one, per, steps) in runs.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                one()
            if device == "cuda":
                torch.cuda.synchronize()
            times[key].append((time.perf_counter() - t0) / (steps * per))
    return {key: statistics.median(t) for key, t in times.items()}


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
        base = res[("SGD(foreach)", "plain")]
        print(f"\n{label}: ms per gradient evaluation, and the overhead against SGD(foreach) in the plain loop")
        print(f"{'optimizer':24s} {'plain loop':>12s} {'overhead':>9s} {'step_outer':>12s} {'overhead':>9s}")
        for name in OPTIMIZERS:
            cells = []
            for path in ("plain", "closure"):
                t = res.get((name, path))
                cells.append(f"{1e3 * t:12.3f} {100 * (t / base - 1):8.1f}%" if t is not None else f"{'n/a':>12s} {'':9s}")
            print(f"{name:24s} {cells[0]} {cells[1]}")


if __name__ == "__main__":
    main()
