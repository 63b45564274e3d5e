"""One training run at a fixed budget of minibatch gradient evaluations.

The budget is counted in gradient evaluations: an outer step of a method that evaluates ``k`` minibatch
gradients (``L`` for Entropy-SGD, ``n L`` for Parle...) spends ``k`` of it.  The outer learning rate is
divided by 5 after 60 % and after 80 % of the budget (the thesis drops it by a factor 5 at fixed epochs).
The run records the validation error at evenly spaced points of the budget, with the wall-clock time spent
training up to each point (evaluation time excluded); the test error is computed once, at the end, and only
when the split carries test data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hjsmooth.demos.study.methods import Draw, Method, Runner
from hjsmooth.demos.study.tasks import Split, make_model

__all__ = [
    "BATCH",
    "LR_DROPS",
    "LR_FACTOR",
    "RunResult",
    "steps_per_epoch",
    "fresh_run",
    "train_run",
    "drive",
    "error_rate",
]

BATCH = 128
LR_DROPS = (0.6, 0.8)
LR_FACTOR = 0.2


def steps_per_epoch(n_train: int) -> int:
    """Minibatches in one pass over ``n_train`` examples (the unit of an *effective epoch*)."""
    return math.ceil(n_train / BATCH)


@dataclass
class RunResult:
    """What one run produced.  Errors are in %; ``evaluations`` counts minibatch gradients."""

    evaluations: list[int]
    val_error: list[float]
    wall_clock_s: list[float]
    final_val_error: float
    test_error: float | None
    train_loss: float
    gradient_evaluations: int
    outer_steps: int
    diverged: bool = False
    model: Any = field(default=None, repr=False)


def error_rate(model: Any, x: Any, y: Any, chunk: int = 4096) -> float:
    """Classification error of ``model`` on ``(x, y)`` in %."""
    import torch

    wrong = 0
    with torch.no_grad():
        for i in range(0, len(y), chunk):
            wrong += int((model(x[i : i + chunk]).argmax(1) != y[i : i + chunk]).sum())
    return 100.0 * wrong / len(y)


def fresh_run(split: Split, model_kind: str, seed: int, stream: int | None = None) -> tuple[Any, Draw]:
    """A new ``model_kind`` network initialised from ``seed`` and its minibatch stream.

    ``stream`` seeds the minibatch draws (default ``seed``; a process of a distributed run passes its own).
    The returned ``draw(replicas=None, generator=None)`` gives ``(x, y)`` of ``BATCH`` training examples
    (``(replicas, BATCH)`` with ``replicas``), drawn with replacement from the stream, or from ``generator``
    when one is given (for draws that must leave the training stream alone, e.g. SWA's BatchNorm pass).
    """
    import torch

    xt, yt = torch.as_tensor(split.x_train), torch.as_tensor(split.y_train)
    torch.manual_seed(seed)
    model = make_model(model_kind, split.n_features)
    draws = torch.Generator().manual_seed(seed if stream is None else stream)

    def draw(replicas: int | None = None, generator: Any = None) -> tuple[Any, Any]:
        shape = (BATCH,) if replicas is None else (replicas, BATCH)
        idx = torch.randint(len(yt), shape, generator=draws if generator is None else generator)
        return xt[idx], yt[idx]

    return model, draw


def train_run(
    method: Method,
    hp: dict[str, Any],
    split: Split,
    model_kind: str,
    budget: int,
    seed: int,
    parallel: bool = False,
    checkpoints: int = 10,
) -> RunResult:
    """Train a fresh ``model_kind`` network with ``method`` at settings ``hp`` for ``budget`` gradient evaluations.

    ``seed`` fixes the initialisation, the minibatch draws and the method's own noise.  ``parallel``: the
    replicated methods evaluate their replicas at once (:class:`hjsmooth.optim.ReplicaBatches`), the way the
    wall-clock accounting with replicas in parallel measures them.  A run whose loss
    becomes NaN or inf stops there and is marked ``diverged``, with 90 % error (chance level for 10 classes)
    from then on, so that a search ranks it last.
    """
    import torch
    import torch.nn.functional as F

    model, draw = fresh_run(split, model_kind, seed)
    cost = method.cost(hp)
    outer = max(1, budget // cost)
    runner = method.build(
        model,
        F.cross_entropy,
        draw,
        hp,
        torch.Generator().manual_seed(seed + 1000),
        outer,
        parallel,
        epoch_steps=steps_per_epoch(len(split.y_train)),
    )
    return drive(runner, cost, budget, split, checkpoints)


def drive(runner: Runner, cost: int, budget: int, split: Split, checkpoints: int = 10) -> RunResult:
    """Step ``runner`` until ``budget`` gradient evaluations (``cost`` per step) are spent; record the run.

    The outer learning rate follows the study's drops (until the step ``runner.own_lr_from``, from which the
    runner sets its own).  The validation error is recorded at ``checkpoints`` evenly spaced steps with the
    training time up to each (time in ``runner.step`` only); the test error once, at the end, when ``split``
    carries test data.  A NaN or inf loss, or an hjsmooth optimizer's ``NonFiniteError``, stops the run.
    """
    import torch

    from hjsmooth.optim import NonFiniteError, at_anchor

    xv, yv = torch.as_tensor(split.x_val), torch.as_tensor(split.y_val)
    outer = max(1, budget // cost)
    base_lrs = [g["lr"] for g in runner.optimizer.param_groups]

    def error_at_anchor(x: Any, y: Any) -> float:  # the weights an hjsmooth optimizer descends, x
        with at_anchor(runner.optimizer):
            return error_rate(runner.eval_model(), x, y)

    marks = set(np.linspace(0, outer, checkpoints + 1).round().astype(int)[1:].tolist())
    evaluations, val_error, wall = [0], [error_at_anchor(xv, yv)], [0.0]
    used, spent, loss, diverged = 0, 0.0, math.nan, False
    for k in range(outer):
        if runner.own_lr_from is None or k < runner.own_lr_from:
            drop = LR_FACTOR ** sum(used / budget >= d for d in LR_DROPS)
            for group, lr in zip(runner.optimizer.param_groups, base_lrs):
                group["lr"] = lr * drop
        start = time.perf_counter()
        try:
            loss = runner.step()
        except NonFiniteError:  # an hjsmooth optimizer met a NaN/inf loss or gradient (its weights were kept)
            loss = math.nan
        spent += time.perf_counter() - start
        used += cost
        if not math.isfinite(loss):
            diverged = True
            break
        if k + 1 in marks:
            evaluations.append(used)
            val_error.append(error_at_anchor(xv, yv))
            wall.append(spent)
    if diverged:
        evaluations.append(used)
        val_error.append(90.0)
        wall.append(spent)
    final_val = val_error[-1]
    test = None
    if split.has_test and not diverged:
        x_test, y_test = split.test_arrays()
        test = error_at_anchor(torch.as_tensor(x_test), torch.as_tensor(y_test))
    elif split.has_test:
        test = 90.0
    if callable(getattr(runner.optimizer, "eval", None)):
        runner.optimizer.eval()  # the model returned is the anchor x
    return RunResult(
        evaluations,
        val_error,
        wall,
        final_val,
        test,
        float(loss),
        used,
        k + 1 if outer else 0,
        diverged,
        runner.eval_model(),
    )
