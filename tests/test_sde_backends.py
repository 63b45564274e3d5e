"""One implementation for numpy and torch: same numbers, reproducible seeds, errors that name the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.landscapes import quadratic, rugged_1d, wide_sharp_2d

KINDS = [("viscous", 2.0), ("elastic", 2.0), ("heat", 2.0), ("inviscid", None)]


@pytest.mark.parametrize(("kind", "beta"), KINDS)
def test_each_backend_returns_its_own_array_type_and_agrees_with_numpy(backend, kind: str, beta) -> None:
    # a numpy Generator draws the same noise for every backend, so float64 results agree to rounding
    land = wide_sharp_2d()
    x_np = np.array([[-0.5, 0.2], [1.0, 0.7], [0.0, -1.0]])
    kwargs = dict(beta=beta, kind=kind, chains=8, steps=50 if kind == "viscous" else None, lipschitz=5.0)
    ref = hs.sde.smoothed_grad(land.grad, x_np, 0.3, rng=np.random.default_rng(7), **kwargs)
    x = backend.asarray(x_np)
    out = hs.sde.smoothed_grad(land.grad, x, 0.3, rng=np.random.default_rng(7), **kwargs)
    assert backend.is_same_kind(out.grad, x) and backend.is_same_kind(out.stderr, x)
    np.testing.assert_allclose(backend.to_numpy(out.grad), ref.grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(out.stderr), ref.stderr, rtol=1e-8, atol=1e-12)


def test_simulate_agrees_across_backends(backend) -> None:
    land = rugged_1d()
    x0 = np.linspace(-2, 2, 7)[:, None]
    ref = hs.sde.simulate(x0, 0.5, beta=2.0, rng=np.random.default_rng(3), grad_f=land.grad, dt=0.01)
    out = hs.sde.simulate(backend.asarray(x0), 0.5, beta=2.0, rng=np.random.default_rng(3), grad_f=land.grad, dt=0.01)
    assert backend.is_same_kind(out.x, backend.asarray(x0))
    np.testing.assert_allclose(backend.to_numpy(out.x), ref.x, rtol=1e-10, atol=1e-12)


def test_torch_generator_is_reproducible_and_statistically_consistent_with_numpy() -> None:
    torch = pytest.importorskip("torch")
    land = rugged_1d()
    x = np.linspace(-2, 2, 10)[:, None]
    xt = torch.as_tensor(x)
    a = hs.sde.smoothed_grad(land.grad, xt, 0.5, beta=2.0, rng=torch.Generator().manual_seed(5), chains=32)
    b = hs.sde.smoothed_grad(land.grad, xt, 0.5, beta=2.0, rng=torch.Generator().manual_seed(5), chains=32)
    assert torch.equal(a.grad, b.grad) and torch.equal(a.stderr, b.stderr)
    c = hs.sde.smoothed_grad(land.grad, x, 0.5, beta=2.0, rng=np.random.default_rng(5), chains=32)
    z = (a.grad.numpy() - c.grad) / np.hypot(a.stderr.numpy(), c.stderr)
    assert np.max(np.abs(z)) < 4.5 and np.mean(z**2) < 1 + 5 * math.sqrt(2 / z.size)
    # int seeds make a generator of the array's kind
    d = hs.sde.smoothed_grad(land.grad, xt, 0.5, beta=2.0, rng=5, chains=32)
    assert torch.equal(d.grad, a.grad)


def test_same_seed_same_result_numpy() -> None:
    land = rugged_1d()
    x = np.array([[0.1], [1.3]])
    for kind in ("viscous", "heat", "elastic"):
        a = hs.sde.smoothed_grad(land.grad, x, 0.5, beta=2.0, kind=kind, rng=np.random.default_rng(9))
        b = hs.sde.smoothed_grad(land.grad, x, 0.5, beta=2.0, kind=kind, rng=np.random.default_rng(9))
        np.testing.assert_array_equal(a.grad, b.grad)


@pytest.mark.parametrize(("kind", "beta"), KINDS)
def test_float32_keeps_its_dtype_and_is_close_to_float64(kind: str, beta) -> None:
    land = quadratic(2, 1.0)
    x = np.array([[0.5, -1.0], [1.0, 0.3]])
    t = 0.5
    out = hs.sde.smoothed_grad(land.grad, x.astype(np.float32), t, beta=beta, kind=kind, rng=1, chains=64)
    assert out.grad.dtype == np.float32 and out.stderr.dtype == np.float32
    exact = x / (t + 1.0) if kind != "heat" else x
    assert np.all(np.abs(out.grad - exact) < 5 * out.stderr + 1e-3)


def test_batch_shapes_are_kept() -> None:
    land = quadratic(3, 2.0)
    x = np.zeros((2, 4, 3))
    res = hs.sde.smoothed_grad(land.grad, x, 0.2, beta=1.0, rng=0, chains=4, steps=20)
    assert res.grad.shape == (2, 4, 3) and res.ess.shape == (2, 4, 3)
    one = hs.sde.smoothed_grad(land.grad, np.zeros(3), 0.2, beta=1.0, rng=0, chains=4, steps=20)
    assert one.grad.shape == (3,)
    inv = hs.sde.smoothed_grad(land.grad, x, 0.2, kind="inviscid")
    assert inv.converged.shape == (2, 4) and inv.convex.shape == (2, 4)
    np.testing.assert_allclose(inv.grad, x / (0.2 + 0.5), atol=1e-8)


def test_bad_input_is_refused_with_the_argument_named() -> None:
    land = quadratic(1, 1.0)
    g = land.grad
    x = np.zeros((2, 1))
    cases = [
        (dict(kind="diffusion", beta=1.0, rng=0), ValueError, "kind"),
        (dict(beta=1.0, rng=0, t=-1.0), ValueError, "`t`"),
        (dict(rng=0), ValueError, "beta"),
        (dict(beta=math.inf, rng=0), ValueError, "beta"),
        (dict(kind="inviscid", beta=2.0), ValueError, "beta"),
        (dict(beta=-1.0, rng=0), ValueError, "beta"),
        (dict(beta=1.0, rng="seed"), TypeError, "rng"),
        (dict(beta=1.0, rng=0, chains=0), ValueError, "chains"),
        (dict(beta=1.0, rng=0, chains=2.5), TypeError, "chains"),
        (dict(beta=1.0, rng=0, step_size=-0.1), ValueError, "step_size"),
        (dict(beta=1.0, rng=0, alpha=1.0, averaging="exponential"), ValueError, "alpha"),
        (dict(beta=1.0, rng=0, averaging="median"), ValueError, "averaging"),
        (dict(beta=1.0, rng=0, form="rho3"), ValueError, "form"),
        (dict(beta=1.0, rng=0, kind="elastic", chains=1), ValueError, "chains"),
        (dict(beta=1.0, rng=0, chains=1, steps=10), ValueError, "steps"),
    ]
    for kwargs, error, word in cases:
        t = kwargs.pop("t", 0.5)
        with pytest.raises(error, match=word):
            hs.sde.smoothed_grad(g, x, t, **kwargs)
    with pytest.raises(ValueError, match="`x`"):
        hs.sde.smoothed_grad(g, np.array([[np.nan]]), 0.5, beta=1.0, rng=0)
    with pytest.raises(ValueError, match="grad_f"):
        hs.sde.smoothed_grad(lambda y: y[..., :0], x, 0.5, beta=1.0, rng=0)
    with pytest.raises(TypeError, match="grad_f"):
        hs.sde.smoothed_grad("not callable", x, 0.5, beta=1.0, rng=0)
    with pytest.raises(FloatingPointError, match="step_size"):
        hs.sde.smoothed_grad(lambda y: 1e3 * y, x, 0.5, beta=1.0, rng=0, step_size=0.005, steps=200)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="rng"):
        hs.sde.smoothed_grad(g, x, 0.5, beta=1.0, rng=torch.Generator())


def test_simulate_bad_input() -> None:
    land = quadratic(1, 1.0)
    x0 = np.zeros((3, 1))
    with pytest.raises(ValueError, match="grad_f"):
        hs.sde.simulate(x0, 1.0, beta=1.0, rng=0)
    with pytest.raises(ValueError, match="drift"):
        hs.sde.simulate(x0, 1.0, kind="sde", beta=1.0, rng=0)
    with pytest.raises(ValueError, match="control"):
        hs.sde.simulate(x0, 1.0, kind="controlled", beta=1.0, rng=0, grad_f=land.grad)
    with pytest.raises(ValueError, match="gamma"):
        hs.sde.simulate(x0, 1.0, kind="entropy_sgd", beta=1.0, rng=0, grad_f=land.grad)
    with pytest.raises(ValueError, match="sigma"):
        hs.sde.simulate(x0, 1.0, kind="sde", beta=1.0, rng=0, drift=land.grad, sigma=np.eye(2))
    with pytest.raises(ValueError, match="dt"):
        hs.sde.simulate(x0, 1.0, beta=1.0, rng=0, grad_f=land.grad, dt=0.0)
    with pytest.raises(ValueError, match="x0"):
        hs.sde.simulate(x0, 1.0, beta=1.0, rng=0, grad_f=land.grad, n_paths=4)
    with pytest.raises(ValueError, match="`t`"):
        hs.sde.simulate(x0, -1.0, beta=1.0, rng=0, grad_f=land.grad)


@pytest.mark.gpu
def test_cuda_tensors_with_a_cuda_generator() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    land = rugged_1d()
    x = torch.linspace(-2, 2, 10, dtype=torch.float64, device="cuda")[:, None]
    gen = torch.Generator(device="cuda").manual_seed(0)
    res = hs.sde.smoothed_grad(land.grad, x, 0.5, beta=2.0, rng=gen, chains=32)
    assert res.grad.device.type == "cuda"
    c = hs.sde.smoothed_grad(land.grad, x.cpu().numpy(), 0.5, beta=2.0, rng=np.random.default_rng(1), chains=32)
    z = (res.grad.cpu().numpy() - c.grad) / np.hypot(res.stderr.cpu().numpy(), c.stderr)
    assert np.max(np.abs(z)) < 4.5
    p = hs.sde.simulate(x, 0.5, beta=2.0, rng=gen, grad_f=land.grad, dt=0.01)
    assert p.x.device.type == "cuda"
