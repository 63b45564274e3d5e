"""Test error of each hjsmooth optimizer against SGD with Nesterov momentum, at equal gradient evaluations.

The data and networks of the training study (``hjsmooth.demos.study.tasks.load_train_test``: its
training and validation examples train, its test examples test), with a training loop of its
own (a seed fixes the initialisation and the minibatch stream): scikit-learn's digits
with an MLP 64-128-10 (20 effective epochs) and MNIST-1D (generated locally) with an MLP
40-128-128-10 and a small 1D CNN (30 effective epochs each); minibatches of 128 drawn
with replacement; the learning rate of every optimizer divided by 5 after 60 % and 80 %
of the budget.  A budget of ``E`` effective epochs is ``E * ceil(N / 128)`` closure calls
(gradient evaluations), whatever an optimizer does with them (``L`` per outer step for
Entropy-SGD, HJ and HEAT, ``n`` for Elastic-SGD, ``n L`` for Parle).  SGD is
``torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)``; every other optimizer is
built with its defaults (``EntropySGD(params)``...) unless settings are given.

    python benchmarks/optim_defaults.py                          # defaults, 3 tasks, seeds 0-2
    python benchmarks/optim_defaults.py --tasks digits-mlp --seeds 0 1 \\
        --try "EntropySGD(lr=1, gamma=1, L=5)" "Heat(gamma=0.03)"  # other settings

It prints the mean, standard deviation and median of the final test error (%) per
optimizer and task, each seed's error, and the ratio of the median to SGD's.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import hjsmooth.optim as O
from hjsmooth.demos.study.tasks import load_train_test, make_model

BATCH = 128
LR_DROPS = (0.6, 0.8)
LR_FACTOR = 0.2
#: task -> (dataset, model, effective epochs)
TASKS: dict[str, tuple[str, str, float]] = {
    "digits-mlp": ("digits", "mlp", 20.0),
    "mnist1d-mlp": ("mnist1d", "mlp", 30.0),
    "mnist1d-cnn": ("mnist1d", "cnn", 30.0),
}
#: name -> factory(params) of the optimizers compared, every one at its defaults
DEFAULTS: dict[str, Callable[[Any], Any]] = {
    "SGD": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "EntropySGD": lambda p: O.EntropySGD(p),
    "HJ": lambda p: O.HJ(p),
    "Heat": lambda p: O.Heat(p),
    "ElasticSGD": lambda p: O.ElasticSGD(p),
    "Parle": lambda p: O.Parle(p),
    "TrivializedSGD": lambda p: O.TrivializedSGD(p),
    "Entropy-Adam": lambda p: O.LocalEntropy(p, torch.optim.Adam),
}

_DATA: dict[str, tuple[torch.Tensor, ...]] = {}


def dataset(name: str) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)`` of a dataset, loaded once per process."""
    if name not in _DATA:
        _DATA[name] = tuple(torch.as_tensor(a) for a in load_train_test(name))
    return _DATA[name]


def run(make: Callable[[Any], Any], task: str, seed: int, epochs: float | None = None) -> tuple[float, int]:
    """Train the task's model with ``make(model.parameters())`` for its budget of closure calls.

    Returns the final test error (%) and the number of closure calls made (at most the
    budget: the last outer step that would exceed it is not taken).
    """
    data_name, kind, default_epochs = TASKS[task]
    xt, yt, xv, yv = dataset(data_name)
    torch.manual_seed(seed)
    model = make_model(kind, xt.shape[1])
    opt = make(model.parameters())
    draws = torch.Generator().manual_seed(seed)  # the demo's minibatch stream
    budget = int(round((epochs or default_epochs) * math.ceil(len(yt) / BATCH)))
    calls = 0
    base_lrs = [g["lr"] for g in opt.param_groups]

    def closure(*_replica: int) -> torch.Tensor:
        nonlocal calls
        calls += 1
        idx = torch.randint(len(yt), (BATCH,), generator=draws)
        opt.zero_grad()
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        loss.backward()
        return loss

    cost = None
    while cost is None or calls + cost <= budget:
        drop = LR_FACTOR ** sum(calls / budget >= d for d in LR_DROPS)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * drop
        before = calls
        getattr(opt, "step_outer", opt.step)(closure)
        cost = calls - before
    if callable(getattr(opt, "eval", None)):
        opt.eval()  # evaluate at the anchor x
    with torch.no_grad():
        return float((model(xv).argmax(1) != yv).float().mean()) * 100, calls


def train(make: Callable[[Any], Any], task: str, seed: int, epochs: float | None = None) -> float:
    """The final test error (%) of :func:`run`; 100 if the run met a NaN or infinite loss or gradient."""
    try:
        return run(make, task, seed, epochs)[0]
    except O.NonFiniteError:
        return 100.0


def build(spec: str) -> tuple[str, Callable[[Any], Any]]:
    """``"EntropySGD(lr=1, gamma=1)"`` -> (the spec, a factory); ``"EntropySGD"`` is its defaults."""
    name, _, rest = spec.partition("(")
    kwargs = eval(f"dict({rest.rstrip(')')})", {"inf": math.inf, "torch": torch, "O": O}) if rest else {}  # noqa: S307
    if name == "SGD":
        return spec, lambda p: torch.optim.SGD(p, **{"lr": 0.1, "momentum": 0.9, "nesterov": True, **kwargs})
    if name == "Adam":
        return spec, lambda p: torch.optim.Adam(p, **kwargs)
    if name == "Entropy-Adam":
        return spec, lambda p: O.LocalEntropy(p, torch.optim.Adam, **kwargs)
    cls = getattr(O, name)
    return spec, lambda p: cls(p, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--try", dest="specs", nargs="+", default=None,
                    help='optimizers as "Name(key=value, ...)" (SGD is always run as the reference)')
    ap.add_argument("--epochs", type=float, default=None, help="effective epochs (default: the task's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = dict(build(s) for s in args.specs) if args.specs else dict(DEFAULTS)
    runs = {"SGD": DEFAULTS["SGD"], **{k: v for k, v in runs.items() if k != "SGD"}}
    print(f"torch {torch.__version__}; seeds {args.seeds}; test error (%): mean +- std, median, "
          "median / SGD's median, each seed")
    for task in args.tasks:
        print(f"\n{task} ({args.epochs or TASKS[task][2]:g} effective epochs)")
        reference = None
        for name, make in runs.items():
            t0 = time.perf_counter()
            errors = [train(make, task, s, args.epochs) for s in args.seeds]
            mean, median = statistics.mean(errors), statistics.median(errors)
            std = statistics.stdev(errors) if len(errors) > 1 else 0.0
            reference = median if reference is None else reference
            print(f"  {name:60s} {mean:6.2f} +- {std:5.2f}  {median:6.2f}  x{median / reference:5.2f}   "
                  f"[{' '.join(f'{e:.2f}' for e in errors)}]  {time.perf_counter() - t0:5.1f} s", flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
