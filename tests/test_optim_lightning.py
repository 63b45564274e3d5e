"""PyTorch Lightning drives ElasticSGD, Parle and EntropySGD through manual optimization (docs/optimizers.md).

Lightning's optimizer wrapper calls the closure without arguments, and its automatic optimization
re-runs ``training_step`` on one batch for every closure call.  The documented pattern is manual
optimization with a closure that draws a fresh minibatch per call and, for the replicated
optimizers, reads the replica being evaluated from ``optimizer.replica``.  The test checks that
a Lightning run is the plain-loop run, bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import hjsmooth.optim as hso

L = pytest.importorskip("lightning", reason="the Lightning pattern is tested when lightning is installed")

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*")]  # lightning's own use of a torch API
STEPS = 3


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _shard(a: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Replica ``a``'s endless stream of minibatches (its own shard of the data)."""
    g = torch.Generator().manual_seed(10 + a)
    while True:
        yield torch.randn(16, 4, generator=g) + a, torch.randint(0, 3, (16,), generator=g)


class Module(L.LightningModule):
    """Manual optimization: one ``training_step`` is one outer step of the hjsmooth optimizer."""

    def __init__(self, make: Callable[[Any], Any], replicas: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = _net()
        self.make = make
        self.shards = [_shard(a) for a in range(replicas)]
        self.seen: list[int] = []

    def configure_optimizers(self) -> Any:
        return self.make(self.parameters())

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt = self.optimizers()          # Lightning's wrapper around the hjsmooth optimizer

        def closure() -> torch.Tensor:   # no argument: Lightning calls it as closure()
            a = getattr(opt.optimizer, "replica", None) or 0  # the replica being evaluated
            self.seen.append(a)
            x, y = next(self.shards[a])
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.manual_backward(loss)
            return loss

        loss = opt.step(closure=closure)
        self.log("loss", loss)

    def train_dataloader(self) -> Any:   # only counts the steps: the closure draws its own minibatches
        return torch.utils.data.DataLoader(torch.arange(STEPS), batch_size=1)


def _plain_run(make: Callable[[Any], Any], replicas: int) -> torch.Tensor:
    net = _net()
    opt = make(net.parameters())
    shards = [_shard(a) for a in range(replicas)]

    def closure(a: int = 0) -> torch.Tensor:
        x, y = next(shards[a])
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss

    for _ in range(STEPS):
        opt.step(closure)
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


@pytest.mark.parametrize("name", ["elastic", "parle", "entropy_sgd"])
def test_lightning_manual_optimization_is_the_plain_run(name: str) -> None:
    make, replicas = {
        "elastic": (lambda p: hso.ElasticSGD(p, n=3), 3),
        "parle": (lambda p: hso.Parle(p, n=3, L=2), 3),
        "entropy_sgd": (lambda p: hso.EntropySGD(p, L=3), 1),
    }[name]
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    module = Module(make, replicas)
    trainer = L.Trainer(max_steps=STEPS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module)
    opt = module.optimizers().optimizer
    assert opt.outer_step == STEPS
    calls = {"elastic": 3, "parle": 6, "entropy_sgd": 3}[name]
    per_step = module.seen[:calls]
    assert len(module.seen) == STEPS * calls
    assert per_step == ([0, 1, 2] if name == "elastic" else [0, 0, 1, 1, 2, 2] if name == "parle" else [0, 0, 0])
    got = torch.cat([p.detach().reshape(-1) for p in module.net.parameters()])
    assert torch.equal(got, _plain_run(make, replicas))


def test_the_documented_lightning_pattern_runs() -> None:
    """The ``python lightning`` code block of docs/optimizers.md, run as written."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "optimizers.md"
    blocks = re.findall(r"^```python lightning\n(.*?)^```\s*$", page.read_text(), re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    namespace: dict[str, Any] = {"__name__": "docs_optimizers_lightning"}
    exec(compile(blocks[0], f"{page}:lightning", "exec"), namespace)  # noqa: S102 - the docs' own example
    module = namespace["Module"]
    assert issubclass(module, L.LightningModule)
