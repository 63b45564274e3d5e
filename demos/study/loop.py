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

from hjsmooth.demos.study.methods import Method
from hjsmooth.demos.study.tasks import Split, make_model

__all__ = ["BATCH", "LR_DROPS", "LR_FACTOR", "RunResult", "steps_per_epoch", "train_run", "error_rate"]

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
            wrong += int((model(x[i:i + chunk]).argmax(1) != y[i:i + chunk]).sum())
    return 100.0 * wrong / len(y)


def train_run(method: Method, hp: dict[str, Any], split: Split, model_kind: str, budget: int, seed: int,
              parallel: bool = False, checkpoints: int = 10) -> RunResult:
    """Train a fresh ``model_kind`` network with ``method`` at settings ``hp`` for ``budget`` gradient evaluations.

    ``seed`` fixes the initialisation, the minibatch draws and the method's own noise.  ``parallel``: the
    replicated methods evaluate their replicas at once (:class:`hjsmooth.optim.ReplicaBatches`), the way the
    wall-clock accounting with replicas in parallel measures them.  A run whose loss
    becomes NaN or inf stops there and is marked ``diverged``, with 90 % error (chance level for 10 classes)
    from then on, so that a search ranks it last.
    """
    import torch
    import torch.nn.functional as F

    from hjsmooth.optim import NonFiniteError, at_anchor

    xt, yt = torch.as_tensor(split.x_train), torch.as_tensor(split.y_train)
    xv, yv = torch.as_tensor(split.x_val), torch.as_tensor(split.y_val)
    torch.manual_seed(seed)
    model = make_model(model_kind, split.n_features)
    draws = torch.Generator().manual_seed(seed)

    def draw(replicas: int | None = None) -> tuple[Any, Any]:
        shape = (BATCH,) if replicas is None else (replicas, BATCH)
        idx = torch.randint(len(yt), shape, generator=draws)
        return xt[idx], yt[idx]

    cost = method.cost(hp)
    outer = max(1, budget // cost)
    runner = method.build(model, F.cross_entropy, draw, hp, torch.Generator().manual_seed(seed + 1000), outer,
                          parallel)
    base_lrs = [g["lr"] for g in runner.optimizer.param_groups]

    def error_at_anchor(x: Any, y: Any) -> float:  # the weights an hjsmooth optimizer descends, x
        with at_anchor(runner.optimizer):
            return error_rate(runner.eval_model(), x, y)

    marks = set(np.linspace(0, outer, checkpoints + 1).round().astype(int)[1:].tolist())
    evaluations, val_error, wall = [0], [error_at_anchor(xv, yv)], [0.0]
    used, spent, loss, diverged = 0, 0.0, math.nan, False
    for k in range(outer):
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
    return RunResult(evaluations, val_error, wall, final_val, test, float(loss), used, k + 1 if outer else 0,
                     diverged, runner.eval_model())
