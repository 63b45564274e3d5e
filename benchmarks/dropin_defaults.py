"""The drop-in check: one plain training loop, only the optimizer line swapped, every optimizer at its defaults.

A user's script as it is written for ``torch.optim.SGD``: scikit-learn's digits (the training study's
split: its training and validation examples train, its test examples test), an MLP 64-128-10,
600 minibatches of 64 drawn by a seeded generator, and per minibatch::

    loss = cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()

then the test error, evaluated at the anchor ``x`` (``with hjsmooth.optim.at_anchor(opt):``, which
does nothing for a torch optimizer).  Each hjsmooth optimizer must reach a test error within
``max(1.5 x, +3 points)`` of the reference: ``torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)``,
and ``torch.optim.Adam()`` at its defaults for ``LocalEntropy(params, torch.optim.Adam)``.

    python benchmarks/dropin_defaults.py --seeds 0 1 2 3 4
    python benchmarks/dropin_defaults.py --try "LocalEntropy(p, torch.optim.Adam, lr=1e-2)"

Prints each optimizer's test error per seed, the median, its reference's median and whether it is
within the bound.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import hjsmooth.optim as O
from hjsmooth.demos.study.tasks import load_train_test, make_model

STEPS, BATCH = 600, 64
#: name -> (factory of the optimizer at its defaults, the reference it must keep up with)
OPTIMIZERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "SGD": (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "SGD"),
    "Adam": (lambda p: torch.optim.Adam(p), "Adam"),
    "EntropySGD": (lambda p: O.EntropySGD(p), "SGD"),
    "HJ": (lambda p: O.HJ(p), "SGD"),
    "Heat": (lambda p: O.Heat(p), "SGD"),
    "HeatWrapper(SGD)": (lambda p: O.HeatWrapper(p, torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True), "SGD"),
    "ElasticSGD": (lambda p: O.ElasticSGD(p), "SGD"),
    "Parle": (lambda p: O.Parle(p), "SGD"),
    "TrivializedSGD": (lambda p: O.TrivializedSGD(p), "SGD"),
    "LocalEntropy(Adam)": (lambda p: O.LocalEntropy(p, torch.optim.Adam), "Adam"),
}


def run(make: Callable[[Any], Any], seed: int, data: tuple[torch.Tensor, ...]) -> float:
    """Test error (%) after the plain loop of the module docstring with the optimizer ``make(params)``."""
    xt, yt, xs, ys = data
    torch.manual_seed(seed)
    model = make_model("mlp", xt.shape[1])
    opt = make(model.parameters())
    draws = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        idx = torch.randint(len(yt), (BATCH,), generator=draws)
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with O.at_anchor(opt), torch.no_grad():
        return float((model(xs).argmax(1) != ys).float().mean()) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=None, help="names of OPTIMIZERS to run (default: all)")
    parser.add_argument("--try", dest="tries", nargs="*", default=[],
                        help='extra optimizers as expressions of p, e.g. "O.LocalEntropy(p, torch.optim.Adam, lr=1e-2)"')
    parser.add_argument("--reference", default="SGD", help="the reference of the --try optimizers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = tuple(torch.as_tensor(a) for a in load_train_test("digits"))
    table = {k: v for k, v in OPTIMIZERS.items() if args.only is None or k in args.only or k in ("SGD", "Adam")}
    for expr in args.tries:
        table[expr] = (eval(f"lambda p: {expr}", {"O": O, "torch": torch}), args.reference)  # noqa: S307
    errors = {name: [run(make, s, data) for s in args.seeds] for name, (make, _) in table.items()}
    print(f"digits, MLP 64-128-10, {STEPS} minibatches of {BATCH}, plain loop; test error (%), seeds {args.seeds}")
    for name, (_, ref) in table.items():
        med, ref_med = statistics.median(errors[name]), statistics.median(errors[ref])
        bound = max(1.5 * ref_med, ref_med + 3.0)
        each = " ".join(f"{e:5.2f}" for e in errors[name])
        print(f"{name:<48} median {med:5.2f}   ({each})   {ref} {ref_med:5.2f}, bound {bound:5.2f}: "
              f"{'ok' if med <= bound else 'NOT MET'}")


if __name__ == "__main__":
    main()
