"""PyTorch Lightning drives every hjsmooth optimizer through automatic optimization, one batch per call.

Lightning calls ``optimizer.step(closure)`` once per training batch and the closure runs
``training_step`` once: one gradient per call, as in a plain loop.  The tests check that a
Lightning run is the plain-loop run over the same batches, bit for bit, with every batch used once
per epoch, and that :class:`hjsmooth.integrations.lightning.AnchorCallback` validates and checkpoints
at the anchor ``x`` and resumes exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import hjsmooth.optim as hso

L = pytest.importorskip("lightning", reason="the Lightning integration is tested when lightning is installed")

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*"),  # lightning's own use of a torch API
              pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
              pytest.mark.filterwarnings("ignore:.*smaller than the logging interval.*")]

N, BATCH = 96, 16
MAKERS: dict[str, Callable[[Any], Any]] = {
    "entropy_sgd": lambda p: hso.EntropySGD(p, L=3),
    "hj": lambda p: hso.HJ(p, L=3),
    "heat": lambda p: hso.Heat(p, L=2, generator=torch.Generator().manual_seed(3)),
    "elastic": lambda p: hso.ElasticSGD(p, n=2),
    "parle": lambda p: hso.Parle(p, n=2, L=2),
}


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, 4, generator=g), torch.randint(0, 3, (N,), generator=g)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


class EpochSampler(torch.utils.data.Sampler[int]):
    """A permutation per epoch, fixed by the epoch's number (Lightning calls ``set_epoch``), so a resumed run
    sees the batches an uninterrupted one does."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Any:
        return iter(torch.randperm(N, generator=torch.Generator().manual_seed(5 + self.epoch)).tolist())

    def __len__(self) -> int:
        return N


def _loader() -> torch.utils.data.DataLoader:
    x, y = _data()
    data = torch.utils.data.TensorDataset(torch.arange(N), x, y)
    return torch.utils.data.DataLoader(data, batch_size=BATCH, sampler=EpochSampler())


class Module(L.LightningModule):
    """Automatic optimization, written as for torch.optim.SGD: nothing hjsmooth-specific but the optimizer."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        super().__init__()
        self.net = _net()
        self.make = make
        self.seen: list[list[int]] = []
        self.val_losses: list[float] = []

    def configure_optimizers(self) -> Any:
        return self.make(self.parameters())

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        idx, x, y = batch
        self.seen.append(idx.tolist())
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        _, x, y = batch
        self.val_losses.append(float(torch.nn.functional.cross_entropy(self.net(x), y)))


def _fit(module: Module, epochs: int, callbacks: list[Any] | None = None, root: Path | None = None,
         val: bool = False, ckpt_path: str | None = None) -> Any:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks or [], default_root_dir=root, num_sanity_val_steps=0,
                        limit_val_batches=1.0 if val else 0)
    trainer.fit(module, train_dataloaders=_loader(),
                val_dataloaders=torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(N), *_data()),
                                                            batch_size=N) if val else None,
                ckpt_path=ckpt_path)
    return trainer


def _plain_run(make: Callable[[Any], Any], epochs: int) -> tuple[torch.nn.Module, Any]:
    net = _net()
    opt = make(net.parameters())
    loader = _loader()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for _, x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return net, opt


def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


@pytest.mark.parametrize("name", list(MAKERS))
def test_automatic_optimization_is_the_plain_loop(name: str) -> None:
    """Each batch is one call; every batch is seen once per epoch; the weights equal the plain loop's bit for bit."""
    make = MAKERS[name]
    module = Module(make)
    _fit(module, epochs=2)
    per_epoch = N // BATCH
    for epoch in range(2):
        seen = sorted(i for batch in module.seen[epoch * per_epoch:(epoch + 1) * per_epoch] for i in batch)
        assert seen == list(range(N))
    net, opt = _plain_run(make, 2)
    mine = module.optimizers().optimizer
    assert (mine.outer_step, mine.position) == (opt.outer_step, opt.position)
    assert torch.equal(_flat(module.net), _flat(net))


def test_anchor_callback_validates_and_checkpoints_at_x(tmp_path: Path) -> None:
    """Validation sees x; a checkpoint holds x as the weights, and resuming from it continues exactly."""
    from hjsmooth.integrations.lightning import AnchorCallback

    make = MAKERS["entropy_sgd"]
    module = Module(make)
    trainer = _fit(module, epochs=1, callbacks=[AnchorCallback()], root=tmp_path, val=True)
    opt = module.optimizers().optimizer
    assert opt.mode == "eval"                     # fit leaves the model at x
    x, y = _data()
    with torch.no_grad():
        at_x = float(torch.nn.functional.cross_entropy(module.net(x), y))
    assert module.val_losses[-1] == pytest.approx(at_x, rel=1e-6)
    path = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["optimizer_states"][0]["mode"] == "eval"
    weights = torch.cat([v.reshape(-1) for v in ckpt["state_dict"].values()])
    assert torch.equal(weights, _flat(module.net))  # x

    straight = Module(make)
    _fit(straight, epochs=2, callbacks=[AnchorCallback()], root=tmp_path, val=True)
    resumed = Module(make)
    _fit(resumed, epochs=2, callbacks=[AnchorCallback()], root=tmp_path, val=True, ckpt_path=str(path))
    assert torch.equal(_flat(resumed.net), _flat(straight.net))


def test_anchor_callback_resumes_in_the_middle_of_an_outer_step(tmp_path: Path) -> None:
    """EntropySGD with L = 4 over 6 batches per epoch: the checkpoint after epoch 1 is at call 2 of 4."""
    from hjsmooth.integrations.lightning import AnchorCallback

    def make(p: Any) -> Any:
        return hso.EntropySGD(p, L=4)

    first = Module(make)
    trainer = _fit(first, epochs=1, callbacks=[AnchorCallback()], root=tmp_path)
    assert first.optimizers().optimizer.position in (0, 2)
    path = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(path)
    straight = Module(make)
    _fit(straight, epochs=3, callbacks=[AnchorCallback()], root=tmp_path)
    resumed = Module(make)
    _fit(resumed, epochs=3, callbacks=[AnchorCallback()], root=tmp_path, ckpt_path=str(path))
    assert torch.equal(_flat(resumed.net), _flat(straight.net))
