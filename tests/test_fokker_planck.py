"""Fokker-Planck solver: closed forms (OU, Gibbs, Lyapunov), Example 6.43, conservation, backends, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import hjsmooth as hs
from hjsmooth.solvers.fokker_planck import fokker_planck_operator, solve_fokker_planck
from hjsmooth.solvers.fokker_planck_steady import fokker_planck_steady_state
from hjsmooth.solvers.scharfetter_gummel import bernoulli


# ----------------------------------------------------------------------------- helpers


def gaussian(grid: hs.Grid, mean, var) -> np.ndarray:
    """A Gaussian density on the grid, normalised with the grid's quadrature."""
    rho = np.ones(grid.shape)
    for x, m, v in zip(grid.coords, mean, var):
        rho = rho * np.exp(-((x - m) ** 2) / (2 * v))
    return rho / grid.integrate(rho)


def moments(grid: hs.Grid, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance matrix of a density on the grid."""
    mass = grid.integrate(rho)
    mean = np.array([grid.integrate(x * rho) / mass for x in grid.coords])
    cov = np.array(
        [[grid.integrate((x - mx) * (y - my) * rho) / mass for y, my in zip(grid.coords, mean)]
         for x, mx in zip(grid.coords, mean)]
    )
    return mean, cov


def observed_order(errors: list[float]) -> float:
    """Order of convergence from errors on grids refined by 2 (the last pair)."""
    return math.log2(errors[-2] / errors[-1])


def example_643(grid: hs.Grid, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Example 6.43: drift ``j - grad Phi`` (shape (2, *grid.shape)) and Phi."""
    x1, x2 = grid.coords
    phi = (x1**2 - 1) ** 2 / 4 + x2**2 / 2
    grad_phi = np.stack([x1**3 - x1, x2])
    j_ss = np.exp(-((x1**2 + x2**2) ** 2) / 4) * np.stack([-x2, x1])
    j = lam * np.exp(phi) * j_ss
    return j - grad_phi, phi


def discrete_gibbs(grid: hs.Grid, f: np.ndarray, beta: float) -> np.ndarray:
    rho = np.exp(-2 * beta * (f - f.min()))
    return rho / grid.integrate(rho)


# ----------------------------------------------------------------------------- Bernoulli


def test_bernoulli_matches_definition_and_limits(backend) -> None:
    z = np.concatenate([-np.logspace(-9, 2.5, 60), [0.0], np.logspace(-9, 2.5, 60)])
    got = backend.to_numpy(bernoulli(backend.asarray(z)))
    nz = z != 0
    ref = np.empty_like(z)
    ref[nz] = z[nz] / np.expm1(z[nz])
    ref[~nz] = 1.0
    np.testing.assert_allclose(got, ref, rtol=2e-15 * 10, atol=1e-300)
    extreme = backend.to_numpy(bernoulli(backend.asarray([-1e4, 1e4, 800.0])))
    np.testing.assert_allclose(extreme, [1e4, 0.0, 800 * math.exp(-800)], rtol=1e-12, atol=0)
    assert np.all(np.isfinite(extreme))


def test_bernoulli_is_finite_and_accurate_for_any_argument(backend) -> None:
    """No NaN at +-inf, relative precision ~eps a down to the underflow near 745 (a e^{-a} loses digits
    in the subnormal range: 29 % off at a = 744), B(-a) = B(a) + a."""
    from decimal import Decimal, localcontext

    z = np.array([np.inf, -np.inf, 1e308, -1e308, 1e4, 700.0, 720.0, 740.0, 744.0])
    got = backend.to_numpy(bernoulli(backend.asarray(z)))
    assert got[0] == 0.0 and got[1] == np.inf and got[2] == 0.0 and got[3] == 1e308 and got[4] == 0.0
    with localcontext() as ctx:
        ctx.prec = 50
        exact = [float(Decimal(a) * (-Decimal(a)).exp()) for a in z[5:]]
    np.testing.assert_allclose(got[5:7], exact[:2], rtol=2e-13)
    np.testing.assert_allclose(got[7:], exact[2:], rtol=2e-4)  # results below 1e-318: few bits left


def test_rates_stay_finite_for_a_vanishing_diffusivity() -> None:
    """c_face = 1e-310 makes z = h v / c overflow; the rates are then the upwind ones (v / h), not inf or NaN."""
    from hjsmooth.solvers.scharfetter_gummel import scharfetter_gummel_rates

    v = np.array([2.0, -3.0, 0.0])
    c = np.full(3, 1e-310)
    fwd, bwd = scharfetter_gummel_rates(v, c, c, 0.1)
    np.testing.assert_allclose(fwd, [20.0, 0.0, 1e-308], rtol=1e-12, atol=1e-320)  # v = 0: c / h^2
    np.testing.assert_allclose(bwd, [0.0, 30.0, 1e-308], rtol=1e-12, atol=1e-320)
    grid = hs.Grid(-1.0, 1.0, 21)
    diffusion = np.ones(21)
    diffusion[10] = 1e-300
    sol = solve_fokker_planck(np.ones(21), grid, 0.5, drift=-grid.axes[0][None], diffusion=diffusion, beta=1.0)
    assert np.all(np.isfinite(sol.values)) and sol.values.min() >= 0
    assert grid.integrate(sol.values) == pytest.approx(grid.integrate(np.ones(21)), rel=1e-13)


# ----------------------------------------------------------------------------- operator consistency


@pytest.mark.parametrize("bc", ["reflecting", "periodic", "absorbing"])
def test_sparse_matrix_equals_stencil(bc: str, rng: np.random.Generator) -> None:
    """The assembled scipy matrix and the explicit stencil are the same operator."""
    grid = hs.Grid((-2.0, -1.5), (2.0, 1.5), (17, 13))
    drift, _ = example_643(grid, 0.5)
    x1, x2 = grid.coords
    diff = np.array([[1.0 + 0.1 * np.sin(x1), 0.2 * np.cos(x2)], [0.2 * np.cos(x2), 0.8 + 0 * x1]])
    op = fokker_planck_operator(grid, drift=drift, diffusion=diff, beta=0.7, bc=bc)
    rho = rng.random(grid.shape)
    np.testing.assert_allclose(op.to_sparse() @ rho.ravel(), op.apply(rho).ravel(), rtol=0, atol=1e-11)
    matrix = op.to_sparse().toarray()
    off = matrix - np.diag(np.diag(matrix))
    assert off.min() >= 0, "off-diagonal entries of an M-matrix generator are >= 0"
    colsum = matrix.sum(axis=0)
    if bc == "absorbing":
        assert colsum.max() <= 1e-10 and colsum.min() < -1e-3  # mass leaves at the edge
    else:
        np.testing.assert_allclose(colsum, 0.0, atol=1e-10)


@pytest.mark.parametrize("bc", ["reflecting", "periodic", "absorbing"])
def test_sparse_matrix_equals_stencil_3d(bc: str, rng: np.random.Generator) -> None:
    """3D with all three mixed-derivative pairs, signs of both kinds and a variable tensor."""
    grid = hs.Grid((-1.0, -1.0, -1.0), (1.0, 1.5, 1.0), (7, 9, 8))
    x1, x2, x3 = grid.coords
    drift = np.stack([-x1 + x2 * x3, -x2, np.sin(x1) - x3])
    off = 0.2 + 0.05 * x3
    diff = np.array([[1.2 + 0 * x1, off, -0.15 + 0 * x1], [off, 1.0 + 0.1 * x1, 0.1 + 0 * x1],
                     [-0.15 + 0 * x1, 0.1 + 0 * x1, 0.9 + 0 * x1]])
    op = fokker_planck_operator(grid, drift=drift, diffusion=diff, beta=1.3, bc=bc)
    assert len(op.links) == 3 + 3  # three axes and one diagonal direction per pair (one sign each here)
    rho = rng.random(grid.shape)
    np.testing.assert_allclose(op.to_sparse() @ rho.ravel(), op.apply(rho).ravel(), rtol=0, atol=1e-11)
    colsum = np.asarray(op.to_sparse().sum(axis=0)).ravel()
    if bc != "absorbing":
        np.testing.assert_allclose(colsum, 0.0, atol=1e-10)


# ----------------------------------------------------------------------------- Ornstein-Uhlenbeck transient


def ou_moments(m0, var0, k, beta, t):
    m = m0 * np.exp(-k * t)
    var = var0 * np.exp(-2 * k * t) + (1 - np.exp(-2 * k * t)) / (2 * k * beta)
    return m, var


@pytest.mark.parametrize("form", ["drift", "potential"])
def test_ou_1d_moments_converge(form: str) -> None:
    k, beta, m0, var0, t = 1.0, 2.0, 1.0, 0.05, 1.0
    m_ex, v_ex = ou_moments(m0, var0, k, beta, t)
    errors = []
    for n in (81, 161, 321):
        grid = hs.Grid((-4.0,), (4.0,), (n,))
        x = grid.coords[0]
        kw = {"drift": (-k * x)[None]} if form == "drift" else {"potential": k * x**2 / 2}
        sol = solve_fokker_planck(gaussian(grid, [m0], [var0]), grid, t, beta=beta, **kw)
        mean, cov = moments(grid, sol.values)
        errors.append(max(abs(mean[0] - m_ex), abs(cov[0, 0] - v_ex)))
    assert errors[-1] < 2e-4, errors
    assert errors[0] > errors[1] > errors[2]
    assert observed_order(errors) > 1.7, errors


def test_ou_2d_moments_converge() -> None:
    k, beta, m0, var0, t = np.array([1.0, 2.0]), 1.0, np.array([1.0, -0.5]), np.array([0.1, 0.2]), 0.5
    m_ex, v_ex = ou_moments(m0, var0, k, beta, t)
    errors = []
    for n in (41, 81, 161):
        grid = hs.Grid((-4.0, -4.0), (4.0, 4.0), (n, n))
        drift = np.stack([-k[i] * grid.coords[i] for i in range(2)])
        sol = solve_fokker_planck(gaussian(grid, m0, var0), grid, t, drift=drift, beta=beta)
        mean, cov = moments(grid, sol.values)
        errors.append(max(np.max(np.abs(mean - m_ex)), np.max(np.abs(np.diag(cov) - v_ex)), abs(cov[0, 1])))
    assert errors[-1] < 1e-3, errors
    assert observed_order(errors) > 1.7, errors


def test_implicit_ou_transient_first_order_in_time() -> None:
    """Backward Euler: moment errors against the closed form halve with dt (fine grid)."""
    k, beta, m0, var0, t = 1.0, 1.0, 1.0, 0.05, 1.0
    m_ex, v_ex = ou_moments(m0, var0, k, beta, t)
    grid = hs.Grid((-4.0,), (4.0,), (801,))
    x = grid.coords[0]
    errors = []
    for dt in (0.04, 0.02, 0.01):
        sol = solve_fokker_planck(gaussian(grid, [m0], [var0]), grid, t, drift=(-k * x)[None], beta=beta,
                                  method="implicit", dt=dt)
        mean, cov = moments(grid, sol.values)
        errors.append(max(abs(mean[0] - m_ex), abs(cov[0, 0] - v_ex)))
    assert errors[-1] < 5e-3
    assert 0.8 < observed_order(errors) < 1.2, errors


@pytest.mark.parametrize("method,order", [("implicit", 1.0), ("tr_bdf2", 2.0)])
def test_implicit_time_error_order_against_the_matrix_exponential(method: str, order: float) -> None:
    """Time error alone: the semi-discrete solution exp(t L) rho0 of the same operator (scipy's
    expm_multiply) is the reference, so the spatial error cancels; halving dt divides the error by
    2 (backward Euler) or 4 (TR-BDF2).  Mass is conserved to rounding at every dt."""
    from scipy.sparse.linalg import expm_multiply

    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (31, 31))
    drift, _ = example_643(grid, 0.5)
    rho0 = gaussian(grid, [0.8, -0.5], [0.2, 0.3])
    t = 1.0
    generator = fokker_planck_operator(grid, drift=drift, diffusion=D_TENSOR, beta=0.5).to_sparse()
    exact = expm_multiply(t * generator, rho0.ravel()).reshape(grid.shape)
    errors = []
    for dt in (0.1, 0.05, 0.025):
        sol = solve_fokker_planck(rho0, grid, t, drift=drift, diffusion=D_TENSOR, beta=0.5, method=method, dt=dt)
        errors.append(np.max(np.abs(sol.values - exact)) / exact.max())
        assert abs(grid.integrate(sol.values) - grid.integrate(rho0)) < 1e-13
    assert abs(observed_order(errors) - order) < 0.15, errors
    if method == "tr_bdf2":
        assert errors[-1] < 1e-4, errors


# ----------------------------------------------------------------------------- TR-BDF2 under error control


def test_tr_bdf2_error_estimate_is_the_local_error() -> None:
    """Hosea and Shampine's embedded estimate equals the local error of the step to leading order:
    on a small Markov generator (columns summing to zero) the ratio tends to 1 as dt falls, and
    both fall as dt^3."""
    import scipy.sparse as sp

    from hjsmooth.solvers.implicit_steps import TRBDF2, AdaptiveTRBDF2

    generator = np.array([[-2.0, 1.0, 0.5], [1.5, -1.5, 0.5], [0.5, 0.5, -1.0]])
    rho = np.array([0.7, 0.2, 0.1])
    estimates, errors = [], []
    for dt in (0.1, 0.05, 0.025):
        control = AdaptiveTRBDF2(TRBDF2(sp.csr_matrix(generator)), rtol=1e-300, atol=1.0)  # error = max |estimate|
        new, estimate = control.attempt(rho, dt)
        estimates.append(estimate)
        errors.append(float(np.max(np.abs(new - scipy.linalg.expm(dt * generator) @ rho))))
    assert abs(estimates[-1] / errors[-1] - 1) < 0.01 and abs(estimates[0] / errors[0] - 1) < 0.03, (estimates, errors)
    assert 2.8 < observed_order(estimates) < 3.2 and 2.8 < observed_order(errors) < 3.2


def test_tr_bdf2_ou_transient_is_within_the_requested_tolerance() -> None:
    """OU from N(1, 0.05) to t = 1 on a fine grid (space error 4e-6 of the peak): against the exact
    Gaussian the error stays within 2 rtol of the peak.  On a coarser grid the time error alone
    (against exp(t L) of the same operator) falls by more than 10x from rtol = 1e-3 to 1e-5 while
    the steps grow."""
    from scipy.sparse.linalg import expm_multiply

    m_t, v_t = ou_moments(1.0, 0.05, 1.0, 1.0, 1.0)
    time_errors, steps = [], []
    for n, check in ((1601, "exact"), (201, "time")):
        grid = hs.Grid(-4.0, 4.0, n)
        x = grid.axes[0]
        rho0 = gaussian(grid, [1.0], [0.05])
        if check == "exact":
            reference = np.exp(-((x - m_t) ** 2) / (2 * v_t)) / np.sqrt(2 * np.pi * v_t)
        else:
            reference = expm_multiply(fokker_planck_operator(grid, potential=0.5 * x**2, beta=1.0).to_sparse(), rho0)
        for rtol in (1e-3, 1e-5):
            sol = solve_fokker_planck(rho0, grid, 1.0, potential=0.5 * x**2, beta=1.0, method="tr_bdf2", rtol=rtol)
            assert sol.info["rtol"] == rtol and sol.info["atol"] == pytest.approx(1e-3 * rtol * rho0.max())
            assert sol.info["accepted_steps"] == sol.steps and sol.info["rejected_steps"] >= 0
            assert abs(grid.integrate(sol.values) - 1.0) < 1e-12 and sol.values.min() >= 0
            error = np.max(np.abs(sol.values - reference)) / reference.max()
            if check == "exact":
                assert error < 2 * rtol, (rtol, error)
            else:
                time_errors.append(error)
                steps.append(sol.steps)
    assert time_errors[1] < time_errors[0] / 10 and steps[1] > 2 * steps[0], (time_errors, steps)


STEEP_WELL = dict(beta=10.0)  # barrier 2 beta * 10 = 200: no mass crosses in any run here


def steep_double_well(grid: hs.Grid) -> np.ndarray:
    x = grid.coords[0]
    return 10.0 * (x**2 - 1) ** 2 + 0.01 * x + sum(2.0 * y**2 for y in grid.coords[1:])


@pytest.mark.parametrize("shape", [(401,), (61, 41)], ids=["1d", "2d"])
def test_tr_bdf2_keeps_a_steep_double_well_nonnegative_over_a_long_time(shape) -> None:
    """A box of mass in a steep double well, to t = 1e4 (the fixed step t/100 that method="auto" took
    before TR-BDF2 had error control gave snapshots as low as -3e-4 (1D) and -0.76 (2D) of the box's
    height): every snapshot is non-negative and holds the mass to 1e-12, with error control and with
    a fixed step, where the steps that would turn the density negative are rejected and redone smaller."""
    grid = hs.Grid([-2.0] + [-1.0] * (len(shape) - 1), [2.0] + [1.0] * (len(shape) - 1), shape)
    f = steep_double_well(grid)
    rho0 = (np.abs(grid.coords[0] - 1.0) < 0.1).astype(float) * np.ones(shape)
    mass0 = grid.integrate(rho0)
    times = np.geomspace(1e-3, 1e4, 15)
    for kw in ({}, {"dt": 100.0}):
        sol = solve_fokker_planck(rho0, grid, 1e4, potential=f, method="tr_bdf2", save_at=times, **kw, **STEEP_WELL)
        assert sol.snapshots.min() >= 0.0
        masses = np.array([grid.integrate(s) for s in sol.snapshots])
        assert np.all(np.abs(masses / mass0 - 1) < 1e-12)
        if kw:
            assert sol.info["rejected_negative"] > 0 and sol.info["rtol"] is None
        inside = grid.coords[0] > 0
        assert grid.integrate(np.where(inside, sol.values, 0.0)) / mass0 > 1 - 1e-9  # still in the right well


def test_tr_bdf2_step_grows_as_the_density_settles(monkeypatch) -> None:
    """The controller shrinks the step for the initial transient and grows it as the density settles
    to the Gibbs state: far fewer steps over [10, 40] than over [0, 10], the largest at the end."""
    from hjsmooth.solvers.implicit_steps import AdaptiveTRBDF2

    accepted = []
    attempt = AdaptiveTRBDF2.attempt

    def recording(self, rho, dt):
        new, error = attempt(self, rho, dt)
        if error <= 1.0:
            accepted.append(dt)
        return new, error

    monkeypatch.setattr(AdaptiveTRBDF2, "attempt", recording)
    grid = hs.Grid(-3.0, 3.0, 201)
    x = grid.axes[0]
    sol = solve_fokker_planck(gaussian(grid, [1.5], [0.02]), grid, 40.0, potential=0.5 * x**2, method="tr_bdf2")
    ends = np.cumsum(accepted)
    assert len(accepted) == sol.steps and ends[-1] == pytest.approx(40.0)
    early, late = int(np.sum(ends <= 10.0)), int(np.sum(ends > 10.0))
    assert late < early / 3, (early, late)
    assert accepted[-2] == max(accepted[:-1]) and accepted[-2] > 100 * accepted[0]  # the last may be a landing
    gibbs = discrete_gibbs(grid, 0.5 * x**2, 1.0)
    assert np.max(np.abs(sol.values - gibbs)) < 1e-6 * gibbs.max()


@pytest.mark.parametrize("kwargs, match", [({"rtol": 0.0}, "`rtol`"), ({"rtol": float("nan")}, "`rtol`"),
                                           ({"atol": -1e-9}, "`atol`"), ({"atol": float("inf")}, "`atol`")])
def test_tr_bdf2_tolerances_are_checked(kwargs, match) -> None:
    grid = hs.Grid(-1.0, 1.0, 21)
    with pytest.raises(ValueError, match=match):
        solve_fokker_planck(np.ones(21), grid, 1.0, method="tr_bdf2", **kwargs)


# ----------------------------------------------------------------------------- Gibbs steady state


DOUBLE_WELL_BETA = 1.0


def tilted_double_well(x: np.ndarray) -> np.ndarray:
    return (x**2 - 1) ** 2 / 4 + 0.1 * x


def test_steady_state_solver_is_discrete_gibbs_1d_2d() -> None:
    grid = hs.Grid((-2.5,), (2.5,), (301,))
    f = tilted_double_well(grid.coords[0])
    for beta in (0.5, 2.0, 8.0):
        ss = fokker_planck_steady_state(grid, potential=f, beta=beta)
        gibbs = discrete_gibbs(grid, f, beta)
        assert np.max(np.abs(ss - gibbs)) < 1e-10 * gibbs.max()
    grid2 = hs.Grid((-2.5, -2.0), (2.5, 2.0), (81, 61))
    x1, x2 = grid2.coords
    f2 = tilted_double_well(x1) + x2**2 / 2 + 0.3 * np.sin(2 * x1 * x2)
    for bc in ("reflecting", "periodic"):
        ss = fokker_planck_steady_state(grid2, potential=f2, beta=1.5, bc=bc)
        gibbs = discrete_gibbs(grid2, f2, 1.5)
        assert np.max(np.abs(ss - gibbs)) < 1e-10 * gibbs.max()


@pytest.mark.parametrize("n", [41, 9])
def test_steep_double_well_steady_state_is_the_gibbs_split(n: int) -> None:
    """10 (x^2 - 1)^2 + 0.01 x on [-2, 2], beta = 20: 2 beta |f(i+1) - f(i)| reaches 880 (41 nodes) or
    2200 (9 nodes) on the wall links, where the rates underflow.  Gibbs puts 69 % in the left well."""
    grid = hs.Grid(-2.0, 2.0, n)
    x = grid.axes[0]
    f = 10 * (x**2 - 1) ** 2 + 0.01 * x
    rho = fokker_planck_steady_state(grid, potential=f, beta=20.0)
    gibbs = discrete_gibbs(grid, f, 20.0)
    left = grid.integrate(rho * (x < 0))
    assert left == pytest.approx(grid.integrate(gibbs * (x < 0)), abs=1e-12)
    assert left == pytest.approx(1 / (1 + math.exp(-0.8)), abs=1e-3)  # the two minima differ by 0.02 in f
    assert rho.min() >= 0 and grid.integrate(rho) == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(rho, gibbs, rtol=1e-12, atol=1e-300)


def test_steep_drift_in_1d_uses_detailed_balance_exactly() -> None:
    """A drift field (not a potential) with walls steep enough to underflow the rates: every 1D chain is
    reversible, and the density is the product of the exact rate ratios exp(z) c_P / c_Q."""
    grid = hs.Grid(-2.0, 2.0, 41)
    x, h, beta = grid.axes[0], grid.spacing[0], 20.0
    drift = -(40 * x * (x**2 - 1) + 0.01)
    rho = fokker_planck_steady_state(grid, drift=drift[None], beta=beta)
    z = h * 0.5 * (drift[:-1] + drift[1:]) * 2 * beta  # h v_face / c with c = 1 / (2 beta)
    log_ref = np.concatenate([[0.0], np.cumsum(z)])
    ref = np.exp(log_ref - log_ref.max())
    np.testing.assert_allclose(rho, ref / grid.integrate(ref), rtol=1e-11, atol=1e-300)


def test_metastable_non_reversible_steady_state_is_refused_not_wrong() -> None:
    """Two wells with a rotational drift (not reversible): a barrier of exp(-40) between the wells is beyond
    what the float64 LU solve resolves; the solver must refuse rather than put the mass in one well."""
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 41))
    x, y = grid.coords
    drift = -np.stack([40 * x * (x**2 - 1) + 0.01, 2 * y]) + 0.5 * np.exp(-(x**2 + y**2)) * np.stack([-y, x])
    with pytest.raises(FloatingPointError, match="not accurate|negative"):
        fokker_planck_steady_state(grid, drift=drift, beta=2.0)
    with pytest.raises(FloatingPointError, match="not accurate|negative"):
        fokker_planck_steady_state(grid, drift=drift, beta=20.0)
    rho = fokker_planck_steady_state(grid, drift=drift, beta=0.5)  # shallow barrier: accepted
    left = grid.integrate(rho * (x < 0))
    assert 0.4 < left < 0.6 and rho.min() >= 0


def test_steady_state_returns_the_backend_it_was_given(backend) -> None:
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (21, 17))
    f = tilted_double_well(grid.coords[0]) + grid.coords[1] ** 2 / 2
    for dtype in ("float64", "float32"):
        ss = fokker_planck_steady_state(grid, potential=backend.asarray(f, dtype=dtype), beta=2.0)
        assert backend.is_same_kind(ss, backend.asarray(f, dtype=dtype))
        assert str(ss.dtype).endswith(dtype)
        np.testing.assert_allclose(backend.to_numpy(ss), discrete_gibbs(grid, f, 2.0), rtol=1e-5 if dtype == "float32" else 1e-12)
    drift, _ = example_643(grid, 0.5)
    ss = fokker_planck_steady_state(grid, drift=backend.asarray(drift), beta=0.5)
    assert backend.is_same_kind(ss, backend.asarray(drift))
    assert isinstance(fokker_planck_steady_state(grid, beta=1.0), np.ndarray)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.data())
def test_steady_state_of_rough_potentials_is_the_discrete_gibbs_density(data) -> None:
    """Random rough potentials of any steepness (2 beta |f(i+1) - f(i)| up to 1e6), 1D and 2D, both
    walls: the steady state is non-negative, has mass 1, is exp(-2 beta f) / Z, and balances every
    link of the operator (forward flow = backward flow wherever the flows do not underflow)."""
    shape = data.draw(st.sampled_from([(5,), (17,), (64,), (9, 7), (16, 16)]))
    scale = data.draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3]))
    beta = data.draw(st.sampled_from([0.1, 1.0, 20.0, 500.0]))
    bc = data.draw(st.sampled_from(["reflecting", "periodic"]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    grid = hs.Grid([-2.0] * len(shape), [2.0] * len(shape), shape)
    f = scale * np.random.default_rng(seed).standard_normal(shape).cumsum(axis=0)  # rough: a random walk
    rho = fokker_planck_steady_state(grid, potential=f, beta=beta, bc=bc)
    assert np.all(np.isfinite(rho)) and rho.min() >= 0
    assert grid.integrate(rho) == pytest.approx(1.0, abs=1e-13)
    np.testing.assert_allclose(rho, discrete_gibbs(grid, f, beta), rtol=1e-12, atol=1e-300)
    op = fokker_planck_operator(grid, potential=f, beta=beta, bc=bc)
    for link in op.links:
        if bc == "periodic":
            here, there = rho, np.roll(rho, -1, axis=link.direction.index(1))
        else:
            here, there = rho[link.source], rho[link.target]
        forward, backward = link.forward * here, link.backward * there
        resolved = np.maximum(forward, backward) > 1e-250 * rho.max() * op.outflow.max()
        np.testing.assert_allclose(forward[resolved], backward[resolved], rtol=1e-9)


@pytest.mark.parametrize("method", ["explicit", "implicit", "tr_bdf2"])
def test_long_run_reaches_discrete_gibbs(method: str) -> None:
    grid = hs.Grid((-2.5,), (2.5,), (101,))
    f = tilted_double_well(grid.coords[0])
    rho0 = gaussian(grid, [1.0], [0.05])  # starts in the shallower well
    kw = {"dt": 0.05} if method != "explicit" else {}
    sol = solve_fokker_planck(rho0, grid, 60.0, potential=f, beta=DOUBLE_WELL_BETA, method=method, **kw)
    gibbs = discrete_gibbs(grid, f, DOUBLE_WELL_BETA)
    assert np.max(np.abs(sol.values - gibbs)) < 1e-8 * gibbs.max()
    assert sol.values.min() >= 0
    assert abs(grid.integrate(sol.values) - 1.0) < 1e-12


def test_gibbs_is_stationary_for_the_explicit_step() -> None:
    """One explicit step leaves exp(-2 beta f) unchanged to rounding (the scheme's defining property)."""
    grid = hs.Grid((-2.5, -2.5), (2.5, 2.5), (64, 64))
    x1, x2 = grid.coords
    f = tilted_double_well(x1) + (x2**2 - 1) ** 2 + x1 * x2
    op = fokker_planck_operator(grid, potential=f, beta=3.0)
    gibbs = discrete_gibbs(grid, f, 3.0)
    assert np.max(np.abs(op.apply(gibbs))) < 1e-13 * np.max(gibbs) * np.max(op.outflow)


# ----------------------------------------------------------------------------- Example 6.43 (non-gradient drift)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_example_643_steady_state_is_exp_minus_phi(lam: float) -> None:
    errors = []
    for n in (41, 81, 161):
        grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (n, n))
        drift, phi = example_643(grid, lam)
        ss = fokker_planck_steady_state(grid, drift=drift, beta=0.5)
        exact = np.exp(-phi) / grid.integrate(np.exp(-phi))
        errors.append(np.max(np.abs(ss - exact)) / exact.max())
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[-1] < 5e-3, errors
    assert observed_order(errors) > 1.7, errors


def test_example_643_transient_converges_to_steady_state() -> None:
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (41, 41))
    drift, _ = example_643(grid, 0.5)
    ss = fokker_planck_steady_state(grid, drift=drift, beta=0.5)
    rho0 = gaussian(grid, [-1.0, 0.5], [0.2, 0.2])
    sol = solve_fokker_planck(rho0, grid, 40.0, drift=drift, beta=0.5, method="implicit", dt=0.1)
    assert np.max(np.abs(sol.values - ss)) < 1e-7 * ss.max()


# ----------------------------------------------------------------------------- anisotropic diffusion


A_DRIFT = np.array([[-1.0, 0.5], [-0.3, -1.2]])
D_TENSOR = np.array([[1.0, 0.4], [0.4, 0.8]])


def test_anisotropic_ou_covariance_solves_lyapunov() -> None:
    beta = 1.3
    cov_exact = scipy.linalg.solve_continuous_lyapunov(A_DRIFT, -D_TENSOR / beta)
    errors = []
    for n in (41, 81, 161):
        grid = hs.Grid((-4.0, -4.0), (4.0, 4.0), (n, n))
        x = np.stack(grid.coords)
        drift = np.einsum("ij,j...->i...", A_DRIFT, x)
        ss = fokker_planck_steady_state(grid, drift=drift, diffusion=D_TENSOR, beta=beta)
        mean, cov = moments(grid, ss)
        errors.append(max(np.max(np.abs(cov - cov_exact)), np.max(np.abs(mean))))
    assert errors[-1] < 2e-3 * np.max(np.abs(cov_exact)), errors
    assert observed_order(errors) > 1.7, errors
    # the same tensor given as a field gives the same operator
    field = np.broadcast_to(D_TENSOR[:, :, None, None], (2, 2, *grid.shape))
    ss_field = fokker_planck_steady_state(grid, drift=drift, diffusion=field, beta=beta)
    np.testing.assert_allclose(ss_field, ss, rtol=0, atol=1e-12 * ss.max())


def test_anisotropic_transient_matches_lyapunov_ode() -> None:
    """Covariance of the explicit transient against dS/dt = A S + S A^T + D/beta."""
    beta, t = 1.0, 0.5
    grid = hs.Grid((-4.0, -4.0), (4.0, 4.0), (121, 121))
    x = np.stack(grid.coords)
    drift = np.einsum("ij,j...->i...", A_DRIFT, x)
    s0 = np.diag([0.3, 0.2])
    rho0 = gaussian(grid, [0.0, 0.0], np.diag(s0))
    sol = solve_fokker_planck(rho0, grid, t, drift=drift, diffusion=D_TENSOR, beta=beta)
    ode = scipy.integrate.solve_ivp(
        lambda _, s: (A_DRIFT @ s.reshape(2, 2) + s.reshape(2, 2) @ A_DRIFT.T + D_TENSOR / beta).ravel(),
        (0, t), s0.ravel(), rtol=1e-12, atol=1e-12)
    _, cov = moments(grid, sol.values)
    np.testing.assert_allclose(cov, ode.y[:, -1].reshape(2, 2), atol=2e-3)
    assert sol.values.min() >= 0


def test_anisotropic_ou_3d_transient_covariance_converges() -> None:
    """3D, full tensor D with cross terms of both signs: mean exp(At) m0 and the Lyapunov-ODE covariance."""
    a = np.array([[-1.0, 0.3, 0.0], [-0.2, -1.2, 0.2], [0.1, 0.0, -0.8]])
    d = np.array([[1.0, 0.3, -0.2], [0.3, 0.9, 0.25], [-0.2, 0.25, 1.1]])
    beta, t, m0, s0 = 1.0, 0.5, np.array([0.5, 0.0, -0.3]), np.diag([0.3, 0.2, 0.25])
    ode = scipy.integrate.solve_ivp(lambda _, s: (a @ s.reshape(3, 3) + s.reshape(3, 3) @ a.T + d / beta).ravel(),
                                    (0, t), s0.ravel(), rtol=1e-12, atol=1e-12)
    cov_exact = ode.y[:, -1].reshape(3, 3)
    mean_exact = scipy.linalg.expm(a * t) @ m0
    errors = []
    for n in (17, 33, 65):
        grid = hs.Grid((-4.5,) * 3, (4.5,) * 3, (n,) * 3)
        drift = np.einsum("ij,j...->i...", a, np.stack(grid.coords))
        sol = solve_fokker_planck(gaussian(grid, m0, np.diag(s0)), grid, t, drift=drift, diffusion=d, beta=beta)
        mean, cov = moments(grid, sol.values)
        errors.append(max(np.max(np.abs(cov - cov_exact)), np.max(np.abs(mean - mean_exact))))
        assert sol.values.min() >= 0 and abs(grid.integrate(sol.values) - 1) < 1e-12
    assert errors[-1] < 6e-3, errors
    assert observed_order(errors) > 1.6, errors


def test_diffusion_forms_agree() -> None:
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (21, 25))
    x1, _ = grid.coords
    f = tilted_double_well(x1)
    base = fokker_planck_operator(grid, potential=f, diffusion=np.array([[1.5, 0.0], [0.0, 0.5]])).to_sparse()
    vec = fokker_planck_operator(grid, potential=f, diffusion=np.array([1.5, 0.5])).to_sparse()
    assert abs(base - vec).max() < 1e-12
    iso = fokker_planck_operator(grid, potential=f, diffusion=2.0).to_sparse()
    iso_field = fokker_planck_operator(grid, potential=f, diffusion=np.full(grid.shape, 2.0)).to_sparse()
    assert abs(iso - iso_field).max() < 1e-12


def test_variable_isotropic_diffusion_steady_state() -> None:
    """Ito form: b = 0, D(x) variable; stationary rho ∝ 1/D(x) (zero flux of grad(D rho))."""
    errors = []
    for n in (41, 81, 161):
        grid = hs.Grid((-2.0,), (2.0,), (n,))
        d = 1.0 + 0.5 * np.sin(grid.coords[0])
        ss = fokker_planck_steady_state(grid, diffusion=d, beta=1.0)
        exact = (1 / d) / grid.integrate(1 / d)
        errors.append(np.max(np.abs(ss - exact)))
    assert errors[-1] < 1e-12  # w = D rho constant balances every link exactly


def test_zero_diffusion_is_upwind_transport() -> None:
    """D = 0: the Scharfetter-Gummel rates reduce to first-order upwinding, v+/h forward and v-/h backward."""
    grid = hs.Grid((0.0,), (1.0,), (11,))
    v = np.linspace(-1.0, 1.0, 11)
    op = fokker_planck_operator(grid, drift=v[None], diffusion=0.0, bc="periodic")
    face = 0.5 * (v + np.roll(v, -1))
    h = grid.spacing[0]
    np.testing.assert_allclose(op.links[0].forward, np.maximum(face, 0) / h, rtol=1e-15)
    np.testing.assert_allclose(op.links[0].backward, np.maximum(-face, 0) / h, rtol=1e-15)
    # and the limit is continuous: a tiny diffusion gives nearly the same rates
    near = fokker_planck_operator(grid, drift=v[None], diffusion=1e-9, bc="periodic")
    np.testing.assert_allclose(near.links[0].forward, op.links[0].forward, atol=1e-6)


# ----------------------------------------------------------------------------- conservation and positivity


@pytest.mark.parametrize("method", ["explicit", "implicit"])
@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_mass_and_positivity_over_long_runs(method: str, bc: str, rng: np.random.Generator) -> None:
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (41, 41))
    drift, _ = example_643(grid, 0.5)
    rho0 = rng.random(grid.shape) * (rng.random(grid.shape) < 0.3)  # rough, with many zeros
    kw = {"dt": 0.2} if method == "implicit" else {}
    sol = solve_fokker_planck(rho0, grid, 20.0, drift=drift, diffusion=D_TENSOR, beta=0.5, bc=bc, method=method,
                              save_at=5, **kw)
    mass0 = grid.integrate(rho0)
    for snap in sol.snapshots:
        assert snap.min() >= 0
        assert abs(grid.integrate(snap) - mass0) < 1e-12 * mass0


@pytest.mark.parametrize("method", ["implicit", "tr_bdf2"])
@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
@pytest.mark.parametrize("dt", [1e-2, 1e2, 1e4, 1e8])
def test_implicit_mass_is_conserved_to_rounding_for_any_dt(method: str, bc: str, dt: float,
                                                           rng: np.random.Generator) -> None:
    """The matrix I - c dt L is nearly singular for large dt, along the steady state (the mass
    direction): the solver must still conserve mass to rounding, at every step."""
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (25, 21))
    x1, x2 = grid.coords
    f = 3.0 * (x1**2 - 1) ** 2 + x2**2 + 0.5 * x1 * x2
    rho0 = rng.random(grid.shape)
    sol = solve_fokker_planck(rho0, grid, 4 * dt, potential=f, beta=2.0, bc=bc, method=method, dt=dt,
                              save_at=[dt, 2 * dt, 3 * dt])
    mass0 = grid.integrate(rho0)
    for snap in sol.snapshots:
        assert abs(grid.integrate(snap) / mass0 - 1) < 1e-12


@pytest.mark.parametrize("method", ["implicit", "tr_bdf2"])
def test_implicit_mass_over_a_huge_time_with_the_default_step(method: str) -> None:
    """t = 1e12 with the default dt = t / 100: mass to rounding, and the discrete Gibbs state reached."""
    grid = hs.Grid(-2.0, 2.0, 81)
    f = 10 * (grid.axes[0] ** 2 - 1) ** 2 + 0.01 * grid.axes[0]
    rho0 = gaussian(grid, [1.0], [0.05])
    sol = solve_fokker_planck(rho0, grid, 1e12, potential=f, beta=0.2, method=method)
    assert abs(grid.integrate(sol.values) - 1.0) < 1e-12
    gibbs = discrete_gibbs(grid, f, 0.2)
    assert np.max(np.abs(sol.values - gibbs)) < 1e-9 * gibbs.max()


def test_backward_euler_with_absorbing_walls_keeps_the_discrete_mass_balance() -> None:
    """Backward Euler's exact balance: mass_new + dt * (outflow through the walls at the new state) = mass_old,
    to rounding even when dt is 1e6 times the explicit bound."""
    grid = hs.Grid(-1.0, 1.0, 41)
    op = fokker_planck_operator(grid, potential=grid.axes[0] ** 2, beta=1.0, bc="absorbing")
    rho0 = gaussian(grid, [0.2], [0.1])
    dt = 1e6 * op.stable_dt
    sol = solve_fokker_planck(rho0, grid, dt, potential=grid.axes[0] ** 2, beta=1.0, bc="absorbing",
                              method="implicit", dt=dt)
    leaving = dt * grid.integrate(op.absorption * sol.values)
    assert abs((grid.integrate(sol.values) + leaving) / grid.integrate(rho0) - 1) < 1e-12


def test_explicit_step_stays_positive_at_the_bound(rng: np.random.Generator) -> None:
    """A delta in the cell with the largest outflow, stepped at exactly dt = stable_dt, stays >= 0."""
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (31, 31))
    drift, _ = example_643(grid, 2.0)
    op = fokker_planck_operator(grid, drift=drift, diffusion=D_TENSOR, beta=0.5)
    rho = np.zeros(grid.shape)
    rho[np.unravel_index(np.argmax(op.outflow), grid.shape)] = 1.0
    assert op.step(rho, op.stable_dt).min() >= -1e-15
    assert op.step(rho, 1.5 * op.stable_dt).min() < 0  # the bound is sharp


# ----------------------------------------------------------------------------- boundary conditions


@pytest.mark.parametrize("method", ["explicit", "implicit", "tr_bdf2"])
def test_absorbing_walls_decay_of_the_discrete_eigenvector(method: str) -> None:
    """Pure diffusion with zero density one spacing outside: sin(pi (i+1)/(n+1)) decays at the exact discrete rate."""
    n, beta = 51, 0.5
    grid = hs.Grid((0.0,), (1.0,), (n,))
    h = grid.spacing[0]
    mode = np.sin(np.pi * np.arange(1, n + 1) / (n + 1))
    lam = -(4 * (0.5 / beta) / h**2) * np.sin(np.pi / (2 * (n + 1))) ** 2
    dt, steps = 1e-4, 200
    sol = solve_fokker_planck(mode, grid, dt * steps, beta=beta, bc="absorbing", method=method, dt=dt)
    z = dt * lam
    if method == "explicit":
        factor = (1 + z) ** steps
    elif method == "implicit":
        factor = (1 - z) ** (-steps)
    else:  # TR-BDF2's stability function, g = 2 - sqrt 2, c = g / 2
        g = 2 - np.sqrt(2)
        c = g / 2
        stage = (1 + c * z) / (1 - c * z)
        factor = ((stage - (1 - g) ** 2) / (g * (2 - g)) / (1 - c * z)) ** steps
    np.testing.assert_allclose(sol.values, factor * mode, rtol=1e-10, atol=1e-14)
    # and the continuum rate on the widened interval [-h, 1 + h]
    assert abs(lam / (-(0.5 / beta) * (np.pi / (1 + 2 * h)) ** 2) - 1) < 1e-3


def test_absorbing_with_drift_loses_mass_monotonically() -> None:
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 41))
    drift = np.stack([np.ones(grid.shape), 0.5 * grid.coords[0]])  # pushes mass out through x1 = 2
    sol = solve_fokker_planck(gaussian(grid, [0.0, 0.0], [0.1, 0.1]), grid, 3.0, drift=drift, diffusion=D_TENSOR,
                              bc="absorbing", save_at=7)
    masses = np.array([grid.integrate(s) for s in sol.snapshots])
    assert np.all(np.diff(masses) < 0) and masses[-1] < 0.5 * masses[0]
    assert sol.snapshots.min() >= 0


def test_periodic_constant_drift_moves_the_packet() -> None:
    """Constant drift v on a ring of period n h: a wrapped Gaussian whose mean moves by v t, variance grows by t/beta."""
    n, v, t, beta = 400, 1.5, 2.0, 4.0
    grid = hs.Grid((0.0,), (10.0,), (n,))
    period = n * grid.spacing[0]
    wave = 2 * np.pi / period
    x = grid.coords[0]
    for start, var0 in ((3.0, 0.1), (9.0, 0.05)):  # the second one crosses the seam
        sol = solve_fokker_planck(gaussian(grid, [start], [var0]), grid, t, drift=np.full((1, n), v), beta=beta,
                                  bc="periodic")
        assert abs(grid.integrate(sol.values) - 1.0) < 1e-12
        moment = grid.integrate(sol.values * np.exp(1j * wave * x))
        mean = (np.angle(moment) / wave) % period
        var = -2 * np.log(abs(moment)) / wave**2  # exact for a wrapped Gaussian
        expected_mean = (start + v * t) % period
        assert min(abs(mean - expected_mean), period - abs(mean - expected_mean)) < 2e-3
        # forward Euler removes v^2 dt t (~9e-3) and SG adds (c z^2/12) 2t (~4e-3), z = h v / c
        assert abs(var - (var0 + t / beta)) < 2e-2 * (var0 + t / beta)


# ----------------------------------------------------------------------------- backends and dtypes


def test_backends_agree_float64(backend) -> None:
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (33, 29))
    drift, _ = example_643(grid, 0.5)
    x1, x2 = grid.coords
    diff = np.array([[1.0 + 0.2 * np.cos(x1), 0.3 + 0 * x1], [0.3 + 0 * x1, 0.9 + 0.1 * np.sin(x2)]])
    rho0 = gaussian(grid, [0.5, 0.0], [0.3, 0.2])
    for method in ("explicit", "implicit", "tr_bdf2"):
        ref = solve_fokker_planck(rho0, grid, 0.7, drift=drift, diffusion=diff, beta=0.8, method=method, save_at=3)
        sol = solve_fokker_planck(backend.asarray(rho0), grid, 0.7, drift=backend.asarray(drift),
                                  diffusion=backend.asarray(diff), beta=0.8, method=method, save_at=3)
        assert backend.is_same_kind(sol.values, backend.asarray(rho0))
        assert backend.is_same_kind(sol.snapshots, backend.asarray(rho0))
        assert sol.steps == ref.steps > 10
        np.testing.assert_allclose(backend.to_numpy(sol.values), ref.values, rtol=0, atol=1e-10 * ref.values.max())
        np.testing.assert_allclose(backend.to_numpy(sol.snapshots), ref.snapshots, rtol=0, atol=1e-10)


def test_float32_works(backend) -> None:
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (41, 41))
    f = tilted_double_well(grid.coords[0]) + grid.coords[1] ** 2 / 2
    rho0 = gaussian(grid, [1.0, 0.0], [0.2, 0.2])
    ref = solve_fokker_planck(rho0, grid, 1.0, potential=f, beta=1.0)
    x32 = backend.asarray(rho0, dtype="float32")
    sol = solve_fokker_planck(x32, grid, 1.0, potential=backend.asarray(f), beta=1.0)
    assert backend.is_same_kind(sol.values, x32)
    got = backend.to_numpy(sol.values).astype(np.float64)
    assert np.max(np.abs(got - ref.values)) < 1e-4 * ref.values.max()
    assert got.min() >= 0
    assert abs(grid.integrate(got) - 1.0) < 1e-4


@pytest.mark.gpu
def test_large_explicit_step_on_gpu(backend) -> None:
    """The explicit stencil on a 1024^2 float32 grid: mass conserved, positive, equal to the CPU result."""
    if backend.name == "numpy" or backend.name == "torch-cpu":
        pytest.skip("GPU backends only")
    grid = hs.Grid((-3.0, -3.0), (3.0, 3.0), (1024, 1024))
    drift, _ = example_643(grid, 0.5)
    rho0 = gaussian(grid, [0.5, 0.0], [0.3, 0.2])
    op_gpu = fokker_planck_operator(grid, backend.asarray(rho0, "float32"), drift=backend.asarray(drift), beta=0.5)
    op_cpu = fokker_planck_operator(grid, rho0, drift=drift, beta=0.5)
    dt = 0.5 * op_cpu.stable_dt
    rho_gpu, rho_cpu = backend.asarray(rho0, "float32"), rho0.copy()
    for _ in range(50):
        rho_gpu, rho_cpu = op_gpu.step(rho_gpu, dt), op_cpu.step(rho_cpu, dt)
    got = backend.to_numpy(rho_gpu).astype(np.float64)
    assert np.max(np.abs(got - rho_cpu)) < 1e-5 * rho_cpu.max()
    assert got.min() >= 0 and abs(grid.integrate(got) - 1.0) < 1e-4


# ----------------------------------------------------------------------------- validation


def test_t_zero_returns_a_copy(backend) -> None:
    grid = hs.Grid((-1.0,), (1.0,), (11,))
    rho0 = backend.asarray(np.linspace(0, 1, 11))
    sol = solve_fokker_planck(rho0, grid, 0.0, potential=np.zeros(11))
    assert sol.values is not rho0 and sol.steps == 0
    assert backend.is_same_kind(sol.values, rho0)
    np.testing.assert_array_equal(backend.to_numpy(sol.values), backend.to_numpy(rho0))


def test_steady_state_without_transport_is_refused() -> None:
    """No drift and zero diffusion: every density is stationary, so there is no steady state to return."""
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (11, 11))
    for diffusion in (0.0, np.zeros(2), np.zeros(grid.shape)):
        with pytest.raises(ValueError, match="`diffusion` is zero and there is no `drift`"):
            fokker_planck_steady_state(grid, diffusion=diffusion)
    rho = fokker_planck_steady_state(grid, diffusion=np.array([0.0, 1.0]), potential=grid.coords[1] ** 2)
    assert grid.integrate(rho) == pytest.approx(1.0)


def test_bad_input_errors() -> None:
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (11, 11))
    rho0 = np.ones(grid.shape)
    with pytest.raises(ValueError, match="`rho0`.*non-negative"):
        solve_fokker_planck(-rho0, grid, 1.0)
    bad = rho0.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="`rho0`"):
        solve_fokker_planck(bad, grid, 1.0)
    with pytest.raises(ValueError, match="`rho0`.*shape"):
        solve_fokker_planck(np.ones((11, 12)), grid, 1.0)
    with pytest.raises(ValueError, match=r"`drift`.*\(2, 11, 11\).*\(11, 11\)"):
        solve_fokker_planck(rho0, grid, 1.0, drift=np.zeros((11, 11)))
    with pytest.raises(ValueError, match="`potential` and `drift`"):
        solve_fokker_planck(rho0, grid, 1.0, potential=np.zeros((11, 11)), drift=np.zeros((2, 11, 11)))
    for beta in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="`beta`"):
            solve_fokker_planck(rho0, grid, 1.0, beta=beta)
    with pytest.raises(ValueError, match="`beta`"):
        solve_fokker_planck(rho0, grid, 1.0, beta=float("nan"))
    with pytest.raises(ValueError, match="`bc`.*'reflecting', 'periodic', 'absorbing'"):
        solve_fokker_planck(rho0, grid, 1.0, bc="dirichlet")
    with pytest.raises(ValueError, match="`method`.*'explicit', 'implicit'"):
        solve_fokker_planck(rho0, grid, 1.0, method="rk4")
    with pytest.raises(ValueError, match="`t`"):
        solve_fokker_planck(rho0, grid, -1.0)
    with pytest.raises(ValueError, match="`dt`"):
        solve_fokker_planck(rho0, grid, 1.0, dt=0.0)
    with pytest.raises(ValueError, match="`diffusion`.*shape"):
        solve_fokker_planck(rho0, grid, 1.0, diffusion=np.ones((3, 3)))
    with pytest.raises(ValueError, match="`diffusion`.*symmetric"):
        solve_fokker_planck(rho0, grid, 1.0, diffusion=np.array([[1.0, 0.2], [0.1, 1.0]]))
    with pytest.raises(ValueError, match="`diffusion`.*diagonally dominant"):
        solve_fokker_planck(rho0, grid, 1.0, diffusion=np.array([[4.0, 1.5], [1.5, 1.0]]))
    with pytest.raises(ValueError, match="`bc` 'absorbing'"):
        fokker_planck_steady_state(grid, bc="absorbing")
    with pytest.raises(TypeError, match="`grid`"):
        solve_fokker_planck(rho0, (11, 11), 1.0)


def test_diffusion_that_is_dominant_on_a_stretched_grid_is_accepted() -> None:
    """D = [[4, 1.5], [1.5, 1]] is positive definite; with h1/h2 in [1.5, 8/3] the stencil is monotone."""
    grid = hs.Grid((-2.0, -1.0), (2.0, 1.0), (21, 21))  # h1/h2 = 2
    op = fokker_planck_operator(grid, diffusion=np.array([[4.0, 1.5], [1.5, 1.0]]))
    assert op.to_sparse().toarray()[~np.eye(grid.size, dtype=bool)].min() >= 0


def test_lazy_exports() -> None:
    assert hs.solve_fokker_planck is solve_fokker_planck
    assert hs.fokker_planck_steady_state is fokker_planck_steady_state


def test_detailed_balance_path_agrees_with_the_sparse_solve_and_refuses_rotation() -> None:
    """The O(N) reversible density equals the pinned LU solve, and is refused for Example 6.43's force."""
    from hjsmooth.landscapes import limit_cycles
    from hjsmooth.solvers.fokker_planck import fokker_planck_operator
    from hjsmooth.solvers.fokker_planck_steady import _detailed_balance_density, _pinned_null_vector

    grid = hs.Grid((-2.0, -2.5), (2.0, 2.5), (41, 51))
    x, y = grid.coords
    f = (x**2 - 1) ** 2 / 4 + 0.3 * x + y**2 / 2  # separable: reversible with per-axis D
    fast = _detailed_balance_density(grid, f, None, np.array([1.0, 0.5]), 1.5, "reflecting")
    assert fast is not None
    generator = fokker_planck_operator(grid, potential=f, diffusion=[1.0, 0.5], beta=1.5).to_sparse()
    pin = int(np.argmin(f))
    slow = _pinned_null_vector(generator.tocoo(), pin)
    np.testing.assert_allclose(fast / fast[pin], slow, rtol=1e-10)
    drift = limit_cycles(2.0).drift_on_grid(grid)
    assert _detailed_balance_density(grid, None, drift, None, 0.5, "reflecting") is None
    coupled = f + 0.4 * x * y  # not separable: per-axis D breaks detailed balance on the plaquettes
    assert _detailed_balance_density(grid, coupled, None, np.array([1.0, 0.5]), 1.5, "reflecting") is None
