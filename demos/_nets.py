"""Small networks trained by SGD or Entropy-SGD, shared by the diagnostics demos (hessian, landscape, sgd_noise).

The data and models are those of the ``train`` study (:func:`hjsmooth.demos.study.tasks.load_split`,
:func:`hjsmooth.demos.study.tasks.make_model`): MNIST-1D with an MLP ``40-128-128-10``, or, for quick runs,
scikit-learn's digits with an MLP ``64-128-10``.  Budgets are in effective epochs (an outer step of
Entropy-SGD costs ``L`` minibatch gradients), with the ``train`` demo's batch size and learning-rate drops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TrainedNet", "train_net", "entropy_sgd", "nesterov_sgd", "plain_sgd", "task", "OPTIMIZERS"]


def nesterov_sgd(params: Any, generator: Any = None) -> Any:
    """SGD with Nesterov momentum 0.9 and learning rate 0.1 (the ``train`` demo's baseline)."""
    import torch

    return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)


def plain_sgd(params: Any, generator: Any = None) -> Any:
    """SGD without momentum at learning rate 0.1: the Euler-Maruyama step of the SGD diffusion."""
    import torch

    return torch.optim.SGD(params, lr=0.1)


def entropy_sgd(params: Any, generator: Any = None) -> Any:
    """Entropy-SGD at the library's defaults (``EntropySGD(params)``: docs/optimizers.md)."""
    from hjsmooth.optim import EntropySGD

    return EntropySGD(params, generator=generator)


#: name -> constructor ``(params, generator) -> optimizer``
OPTIMIZERS: dict[str, Callable[..., Any]] = {"SGD": nesterov_sgd, "Entropy-SGD": entropy_sgd, "plain SGD": plain_sgd}


def task(quick: bool) -> tuple[str, str]:
    """``(dataset, model kind)``: digits and an MLP for quick runs, MNIST-1D and an MLP otherwise."""
    return ("digits", "mlp") if quick else ("mnist1d", "mlp")


@dataclass
class TrainedNet:
    """A trained model, its data as tensors ``(x_train, y_train, x_val, y_val)`` and how it ended."""

    name: str
    model: Any
    data: tuple[Any, ...]
    val_error: float
    train_loss: float
    steps: int


def train_net(
    name: str,
    data: tuple[Any, ...],
    model_kind: str,
    epochs: float,
    seed: int,
    drop_lr: bool = True,
    callback: Callable[[int, int, Any], None] | None = None,
) -> TrainedNet:
    """Train a fresh ``model_kind`` network with optimizer ``name`` (of :data:`OPTIMIZERS`) for ``epochs``.

    ``callback(k, outer_steps, model)`` runs after each outer step ``k`` (0-based).  With ``drop_lr`` the
    learning rate is divided by 5 after 60 % and 80 % of the budget, as in the ``train`` demo.
    """
    import torch
    import torch.nn.functional as F

    from hjsmooth.demos.study.loop import BATCH, LR_DROPS, LR_FACTOR
    from hjsmooth.demos.study.tasks import make_model

    xt, yt, xv, yv = (torch.as_tensor(a) for a in data)
    torch.manual_seed(seed)
    model = make_model(model_kind, xt.shape[1])
    gen = torch.Generator().manual_seed(seed)
    opt = OPTIMIZERS[name](model.parameters(), torch.Generator().manual_seed(seed + 1000))
    cost = opt.param_groups[0].get("L", 1)
    steps_per_epoch = math.ceil(len(yt) / BATCH)
    outer = max(1, int(round(epochs * steps_per_epoch)) // cost)
    base = [g["lr"] for g in opt.param_groups]

    def closure() -> Any:
        idx = torch.randint(len(yt), (BATCH,), generator=gen)
        opt.zero_grad()
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        loss.backward()
        return loss

    loss = math.nan
    for k in range(outer):
        if drop_lr:
            drop = LR_FACTOR ** sum(k >= d * outer for d in LR_DROPS)
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * drop
        if cost == 1:
            loss = closure().item()
            opt.step()
        else:
            loss = float(opt.step_outer(closure).detach())
        if callback is not None:
            callback(k, outer, model)
    if callable(getattr(opt, "eval", None)):
        opt.eval()  # the trained network is the anchor x, the weights the optimizer descended
    with torch.no_grad():
        val_error = float((model(xv).argmax(1) != yv).float().mean()) * 100
    return TrainedNet(name=name, model=model, data=(xt, yt, xv, yv), val_error=val_error, train_loss=loss, steps=outer)
