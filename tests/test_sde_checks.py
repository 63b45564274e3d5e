"""The samplers check every result of the user's callables (shape, array type, finiteness) and name the
culprit, and take their generator as SPEC 7 says (None: fresh entropy; int: a new seeded generator;
a Generator: used as it is)."""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs

X = np.linspace(-1.0, 1.0, 3)[:, None]


def later_wrong_shape(after: int):
    """grad f = y for ``after`` calls, then an array with one extra column."""
    calls = {"n": 0}

    def grad(y):
        calls["n"] += 1
        return y if calls["n"] <= after else np.concatenate([y, y], axis=-1)

    return grad


def later_nan(after: int):
    calls = {"n": 0}

    def grad(y):
        calls["n"] += 1
        g = np.array(y, copy=True)
        if calls["n"] > after:
            g[..., 0] = np.nan
        return g

    return grad


@pytest.mark.parametrize("kind", ["viscous", "elastic", "inviscid"])
def test_a_later_result_of_the_wrong_shape_is_refused_by_name(kind: str) -> None:
    beta = None if kind == "inviscid" else 2.0
    with pytest.raises(ValueError, match=r"`grad_f` must return an array of the input's shape .* \(call 3\)"):
        hs.sde.smoothed_grad(later_wrong_shape(2), X, 0.5, beta, kind=kind, rng=0, lipschitz=1.0, chains=4,
                             steps=50)


@pytest.mark.parametrize("kind", ["viscous", "elastic", "inviscid", "heat"])
def test_a_nan_gradient_is_refused_by_name(kind: str) -> None:
    """Not 'pass a smaller step', not 'cannot convert float NaN to integer', not a silent NaN."""
    beta = None if kind == "inviscid" else 2.0
    for after in (0,) if kind == "heat" else (0, 3):  # the first call, and a later one (heat calls once)
        with pytest.raises(FloatingPointError, match=r"`grad_f` returned \d+ NaN or inf value\(s\) at finite points \(call \d+\)"):
            hs.sde.smoothed_grad(later_nan(after), X, 0.5, beta, kind=kind, rng=0, chains=4, steps=50)


def test_a_nan_gradient_in_simulate_is_refused_by_name() -> None:
    with pytest.raises(FloatingPointError, match="`grad_f` returned"):
        hs.sde.simulate(X, 1.0, beta=1.0, rng=0, grad_f=later_nan(5))
    with pytest.raises(FloatingPointError, match="`drift` returned"):
        hs.sde.simulate(X, 1.0, kind="sde", beta=1.0, rng=0, drift=later_nan(5))
    with pytest.raises(ValueError, match="`grad_f` must return an array of the input's shape"):
        hs.sde.simulate(X, 1.0, beta=1.0, rng=0, grad_f=later_wrong_shape(5))


def test_chains_that_overflow_are_blamed_on_the_step_not_on_grad_f() -> None:
    with pytest.raises(FloatingPointError, match="diverged.*pass a smaller `dt`"), np.errstate(over="ignore", invalid="ignore"):
        hs.sde.simulate(X, 100.0, beta=1.0, rng=0, grad_f=lambda y: -(y**3), dt=0.5)
    with pytest.raises(FloatingPointError, match="diverged.*pass a smaller `step_size`"), np.errstate(over="ignore", invalid="ignore"):
        hs.sde.smoothed_grad(lambda y: -(y**3), X, 1.0, 2.0, rng=0, step_size=0.5, steps=100)


def test_the_control_is_checked_at_every_call() -> None:
    """A control returning (3, 3) for x of shape (3, 1) used to broadcast into x silently."""
    quadratic = lambda y: y  # noqa: E731
    wrong = lambda x, s: np.ones((x.shape[0], x.shape[0]))  # noqa: E731
    with pytest.raises(ValueError, match=r"`control` must return an array of the input's shape \(3, 1\), got \(3, 3\)"):
        hs.sde.simulate(X, 0.1, kind="controlled", beta=1.0, rng=0, grad_f=quadratic, control=wrong)
    calls = {"n": 0}

    def nan_later(x, s):
        calls["n"] += 1
        return x * (np.nan if calls["n"] > 4 else 1.0)

    with pytest.raises(FloatingPointError, match="`control` returned"):
        hs.sde.simulate(X, 0.1, kind="controlled", beta=1.0, rng=0, grad_f=quadratic, control=nan_later)
    with pytest.raises(TypeError, match="`control` must return the input's array type"):
        hs.sde.simulate(X, 0.1, kind="controlled", beta=1.0, rng=0, grad_f=quadratic,
                        control=lambda x, s: x.tolist())
    paths = hs.sde.simulate(X, 0.1, kind="controlled", beta=1.0, rng=0, grad_f=quadratic,
                            control=hs.sde.riccati_control(1.0, 1.0, 1.0, 0.1))
    assert paths.x.shape == (3, 1)


@pytest.mark.parametrize("kind", ["viscous", "heat", "elastic"])
def test_rng_none_means_fresh_entropy(kind: str) -> None:
    """SPEC 7: rng=None draws fresh entropy (two calls differ); an int seeds a new generator (two calls agree);
    a Generator is used as it is (it advances)."""
    grad = lambda y: y**3 - y  # noqa: E731
    run = lambda rng: hs.sde.smoothed_grad(grad, X, 0.5, 2.0, kind=kind, rng=rng, chains=8, steps=40,  # noqa: E731
                                           lipschitz=3.0).grad
    assert not np.array_equal(run(None), run(None))
    np.testing.assert_array_equal(run(7), run(7))
    gen = np.random.default_rng(7)
    first = run(gen)
    np.testing.assert_array_equal(first, run(7))
    assert not np.array_equal(run(gen), first)  # the same generator, advanced
    a = hs.sde.simulate(X, 0.1, beta=1.0, grad_f=grad)  # rng defaults to None
    b = hs.sde.simulate(X, 0.1, beta=1.0, grad_f=grad)
    assert not np.array_equal(a.x, b.x)


def test_rng_none_with_torch_gives_a_torch_generator() -> None:
    torch = pytest.importorskip("torch")
    x = torch.as_tensor(X)
    g = hs.sde.smoothed_grad(lambda y: y, x, 0.5, 2.0, kind="heat", rng=None, chains=8).grad
    assert isinstance(g, torch.Tensor)
    with pytest.raises(ValueError, match="`rng`"):
        hs.sde.make_generator(-1, X)
