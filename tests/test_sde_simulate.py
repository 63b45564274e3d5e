"""Path simulation: Fokker-Planck vs particles, Theorem 4.11, elastic replicas vs time averages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import solve_continuous_lyapunov
from test_sde_reference import viscous_reference

import hjsmooth as hs
from hjsmooth.landscapes import double_well, limit_cycles, quadratic, rugged_1d


def _chi_square_pvalue(counts: np.ndarray, probs: np.ndarray, min_expected: float = 10.0) -> float:
    """Pearson chi-square p-value of ``counts`` against cell probabilities ``probs`` (cells merged
    in order until each expects at least ``min_expected``; the mass outside the cells is one more cell)."""
    n = counts.sum()
    counts, probs = counts.ravel(), probs.ravel()
    obs, exp, acc_o, acc_p = [], [], 0.0, 0.0
    for o, p in zip(counts, probs):
        acc_o += o
        acc_p += p
        if acc_p * n >= min_expected:
            obs.append(acc_o), exp.append(acc_p)
            acc_o = acc_p = 0.0
    obs[-1] += acc_o
    exp[-1] += acc_p
    exp = np.asarray(exp) * n
    obs = np.asarray(obs)
    return float(stats.chi2.sf(np.sum((obs - exp) ** 2 / exp), df=len(obs) - 1))


def _cell_volumes(grid: hs.Grid) -> np.ndarray:
    vol = np.ones(grid.shape)
    for k, h in enumerate(grid.spacing):
        w = np.full(grid.shape[k], h)
        w[0] = w[-1] = h / 2
        vol = vol * w.reshape([-1 if j == k else 1 for j in range(grid.ndim)])
    return vol


@pytest.mark.parametrize("case", ["ornstein_uhlenbeck", "double_well"])
def test_particles_match_solve_fokker_planck(case: str) -> None:
    # rho_t = div(grad f rho) + 1/(2 beta) rho_xx for dX = -f'(X) dt + beta^{-1/2} dB, from a Gaussian
    land = quadratic(1, 1.5) if case == "ornstein_uhlenbeck" else double_well(1, tilt=0.1)
    beta, t, m0, s0 = 2.0, 1.0, -1.0, 0.2
    grid = hs.Grid((-3.0,), (3.0,), (301,))
    x_nodes = grid.axes[0]
    rho0 = np.exp(-((x_nodes - m0) ** 2) / (2 * s0**2))
    sol = hs.solve_fokker_planck(rho0, grid, t, potential=land.on_grid(grid), beta=beta)
    rho = np.asarray(sol.values) / grid.integrate(np.asarray(sol.values))
    rng = np.random.default_rng(17)
    x0 = rng.normal(m0, s0, size=(40000, 1))
    paths = hs.sde.simulate(x0, t, kind="sgd", beta=beta, rng=rng, grad_f=land.grad, dt=2e-3, grid=grid)
    probs = rho * _cell_volumes(grid)
    probs = probs / probs.sum() * paths.inside
    assert _chi_square_pvalue(np.asarray(paths.counts), probs) > 1e-3
    if case == "ornstein_uhlenbeck":
        # and the exact Gaussian: mean m0 e^{-ct}, variance s0^2 e^{-2ct} + (1 - e^{-2ct}) / (2 c beta)
        c = 1.5
        mean = m0 * math.exp(-c * t)
        var = s0**2 * math.exp(-2 * c * t) + (1 - math.exp(-2 * c * t)) / (2 * c * beta)
        assert abs(paths.x.mean() - mean) < 4 * math.sqrt(var / 40000)
        assert abs(paths.x.var() - var) < 4 * var * math.sqrt(2 / 40000) + 2e-3 * var


def test_general_sde_with_a_noise_matrix_has_the_lyapunov_covariance() -> None:
    # (6.2) with b = -A x and constant sigma: the stationary covariance C solves A C + C A^T = D / beta,
    # D = sigma sigma^T (the hjsmooth convention dX = b dt + beta^{-1/2} sigma dB)
    A = np.array([[1.0, 0.5], [-0.3, 0.8]])
    sigma = np.array([[1.0, 0.0], [0.7, 0.5]])
    beta = 2.0
    C = solve_continuous_lyapunov(A, sigma @ sigma.T / beta)
    rng = np.random.default_rng(4)
    paths = hs.sde.simulate(np.zeros(2), 8.0, n_paths=20000, kind="sde", beta=beta, rng=rng,
                            drift=lambda x: -x @ A.T, sigma=sigma, dt=5e-3)
    emp = np.cov(np.asarray(paths.x).T)
    tol = 5 * np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / 20000) + 0.01 * np.abs(C).max()
    assert np.all(np.abs(emp - C) < tol), (emp, C)


def test_example_6_43_non_gradient_drift_keeps_the_gibbs_steady_state() -> None:
    # Example 6.43: dX = (j - grad Phi) dt + sqrt(2) dB (beta = 1/2): steady state exp(-Phi)/Z for any lam
    lc = limit_cycles(1.0)
    grid = hs.Grid((-2.5, -2.5), (2.5, 2.5), (26, 26))
    rng = np.random.default_rng(6)
    paths = hs.sde.simulate(rng.normal(size=(20000, 2)) * 0.5, 4.0, kind="sde", beta=lc.beta, rng=rng,
                            drift=lc.drift, dt=2e-3, grid=grid)
    # 9 fine cells per histogram cell, so that the histogram cells' edges are fine cells' edges
    fine = hs.Grid((-2.5, -2.5), (2.5, 2.5), (226, 226))
    gibbs = np.exp(-lc.potential.on_grid(fine))
    # probabilities of the histogram cells by integrating the Gibbs density on the fine grid
    big = hs.Grid((-8.0, -8.0), (8.0, 8.0), (801, 801))
    z = big.integrate(np.exp(-lc.potential.on_grid(big)))
    probs = np.zeros(grid.shape)
    idx = [np.clip(np.rint((fine.axes[k] - grid.lower[k]) / grid.spacing[k]).astype(int), 0, grid.shape[k] - 1)
           for k in range(2)]
    w = _cell_volumes(fine) * gibbs / z
    np.add.at(probs, (idx[0][:, None], idx[1][None, :]), w)
    assert _chi_square_pvalue(np.asarray(paths.counts), probs) > 1e-3


def test_theorem_4_11_with_the_closed_form_riccati_control() -> None:
    # f = a x^2/2, V = c x^2/2: the value u(x0, 0) = E[V(X_csgd(T))] + 1/2 E[int |alpha|^2] (optimality)
    # and it is below E[V(X_sgd(T))] (Theorem 4.11)
    a, c, beta, T = 1.0, 4.0, 2.0, 1.0
    control = hs.sde.riccati_control(a, c, beta, T)
    land = quadratic(1, a)
    x0 = np.array([1.5])
    rng = np.random.default_rng(12)
    n = 20000
    ctrl = hs.sde.simulate(x0, T, n_paths=n, kind="controlled", beta=beta, rng=rng, grad_f=land.grad,
                           control=control, dt=1e-3)
    sgd = hs.sde.simulate(x0, T, n_paths=n, kind="sgd", beta=beta, rng=rng, grad_f=land.grad, dt=1e-3)
    V = lambda x: c * np.sum(np.asarray(x) ** 2, axis=-1) / 2  # noqa: E731
    cost = V(ctrl.x) + 0.5 * np.asarray(ctrl.running_cost)
    sgd_v = V(sgd.x)
    se_cost, se_sgd = cost.std() / math.sqrt(n), sgd_v.std() / math.sqrt(n)
    assert abs(cost.mean() - float(control.value(x0[None], 0.0)[0])) < 4 * se_cost + 5e-3
    assert abs(sgd_v.mean() - control.sgd_expectation(x0)) < 4 * se_sgd + 5e-3
    gap = sgd_v.mean() - cost.mean()
    assert gap > 4 * math.hypot(se_cost, se_sgd)  # the improvement is significant
    # E[V(X_csgd)] <= E[V(X_sgd)] - 1/2 E[int |alpha|^2]
    assert V(ctrl.x).mean() <= sgd_v.mean() - 0.5 * np.mean(ctrl.running_cost) + 4 * math.hypot(se_cost, se_sgd)


def test_theorem_4_11_with_the_grid_hjb_control() -> None:
    # a non-convex f (tilted double well), V = (x - 1)^2 / 2, control from solve_hjb on a grid
    land = double_well(1, tilt=0.1)
    beta, T = 2.0, 1.0
    grid = hs.Grid((-3.5,), (3.5,), (351,))
    V_grid = (grid.axes[0] - 1.0) ** 2 / 2
    sol = hs.solve_hjb(V_grid, grid, T, potential=land.on_grid(grid), beta=beta, save_at=101)
    control = hs.sde.grid_control(sol.snapshots, sol.times, grid)
    x0 = np.array([-1.0])
    rng = np.random.default_rng(13)
    n = 20000
    ctrl = hs.sde.simulate(x0, T, n_paths=n, kind="controlled", beta=beta, rng=rng, grad_f=land.grad,
                           control=control, dt=2e-3)
    sgd = hs.sde.simulate(x0, T, n_paths=n, kind="sgd", beta=beta, rng=rng, grad_f=land.grad, dt=2e-3)
    V = lambda x: (np.asarray(x)[..., 0] - 1.0) ** 2 / 2  # noqa: E731
    cost = V(ctrl.x) + 0.5 * np.asarray(ctrl.running_cost)
    se = math.hypot(cost.std(), V(sgd.x).std()) / math.sqrt(n)
    # Theorem 4.11: E[V(X_csgd)] + 1/2 E[int |alpha|^2] <= E[V(X_sgd)], with a clear margin here
    assert cost.mean() < V(sgd.x).mean() - 4 * se
    # and the controlled cost is the grid value function u(x0, 0) (the control is optimal)
    u0 = float(np.interp(x0[0], grid.axes[0], np.asarray(sol.snapshots[0])))
    assert abs(cost.mean() - u0) < 4 * cost.std() / math.sqrt(n) + 0.02


def test_elastic_replica_average_equals_the_time_average() -> None:
    # section 4.3.3: averaging 256 replicas at one time == averaging one chain over time
    land = rugged_1d()
    t, beta = 0.5, 2.0
    x = np.linspace(-2.0, 2.0, 12)[:, None]
    replicas = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, kind="elastic", rng=np.random.default_rng(1),
                                    chains=512)
    single = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, kind="viscous", rng=np.random.default_rng(2),
                                  chains=1, steps=20000)
    assert replicas.stderr_method == "chains" and single.stderr_method == "batch_means"
    z = (replicas.grad - single.grad) / np.hypot(replicas.stderr, single.stderr)
    assert np.max(np.abs(z)) < 4.5 and np.mean(z**2) < 1 + 5 * math.sqrt(2 / z.size), np.round(z, 2)
    ref = viscous_reference(land, x, t, beta)
    assert np.max(np.abs((replicas.grad - ref) / replicas.stderr)) < 4.5


def test_entropy_sgd_homogenises_to_the_local_entropy_gradient_flow() -> None:
    # Theorem 4.5: as eps -> 0, X of (4.21) follows dX = -grad u(X, gamma) ds
    land = rugged_1d()
    gamma, beta, T = 0.5, 2.0, 1.0
    rng = np.random.default_rng(3)
    paths = hs.sde.simulate(np.array([-2.0]), T, n_paths=64, kind="entropy_sgd", beta=beta, rng=rng,
                            grad_f=land.grad, gamma=gamma, epsilon=2e-3, replicas=4)
    grid = hs.Grid((-8.0,), (8.0,), (3201,))
    du = np.gradient(np.asarray(hs.local_entropy(land.on_grid(grid), grid, gamma, beta)), grid.axes[0])
    x, ds = -2.0, 1e-3
    for _ in range(int(T / ds)):
        x -= ds * np.interp(x, grid.axes[0], du)
    xs = np.asarray(paths.x)[:, 0]
    # the homogenised limit, up to the O(sqrt(eps)) fluctuations that the path spread measures
    assert abs(xs.mean() - x) < 4 * xs.std() / math.sqrt(xs.size) + 0.02, (xs.mean(), x)
    assert xs.std() < 0.1


def test_paths_bookkeeping() -> None:
    land = quadratic(2, 1.0)
    x0 = np.random.default_rng(0).normal(size=(50, 2))
    out = hs.sde.simulate(x0, 1.0, beta=1.0, rng=1, grad_f=land.grad, dt=0.01, save_at=[0.25, 0.5])
    assert out.paths.shape == (3, 50, 2) and list(out.times) == [0.25, 0.5, 1.0]
    np.testing.assert_array_equal(out.paths[-1], out.x)
    assert out.steps == 100
    zero = hs.sde.simulate(x0, 0.0, beta=1.0, rng=1, grad_f=land.grad)
    np.testing.assert_array_equal(zero.x, x0)
    assert zero.x is not x0
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (5, 5))
    dens, counts, inside = hs.sde.histogram_density(x0, grid)
    assert counts.sum() == np.sum(np.all(np.abs(x0) <= 1, axis=1))
    assert np.sum(dens * _cell_volumes(grid)) == pytest.approx(inside)
