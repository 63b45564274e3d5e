"""Vectorised replicas (ReplicaBatches): the vmapped path of Parle and ElasticSGD equals the sequential one.

Tolerance: in float64 the two paths perform the same arithmetic except that the vmapped
forward-backward pass uses batched kernels (bmm instead of mm, other summation orders),
so the gradients agree to a few ulps (~1e-16 relative) and not bit for bit; five outer
steps of these well-conditioned problems amplify that to ~1e-15 at most.  ``1e-12`` leaves
three orders of margin and still catches any real difference (a wrong batch, a noise
sample drawn in another order, a missed inner step: all O(1e-3) or more).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import hjsmooth.optim as O
from hjsmooth.optim import ReplicaBatches

from spawn_workers import spawn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-12
N = 3


def _model(seed: int = 0, bn: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(3, 6), torch.nn.Tanh()]
    if bn:
        layers.append(torch.nn.BatchNorm1d(6))
    layers.append(torch.nn.Linear(6, 1))
    return torch.nn.Sequential(*layers).double()


def _shard(a: int, call: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Replica ``a``'s ``call``-th minibatch from its own shard (inputs shifted by ``a``)."""
    g = torch.Generator().manual_seed(1000 * (a + 1) + call)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64) + a
    return x, torch.sin(x.sum(1, keepdim=True))


class _Stacked:
    """``batches()``: one minibatch of every replica in ``replicas``, stacked; the call count is its state."""

    def __init__(self, replicas: list[int], calls: int = 0) -> None:
        self.replicas, self.calls = replicas, calls

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [_shard(a, self.calls) for a in self.replicas]
        self.calls += 1
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((out - target) ** 2).mean()


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _parle(model: torch.nn.Module, generator: str, **kw: Any) -> O.Parle:
    gens: Any = (torch.Generator().manual_seed(7) if generator == "shared"
                 else [torch.Generator().manual_seed(7 + a) for a in range(N)])
    first, second = list(model[0].parameters()), [p for m in list(model)[1:] for p in m.parameters()]
    groups = [{"params": first, "L": 4, "inner_lr": 0.05},
              {"params": second, "L": 2, "inner_lr": 0.08, "noise": 3e-4, "inner_momentum": 0.0}]
    return O.Parle(groups, lr=0.5, gamma=0.3, rho=0.5, n=N, L=3, noise=1e-3, inner_momentum=0.5, alpha=0.75,
                   momentum=0.9, weight_decay=1e-3, generator=gens, **kw)


def _assert_same(o1: Any, m1: torch.nn.Module, o2: Any, m2: torch.nn.Module, tol: float = TOL) -> None:
    assert torch.allclose(_flat(m1), _flat(m2), rtol=0, atol=tol)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        for key in ("replicas", "displacement", "average"):
            if key in o1.state[p1]:
                assert torch.allclose(o1.state[p1][key], o2.state[p2][key], rtol=0, atol=tol), key
    for key in ("loss", "inner_loss", "replica_spread"):
        assert o1.stats[key] == pytest.approx(o2.stats[key], rel=0, abs=tol), key


@pytest.mark.parametrize("generator", ["per_replica", "shared"])
def test_parle_vmap_equals_sequential(generator: str) -> None:
    """Noise, inner momentum, two param groups with their own L, inner_lr, noise; each replica on its shard."""
    m1, m2 = _model(), _model()
    o1, o2 = _parle(m1, generator), _parle(m2, generator)
    rb1 = ReplicaBatches(m1, _mse, _Stacked(list(range(N))))
    rb2 = ReplicaBatches(m2, _mse, _Stacked(list(range(N))))
    seq = rb1.sequential_closure(o1)
    for _ in range(5):
        l1 = o1.step_outer(seq)
        l2 = o2.step_outer(rb2)
        assert float(l1) == pytest.approx(float(l2), rel=0, abs=TOL)
        _assert_same(o1, m1, o2, m2)
    assert rb1.batches.calls == rb2.batches.calls == 5 * 4  # L = max over the groups = 4 per outer step
    assert o2.stats["replica_spread"] > 1e-3  # the shards differ, so do the replicas
    # the replicas' SGD state (momentum buffers) too
    for r1, r2 in zip(o1.replica_optimizer.state.values(), o2.replica_optimizer.state.values()):
        assert torch.allclose(r1["momentum_buffer"], r2["momentum_buffer"], rtol=0, atol=TOL)
    # the noise was drawn: without it the trajectory differs by far more than TOL
    m3 = _model()
    o3 = _parle(m3, generator)
    for g in o3.param_groups:
        g["noise"] = 0.0
    rb3 = ReplicaBatches(m3, _mse, _Stacked(list(range(N))))
    for _ in range(5):
        o3.step_outer(rb3)
    assert (_flat(m3) - _flat(m2)).abs().max() > 1e-4


def test_sequential_closure_is_the_per_replica_closure() -> None:
    """``rb.sequential_closure(opt)`` is exactly the hand-written ``closure(a)`` drawing from replica a's shard."""
    m1, m2 = _model(), _model()
    o1, o2 = _parle(m1, "per_replica"), _parle(m2, "per_replica")
    calls: dict[int, int] = {}

    def closure(a: int) -> torch.Tensor:
        x, y = _shard(a, calls.setdefault(a, 0))
        calls[a] += 1
        o1.zero_grad()
        loss = _mse(m1(x), y)
        loss.backward()
        return loss

    seq = ReplicaBatches(m2, _mse, _Stacked(list(range(N)))).sequential_closure(o2)
    for _ in range(3):
        o1.step_outer(closure)
        o2.step_outer(seq)
        assert torch.equal(_flat(m1), _flat(m2))


def test_elastic_sgd_vmap_equals_sequential() -> None:
    m1, m2 = _model(), _model()
    o1 = O.ElasticSGD(m1.parameters(), lr=0.05, rho=0.5, n=N, momentum=0.9, weight_decay=1e-3)
    o2 = O.ElasticSGD(m2.parameters(), lr=0.05, rho=0.5, n=N, momentum=0.9, weight_decay=1e-3)
    seq = ReplicaBatches(m1, _mse, _Stacked(list(range(N)))).sequential_closure(o1)
    rb = ReplicaBatches(m2, _mse, _Stacked(list(range(N))))
    for _ in range(8):
        o1.step_outer(seq)
        o2.step_outer(rb)
        _assert_same(o1, m1, o2, m2)
    assert o2.stats["replica_spread"] > 1e-3


def test_parle_vmap_state_dict_round_trip() -> None:
    """Train 6 steps vmapped; or 3, checkpoint (optimizer, model, batch counter), load into a fresh one, 3 more."""
    ma = _model()
    oa = _parle(ma, "per_replica")
    rba = ReplicaBatches(ma, _mse, _Stacked(list(range(N))))
    for _ in range(6):
        oa.step_outer(rba)
    mb = _model()
    ob = _parle(mb, "per_replica")
    rbb = ReplicaBatches(mb, _mse, _Stacked(list(range(N))))
    for _ in range(3):
        ob.step_outer(rbb)
    buf = io.BytesIO()
    torch.save({"m": mb.state_dict(), "o": ob.state_dict(), "calls": rbb.batches.calls}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=False)
    mc = _model(5)
    oc = _parle(mc, "per_replica")
    mc.load_state_dict(ck["m"])
    oc.load_state_dict(ck["o"])
    rbc = ReplicaBatches(mc, _mse, _Stacked(list(range(N)), ck["calls"]))
    for _ in range(3):
        oc.step_outer(rbc)
    assert torch.equal(_flat(ma), _flat(mc))  # the same path twice: bit for bit
    for pa, pc in zip(ma.parameters(), mc.parameters()):
        assert torch.equal(oa.state[pa]["replicas"], oc.state[pc]["replicas"])


def test_frozen_parameters_and_batchnorm_in_eval_mode() -> None:
    """Model parameters outside the optimizer enter as constants; BatchNorm in eval mode is vmappable."""
    m1, m2 = _model(bn=True), _model(bn=True)
    for m in (m1, m2):
        m[2].running_mean.copy_(torch.linspace(-0.5, 0.5, 6))  # non-trivial running statistics
        m[2].running_var.copy_(torch.linspace(0.5, 2.0, 6))
        m.eval()
    params = lambda m: [m[0].weight, m[0].bias, m[3].weight]  # noqa: E731 - biases of layer 3 and BN frozen
    o1 = O.Parle(params(m1), lr=0.5, gamma=0.3, rho=0.5, n=N, L=3, generator=torch.Generator().manual_seed(1))
    o2 = O.Parle(params(m2), lr=0.5, gamma=0.3, rho=0.5, n=N, L=3, generator=torch.Generator().manual_seed(1))
    seq = ReplicaBatches(m1, _mse, _Stacked(list(range(N)))).sequential_closure(o1)
    rb = ReplicaBatches(m2, _mse, _Stacked(list(range(N))))
    before = m2[3].bias.detach().clone()
    for _ in range(4):
        o1.step_outer(seq)
        o2.step_outer(rb)
        _assert_same(o1, m1, o2, m2)
    assert torch.equal(m2[3].bias.detach(), before)


def test_chunk_size_gives_the_same_gradients() -> None:
    model = _model()
    stacked = {k: v.detach().unsqueeze(0).repeat(N, *([1] * v.dim())) + 0.01 * torch.arange(N).view(-1, *[1] * v.dim())
               for k, v in model.named_parameters()}
    batch = _Stacked(list(range(N)))()
    full = ReplicaBatches(model, _mse, lambda: batch).loss_and_grad(stacked, batch)
    chunked = ReplicaBatches(model, _mse, lambda: batch, chunk_size=2).loss_and_grad(stacked, batch)
    assert torch.allclose(full[0], chunked[0], rtol=0, atol=TOL)
    for k in stacked:
        assert torch.allclose(full[1][k], chunked[1][k], rtol=0, atol=TOL)
    # replica a's gradient is the autograd gradient of its own loss at its own parameters
    for a in range(N):
        m = _model()
        with torch.no_grad():
            for k, p in m.named_parameters():
                p.copy_(stacked[k][a])
        loss = _mse(m(batch[0][a]), batch[1][a])
        loss.backward()
        assert float(loss.detach()) == pytest.approx(float(full[0][a]), rel=0, abs=TOL)
        for k, p in m.named_parameters():
            assert torch.allclose(p.grad, full[1][k][a], rtol=0, atol=TOL)


def test_nan_names_inner_step_and_replica_and_keeps_the_master() -> None:
    model = _model()
    opt = O.Parle(model.parameters(), lr=0.1, gamma=1.0, rho=1.0, n=N, L=3)
    stacked = _Stacked(list(range(N)))

    def poisoned() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = stacked()
        y[1] = float("nan")
        return x, y

    before = _flat(model)
    with pytest.raises(ValueError, match=r"non-finite loss \(nan\) at inner step 1 of 3 of replica 1 "
                                         r"\(outer step 0\)"):
        opt.step_outer(ReplicaBatches(model, _mse, poisoned))
    assert torch.equal(_flat(model), before)
    elastic = O.ElasticSGD(model.parameters(), lr=0.1, rho=1.0, n=N)
    with pytest.raises(ValueError, match=r"non-finite loss \(nan\) at replica 1 \(outer step 0\)"):
        elastic.step_outer(ReplicaBatches(model, _mse, poisoned))


def test_batchnorm_in_training_mode_is_refused() -> None:
    model = _model(bn=True)
    opt = O.Parle(model.parameters(), lr=0.1, gamma=1.0, rho=1.0, n=N, L=2)
    rb = ReplicaBatches(model, _mse, _Stacked(list(range(N))))
    with pytest.raises(ValueError, match=r"layer '2' \(BatchNorm1d\) is in training mode.*model.eval\(\)"):
        opt.step_outer(rb)
    model.eval()
    opt.step_outer(rb)
    assert torch.isfinite(_flat(model)).all()


def test_dropout_needs_randomness() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Dropout(0.5), torch.nn.Linear(6, 1)).double()
    opt = O.ElasticSGD(model.parameters(), lr=0.1, rho=1.0, n=N)
    with pytest.raises(RuntimeError, match="randomness='different'"):
        opt.step_outer(ReplicaBatches(model, _mse, _Stacked(list(range(N)))))
    opt.step_outer(ReplicaBatches(model, _mse, _Stacked(list(range(N))), randomness="different"))


@pytest.mark.parametrize("batches,exc,match", [
    (lambda: (torch.zeros(2, 8, 3, dtype=torch.float64), torch.zeros(2, 8, 1, dtype=torch.float64)), ValueError,
     r"leading dimension 3\); its inputs has shape \(2, 8, 3\)"),
    (lambda: (torch.zeros(3, 8, 3, dtype=torch.float64), torch.zeros(2, 8, 1, dtype=torch.float64)), ValueError,
     r"its targets has shape \(2, 8, 1\)"),
    (lambda: torch.zeros(3, 8, 3), TypeError, r"must return a pair \(inputs, targets\), got Tensor"),
    (lambda: ([1.0], torch.zeros(3, 8, 1)), TypeError, "its inputs\\[0\\] is a float"),
])
def test_bad_batches(batches: Callable[[], Any], exc: type, match: str) -> None:
    model = _model()
    opt = O.Parle(model.parameters(), lr=0.1, gamma=1.0, rho=1.0, n=N, L=2)
    with pytest.raises(exc, match=match):
        opt.step_outer(ReplicaBatches(model, _mse, batches))


def test_bad_arguments() -> None:
    model = _model()
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        ReplicaBatches(lambda x: x, _mse, _Stacked([0]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`batches` must be callable"):
        ReplicaBatches(model, _mse, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`randomness` must be one of"):
        ReplicaBatches(model, _mse, _Stacked([0]), randomness="sometimes")
    with pytest.raises(ValueError, match="`chunk_size` must be None or an integer >= 1, got 0"):
        ReplicaBatches(model, _mse, _Stacked([0]), chunk_size=0)
    other = _model(1)
    opt = O.Parle(other.parameters(), lr=0.1, gamma=1.0, rho=1.0, n=N, L=2)
    with pytest.raises(ValueError, match=r"parameter 0 of the optimizer \(shape \(6, 3\)\) is not a parameter"):
        opt.step_outer(ReplicaBatches(model, _mse, _Stacked(list(range(N)))))
    opt = O.ElasticSGD(model.parameters(), lr=0.1, rho=1.0, n=N)
    with pytest.raises(ValueError, match=r"`loss_fn` must return a scalar tensor .* got \(8, 1\)"):
        opt.step_outer(ReplicaBatches(model, lambda out, t: (out - t) ** 2, _Stacked(list(range(N)))))
    with pytest.raises(TypeError, match="needs a closure .* got int"):
        opt.step_outer(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pass it to step_outer"):
        opt.step(ReplicaBatches(model, _mse, _Stacked(list(range(N)))))
    with pytest.raises(ValueError, match="replica 5 is not local"):
        ReplicaBatches(model, _mse, _Stacked(list(range(N)))).sequential_closure(opt)(5)


# ----------------------------------------------------------------------------- torch.distributed
def test_distributed_world_of_one_vmap_equals_sequential(tmp_path: Path) -> None:
    """distributed=True in this process (a gloo group of one): one local replica, batches of leading dimension 1."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        m1, m2 = _model(), _model()
        kw = dict(lr=0.5, gamma=0.3, rho=0.5, L=3, noise=1e-3, distributed=True, timeout=5.0)
        o1 = O.Parle(m1.parameters(), generator=torch.Generator().manual_seed(40), **kw)
        o2 = O.Parle(m2.parameters(), generator=torch.Generator().manual_seed(40), **kw)
        seq = ReplicaBatches(m1, _mse, _Stacked([0])).sequential_closure(o1)
        rb = ReplicaBatches(m2, _mse, _Stacked([0]))
        for _ in range(3):
            o1.step_outer(seq)
            o2.step_outer(rb)
            _assert_same(o1, m1, o2, m2)
        with pytest.raises(ValueError, match=r"leading dimension 1\); its inputs has shape \(2, 8, 3\)"):
            o2.step_outer(ReplicaBatches(m2, _mse, _Stacked([0, 1])))
    finally:
        dist.destroy_process_group()


def _dist_worker(rank: int, world: int, port: int, out: str) -> None:
    import datetime

    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20))
    model = _model(rank)  # rank 1 differs: the optimizer broadcasts rank 0's weights
    opt = O.Parle(model.parameters(), lr=0.5, gamma=0.3, rho=0.5, L=3, noise=1e-3, distributed=True, timeout=5.0,
                  generator=torch.Generator().manual_seed(40 + rank))
    rb = ReplicaBatches(model, _mse, _Stacked([rank]))  # one local replica: leading dimension 1, this rank's shard
    for _ in range(3):
        opt.step_outer(rb)
    torch.save({"params": _flat(model), "replica": [opt.state[p]["replicas"] for p in model.parameters()]},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: ~5 s on a loaded 2-core machine
def test_distributed_vmap_equals_one_process_sequential(tmp_path: Path) -> None:
    spawn(_dist_worker, 2, str(tmp_path))
    model = _model(0)
    opt = O.Parle(model.parameters(), lr=0.5, gamma=0.3, rho=0.5, n=2, L=3, noise=1e-3,
                  generator=[torch.Generator().manual_seed(40), torch.Generator().manual_seed(41)])
    seq = ReplicaBatches(model, _mse, _Stacked([0, 1])).sequential_closure(opt)
    for _ in range(3):
        opt.step_outer(seq)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.allclose(got["params"], _flat(model), rtol=0, atol=TOL)
        for r_got, p in zip(got["replica"], model.parameters()):
            assert torch.allclose(r_got[0], opt.state[p]["replicas"][rank], rtol=0, atol=TOL)


def test_methods_agree() -> None:
    """``method="autograd"`` (vmapped forward, one backward of the sum) == ``method="vmap_grad"``, bit for bit."""
    model = _model()
    stacked = {k: v.detach().unsqueeze(0).repeat(N, *([1] * v.dim())) + 0.01 * torch.arange(N).view(-1, *[1] * v.dim())
               for k, v in model.named_parameters()}
    batch = _Stacked(list(range(N)))()
    one = ReplicaBatches(model, _mse, lambda: batch).loss_and_grad(stacked, batch)
    two = ReplicaBatches(model, _mse, lambda: batch, method="vmap_grad").loss_and_grad(stacked, batch)
    assert torch.equal(one[0], two[0])
    for k in stacked:
        assert torch.equal(one[1][k], two[1][k])
    with pytest.raises(ValueError, match="`method` must be 'autograd' or 'vmap_grad', got 'jvp'"):
        ReplicaBatches(model, _mse, lambda: batch, method="jvp")
