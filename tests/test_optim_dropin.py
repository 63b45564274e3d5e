"""The drop-in contract: one gradient per ``step()``, the anchor, checkpoints at any call, mixed precision.

Every hjsmooth optimizer is driven as ``torch.optim.SGD`` is (``loss.backward(); opt.step()``) and
as a closure-driven outer step (``opt.step_outer(closure)``); the two follow the same trajectory on
the same minibatches, bit for bit.  A checkpoint (``model.state_dict()`` and ``opt.state_dict()``
through ``torch.save`` / ``torch.load(weights_only=True)``) taken after any number of calls resumes
exactly in fresh objects, in train mode (the model at the evaluation point) and in eval mode (the
model at the anchor ``x``).  Under ``torch.amp.GradScaler`` the run is the unscaled run, a step the
scaler skips is no call, and a closure handed to the scaler is refused.  Plus the torch.optim
conventions that PyTorch's own optimizer tests check: gradients are never written into, the global
step hooks fire once, older state dicts load, tensor learning rates, frozen replicas stay put.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import hjsmooth.optim as O

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


#: name -> factory(params); float64 problems, noise on where the optimizer has it
MAKERS: dict[str, Callable[..., Any]] = {
    "entropy_sgd": lambda p, **kw: O.EntropySGD(p, L=3, noise=1e-3, generator=_gen(1), **kw),
    "entropy_sgd_reset": lambda p, **kw: O.EntropySGD(p, L=4, keep_inner_buffer=False, coupling_in_momentum=True,
                                                      **kw),
    "hj": lambda p, **kw: O.HJ(p, L=3, **kw),
    "entropy_adam": lambda p, **kw: O.LocalEntropy(p, torch.optim.Adam, L=3, **kw),
    "heat": lambda p, **kw: O.Heat(p, generator=_gen(2), **kw),
    "heat_L3": lambda p, **kw: O.HeatWrapper(p, torch.optim.Adam, L=3, generator=_gen(3), **kw),
    "elastic": lambda p, **kw: O.ElasticSGD(p, n=2, **kw),
    "parle": lambda p, **kw: O.Parle(p, n=2, L=3, noise=1e-3, generator=[_gen(4), _gen(5)], **kw),
    "trivialized": lambda p, **kw: O.TrivializedSGD(p, generator=_gen(6), **kw),
}
NAMES = list(MAKERS)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


class Stream:
    """Minibatch ``k`` of an endless stream is a function of ``k`` alone (so a resumed run can pick up at ``k``)."""

    def __init__(self, start: int = 0) -> None:
        self.k = start

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = _gen(1000 + self.k)
        self.k += 1
        return torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self


def _plain(model: torch.nn.Module, opt: Any, stream: Stream, calls: int) -> None:
    for _ in range(calls):
        x, y = next(stream)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


# ----------------------------------------------------------------------------- the two calling conventions
@pytest.mark.parametrize("name", NAMES)
def test_plain_loop_and_step_outer_follow_one_trajectory(name: str) -> None:
    """The same minibatches through step() and through step_outer(closure): bit for bit the same run."""
    ma, mb = _model(), _model()
    oa, ob = MAKERS[name](ma.parameters()), MAKERS[name](mb.parameters())
    sa, sb = Stream(), Stream()
    outer_steps = 4
    _plain(ma, oa, sa, outer_steps * oa.calls_per_outer_step)

    def closure(*replica: int) -> torch.Tensor:
        x, y = next(sb)
        ob.zero_grad()
        loss = torch.nn.functional.cross_entropy(mb(x), y)
        loss.backward()
        return loss

    for _ in range(outer_steps):
        ob.step_outer(closure)
    assert (oa.outer_step, oa.position) == (ob.outer_step, ob.position) == (outer_steps, 0)
    assert torch.equal(_flat(ma), _flat(mb))
    with oa.at_anchor(), ob.at_anchor():
        assert torch.equal(_flat(ma), _flat(mb))
    assert not torch.equal(_flat(ma), _flat(_model()))


# ----------------------------------------------------------------------------- checkpoints at any call
def _checkpoint(model: torch.nn.Module, opt: Any) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_after_any_call_resumes_exactly(name: str, mode: str) -> None:
    """Checkpoints after 1, 2, ... calls (mostly inside an outer step) resume in fresh objects bit for bit.

    ``mode="eval"``: the checkpoint is taken at the anchor (``opt.eval()``: the model's weights are ``x``
    and the optimizer keeps the evaluation point); the resumed optimizer is put back with ``train()``.
    """
    make = MAKERS[name]
    total = 3 * make(_model().parameters()).calls_per_outer_step + 1
    reference = _model()
    opt_ref = make(reference.parameters())
    _plain(reference, opt_ref, Stream(), total)
    for cut in sorted({1, 2, total // 2, total - 1}):
        model = _model()
        opt = make(model.parameters())
        _plain(model, opt, Stream(), cut)
        if mode == "eval":
            opt.eval()
        ckpt = _checkpoint(model, opt)
        fresh = _model(seed=7)                       # other weights and other generators: only the files count
        opt2 = make(fresh.parameters())
        opt2.load_state_dict(ckpt["opt"])            # either order of loading
        fresh.load_state_dict(ckpt["model"])
        assert opt2.mode == mode and opt2.position == opt.position
        opt2.train()
        _plain(fresh, opt2, Stream(cut), total - cut)
        assert torch.equal(_flat(fresh), _flat(reference)), f"resumed after {cut} calls"
        with opt2.at_anchor(), opt_ref.at_anchor():
            assert torch.equal(_flat(fresh), _flat(reference))


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_in_the_middle_of_an_outer_step_continues_exactly(name: str) -> None:
    import copy

    model = _model()
    opt = MAKERS[name](model.parameters())
    _plain(model, opt, Stream(), 2)
    model2, opt2 = copy.deepcopy((model, opt))
    _plain(model, opt, Stream(2), 5)
    _plain(model2, opt2, Stream(2), 5)
    assert torch.equal(_flat(model), _flat(model2))


# ----------------------------------------------------------------------------- the anchor
@pytest.mark.parametrize("name", NAMES)
def test_eval_and_train_swap_the_anchor_and_the_evaluation_point(name: str) -> None:
    model = _model()
    opt = MAKERS[name](model.parameters())
    _plain(model, opt, Stream(), 2)
    y = _flat(model)
    with opt.at_anchor():
        assert opt.mode == "eval"
        x = _flat(model)
        opt.eval()                                   # harmless twice
        with pytest.raises(RuntimeError, match="eval mode"):
            opt.step()
    assert opt.mode == "train" and torch.equal(_flat(model), y)
    with O.at_anchor(opt):                           # the module-level helper, for any optimizer
        assert torch.equal(_flat(model), x)
    if name not in ("trivialized",):
        assert not torch.equal(x, y)                 # the model holds an evaluation point between calls

    class Wrapper:                                   # Accelerate/Lightning hold the optimizer as .optimizer
        optimizer = opt

    with O.at_anchor(Wrapper()):
        assert torch.equal(_flat(model), x)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with O.at_anchor(sgd) as inner:                  # nothing to do for torch's optimizers
        assert inner is sgd and torch.equal(_flat(model), y)


def test_entropy_sgd_anchor_is_x_and_the_model_holds_y() -> None:
    """After call l of an outer step the parameters are y_l = x + d_l; the anchor is the x of the step's start."""
    x = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = O.EntropySGD([x], lr=0.5, gamma=2.0, L=3, inner_lr=0.1, inner_momentum=0.0, momentum=0.0)
    x0 = x.detach().clone()
    y = x0.clone()
    for call in range(2):
        opt.zero_grad()
        (0.5 * (x**2).sum()).backward()
        opt.step()
        y = y - 0.1 * (y + (y - x0) / 2.0 * (call > 0))
        assert torch.allclose(x.detach(), y, rtol=0, atol=1e-15)
        with opt.at_anchor():
            assert torch.equal(x.detach(), x0)


# ----------------------------------------------------------------------------- mixed precision
def _scaled_run(name: str, scaler: Any, calls: int, bad_call: int | None = None) -> tuple[torch.Tensor, Any]:
    model = _model()
    opt = MAKERS[name](model.parameters())
    stream = Stream()
    for k in range(calls):
        x, y = next(stream)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        if k == bad_call:
            next(model.parameters()).grad.view(-1)[0] = math.inf
        scaler.step(opt)
        scaler.update()
    return _flat(model), opt


@pytest.mark.parametrize("name", NAMES)
def test_grad_scaler_trains_on_unscaled_gradients_and_skips_overflows(name: str) -> None:
    """scaler.step(opt) is the unscaled run bit for bit (the scale is a power of 2); a skipped step is no call."""
    calls = 2 * MAKERS[name](_model().parameters()).calls_per_outer_step
    plain, _ = _scaled_run(name, torch.amp.GradScaler("cpu", enabled=False), calls)
    scaled, opt = _scaled_run(name, torch.amp.GradScaler("cpu", init_scale=2.0**12), calls)
    assert torch.equal(plain, scaled)
    _, skipped = _scaled_run(name, torch.amp.GradScaler("cpu", init_scale=2.0**12), calls, bad_call=1)
    per = opt.calls_per_outer_step
    assert skipped.outer_step * per + skipped.position == calls - 1


def test_grad_scaler_with_a_closure_is_refused() -> None:
    """Positionally (torch itself refuses closure=...): the closure would train on scaled gradients."""
    model = _model()
    opt = O.EntropySGD(model.parameters())
    scaler = torch.amp.GradScaler("cpu")
    x, y = next(Stream())

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        return loss

    closure()
    w0 = _flat(model)
    with pytest.raises(RuntimeError, match="GradScaler.step\\(opt, closure\\)"):
        scaler.step(opt, closure)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=closure)
    assert torch.equal(_flat(model), w0) and opt.position == 0


# ----------------------------------------------------------------------------- torch.optim conventions
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_never_written_into(name: str, foreach: bool) -> None:
    """After every call each parameter's .grad is the same tensor with the same values the backward pass left."""
    model = _model()
    opt = MAKERS[name](model.parameters(), foreach=foreach)
    stream = Stream()
    for _ in range(2 * opt.calls_per_outer_step):
        x, y = next(stream)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        before = [(p.grad, p.grad.clone()) for p in model.parameters()]
        opt.step()
        for p, (g, values) in zip(model.parameters(), before):
            assert p.grad is g and torch.equal(g, values)


@pytest.mark.parametrize("name", NAMES)
def test_an_old_state_dict_without_later_flags_loads_and_steps(name: str) -> None:
    """A state dict saved before torch added ``fused``/``differentiable``/``foreach`` to the groups still works."""
    model = _model()
    opt = MAKERS[name](model.parameters())
    _plain(model, opt, Stream(), 2)
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        for key in ("fused", "differentiable", "foreach", "capturable"):
            group.pop(key, None)
    for sub in ("base", "replica_optimizer"):
        for group in sd.get(sub, {}).get("param_groups", []):
            for key in ("fused", "differentiable", "foreach", "capturable"):
                group.pop(key, None)
    opt.load_state_dict(sd)
    _plain(model, opt, Stream(2), 2 * opt.calls_per_outer_step)
    assert torch.isfinite(_flat(model)).all()


@pytest.mark.parametrize("cls", [O.Heat, lambda p, **kw: O.HeatWrapper(p, torch.optim.SGD, lr=0.1, **kw)])
def test_heat_foreach_with_a_group_that_gets_no_gradient(cls: Any) -> None:
    model = _model()
    unused = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = cls([{"params": list(model.parameters())}, {"params": [unused]}], L=3, foreach=True,
              generator=_gen(0))
    _plain(model, opt, Stream(), 6)
    with opt.at_anchor():
        assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
def test_tensor_learning_rates(name: str) -> None:
    """A one-element tensor lr is kept as a tensor (torch.compile, capturable steps); others are refused."""
    make = MAKERS[name]
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        make(_model().parameters(), lr=torch.tensor([0.1, 0.2]))
    model = _model()
    opt = make(model.parameters(), lr=torch.tensor(0.05, dtype=torch.float64))
    assert all(isinstance(g["lr"], torch.Tensor) for g in opt.param_groups)
    reference = _model()
    opt_ref = make(reference.parameters(), lr=0.05)
    _plain(model, opt, Stream(), 2 * opt.calls_per_outer_step)
    _plain(reference, opt_ref, Stream(), 2 * opt.calls_per_outer_step)
    assert torch.allclose(_flat(model), _flat(reference), rtol=0, atol=1e-14)


@pytest.mark.parametrize("L", [1, 3])
def test_grad_norm_of_a_complex_parameter_counts_the_imaginary_part(L: int) -> None:
    """Heat without noise hands its base optimizer the mean gradient: stats["grad_norm"] is its whole norm."""
    z = torch.nn.Parameter(torch.tensor([1.0 + 2.0j, -0.5 + 0.25j], dtype=torch.complex128))
    opt = O.Heat([z], L=L, noise=0.0)
    grads = []
    for _ in range(L):
        opt.zero_grad()
        (z.abs() ** 4).sum().backward()
        grads.append(z.grad.clone())
        opt.step()
    mean = torch.stack(grads).mean(0)
    assert opt.stats["grad_norm"] == pytest.approx(float(torch.linalg.vector_norm(mean)), rel=1e-12)
    assert opt.stats["grad_norm"] > 1.01 * float(torch.linalg.vector_norm(mean.real))
    # EntropySGD on the complex parameter and on its real view as a real parameter: the same norm
    norms = []
    for as_complex in (True, False):
        w0 = torch.tensor([1.0 + 2.0j, -0.5 + 0.25j], dtype=torch.complex128)
        w = torch.nn.Parameter(w0.clone() if as_complex else torch.view_as_real(w0).clone())
        entropy = O.EntropySGD([w], L=2)
        for _ in range(2):
            entropy.zero_grad()
            ((w if as_complex else torch.view_as_complex(w)).abs() ** 4).sum().backward()
            entropy.step()
        norms.append(entropy.stats["grad_norm"])
    assert norms[0] == pytest.approx(norms[1], rel=1e-14)


@pytest.mark.parametrize("cls", [O.ElasticSGD, O.Parle])
def test_frozen_parameters_replicas_stay_put(cls: Any) -> None:
    """After b.requires_grad_(False) neither b nor its replicas move, and b does not jump when unfrozen."""
    a = torch.nn.Parameter(torch.randn(3, generator=_gen(0)))
    b = torch.nn.Parameter(torch.randn(3, generator=_gen(1)))
    opt = cls([a, b], lr=0.05)

    def closure(*_: int) -> torch.Tensor:
        opt.zero_grad()
        loss = ((a - 1) ** 2).sum() + ((b + 1) ** 2).sum()
        loss.backward()
        return loss

    opt.step_outer(closure)
    b.requires_grad_(False)
    r0, b0 = opt.state[b]["replicas"].clone(), b.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one loss for both replicas: spread 0
        for _ in range(5):
            opt.step_outer(closure)
    assert torch.equal(opt.state[b]["replicas"], r0) and torch.equal(b.detach(), b0)
    assert opt.state[b]["replicas"].grad is None
    b.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        opt.step_outer(closure)
    assert float((b.detach() - b0).abs().max()) < 0.5


def test_one_cycle_momentum_into_hj_warns_and_sgd_like_momentum_does_not() -> None:
    model = _model()
    hj = O.HJ(model.parameters())
    sched = torch.optim.lr_scheduler.OneCycleLR(hj, max_lr=1.0, total_steps=20)
    with pytest.warns(UserWarning, match="momentum is 0.9.*built with momentum 0"):
        _plain(model, hj, Stream(), 3)
    sched.step()
    entropy = O.EntropySGD(_model().parameters())
    torch.optim.lr_scheduler.OneCycleLR(entropy, max_lr=0.3, total_steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _plain(_model(), entropy, Stream(), 5)


def test_replicas_that_saw_the_same_batches_warn() -> None:
    model = _model()
    opt = O.ElasticSGD(model.parameters(), n=2)
    x, y = next(Stream())

    def same(*_: int) -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with pytest.warns(UserWarning, match="spread exactly 0"):
        opt.step_outer(same)
    with warnings.catch_warnings():  # a fresh minibatch per call: no warning
        warnings.simplefilter("error", UserWarning)
        _plain(model, O.ElasticSGD(model.parameters(), n=2), Stream(), 4)


def test_fsdp2_parameters_are_refused_clearly(tmp_path: Any) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, distribute_tensor

    if dist.is_initialized():
        pytest.skip("a process group exists already")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        p = torch.nn.Parameter(distribute_tensor(torch.randn(4, 3), mesh, [Replicate()]))
        with pytest.raises(TypeError, match="DTensor .* FSDP2"):
            O.EntropySGD([p])
    finally:
        dist.destroy_process_group()
