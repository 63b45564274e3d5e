"""Cross-cutting tests over one table of optimizers (optax style)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import hjsmooth.optim as O
from optim_helpers import at_anchor, outer
from hjsmooth.optim import schedules as S


pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*spread exactly 0:UserWarning")]  # one loss for every replica


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Entry:
    name: str
    make: Callable[..., Any]  # make(params, lr) -> optimizer
    lr: float
    replicas: bool = False  # closure(a)
    noisy: bool = False  # draws random numbers
    tol_quad: float = 1e-3
    tol_rosen: float = 5e-2


# The Local Entropy entries step on (x - <y>)/gamma (scale_by_gamma=False), as when the table was written.
TABLE = [
    Entry("sgd", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True), 0.01),
    Entry("entropy_sgd", lambda p, lr: O.EntropySGD(p, lr=lr, gamma=0.1, L=5, inner_lr=0.02, noise=1e-8,
                                                    inner_momentum=0.0, scale_by_gamma=False,
                                                    generator=_gen(1)), 0.01, noisy=True),
    Entry("entropy_adam", lambda p, lr: O.LocalEntropy(p, torch.optim.Adam, gamma=0.1, L=5, inner_lr=0.02, lr=lr,
                                                       inner_momentum=0.0), 0.05),
    Entry("hj", lambda p, lr: O.HJ(p, lr=lr, gamma=0.1, L=5, inner_lr=0.02, momentum=0.9, inner_momentum=0.0,
                                       scale_by_gamma=False), 0.01),
    Entry("heat", lambda p, lr: O.Heat(p, lr=lr, gamma=S.exponential(0.05, 0.02), L=5, generator=_gen(2),
                                       perturbation="absolute"), 0.01, noisy=True, tol_quad=5e-3),
    Entry("elastic", lambda p, lr: O.ElasticSGD(p, lr=lr, rho=1.0, n=2), 0.01, replicas=True),
    Entry("parle", lambda p, lr: O.Parle(p, lr=lr, gamma=0.1, rho=1.0, n=2, L=3, inner_lr=0.02, inner_momentum=0.0),
          0.5, replicas=True),
    Entry("trivialized", lambda p, lr: O.TrivializedSGD(p, lr=lr, coupling=0.01, tau0=20.0, momentum=0.9,
                                                        generator=_gen(3)), 0.01, noisy=True),
]
IDS = [e.name for e in TABLE]


def _step(entry: Entry, opt: Any, closure: Callable[[], Any]) -> Any:
    if not hasattr(opt, "step_outer"):  # the torch.optim control
        return opt.step(closure)
    if entry.replicas:
        return opt.step_outer(lambda a: closure())
    return opt.step_outer(closure)


def _quadratic(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (z[0] ** 2 + 4.0 * z[1] ** 2)


def _rosenbrock(z: torch.Tensor) -> torch.Tensor:
    return (1 - z[0]) ** 2 + 10.0 * (z[1] - z[0] ** 2) ** 2


def _descend(entry: Entry, f: Callable, x0: tuple[float, ...], steps: int) -> torch.Tensor:
    x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = entry.make([x], entry.lr)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    for _ in range(steps):
        _step(entry, opt, closure)
    with at_anchor(opt):
        return x.detach().clone()


@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_converges_on_quadratic(entry: Entry) -> None:
    x = _descend(entry, _quadratic, (2.0, -1.5), 300)
    assert float(x.norm()) < entry.tol_quad


@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_converges_on_rosenbrock(entry: Entry) -> None:
    x = _descend(entry, _rosenbrock, (-1.5, 2.0), 400)
    assert float((x - torch.tensor([1.0, 1.0], dtype=torch.float64)).norm()) < entry.tol_rosen


# ----------------------------------------------------------------------------- a small MLP
def _mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()


def _two_moons(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles with noise (labels 0/1): not linearly separable."""
    g = _gen(seed)
    t = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    label = torch.randint(0, 2, (n,), generator=g)
    x = torch.stack([torch.cos(t), torch.sin(t)], 1)
    x = torch.where(label[:, None] == 1, torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1), x)
    return x + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64), label


class _Stream:
    """Minibatches drawn by call number, so a restarted run sees the same data."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
        self.x, self.y, self.batch, self.calls = x, y, batch, 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.y), (self.batch,), generator=_gen(10_000 + self.calls))
        self.calls += 1
        return self.x[idx], self.y[idx]


def _closure(model: torch.nn.Module, opt: Any, stream: _Stream) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        xb, yb = stream.next()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        return loss

    return closure


MLP_LR = {"sgd": 0.1, "entropy_sgd": 0.1, "entropy_adam": 0.02, "hj": 0.1, "heat": 0.1, "elastic": 0.1,
          "parle": 1.0, "trivialized": 0.1}


def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's handwritten digits (1797 8x8 images, shipped with the package): 1400 to train, the rest held out."""
    datasets = pytest.importorskip("sklearn.datasets", reason="the real-data test needs scikit-learn")
    data = datasets.load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float64)
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=_gen(0))
    return x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]


@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_small_mlp_learns_real_digits(entry: Entry) -> None:
    """A 64-32-10 MLP on real data: 200 steps of minibatch 64 reach > 85 % held-out accuracy (chance: 10 %)."""
    x, y, x_test, y_test = _digits()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)).double()
    opt = entry.make(list(model.parameters()), MLP_LR[entry.name])
    closure = _closure(model, opt, _Stream(x, y, 64))
    with torch.no_grad():
        loss0 = float(torch.nn.functional.cross_entropy(model(x), y))
    for _ in range(200):
        _step(entry, opt, closure)
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model(x), y))
        acc = float((model(x_test).argmax(1) == y_test).double().mean())
    assert loss < 0.25 * loss0
    assert acc > 0.85


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_state_dict_lockstep(entry: Entry) -> None:
    """Train, save, load into a fresh optimizer, continue: bit-for-bit the uninterrupted run."""
    x, y = _two_moons(256, 1)

    def run(n_steps: int, model: torch.nn.Module, opt: Any, stream: _Stream) -> None:
        closure = _closure(model, opt, stream)
        for _ in range(n_steps):
            _step(entry, opt, closure)

    model_a = _mlp(1)
    opt_a = entry.make(list(model_a.parameters()), MLP_LR[entry.name])
    stream_a = _Stream(x, y, 32)
    run(6, model_a, opt_a, stream_a)

    model_b = _mlp(1)
    opt_b = entry.make(list(model_b.parameters()), MLP_LR[entry.name])
    stream_b = _Stream(x, y, 32)
    run(3, model_b, opt_b, stream_b)
    buf = io.BytesIO()
    torch.save({"model": model_b.state_dict(), "opt": opt_b.state_dict(), "calls": stream_b.calls}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)

    model_c = _mlp(99)  # different weights, overwritten by the checkpoint
    opt_c = entry.make(list(model_c.parameters()), 123.0)  # different lr, overwritten as well
    for g in getattr(opt_c, "_generators", None) or []:
        g.manual_seed(777)  # the generator state must come from the checkpoint
    model_c.load_state_dict(ckpt["model"])
    opt_c.load_state_dict(ckpt["opt"])
    stream_c = _Stream(x, y, 32)
    stream_c.calls = ckpt["calls"]
    run(3, model_c, opt_c, stream_c)
    for pa, pc in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(pa, pc)


# ----------------------------------------------------------------------------- param groups
@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_param_groups_each_honoured(entry: Entry) -> None:
    """A group with lr = 0 stays put; a group with its own lr follows it (as a separate run does)."""
    a0, b0 = (1.5, -1.0), (0.5, 2.0)
    a = torch.nn.Parameter(torch.tensor(a0, dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor(b0, dtype=torch.float64))
    frozen = torch.nn.Parameter(torch.tensor([0.3, 0.7], dtype=torch.float64))
    lr_b = entry.lr / 2
    opt = entry.make([{"params": [a]}, {"params": [b], "lr": lr_b}, {"params": [frozen], "lr": 0.0}], entry.lr)
    assert [g["lr"] for g in opt.param_groups] == [entry.lr, lr_b, 0.0]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _quadratic(a) + _rosenbrock(b) + _quadratic(frozen)
        loss.backward()
        return loss

    for _ in range(5):
        _step(entry, opt, closure)
    with at_anchor(opt):
        assert torch.equal(frozen.detach(), torch.tensor([0.3, 0.7], dtype=torch.float64))
        assert not torch.equal(b.detach(), torch.tensor(b0, dtype=torch.float64))
    if not entry.noisy:  # the groups are independent: each equals a run of its own
        for p0, f, lr, got in ((a0, _quadratic, entry.lr, a), (b0, _rosenbrock, lr_b, b)):
            q = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
            solo = entry.make([q], lr)

            def solo_closure(q: torch.Tensor = q, f: Callable = f, solo: Any = solo) -> torch.Tensor:
                solo.zero_grad()
                loss = f(q)
                loss.backward()
                return loss

            for _ in range(5):
                _step(entry, solo, solo_closure)
            with at_anchor(opt), at_anchor(solo):
                assert torch.equal(q.detach(), got.detach())


# ----------------------------------------------------------------------------- LR schedulers
@pytest.mark.parametrize("scheduler", ["step", "cosine"])
@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_lr_scheduler_drives_outer_lr(entry: Entry, scheduler: str) -> None:
    """A torch scheduler on the optimizer gives the run in which lr is set by hand each step."""
    def expected(k: int) -> float:
        if scheduler == "step":
            return entry.lr * 0.5 ** (k // 3)
        return 0.5 * entry.lr * (1 + math.cos(math.pi * k / 8))

    def trajectory(by_hand: bool) -> list[torch.Tensor]:
        x = torch.nn.Parameter(torch.tensor((-1.0, 1.5), dtype=torch.float64))
        opt = entry.make([x], entry.lr)
        sched = None
        if not by_hand:
            sched = (torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5) if scheduler == "step"
                     else torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8))

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = _rosenbrock(x)
            loss.backward()
            return loss

        out = []
        for k in range(8):
            if by_hand:
                for g in opt.param_groups:
                    g["lr"] = expected(k)
            else:
                assert opt.param_groups[0]["lr"] == pytest.approx(expected(k), rel=1e-12)
            _step(entry, opt, closure)
            if sched is not None:
                sched.step()
            out.append(x.detach().clone())
        return out

    for u, v in zip(trajectory(False), trajectory(True)):
        assert torch.allclose(u, v, rtol=1e-13, atol=1e-15)
    assert not torch.equal(trajectory(False)[-1], _descend(entry, _rosenbrock, (-1.0, 1.5), 8))


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("entry", TABLE, ids=IDS)
def test_float32_stays_float32(entry: Entry) -> None:
    x = torch.nn.Parameter(torch.tensor((2.0, -1.5), dtype=torch.float32))
    opt = entry.make([x], entry.lr)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _quadratic(x)
        loss.backward()
        return loss

    for _ in range(100):
        _step(entry, opt, closure)
    with at_anchor(opt):
        assert x.dtype == torch.float32 and float(x.detach().norm()) < 0.1


@pytest.mark.gpu
@pytest.mark.parametrize("entry", [e for e in TABLE if e.name != "sgd"], ids=IDS[1:])
def test_cuda_matches_cpu(entry: Entry) -> None:
    """On CUDA (foreach path) the optimizer follows the CPU float64 run of a noise-free problem."""
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    results = []
    for device in ("cpu", "cuda"):
        model = _mlp(3).to(device)
        x, y = _two_moons(128, 3)
        x, y = x.to(device), y.to(device)
        opt = entry.make(list(model.parameters()), MLP_LR[entry.name])
        if getattr(opt, "_generators", None):
            opt._generators = [torch.Generator(device=device).manual_seed(5) for _ in opt._generators]

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        for _ in range(5):
            _step(entry, opt, closure)
        assert all(p.device.type == device for p in model.parameters())
        results.append(torch.cat([p.detach().cpu().reshape(-1) for p in model.parameters()]))
    if entry.noisy:  # CPU and CUDA generators differ: the run must still move and stay finite
        assert torch.isfinite(results[1]).all()
    else:
        assert torch.allclose(results[0], results[1], rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- wide vs sharp
@dataclass(frozen=True)
class WideSharpRun:
    make: Callable[[list[torch.Tensor]], Any]
    steps: int
    replicas: bool = False
    decay_at: int | None = None  # the outer lr drops 5x here (MultiStepLR), so a noisy iterate settles


# Entropy-SGD and Parle descend Local Entropy at the smoothing of demos/smoothing_2d.py (gamma = t = 1,
# noise = 1/beta = 1/2), whose minimiser is the wide well.  Their inner Langevin chain must mix over the
# coupling's time scale gamma (L * inner_lr = 2 >= gamma) with a step below 2 / 80, the sharp well's
# curvature, so that the chain leaves the sharp well by its noise, not by an unstable step.
_LANGEVIN = dict(gamma=1.0, L=100, inner_lr=0.02, noise=0.5, alpha=0.97, momentum=0.0, inner_momentum=0.0)
WIDE_SHARP = {
    "sgd": WideSharpRun(lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), 200),
    "hj": WideSharpRun(lambda p: O.HJ(p, lr=0.1, gamma=1.0, L=5, inner_lr=0.1, momentum=0.9,
                                                 inner_momentum=0.0), 200),
    "heat": WideSharpRun(lambda p: O.Heat(p, lr=0.1, gamma=0.3, L=10, generator=_gen(0), perturbation="absolute"),
                         200),
    "entropy_sgd": WideSharpRun(lambda p: O.EntropySGD(p, lr=0.25, generator=_gen(4), **_LANGEVIN), 120,
                                decay_at=90),
    "parle": WideSharpRun(lambda p: O.Parle(p, lr=0.25, rho=1.0, n=2, generator=[_gen(5), _gen(6)], **_LANGEVIN),
                          120, replicas=True, decay_at=90),
}


@pytest.mark.parametrize("x0", [(0.95, 0.8), (1.0, 0.65), (1.1, 0.6)])
def test_wide_basin_preferred_from_starts_where_sgd_ends_sharp(x0: tuple[float, float]) -> None:
    """hjsmooth.landscapes.wide_sharp_2d: SGD falls into the sharp well; HJ, Heat, Entropy-SGD and Parle
    end in the wide one (within 0.5 of its minimum; the sharp well is 0.12 wide)."""
    from hjsmooth.landscapes import wide_sharp_2d

    land = wide_sharp_2d()
    sharp = torch.tensor(land.minima[0], dtype=torch.float64)
    wide = torch.tensor(land.minima[1], dtype=torch.float64)
    ends = {}
    for name, run in WIDE_SHARP.items():
        x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
        opt = run.make([x])
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [run.decay_at or run.steps], gamma=0.2)

        def closure(*replica: int, x: torch.Tensor = x, opt: Any = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = land.value(x)
            loss.backward()
            return loss

        for _ in range(run.steps):
            outer(opt, closure)
            sched.step()
        with at_anchor(opt):
            d_sharp, d_wide = float((x.detach() - sharp).norm()), float((x.detach() - wide).norm())
        ends[name] = "sharp" if d_sharp < 0.3 else "wide" if d_wide < 0.5 else f"elsewhere {x.detach().tolist()}"
    assert ends == {"sgd": "sharp", "hj": "wide", "heat": "wide", "entropy_sgd": "wide", "parle": "wide"}
