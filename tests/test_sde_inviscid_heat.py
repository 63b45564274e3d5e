"""Inviscid (proximal flow) and heat (Gaussian average) estimators against the grid solvers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_sde_reference import grid_gradient, heat_reference, inviscid_reference

import hjsmooth as hs
from hjsmooth.landscapes import Landscape, double_well, quadratic, rastrigin, rugged_1d, wide_sharp_2d


def _min_hessian_eig(land: Landscape, n: int = 201) -> float:
    """Smallest eigenvalue of Hess f over the landscape's window (finite differences on a grid)."""
    from hjsmooth.sde._common import min_eigenvalue

    pts = land.grid(n if land.ndim == 1 else 121).points()
    return float(np.min(min_eigenvalue(land.grad, pts)))


INVISCID = [
    pytest.param(rugged_1d(), id="rugged_1d"),
    pytest.param(double_well(1, tilt=0.1), id="double_well_1d"),
    pytest.param(rastrigin(1), id="rastrigin_1d"),
    pytest.param(wide_sharp_2d(), id="wide_sharp_2d"),
    pytest.param(rastrigin(2), id="rastrigin_2d"),
]


@pytest.mark.parametrize("land", INVISCID)
def test_inviscid_bridge_inside_the_convexity_condition(land: Landscape) -> None:
    # choose t so that I + t Hess f > 0 on the whole window (Lemma 4.3): 1 + t lam_min = 0.3
    lam = _min_hessian_eig(land)
    t = 0.7 / abs(lam) if lam < 0 else 0.5
    rng = np.random.default_rng(2)
    x = rng.uniform(np.asarray(land.lower) + 0.8, np.asarray(land.upper) - 0.8, size=(12, land.ndim))
    res = hs.sde.smoothed_grad(land.grad, x, t, kind="inviscid")
    assert np.all(res.converged) and np.all(res.convex)
    assert np.all(res.min_curvature > 0.2)
    # the exact prox (brute force + BFGS) to near machine precision
    np.testing.assert_allclose(res.grad, inviscid_reference(land, x, t), atol=1e-6)
    # the grid solver, within its own discretisation error (grid-point minimisation: O(h) in the gradient)
    # (the minimum over grid points converges at first order in h, so the refinement difference is only
    # an estimate of the error: allow three times it plus a floor of the size of the cell)
    ref, err = grid_gradient(lambda f, g: hs.hopf_lax(f, g, t), land, x, 4001 if land.ndim == 1 else 801)
    assert np.all(np.abs(res.grad - ref) <= 3 * err + 5e-3), np.max(np.abs(res.grad - ref))
    # (4.19) in the variable z = x - y gives the same point
    res2 = hs.sde.smoothed_grad(land.grad, x, t, kind="inviscid", form="rho2")
    np.testing.assert_allclose(res2.grad, res.grad, atol=1e-6)


def test_inviscid_flags_a_local_proximal_point_outside_the_convexity_condition() -> None:
    land = rugged_1d()
    t = 0.5  # 1 + t f'' < 0 between the ripples
    x = np.linspace(-2.5, 2.5, 41)[:, None]
    res = hs.sde.smoothed_grad(land.grad, x, t, kind="inviscid")
    exact = inviscid_reference(land, x, t)
    wrong = np.abs(res.grad - exact)[:, 0] > 1e-4
    assert wrong.any()                         # the flow does stop at local proximal points here
    # the check is local (five points of the segment [x, y*]), so it cannot see a better minimiser on the
    # far side of a convex stretch: most, not all, of the wrong answers are flagged
    assert np.mean(~res.convex[wrong]) >= 0.5
    # and where the condition fails on the segment the answer is indeed suspect at some points
    assert np.any(wrong[~res.convex])
    assert np.all(res.converged)


def test_inviscid_user_hessian_matches_finite_differences() -> None:
    land = rastrigin(2)
    w = 2 * math.pi

    def hessian(y):
        diag = 1 + 0.5 * w * w * np.cos(w * y)
        return np.einsum("ni,ij->nij", diag, np.eye(2))

    x = np.array([[0.3, -0.2], [1.1, 0.6]])
    a = hs.sde.smoothed_grad(land.grad, x, 0.03, kind="inviscid")
    b = hs.sde.smoothed_grad(land.grad, x, 0.03, kind="inviscid", hessian=hessian)
    np.testing.assert_allclose(a.min_curvature, b.min_curvature, atol=1e-5)


HEAT = [
    pytest.param(rugged_1d(), 0.5, 2.0, id="rugged_1d"),
    pytest.param(double_well(1, tilt=0.1), 0.5, 2.0, id="double_well_1d"),
    pytest.param(rastrigin(1), 0.3, 3.0, id="rastrigin_1d"),
    pytest.param(wide_sharp_2d(), 0.3, 4.0, id="wide_sharp_2d"),
    pytest.param(rastrigin(2), 0.3, 3.0, id="rastrigin_2d"),
]


@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize(("land", "t", "beta"), HEAT)
def test_heat_bridge_matches_the_heat_solver(land: Landscape, t: float, beta: float, antithetic: bool) -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(np.asarray(land.lower) + 1.0, np.asarray(land.upper) - 1.0, size=(15, land.ndim))
    res = hs.sde.smoothed_grad(land.grad, x, t, beta=beta, kind="heat", rng=rng, chains=2000,
                               antithetic=antithetic)
    # a window 5 units wider than the landscape's, so that the Gaussian tails stay on the grid
    lower, upper = tuple(np.asarray(land.lower) - 5), tuple(np.asarray(land.upper) + 5)
    ref, err = grid_gradient(lambda f, g: hs.heat(f, g, t, beta), land, x, 2401 if land.ndim == 1 else 401,
                             lower=lower, upper=upper)
    z = (res.grad - ref) / np.sqrt(res.stderr**2 + err**2)
    assert np.max(np.abs(z)) < 4.5 and np.mean(z**2) < 1 + 5 * math.sqrt(2 / z.size), np.round(z, 2)
    np.testing.assert_allclose(ref, heat_reference(land, x, t, beta), atol=5 * err.max() + 1e-5)


def test_heat_antithetic_pairs_are_exact_on_a_linear_gradient() -> None:
    land = quadratic(2, 3.0)
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    res = hs.sde.smoothed_grad(land.grad, x, 0.4, beta=1.0, kind="heat", rng=0, chains=8, antithetic=True)
    np.testing.assert_allclose(res.grad, 3.0 * x, atol=1e-12)
    assert np.all(res.stderr < 1e-12)
    plain = hs.sde.smoothed_grad(land.grad, x, 0.4, beta=1.0, kind="heat", rng=0, chains=8)
    assert np.all(plain.stderr > 0.1)


def test_heat_error_bars_are_calibrated() -> None:
    land = rugged_1d()
    x = np.full((400, 1), -0.7)
    res = hs.sde.smoothed_grad(land.grad, x, 0.5, beta=2.0, kind="heat", rng=np.random.default_rng(1), chains=64)
    ratio = float(np.sqrt(np.mean(res.stderr**2))) / float(np.std(res.grad, ddof=1))
    assert 0.85 < ratio < 1.15
    exact = heat_reference(land, x[:1], 0.5, 2.0)[0, 0]
    assert abs(float(np.mean(res.grad)) - exact) < 4 * float(np.std(res.grad)) / 20
