"""Hugging Face Accelerate and the transformers ``Trainer`` drive hjsmooth optimizers unchanged.

* Accelerate: ``accelerator.prepare`` the model and the optimizer, ``accelerator.backward(loss)``,
  ``opt.step()``; ``save_state`` in the middle of an outer step and ``load_state`` into fresh
  objects continue exactly (the uninterrupted run, bit for bit).
* The ``Trainer`` with ``optimizers=(opt, None)`` and gradient clipping (``max_grad_norm``): the
  training loss falls at least half as far as with SGD in 120 steps; it evaluates at the anchor
  ``x`` by itself (``optimizer.eval()``); with :class:`AnchorTrainerCallback` its checkpoints hold
  ``x`` and a run resumed from one equals the uninterrupted run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

import hjsmooth.optim as O

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]


def _batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(500 + k)
    x = torch.randn(32, 8, generator=g)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


# ----------------------------------------------------------------------------- Accelerate
def _accelerate_run(tmp: Path, total: int, save_at: int | None = None, load: bool = False) -> torch.Tensor:
    accelerate = pytest.importorskip("accelerate")
    acc = accelerate.Accelerator(cpu=True)
    model = _net()
    opt = O.EntropySGD(model.parameters(), noise=1e-4, generator=torch.Generator().manual_seed(1))
    model, opt = acc.prepare(model, opt)
    start = 0
    if load:
        acc.load_state(str(tmp))
        start = save_at or 0
    for k in range(start, total):
        x, y = _batch(k)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        acc.backward(loss)
        opt.step()
        if not load and k + 1 == save_at:
            acc.save_state(str(tmp))
    with O.at_anchor(opt):                        # through Accelerate's AcceleratedOptimizer
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_accelerate_save_and_load_state_in_the_middle_of_an_outer_step(tmp_path: Path) -> None:
    straight = _accelerate_run(tmp_path, 37, save_at=13)      # 13 calls: call 3 of the 5 of outer step 2
    resumed = _accelerate_run(tmp_path, 37, save_at=13, load=True)
    assert torch.equal(straight, resumed)
    assert not torch.equal(straight, torch.cat([p.detach().reshape(-1) for p in _net().parameters()]))


# ----------------------------------------------------------------------------- transformers Trainer
class _Digits(torch.utils.data.Dataset):
    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        self.y = torch.tensor(digits.target)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class _Mlp(torch.nn.Module):
    """The Trainer's model contract: keyword inputs, a dict with the loss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.f = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.f(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def _trainer(out: Path, make: Any, steps: int, save_steps: int | None = None, evaluate: bool = False) -> Any:
    transformers = pytest.importorskip("transformers")
    from hjsmooth.integrations.transformers import AnchorTrainerCallback

    transformers.logging.set_verbosity_error()
    model = _Mlp()
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=64, per_device_eval_batch_size=512,
        max_grad_norm=1.0, report_to=[], use_cpu=True, disable_tqdm=True, seed=0, logging_steps=10,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        eval_strategy="steps" if evaluate else "no", eval_steps=steps // 2)
    data = _Digits()
    return transformers.Trainer(model=model, args=args, train_dataset=data, eval_dataset=data if evaluate else None,
                                optimizers=(make(model.parameters()), None), callbacks=[AnchorTrainerCallback()])


def _loss_drop(trainer: Any) -> float:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses[0] - losses[-1]


@pytest.mark.parametrize("name", ["entropy_sgd", "heat", "parle"])
def test_trainer_trains_with_gradient_clipping(name: str, tmp_path: Path) -> None:
    make = {"entropy_sgd": lambda p: O.EntropySGD(p), "heat": lambda p: O.Heat(p), "parle": lambda p: O.Parle(p)}[name]
    reference = _trainer(tmp_path / "sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), 120)
    reference.train()
    trainer = _trainer(tmp_path / name, make, 120, evaluate=True)
    trainer.train()
    assert _loss_drop(trainer) >= 0.5 * _loss_drop(reference)
    opt = trainer.optimizer.optimizer                 # inside Accelerate's wrapper
    assert opt.mode == "eval"                         # the callback leaves training at x
    with torch.no_grad():                             # the last evaluation saw x
        data = _Digits()
        at_x = float(torch.nn.functional.cross_entropy(trainer.model.f(data.x), data.y))
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    assert evals[-1] == pytest.approx(at_x, rel=1e-5)


def test_trainer_checkpoints_hold_x_and_resume_exactly(tmp_path: Path) -> None:
    def make(p: Any) -> Any:
        return O.EntropySGD(p, noise=1e-4, generator=torch.Generator().manual_seed(2))

    straight = _trainer(tmp_path / "a", make, 60, save_steps=23)
    straight.train()
    final = torch.cat([p.detach().reshape(-1) for p in straight.model.parameters()])
    ckpt = tmp_path / "a" / "checkpoint-23"           # 23 calls: call 3 of 5 of outer step 4
    state = torch.load(ckpt / "optimizer.pt", weights_only=True)
    assert state["mode"] == "eval" and state["position"] == 3
    resumed = _trainer(tmp_path / "b", make, 60, save_steps=23)
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert torch.equal(final, torch.cat([p.detach().reshape(-1) for p in resumed.model.parameters()]))
    assert os.path.isdir(tmp_path / "a" / "checkpoint-46")
