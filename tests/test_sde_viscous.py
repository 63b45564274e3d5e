"""Viscous HJ (Local Entropy) sampler: the bridge to the grid solver, Lemma 4.4, error bars."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_sde_reference import grid_gradient, viscous_reference

import hjsmooth as hs
from hjsmooth.landscapes import Landscape, double_well, quadratic, rastrigin, rugged_1d, wide_sharp_2d

Z_MAX = 4.5  # per-point bound on |z|; with ~15-30 points and t-distributed error bars (>= 31 dof) a fair
             # sampler exceeds it with probability < 1e-2, a biased one at the scale of the error bar fails


def _check_z(z: np.ndarray) -> None:
    z = np.asarray(z).ravel()
    assert np.all(np.isfinite(z))
    assert np.max(np.abs(z)) < Z_MAX, np.round(z, 2)
    # the z-scores must also be spread like N(0, 1): mean square within 5 standard errors of 1
    assert np.mean(z**2) < 1 + 5 * math.sqrt(2 / z.size), np.mean(z**2)


CASES_1D = [
    pytest.param(rugged_1d(), 0.5, 2.0, id="rugged_1d"),
    pytest.param(double_well(1, tilt=0.1), 0.5, 2.0, id="double_well_1d"),
    pytest.param(rastrigin(1), 0.3, 3.0, id="rastrigin_1d"),
]


@pytest.mark.parametrize("form", ["rho1", "rho2"])
@pytest.mark.parametrize(("land", "t", "beta"), CASES_1D)
def test_bridge_1d_matches_local_entropy_grid(land: Landscape, t: float, beta: float, form: str) -> None:
    x = np.linspace(land.lower[0] + 0.6, land.upper[0] - 0.6, 15)[:, None]
    res = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=np.random.default_rng(11), chains=32, form=form)
    ref, grid_err = grid_gradient(lambda f, g: hs.local_entropy(f, g, t, beta), land, x, 2401,
                                  lower=(-8.0,), upper=(8.0,))
    assert res.grad.shape == x.shape and res.stderr.shape == x.shape
    assert res.stderr_method == "chains"
    _check_z((res.grad - ref) / np.sqrt(res.stderr**2 + grid_err**2))
    # the quadrature of rho_1 (Lemma 4.1) and the grid solver agree to the grid's accuracy
    np.testing.assert_allclose(ref, viscous_reference(land, x, t, beta), atol=1e-3)


CASES_2D = [
    pytest.param(wide_sharp_2d(), 0.4, 2.0, 100.0, id="wide_sharp_2d"),
    pytest.param(rastrigin(2), 0.3, 3.0, None, id="rastrigin_2d"),
]


@pytest.mark.parametrize(("land", "t", "beta", "lipschitz"), CASES_2D)
def test_bridge_2d_matches_local_entropy_grid(land: Landscape, t: float, beta: float, lipschitz) -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.8, 1.8, size=(10, 2))
    res = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=rng, chains=32, lipschitz=lipschitz)
    ref, grid_err = grid_gradient(lambda f, g: hs.local_entropy(f, g, t, beta), land, x, 481)
    _check_z((res.grad - ref) / np.sqrt(res.stderr**2 + grid_err**2))


def test_lemma_4_4_mean_and_covariance_on_a_quadratic() -> None:
    # f(y) = y^T Q y / 2 + p.y; rho_1(y; x) ∝ exp(-beta (f(y) + |x - y|^2/(2t))) is Gaussian with
    # precision beta A, A = Q + I/t, and mean solving A mu = x/t - p, i.e.
    #     mu = x - A^{-1} (Q x + p),   Sigma = A^{-1} / beta.
    # Q has a negative eigenvalue; A is still positive definite (t < 1/0.5).
    Q = np.array([[2.0, 0.6], [0.6, -0.5]])
    p = np.array([0.3, -0.7])
    t, beta = 0.8, 4.0
    land = Landscape("quad", 2, (-3.0, -3.0), (3.0, 3.0), lambda xp, y: 0.5 * np.einsum("...i,ij,...j->...", y, Q, y) + y @ p,
                     lambda xp, y: y @ Q + p)
    x = np.array([[0.5, -1.0], [-1.2, 0.4], [2.0, 1.5]])
    A = Q + np.eye(2) / t
    # a small step (eta = 0.02 / (1/t + |Q|)) keeps the O(eta) bias of the Euler-Maruyama chain, about
    # eta |A| / 2 = 1% in the covariance, below the statistical tolerance
    res = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=np.random.default_rng(3), chains=64, steps=4000,
                               burn_in=400, step_size=0.02 / (1 / t + 2.2), return_cov=True)
    mu = x - np.linalg.solve(A, (x @ Q + p).T).T
    sigma = np.linalg.inv(A) / beta
    _check_z((res.mean_y - mu) / (res.stderr * t))
    _check_z((res.grad - (x - mu) / t) / res.stderr)
    ess = np.min(res.ess, axis=-1)
    for i in range(x.shape[0]):
        tol = 5 * np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma**2) / ess[i]) + 0.01 * np.abs(sigma)
        assert np.all(np.abs(res.cov_y[i] - sigma) < tol), (res.cov_y[i], sigma)


def test_lemma_4_4_covariance_bias_of_the_default_step_is_the_euler_maruyama_one() -> None:
    # at the default step the chain's invariant law is Gaussian with covariance
    # (1/beta) A^{-1} (I - eta A / 2)^{-1} (exact for the discrete chain): check that, not Lemma 4.4's limit
    c, t, beta = 3.0, 0.5, 2.0
    land = quadratic(1, c)
    x = np.array([[0.7]])
    res = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=np.random.default_rng(8), chains=256,
                               lipschitz=c, return_cov=True)
    a = c + 1 / t
    eta = res.step_size
    assert eta == pytest.approx(0.1 / (1 / t + c))
    expected = 1 / (beta * a * (1 - eta * a / 2))
    tol = 5 * math.sqrt(2 / float(res.ess[0, 0])) * expected
    assert abs(float(res.cov_y[0, 0, 0]) - expected) < tol
    assert abs(expected - 1 / (beta * a)) > tol / 5  # the bias itself is visible at this sample size


def test_closed_form_example_4_12_with_exponential_averaging() -> None:
    # f = c|x|^2/2: grad u = x / (t + 1/c); Algorithm 2's running average is unbiased here too
    c, t, beta = 2.0, 0.6, 1.5
    land = quadratic(2, c)
    x = np.random.default_rng(0).normal(size=(20, 2))
    uniform = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=np.random.default_rng(1), chains=16)
    ema = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=np.random.default_rng(2), chains=16,
                               averaging="exponential", alpha=0.75)
    exact = x / (t + 1 / c)
    _check_z((uniform.grad - exact) / uniform.stderr)
    _check_z((ema.grad - exact) / ema.stderr)
    # an average over ~1/(1 - alpha) = 4 steps is far noisier than one over 40 relaxation times
    assert np.median(ema.stderr) > 3 * np.median(uniform.stderr)


def test_noisy_minibatch_gradient_keeps_the_temperature() -> None:
    # (4.40): the gradient carries N(0, sigma^2) noise; the injected noise is lowered so that the
    # total temperature stays 1/beta; the estimate matches the exact gradient
    land = rugged_1d()
    t, beta, sigma = 0.5, 2.0, 1.5

    def noisy(y, rng):
        return land.grad(y) + sigma * rng.standard_normal(y.shape)

    x = np.linspace(-2.0, 2.0, 12)[:, None]
    res = hs.sde.smoothed_grad(noisy, x, t, beta=beta, rng=np.random.default_rng(4), chains=32,
                               noisy_grad=True, grad_noise_var=sigma**2, lipschitz=6.0)
    _check_z((res.grad - viscous_reference(land, x, t, beta)) / res.stderr)
    with pytest.raises(ValueError, match="grad_noise_var"):
        hs.sde.smoothed_grad(noisy, x, t, beta=beta, rng=0, noisy_grad=True, grad_noise_var=1e4)


@pytest.mark.parametrize("chains", [1, 8])
def test_error_bars_are_calibrated(chains: int) -> None:
    # 300 independent estimates at the same point: their spread must match the reported stderr
    land = rugged_1d()
    t, beta = 0.5, 2.0
    x = np.full((300, 1), 0.4)
    res = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, rng=np.random.default_rng(21), chains=chains,
                               steps=2000 // chains * 2)
    assert res.stderr_method == ("batch_means" if chains == 1 else "chains")
    spread = float(np.std(res.grad, ddof=1))
    reported = float(np.sqrt(np.mean(res.stderr**2)))
    # the spread of 300 draws is known to ~ +-4% (1 sigma); batch means with 20 batches carry a little
    # autocorrelation between neighbouring batches, hence the wider band
    assert 0.75 < reported / spread < 1.3, (reported, spread)
    ref = viscous_reference(land, x[:1], t, beta)[0, 0]
    assert abs(float(np.mean(res.grad)) - ref) < 4 * spread / math.sqrt(300) + 3e-3


def test_t_zero_returns_the_gradient() -> None:
    land = rugged_1d()
    x = np.array([[0.3], [1.0]])
    res = hs.sde.smoothed_grad(land.grad, x, 0.0, beta=1.0, rng=0)
    np.testing.assert_array_equal(res.grad, land.grad(x))
    assert np.all(res.stderr == 0) and res.steps == 0


def test_default_step_and_lengths_follow_the_coupling_scale() -> None:
    land = quadratic(1, 1.0)
    res = hs.sde.smoothed_grad(land.grad, np.zeros((1, 1)), 0.5, beta=1.0, rng=0, lipschitz=1.0)
    assert res.step_size == pytest.approx(0.1 / (2.0 + 1.0))
    assert res.burn_in == math.ceil(10 * 0.5 / res.step_size - 1e-9)
    assert res.steps == math.ceil(40 * 0.5 / res.step_size - 1e-9)
    assert res.chains == 16
    # without `lipschitz`, L is twice |f''| found at x by power iteration: |f''| = 1 here
    auto = hs.sde.smoothed_grad(land.grad, np.zeros((1, 1)), 0.5, beta=1.0, rng=0)
    assert auto.info["lipschitz_used"] == pytest.approx(2.0, rel=1e-6)
