"""torch.distributed with the plain loop: DistributedDataParallel, and Elastic-SGD / Parle with one replica per rank.

Two gloo processes on this machine (spawned, one thread each):

* under ``DistributedDataParallel`` with per-rank seeds (``torch.manual_seed(seed + rank)``, as
  training scripts do), an optimizer that draws noise keeps the ranks' weights bitwise equal: its
  default generator takes rank 0's seed.  Per-rank generators given explicitly drift apart (the
  control, which shows the check can fail);
* ``ElasticSGD``/``Parle`` with ``distributed=True`` in the plain loop, each rank drawing its own
  minibatches, equal the one-process run that draws replica ``a``'s minibatches from stream ``a``
  (``opt.replica``), and per-rank checkpoints taken inside an outer step resume bit for bit in new
  processes;
* a model wrapped in DDP together with ``distributed=True`` is refused at the first step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

import hjsmooth.optim as O
from spawn_workers import spawn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CALLS = 100


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def _batch(stream: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(10_000 * stream + k)
    return torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _init(rank: int, world: int, port: int) -> None:
    import datetime

    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))


def _make(name: str, params: Any, **kw: Any) -> Any:
    if name == "elastic":
        kw.pop("generator")  # Elastic-SGD draws no noise
        return O.ElasticSGD(params, **kw)
    return O.Parle(params, L=3, noise=1e-3, **kw)


# ----------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world: int, port: int, out: str, mode: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    _init(rank, world, port)
    torch.manual_seed(100 + rank)                      # per-rank seeds, as scripts do
    model = DDP(_model(100 + rank))                    # DDP broadcasts rank 0's weights
    if mode == "refuse":
        opt = O.ElasticSGD(model.parameters(), distributed=True)
        x, y = _batch(rank, 0)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        try:
            opt.step()
            msg = "no error"
        except RuntimeError as exc:
            msg = str(exc)
        Path(f"{out}/rank{rank}.txt").write_text(msg)
        dist.destroy_process_group()
        return
    generator = torch.Generator().manual_seed(rank) if mode == "own_generators" else None
    opt = O.EntropySGD(model.parameters(), noise=1e-3, generator=generator)
    for k in range(CALLS + 2):
        x, y = _batch(rank, k)                         # each rank its own shard
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    point = _flat(model.module)
    with opt.at_anchor():
        anchor = _flat(model.module)
    torch.save({"point": point, "anchor": anchor}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_stay_bitwise_equal_with_per_rank_seeds(tmp_path: Path) -> None:
    spawn(_ddp_worker, 2, str(tmp_path), "agree", timeout=300)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert torch.equal(r0["point"], r1["point"]) and torch.equal(r0["anchor"], r1["anchor"])
    assert not torch.equal(r0["point"], r0["anchor"])   # the run is in the middle of an outer step (102 = 20 * 5 + 2)
    spawn(_ddp_worker, 2, str(tmp_path), "own_generators", timeout=300)
    d0, d1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert float((d0["anchor"] - d1["anchor"]).abs().max()) > 1e-6  # the control: other noise, other weights


def test_ddp_model_with_distributed_replicas_is_refused(tmp_path: Path) -> None:
    spawn(_ddp_worker, 2, str(tmp_path), "refuse", timeout=300)
    for rank in range(2):
        msg = (tmp_path / f"rank{rank}.txt").read_text()
        assert "DistributedDataParallel" in msg and "same data" in msg


# ----------------------------------------------------------------------------- replicas on ranks
def _replica_worker(rank: int, world: int, port: int, out: str, name: str, mode: str, cut: int) -> None:
    import torch.distributed as dist

    _init(rank, world, port)
    model = _model({"resume": 300}.get(mode, 0) + rank)   # rank 1 starts elsewhere: rank 0's weights are broadcast
    opt = _make(name, model.parameters(), distributed=True,
                generator=torch.Generator().manual_seed((90 if mode == "resume" else 40) + rank))
    start, stop = {"train": (0, CALLS), "first_half": (0, cut), "resume": (cut, CALLS)}[mode]
    if mode == "resume":                                  # weights, replica, generator and position from disk
        ckpt = torch.load(f"{out}/ckpt{rank}.pt", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
    for k in range(start, stop):
        x, y = _batch(rank, k)                            # the plain loop: this rank's shard
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if mode == "first_half":
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, f"{out}/ckpt{rank}.pt")
    else:
        with opt.at_anchor():
            master = _flat(model)
        torch.save({"point": _flat(model), "master": master, "position": opt.position,
                    "replica": torch.cat([opt.state[p]["replicas"][0].reshape(-1) for p in model.parameters()])},
                   f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _seed_worker(rank: int, world: int, port: int, out: str) -> None:
    """Parle with its default generators under per-rank torch seeds: which seeds did each replica get?"""
    import torch.distributed as dist

    _init(rank, world, port)
    torch.manual_seed(7 + rank)
    model = _model(0)
    opt = O.Parle(model.parameters(), L=2, noise=1e-3, distributed=True)
    for k in range(4):
        x, y = _batch(rank, k)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.save({"seed": opt.generator_for(torch.device("cpu")).initial_seed()}, f"{out}/seed{rank}.pt")
    dist.destroy_process_group()


def test_default_generators_of_replicas_on_ranks_are_distinct_and_reproducible(tmp_path: Path) -> None:
    spawn(_seed_worker, 2, str(tmp_path), timeout=300)
    first = [torch.load(tmp_path / f"seed{r}.pt")["seed"] for r in range(2)]
    spawn(_seed_worker, 2, str(tmp_path), timeout=300)
    again = [torch.load(tmp_path / f"seed{r}.pt")["seed"] for r in range(2)]
    assert first[0] != first[1] and first == again


def _one_process(name: str) -> tuple[torch.nn.Module, Any]:
    """n = 2 replicas in one process, replica a's minibatches from stream a (read from ``opt.replica``)."""
    model = _model(0)
    opt = _make(name, model.parameters(), n=2, generator=[torch.Generator().manual_seed(40 + a) for a in range(2)])
    count = [0, 0]
    for _ in range(2 * CALLS):
        a = opt.replica
        x, y = _batch(a, count[a])
        count[a] += 1
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("name", ["elastic", "parle"])
def test_replicas_on_ranks_in_the_plain_loop_and_resumed_from_checkpoints(name: str, tmp_path: Path) -> None:
    spawn(_replica_worker, 2, str(tmp_path), name, "train", 0, timeout=300)
    runs = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert torch.equal(runs[0]["master"], runs[1]["master"])           # one master
    assert not torch.equal(runs[0]["replica"], runs[1]["replica"])     # replicas of their own
    model, opt = _one_process(name)
    with opt.at_anchor():
        assert torch.equal(runs[0]["master"], _flat(model))
    for a in range(2):
        assert torch.equal(runs[a]["replica"],
                           torch.cat([opt.state[p]["replicas"][a].reshape(-1) for p in model.parameters()]))
    # checkpoints inside an outer step (Parle: call 2 of 3), new processes, other weights and seeds
    cut = 41
    spawn(_replica_worker, 2, str(tmp_path), name, "first_half", cut, timeout=300)
    spawn(_replica_worker, 2, str(tmp_path), name, "resume", cut, timeout=300)
    for r in range(2):
        resumed = torch.load(tmp_path / f"rank{r}.pt")
        assert torch.equal(resumed["master"], runs[r]["master"])
        assert torch.equal(resumed["point"], runs[r]["point"])
        assert torch.equal(resumed["replica"], runs[r]["replica"])
