"""torch.optim conformance: every optimizer configuration through the behaviour PyTorch users rely on.

``torch.optim.SGD`` runs as a control through every check that applies to it (it has no closure
contract, no finiteness checks and no perturbed evaluations, so those checks skip it): a check
that the control fails is a wrong check, not a finding.

Checks: copy.deepcopy and pickle continue the run exactly; add_param_group adds a working,
validated group (and refuses a bad one, leaving the optimizer as it was); frozen parameters
(``requires_grad=False``) and parameters without a gradient never move, even under weight
decay and noise; a complex parameter behaves as its real view; a sparse gradient is refused with
a TypeError naming the parameter; BatchNorm running statistics are frozen on request;
``step(closure)`` returns the loss at ``x`` and works under ``torch.no_grad``; step hooks run; a
NaN or infinite loss or gradient at any call leaves the weights where the step began, the state
unchanged and names the inner and outer step; a closure returning a vector or a string gets a
TypeError; bad hyper-parameters in any group are refused with the argument's name.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import hjsmooth.optim as O
from optim_helpers import at_anchor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAN = float("nan")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Config:
    name: str
    make: Callable[..., Any]            # make(params) -> optimizer
    calls: int                          # closure calls per outer step
    ours: bool = True                   # False: the torch.optim control
    perturbed: bool = False             # evaluates away from x (BatchNorm freezing applies)
    returns_mean: bool = False          # step returns the mean of its losses (Heat), not the first
    bad: dict[str, Any] = field(default_factory=dict)  # hyper-parameter -> a value it must refuse


CONFIGS = [
    Config("sgd_control", lambda p, **kw: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2,
                                                          **kw), 1, ours=False),
    Config("entropy_sgd", lambda p, **kw: O.EntropySGD(p, weight_decay=1e-2, **kw), 5, perturbed=True,
           bad={"gamma": -1.0, "L": 0, "alpha": 1.5, "noise": -1.0, "lr": NAN, "inner_momentum": 1.0}),
    Config("entropy_sgd_noisy_reset", lambda p, **kw: O.EntropySGD(p, noise=1e-4, L=3, keep_inner_buffer=False,
                                                                   coupling_in_momentum=True, generator=_gen(1),
                                                                   weight_decay=1e-2, **kw), 3, perturbed=True,
           bad={"inner_lr": 0.0, "keep_inner_buffer": "yes"}),
    Config("entropy_adam", lambda p, **kw: O.LocalEntropy(p, torch.optim.Adam, lr=1e-3, weight_decay=1e-2, **kw), 5,
           perturbed=True, bad={"gamma": 0.0, "lr": -1.0}),
    Config("hj", lambda p, **kw: O.HJ(p, weight_decay=1e-2, **kw), 5, perturbed=True, bad={"L": 2.5}),
    Config("heat", lambda p, **kw: O.Heat(p, generator=_gen(2), weight_decay=1e-2, **kw), 1, perturbed=True,
           returns_mean=True, bad={"noise": -1.0, "perturbation": "relative"}),
    Config("heat_absolute", lambda p, **kw: O.HeatWrapper(p, torch.optim.SGD, gamma=1e-3, L=3, perturbation="absolute",
                                                          generator=_gen(3), lr=0.1, **kw), 3, perturbed=True,
           returns_mean=True, bad={"gamma": -1.0}),
    Config("elastic", lambda p, **kw: O.ElasticSGD(p, n=2, weight_decay=1e-2, **kw), 2, perturbed=True,
           bad={"rho": -1.0, "lr": NAN}),
    Config("parle", lambda p, **kw: O.Parle(p, n=2, L=3, noise=1e-4, generator=[_gen(4), _gen(5)], weight_decay=1e-2,
                                            **kw), 6, perturbed=True,
           bad={"alpha": 1.5, "noise": -1.0, "L": 0, "gamma": 0.0}),
    Config("trivialized", lambda p, **kw: O.TrivializedSGD(p, generator=_gen(6), weight_decay=1e-2, **kw), 1,
           bad={"tau0": 0.0, "coupling": -1.0}),
]
IDS = [c.name for c in CONFIGS]
OURS = [c for c in CONFIGS if c.ours]
PERTURBED = [c for c in CONFIGS if c.perturbed]


# ----------------------------------------------------------------------------- a small problem
def _model(seed: int = 0, bn: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(4, 6), torch.nn.Tanh()]
    if bn:
        layers.append(torch.nn.BatchNorm1d(6))
    layers.append(torch.nn.Linear(6, 3))
    return torch.nn.Sequential(*layers).double()


def _data(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(100 + k)
    return torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)


class Closure:
    """A closure over a fresh minibatch per call (by call number), counting its calls and losses."""

    def __init__(self, model: torch.nn.Module, opt: Any, fixed: bool = False,
                 after: Callable[[int], None] | None = None, value: Callable[[int, torch.Tensor], Any] | None = None):
        self.model, self.opt, self.fixed, self.after, self.value = model, opt, fixed, after, value
        self.calls = 0
        self.losses: list[Any] = []

    def __call__(self, *replica: int) -> Any:
        x, y = _data(0 if self.fixed else self.calls)
        self.calls += 1
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        if self.after is not None:
            self.after(self.calls)
        out = loss if self.value is None else self.value(self.calls, loss)
        self.losses.append(out)
        return out


def _outer(opt: Any, closure: Any) -> Any:
    """One outer step: ``step_outer`` of an hjsmooth optimizer, ``step`` of the torch.optim control."""
    return opt.step_outer(closure) if hasattr(opt, "step_outer") else opt.step(closure)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _same_state(a: Any, b: Any) -> bool:
    """Deep equality of two state dicts (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_state(u, v) for u, v in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _snapshot(opt: Any) -> dict[str, Any]:
    return copy.deepcopy(opt.state_dict())


# ----------------------------------------------------------------------------- copies
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_copy_continues_exactly(cfg: Config, how: str) -> None:
    """A copy of (model, optimizer) taken mid-run continues exactly as the original does."""
    model = _model()
    opt = cfg.make(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)  # patches opt.step: must not be copied
    closure = Closure(model, opt)
    for _ in range(2):
        _outer(opt, closure)
        sched.step()
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert all(p2 is q for p2, q in zip(opt2.param_groups[0]["params"], list(model2.parameters())[:2]))
    closure2 = Closure(model2, opt2)
    closure2.calls = closure.calls
    for _ in range(2):
        _outer(opt, closure)
        _outer(opt2, closure2)
    assert torch.equal(_flat(model), _flat(model2))
    assert not torch.equal(_flat(model), _flat(_model()))
    if cfg.ours:
        assert opt2.outer_step == opt.outer_step == 4


# ----------------------------------------------------------------------------- param groups
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_add_param_group_works_and_validates(cfg: Config) -> None:
    model = _model()
    head = torch.nn.Linear(3, 3).double()
    opt = cfg.make(model.parameters())
    closure = Closure(model, opt)
    _outer(opt, closure)
    before = [g.copy() for g in opt.param_groups]
    for key, value in cfg.bad.items():  # a bad group is refused and leaves the optimizer as it was
        with pytest.raises((ValueError, TypeError), match=key if cfg.ours else ""):
            opt.add_param_group({"params": list(head.parameters()), key: value})
        assert len(opt.param_groups) == len(before)
    opt.add_param_group({"params": list(head.parameters()), "lr": 0.05})
    assert opt.param_groups[-1]["lr"] == 0.05 and len(opt.param_groups) == 2

    def closure2(*replica: int) -> torch.Tensor:
        x, y = _data(closure.calls)
        closure.calls += 1
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(model(x)), y)
        loss.backward()
        return loss

    w0 = head.weight.detach().clone()
    for _ in range(2):
        _outer(opt, closure2)
    assert not torch.equal(head.weight.detach(), w0)
    assert torch.isfinite(_flat(model)).all() and torch.isfinite(head.weight).all()


@pytest.mark.parametrize("cfg", OURS, ids=[c.name for c in OURS])
def test_bad_hyperparameters_are_refused_with_their_name(cfg: Config) -> None:
    for key, value in cfg.bad.items():
        with pytest.raises((ValueError, TypeError), match=f"`{key}`"):
            cfg.make([{"params": list(_model().parameters()), key: value}])
        with pytest.raises((ValueError, TypeError), match=rf"param_groups\[1\]\['{key}'\]"):
            m = _model()
            cfg.make([{"params": list(m[0].parameters())}, {"params": list(m[2].parameters()), key: value}])


# ----------------------------------------------------------------------------- what must not move
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_frozen_and_gradless_parameters_never_move(cfg: Config) -> None:
    """requires_grad=False and a parameter the loss never touches: bit for bit unchanged (weight decay on)."""
    model = _model()
    frozen = torch.nn.Parameter(torch.randn(5, dtype=torch.float64), requires_grad=False)
    unused = torch.nn.Parameter(torch.randn(4, 2, dtype=torch.float64))
    f0, u0 = frozen.detach().clone(), unused.detach().clone()
    opt = cfg.make([*model.parameters(), frozen, unused])
    closure = Closure(model, opt)
    for _ in range(3):
        _outer(opt, closure)
    with at_anchor(opt):
        assert torch.equal(frozen.detach(), f0) and torch.equal(unused.detach(), u0)
        assert unused.grad is None
        assert not torch.equal(_flat(model), _flat(_model()))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_complex_parameter_is_its_real_view(cfg: Config) -> None:
    """A complex parameter follows exactly the run of its real view as a real parameter."""
    a = torch.randn(5, 3, generator=_gen(7), dtype=torch.complex128)
    b = torch.randn(5, generator=_gen(8), dtype=torch.complex128)
    z0 = torch.randn(3, generator=_gen(9), dtype=torch.complex128)

    def run(as_complex: bool) -> torch.Tensor:
        p = torch.nn.Parameter(z0.clone() if as_complex else torch.view_as_real(z0).clone())
        opt = cfg.make([p])

        def closure(*replica: int) -> torch.Tensor:
            opt.zero_grad()
            z = p if as_complex else torch.view_as_complex(p)
            loss = 0.1 * (a @ z - b).abs().square().mean() + 0.01 * (z.abs() ** 4).sum()
            loss.backward()
            return loss

        for _ in range(3):
            _outer(opt, closure)
        return torch.view_as_real(p.detach()) if as_complex else p.detach()

    got, ref = run(True), run(False)
    assert torch.isfinite(got).all() and torch.allclose(got, ref, rtol=0, atol=1e-13)
    assert not torch.allclose(got, torch.view_as_real(z0), atol=1e-6)
    assert got[:, 1].abs().max() > 1e-6  # the imaginary part is kept


@pytest.mark.parametrize("cfg", OURS, ids=[c.name for c in OURS])
def test_sparse_gradient_is_a_clear_type_error(cfg: Config) -> None:
    emb = torch.nn.Embedding(10, 3, sparse=True).double()
    dense = torch.nn.Linear(3, 1).double()
    opt = cfg.make([*dense.parameters(), emb.weight])
    w0 = emb.weight.detach().clone()

    def closure(*replica: int) -> torch.Tensor:
        opt.zero_grad()
        loss = dense(emb(torch.tensor([1, 2, 3]))).square().mean()
        loss.backward()
        return loss

    with pytest.raises(TypeError, match=r"parameter 2 of param group 0 \(shape \(10, 3\)\) has a sparse gradient"):
        _outer(opt, closure)
    assert torch.equal(emb.weight.detach(), w0)


# ----------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("cfg", PERTURBED, ids=[c.name for c in PERTURBED])
def test_batchnorm_statistics_follow_only_the_first_call_when_frozen(cfg: Config) -> None:
    model = _model(bn=True)
    bn = model[2]
    opt = cfg.make(model.parameters(), freeze_bn=model)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def after(call: int) -> None:
        if (call - 1) % cfg.calls == 0:  # the first call of an outer step
            seen.append((bn.running_mean.clone(), bn.running_var.clone()))

    closure = Closure(model, opt, after=after)
    for k in range(3):
        _outer(opt, closure)
        assert int(bn.num_batches_tracked) == k + 1
        assert torch.equal(bn.running_mean, seen[-1][0]) and torch.equal(bn.running_var, seen[-1][1])
    # without freezing (the default) every call updates them
    model2 = _model(bn=True)
    opt2 = cfg.make(model2.parameters())
    _outer(opt2, Closure(model2, opt2))
    assert int(model2[2].num_batches_tracked) == cfg.calls


# ----------------------------------------------------------------------------- the closure contract
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_step_returns_the_loss_at_x_and_runs_under_no_grad(cfg: Config) -> None:
    model = _model()
    opt = cfg.make(model.parameters())
    closure = Closure(model, opt, fixed=True)
    with torch.no_grad():
        x, y = _data(0)
        at_x = torch.nn.functional.cross_entropy(model(x), y)
        loss = _outer(opt, closure)  # the closure still gets gradients
    assert isinstance(loss, torch.Tensor)
    if cfg.returns_mean:  # Heat: the mean of the perturbed losses, the estimate of v(x, gamma)
        assert float(loss) == pytest.approx(float(torch.stack([v.detach() for v in closure.losses]).mean()),
                                            rel=1e-14)
    else:
        assert float(loss.detach()) == pytest.approx(float(at_x), rel=1e-14)
    assert closure.calls == cfg.calls


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_step_hooks_run_once_per_step(cfg: Config) -> None:
    """Instance and global step hooks fire once per step() call (a gradient), never for an internal optimizer."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    model = _model()
    opt = cfg.make(model.parameters())
    calls = {"pre": 0, "post": 0}
    seen: list[str] = []
    opt.register_step_pre_hook(lambda *a: calls.__setitem__("pre", calls["pre"] + 1))
    opt.register_step_post_hook(lambda *a: calls.__setitem__("post", calls["post"] + 1))
    handles = [register_optimizer_step_pre_hook(lambda o, *a: seen.append(f"pre {type(o).__name__}")),
               register_optimizer_step_post_hook(lambda o, *a: seen.append(f"post {type(o).__name__}"))]
    try:
        closure = Closure(model, opt)
        for _ in range(2):
            _outer(opt, closure)
    finally:
        for h in handles:
            h.remove()
    assert calls == {"pre": 2 * cfg.calls, "post": 2 * cfg.calls}
    name = type(opt).__name__
    assert seen == [f"pre {name}", f"post {name}"] * (2 * cfg.calls)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_load_state_dict_hooks_run_around_the_whole_load(cfg: Config) -> None:
    """A pre-hook sees (and may rewrite) every entry; a post-hook sees the restored optimizer and may add its own."""
    model = _model()
    opt = cfg.make(model.parameters())
    closure = Closure(model, opt)
    _outer(opt, closure)
    opt.step(closure)  # in the middle of an outer step where there is one
    seen: dict[str, Any] = {}

    def pre(o: Any, sd: dict[str, Any]) -> dict[str, Any]:
        seen["keys"] = set(sd)
        sd = dict(sd)
        sd["param_groups"] = [{**g, "lr": 0.0125} for g in sd["param_groups"]]
        return sd

    def post(o: Any) -> None:
        seen["position"] = getattr(o, "position", None)
        seen["lr"] = o.param_groups[0]["lr"]
        o.state["loaded_by_hook"] = True  # an entry keyed by a string, as torch allows

    opt.register_load_state_dict_pre_hook(pre)
    opt.register_load_state_dict_post_hook(post)
    saved = opt.state_dict()
    opt.load_state_dict(saved)
    assert seen["keys"] == set(saved) and seen["lr"] == 0.0125
    if cfg.ours:
        assert {"position", "outer_step", "mode"} <= seen["keys"]
        assert seen["position"] == saved["position"] == 1 % cfg.calls
    opt.load_state_dict(opt.state_dict())  # the hook's own entry survives a second round trip
    assert opt.state["loaded_by_hook"] is True
    _outer(opt, closure)
    assert torch.isfinite(_flat(model)).all()


@pytest.mark.parametrize("named", [False, True], ids=["params", "named_parameters"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_state_dict_round_trips_unchanged(cfg: Config, named: bool) -> None:
    """Loading a state dict into a fresh optimizer and saving again gives the same entries; parameter names,
    when the fresh optimizer has them, are its own and only in its top-level groups."""
    model = _model()
    opt = cfg.make(model.parameters())
    _outer(opt, Closure(model, opt))
    saved = opt.state_dict()
    fresh_model = _model()
    fresh = cfg.make(fresh_model.named_parameters() if named else fresh_model.parameters())
    fresh.load_state_dict(copy.deepcopy(saved))
    again = fresh.state_dict()
    assert set(again) == set(saved)
    names = {"param_names"} if named else set()
    assert [set(g) for g in again["param_groups"]] == [set(g) | names for g in saved["param_groups"]]
    assert set(again["state"]) == set(saved["state"])
    if "base" in again:
        assert [set(g) for g in again["base"]["param_groups"]] == [set(g) for g in saved["base"]["param_groups"]]


@pytest.mark.parametrize("make", [
    torch.optim.SGD, O.EntropySGD, O.HJ, O.Heat, O.ElasticSGD, O.Parle, O.TrivializedSGD,
    lambda p, **kw: O.LocalEntropy(p, torch.optim.Adam, **kw), lambda p, **kw: O.HeatWrapper(p, torch.optim.SGD, **kw),
], ids=["sgd_control", "entropy_sgd", "hj", "heat", "elastic", "parle", "trivialized", "entropy_adam", "heat_wrapper"])
def test_bad_arguments_are_refused_before_the_parameters_are_read(make: Callable[..., Any]) -> None:
    """As torch's optimizers do: a 2-element tensor lr is a ValueError even when ``params`` is unusable."""
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        make(None, lr=torch.tensor([1e-3, 1e-3]))


@pytest.mark.parametrize("value,match", [
    (lambda call, loss: loss.expand(3), r"scalar loss; it returned a tensor of shape \(3,\)"),
    (lambda call, loss: "0.5", "returned str"),
], ids=["vector", "string"])
@pytest.mark.parametrize("cfg", OURS, ids=[c.name for c in OURS])
def test_closure_must_return_a_real_scalar(cfg: Config, value: Any, match: str) -> None:
    model = _model()
    opt = cfg.make(model.parameters())
    w0 = _flat(model)
    with pytest.raises(TypeError, match=match):
        _outer(opt, Closure(model, opt, value=value))
    assert torch.equal(_flat(model), w0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_closure_returning_none_is_returned(cfg: Config) -> None:
    """As torch.optim does: step(closure) returns what the closure returned, None included, and steps."""
    model = _model()
    opt = cfg.make(model.parameters())
    closure = Closure(model, opt, value=lambda call, loss: None)
    for _ in range(cfg.calls):
        assert opt.step(closure) is None
    with at_anchor(opt):
        assert not torch.equal(_flat(model), _flat(_model()))


# ----------------------------------------------------------------------------- no lost weights
@pytest.mark.parametrize("kind", ["nan_loss", "inf_loss", "nan_grad", "inf_grad"])
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("cfg", OURS, ids=[c.name for c in OURS])
def test_non_finite_loss_or_gradient_loses_nothing(cfg: Config, kind: str, where: str) -> None:
    """A NaN/inf loss or gradient at the first or last call of the third outer step: the weights are back
    where that step began, the state (buffers, generators, outer_step) is as it was, the message names
    the step, and the run then continues as if the bad call had never happened."""
    model = _model()
    opt = cfg.make(model.parameters())
    closure = Closure(model, opt)
    for _ in range(2):
        _outer(opt, closure)
    w0, s0 = _flat(model), _snapshot(opt)
    at = closure.calls + (1 if where == "first" else cfg.calls)
    if kind.endswith("loss"):
        bad = NAN if kind == "nan_loss" else float("inf")
        closure.value = lambda call, loss: loss * bad if call == at else loss
    else:
        fill = NAN if kind == "nan_grad" else float("inf")

        def after(call: int) -> None:
            if call == at:
                next(model.parameters()).grad.view(-1)[0] = fill

        closure.after = after
    calls0 = closure.calls
    with pytest.raises(O.NonFiniteError, match=r"outer step 2") as info:
        _outer(opt, closure)
    assert isinstance(info.value, ValueError)
    if cfg.calls > 1 and cfg.name != "elastic":
        n = cfg.calls if cfg.name != "parle" else 3
        assert f"{1 if where == 'first' else n} of {n}" in str(info.value)
    if cfg.name in ("elastic", "parle"):
        assert f"replica {0 if where == 'first' else 1}" in str(info.value)
    assert torch.equal(_flat(model), w0)
    assert _same_state(_snapshot(opt), s0)
    # continuing from here is the run in which the bad call never happened
    closure.value, closure.after, closure.calls = None, None, calls0
    _outer(opt, closure)
    model_b = _model()
    opt_b = cfg.make(model_b.parameters())
    closure_b = Closure(model_b, opt_b)
    for _ in range(3):
        _outer(opt_b, closure_b)
    assert torch.equal(_flat(model), _flat(model_b))


def test_checkpoint_of_a_failed_step_is_the_one_before_it() -> None:
    """torch.save after a failed step writes the state before it (nothing half-updated leaks)."""
    model = _model()
    opt = O.Parle(model.parameters(), n=2, L=3, noise=1e-3, generator=[_gen(1), _gen(2)])
    closure = Closure(model, opt)
    _outer(opt, closure)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    closure.value = lambda call, loss: loss * NAN if call == 6 + 5 else loss  # replica 1, its second inner step
    with pytest.raises(O.NonFiniteError, match=r"inner step 2 of 3 of replica 1 \(outer step 1\)"):
        _outer(opt, closure)
    buf2 = io.BytesIO()
    torch.save(opt.state_dict(), buf2)
    buf.seek(0)
    buf2.seek(0)
    assert _same_state(torch.load(buf, weights_only=False), torch.load(buf2, weights_only=False))


@pytest.mark.parametrize("cfg", OURS, ids=[c.name for c in OURS])
def test_each_group_is_validated_once(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import hjsmooth.optim._base as base

    seen: list[int] = []
    real = base.validate_group

    def counting(group: dict[str, Any], checks: Any, index: int) -> None:
        seen.append(index)
        real(group, checks, index)

    monkeypatch.setattr(base, "validate_group", counting)
    model = _model()
    opt = cfg.make([{"params": list(model[0].parameters())}, {"params": list(model[2].parameters())}])
    assert seen == [0, 0, 1]  # the constructor's arguments (before the parameters are read), then each group
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))]})
    assert seen == [0, 0, 1, 2]
