"""Elastic-SGD and Parle: the special cases of section 5.3, checkpoints, torch.distributed."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import hjsmooth.optim as O

from spawn_workers import spawn


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()


def _batch(a: int, call: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Replica ``a``'s shard: its own inputs, drawn by (replica, call number)."""
    g = torch.Generator().manual_seed(1000 * (a + 1) + call)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64) + a
    return x, torch.sin(x.sum(1, keepdim=True))


def _replica_closure(model: torch.nn.Module, opt: Any, calls: dict[int, int]) -> Callable[[int], torch.Tensor]:
    def closure(a: int) -> torch.Tensor:
        xb, yb = _batch(a, calls.setdefault(a, 0))
        calls[a] += 1
        opt.zero_grad()
        loss = ((model(xb) - yb) ** 2).mean()
        loss.backward()
        return loss

    return closure


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_parle_n1_rho_inf_is_entropy_sgd(noise: float) -> None:
    """Section 5.3 (iii): Parle with n = 1, rho = inf follows Entropy-SGD exactly (x <- scaled by gamma)."""
    kw = dict(lr=0.5, gamma=0.3, L=4, inner_lr=0.05, noise=noise, alpha=0.75, momentum=0.9)
    m1, m2 = _model(), _model()
    parle = O.Parle(m1.parameters(), rho=float("inf"), n=1, generator=torch.Generator().manual_seed(2), **kw)
    esgd = O.EntropySGD(m2.parameters(), scale_by_gamma=True, generator=torch.Generator().manual_seed(2), **kw)
    c1 = _replica_closure(m1, parle, {})
    c2 = _replica_closure(m2, esgd, {})
    for _ in range(5):
        parle.step_outer(c1)
        esgd.step_outer(lambda: c2(0))
        assert torch.equal(_flat(m1), _flat(m2))


def test_parle_l1_gamma_inf_is_elastic_sgd() -> None:
    """Section 5.3 (ii): Parle with L = 1, gamma = inf (alpha = 0, inner_lr = 1, no inner momentum) follows
    Elastic-SGD exactly."""
    m1, m2 = _model(), _model()
    parle = O.Parle(m1.parameters(), lr=0.05, gamma=float("inf"), rho=0.5, n=3, L=1, inner_lr=1.0, alpha=0.0,
                    momentum=0.9, inner_momentum=0.0)
    elastic = O.ElasticSGD(m2.parameters(), lr=0.05, rho=0.5, n=3, momentum=0.9)
    c1 = _replica_closure(m1, parle, {})
    c2 = _replica_closure(m2, elastic, {})
    for _ in range(6):
        parle.step_outer(c1)
        elastic.step_outer(c2)
        assert torch.equal(_flat(m1), _flat(m2))
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(parle.state[p1]["replicas"], elastic.state[p2]["replicas"])
    assert parle.stats["replica_spread"] > 0  # the shards differ, so the replicas do


def test_elastic_sgd_matches_equations_5_4() -> None:
    """Elastic-SGD written out by hand on f_a(x) = |x - c_a|^2 / 2 (one replica per centre)."""
    centres = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    x = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    lr, rho = 0.1, 0.5
    opt = O.ElasticSGD([x], lr=lr, rho=rho, n=2, momentum=0.0)

    def closure(a: int) -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * ((x - centres[a]) ** 2).sum()
        loss.backward()
        return loss

    xs, master = torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for _ in range(10):
        opt.step_outer(closure)
        xs = xs - lr * ((xs - centres) + (xs - master) / rho)
        master = xs.mean(0)
        assert torch.allclose(x.detach(), xs[0], rtol=0, atol=1e-14)  # replica 0's point: the next gradient's
        with opt.at_anchor():
            assert torch.allclose(x.detach(), master, rtol=0, atol=1e-14)
    # the fixed point: the master sits at the mean of the centres, the replicas pulled towards it
    for _ in range(500):
        opt.step_outer(closure)
    with opt.at_anchor():
        assert torch.allclose(x.detach(), centres.mean(0), atol=1e-8)


def test_parle_state_dict_lockstep_with_schedules() -> None:
    from hjsmooth.optim import schedules as S

    def make(model: torch.nn.Module) -> O.Parle:
        return O.Parle(model.parameters(), lr=0.5, gamma=S.parle(1.0, 10, 0.1), rho=S.parle(1.0, 10, 0.1), n=2,
                       L=3, noise=1e-3, inner_momentum=0.5,
                       generator=[torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)])

    ma = _model()
    oa = make(ma)
    ca = _replica_closure(ma, oa, {})
    for _ in range(6):
        oa.step_outer(ca)
    mb = _model()
    ob = make(mb)
    calls_b: dict[int, int] = {}
    cb = _replica_closure(mb, ob, calls_b)
    for _ in range(3):
        ob.step_outer(cb)
    buf = io.BytesIO()
    torch.save({"m": mb.state_dict(), "o": ob.state_dict(), "calls": dict(calls_b)}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=False)
    mc = _model(7)
    oc = make(mc)
    mc.load_state_dict(ck["m"])
    oc.load_state_dict(ck["o"])
    cc = _replica_closure(mc, oc, dict(ck["calls"]))
    for _ in range(3):
        oc.step_outer(cc)
    assert torch.equal(_flat(ma), _flat(mc))
    for pa, pc in zip(ma.parameters(), mc.parameters()):
        assert torch.equal(oa.state[pa]["replicas"], oc.state[pc]["replicas"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(n=0), "`n` must be >= 1"),
    (dict(n=2, L=0), "`L` must be >= 1"),
    (dict(n=2, alpha=1.0), r"`alpha` must be in \[0, 1\)"),
    (dict(n=2, gamma=0.0), "`gamma` must be > 0"),
    (dict(n=2, rho=-1.0), "`rho` must be > 0"),
])
def test_parle_bad_input(kwargs: dict, match: str) -> None:
    base = dict(lr=0.1, gamma=1.0, rho=1.0)
    with pytest.raises((ValueError, TypeError), match=match):
        O.Parle([torch.nn.Parameter(torch.ones(2))], **{**base, **kwargs})


def test_parle_missing_closure_and_nan() -> None:
    x = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = O.Parle([x], lr=0.1, gamma=1.0, rho=1.0, n=2, L=3)
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step_outer(None)

    def closure(a: int) -> torch.Tensor:
        opt.zero_grad()
        loss = (x**2).sum() * (float("nan") if a == 1 else 1.0)
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="inner step 1 of 3 of replica 1"):
        opt.step_outer(closure)
    assert torch.equal(x.detach(), torch.ones(2, dtype=torch.float64))


# ----------------------------------------------------------------------------- torch.distributed
def _dist_worker(rank: int, world: int, port: int, out: str, mode: str) -> None:
    import datetime

    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20))
    # rank 1 starts elsewhere: the optimizer broadcasts rank 0's weights; a resumed run starts from weights
    # that only the checkpoint can correct
    model = _model({"train": rank, "first_half": rank, "resume": 100 + rank}.get(mode, 0))
    opt = O.Parle(model.parameters(), lr=0.5, gamma=0.3, rho=0.5, L=3, noise=1e-3, distributed=True, timeout=3.0,
                  generator=torch.Generator().manual_seed((90 if mode == "resume" else 40) + rank))
    calls: dict[int, int] = {}
    if mode == "resume":  # a fresh process: weights, replica, noise generator and data position from disk
        ckpt = torch.load(f"{out}/ckpt{rank}.pt", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        calls = dict(ckpt["calls"])
    closure = _replica_closure(model, opt, calls)
    if mode in ("train", "first_half", "resume"):
        for _ in range(4 if mode == "train" else 2):
            opt.step_outer(closure)
        if mode == "first_half":
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "calls": calls},
                       f"{out}/ckpt{rank}.pt")
        else:
            with opt.at_anchor():
                master = _flat(model)
            torch.save({"params": master, "replica": [opt.state[p]["replicas"] for p in model.parameters()]},
                       f"{out}/rank{rank}.pt")
        dist.destroy_process_group()
        return
    # mode == "peer_dies": rank 1 leaves; rank 0 must fail within its timeout, not hang
    if rank == 1:
        os._exit(0)
    start = time.monotonic()
    try:
        opt.step_outer(closure)
        msg = "no error"
    except RuntimeError as exc:
        msg = str(exc)
    Path(f"{out}/rank0.txt").write_text(f"{time.monotonic() - start:.3f}\n{msg}")
    os._exit(0)


def _spawn(world: int, mode: str, out: Path) -> None:
    spawn(_dist_worker, world, str(out), mode)


def _one_process_parle_run(steps: int) -> tuple[torch.nn.Module, O.Parle]:
    """The run that two gloo ranks (replica a on rank a, generator seeded 40 + a) must reproduce."""
    model = _model(0)
    opt = O.Parle(model.parameters(), lr=0.5, gamma=0.3, rho=0.5, n=2, L=3, noise=1e-3,
                  generator=[torch.Generator().manual_seed(40), torch.Generator().manual_seed(41)])
    closure = _replica_closure(model, opt, {})
    for _ in range(steps):
        opt.step_outer(closure)
    return model, opt


def _assert_ranks_equal_one_process_run(out: Path, model: torch.nn.Module, opt: O.Parle) -> None:
    with opt.at_anchor():
        master = _flat(model)
    for rank in range(2):
        got = torch.load(out / f"rank{rank}.pt")
        assert torch.equal(got["params"], master)
        for r_got, p in zip(got["replica"], model.parameters()):
            assert torch.equal(r_got[0], opt.state[p]["replicas"][rank])


def test_distributed_parle_equals_one_process_run(tmp_path: Path) -> None:
    _spawn(2, "train", tmp_path)
    _assert_ranks_equal_one_process_run(tmp_path, *_one_process_parle_run(4))


def test_distributed_parle_restarted_from_checkpoint_equals_uninterrupted_run(tmp_path: Path) -> None:
    """Two steps, every rank saves its checkpoint and exits; new processes (other initial weights, so
    nothing survives but the files) load them and take two more steps: equal to four steps in one go."""
    _spawn(2, "first_half", tmp_path)
    assert not (tmp_path / "rank0.pt").exists()
    _spawn(2, "resume", tmp_path)
    _assert_ranks_equal_one_process_run(tmp_path, *_one_process_parle_run(4))


def test_distributed_peer_death_fails_within_timeout(tmp_path: Path) -> None:
    _spawn(2, "peer_dies", tmp_path)
    elapsed, msg = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    assert "peer" in msg and "rank 0 of 2" in msg
    assert float(elapsed) < 60
