"""Edge values that used to pass validation and come back as inf or NaN (or a silently wrong
number): each is now either computed correctly or refused with an error that names the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth import validation

# ----------------------------------------------------------------------------- grids


@pytest.mark.parametrize(
    ("lower", "upper", "shape"),
    [
        (-1e308, 1e308, 3),  # upper - lower overflows: infinite spacing
        (0.0, 5e-324, 3),  # spacing rounds to zero
        (0.0, 1e-200, 3),  # 1 / h^2 overflows (every time stepper divides by h^2)
        (0.0, 1e200, 3),  # h^2 overflows
        (1.0, 1.0 + 4e-16, 11),  # spacing below the resolution of float64 at 1: nodes coincide
        ((0.0, 0.0, 0.0), (1e-105, 1e-105, 1e-105), (3, 3, 3)),  # cell volume underflows
    ],
)
def test_grids_whose_spacing_is_not_representable_are_refused(lower, upper, shape) -> None:
    with pytest.raises(ValueError, match="spacing"):
        hs.Grid(lower, upper, shape)


def test_grid_near_the_limits_is_accepted() -> None:
    g = hs.Grid(-1e150, 1e150, 3)
    assert g.spacing == (1e150,) and math.isfinite(g.cell_volume)
    g = hs.Grid(0.0, 1e-150, 3)
    assert np.all(np.diff(g.axes[0]) > 0)


@pytest.mark.parametrize("bad", [1j, np.complex128(1 + 1j), np.array(1 + 0j)])
def test_grid_refuses_complex_corners(bad) -> None:
    with pytest.raises(TypeError, match="`lower`"):
        hs.Grid(bad, 2.0, 5)


def test_one_grid_check_everywhere() -> None:
    """Every solver refuses a non-Grid with the same message, from validation.check_grid."""
    f = np.zeros(5)
    calls = [
        lambda: hs.hopf_lax(f, (5,), 1.0),
        lambda: hs.local_entropy(f, (5,), 1.0, 1.0),
        lambda: hs.heat(f, (5,), 1.0, 1.0),
        lambda: hs.solve_hj(f, (5,), 1.0),
        lambda: hs.solve_hjb(f, (5,), 1.0),
        lambda: hs.solve_fokker_planck(f, (5,), 1.0),
        lambda: hs.fokker_planck_steady_state((5,)),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"`grid` must be a hjsmooth.Grid, got tuple"):
            call()


# ----------------------------------------------------------------------------- scalars

GRID = hs.Grid(-1.0, 1.0, 11)
F = GRID.axes[0] ** 2


def _all_beta_users(beta):
    rho = np.exp(-F)
    return [
        lambda: hs.local_entropy(F, GRID, 1.0, beta),
        lambda: hs.heat(F, GRID, 1.0, beta),
        lambda: hs.solve_hj(F, GRID, 1.0, beta=beta),
        lambda: hs.solve_hjb(F, GRID, 1.0, beta=beta, potential=F),
        lambda: hs.solve_fokker_planck(rho, GRID, 1.0, potential=F, beta=beta),
        lambda: hs.solve_fokker_planck(rho, GRID, 1.0, potential=F, beta=beta, method="implicit"),
        lambda: hs.fokker_planck_steady_state(GRID, potential=F, beta=beta),
        lambda: hs.sde.smoothed_grad(lambda y: 2 * y, np.zeros((2, 1)), 1.0, beta, kind="heat", rng=0),
        lambda: hs.sde.simulate(np.zeros((2, 1)), 1.0, beta=beta, rng=0, grad_f=lambda y: 2 * y),
    ]


@pytest.mark.parametrize("beta", [5e-324, 1e-320, 1e-309])
def test_beta_whose_inverse_overflows_is_refused_everywhere(beta: float) -> None:
    for call in _all_beta_users(beta):
        with pytest.raises(ValueError, match="`beta`"):
            call()


@pytest.mark.parametrize("name", ["t", "beta"])
@pytest.mark.parametrize("bad", [1 + 1j, np.complex128(2.0), np.array(2.0 + 0j), True])
def test_complex_and_boolean_scalars_are_refused(name: str, bad) -> None:
    args = {"t": 1.0, "beta": 2.0}
    args[name] = bad
    for call in (lambda: hs.heat(F, GRID, args["t"], args["beta"]),
                 lambda: hs.solve_hj(F, GRID, args["t"], beta=args["beta"])):
        with pytest.raises(TypeError, match=f"`{name}` must be a real number"):
            call()


def test_complex_fields_and_diffusion_are_refused() -> None:
    rho = np.exp(-F)
    with pytest.raises(TypeError, match="`diffusion`"):
        hs.solve_fokker_planck(rho, GRID, 0.1, diffusion=np.ones(11) * (1 + 1j))
    with pytest.raises(TypeError, match="`diffusion`"):
        hs.solve_fokker_planck(rho, GRID, 0.1, diffusion=1 + 1j)
    with pytest.raises(TypeError, match="`diffusion`"):
        hs.solve_fokker_planck(rho, GRID, 0.1, diffusion=np.array([1 + 0j]))
    for method in ("implicit", "tr_bdf2"):
        with pytest.raises(TypeError, match="`diffusion`"):
            hs.solve_fokker_planck(rho, GRID, 0.1, diffusion=np.ones(11) * (1 + 1j), method=method)
    with pytest.raises(TypeError, match="`diffusion`"):
        hs.fokker_planck_steady_state(GRID, potential=F, diffusion=np.ones(11) * (1 + 1j))
    with pytest.raises(TypeError, match="`f`"):
        hs.heat(F + 0j, GRID, 0.1, 1.0)
    with pytest.raises(TypeError, match="`bc_value`"):
        hs.solve_hj(F, GRID, 0.1, bc="dirichlet", bc_value=1 + 1j)
    with pytest.raises(TypeError, match="`sigma`"):
        hs.sde.simulate(np.zeros((2, 1)), 0.1, kind="sde", beta=1.0, rng=0, drift=lambda x: -x,
                        sigma=np.array([[1 + 1j]]))


@pytest.mark.parametrize("t", [5e-324, 1e-300, 1e-30])
def test_tiny_times_return_f(t: float) -> None:
    """Below the grid's resolution every solver returns (essentially) its initial data, never inf or NaN."""
    np.testing.assert_array_equal(hs.hopf_lax(F, GRID, t), F)
    np.testing.assert_array_equal(hs.hopf_lax(F, GRID, t, method="brute_force"), F)
    np.testing.assert_array_equal(hs.hopf_lax(F, GRID, t, subgrid="cubic"), F)
    np.testing.assert_allclose(hs.local_entropy(F, GRID, t, 1.0), F, rtol=0, atol=1e-15)
    np.testing.assert_allclose(hs.heat(F, GRID, t, 1.0), F, rtol=0, atol=1e-15)
    rho = np.exp(-F)
    for method in ("explicit", "implicit", "tr_bdf2"):
        sol = hs.solve_fokker_planck(rho, GRID, t, potential=F, method=method)
        np.testing.assert_allclose(sol.values, rho, rtol=1e-12)
    np.testing.assert_allclose(hs.solve_hj(F, GRID, t, beta=3.0).values, F, rtol=0, atol=1e-15)


def test_huge_times_and_small_beta_are_computed_or_refused() -> None:
    """Closed forms work in the log domain: a huge variance t / beta is not an overflow."""
    v = hs.heat(np.ones(11), GRID, 1e308, 1.0)
    assert np.all(np.isfinite(v)) and np.all(v >= 0) and v.max() < 1e-150  # spread over the whole line
    u = hs.local_entropy(F, GRID, 1e308, 1.0)
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(u - u[5], 0.0, atol=1e-12)  # flat: the kernel covers the window evenly
    v = hs.heat(np.ones(11), GRID, 1e300, 1e-8)  # t / beta = 1e308
    assert np.all(np.isfinite(v)) and v.max() < 1e-150
    with pytest.raises(FloatingPointError, match="`beta`"):
        hs.local_entropy(F, GRID, 1.0, 1e-307)  # u ~ 354 / beta overflows


def test_potential_too_steep_for_the_rates_is_refused() -> None:
    rho = np.exp(-F)
    with pytest.raises(ValueError, match="`potential`"):
        hs.solve_fokker_planck(rho, GRID, 1.0, potential=F * 1e308)
    with pytest.raises(ValueError, match="`drift`"):
        hs.solve_fokker_planck(rho, GRID, 1.0, drift=np.full((1, 11), 1.7e308))
    ss = hs.fokker_planck_steady_state(GRID, potential=F * 1e308)  # the Gibbs density is still exact
    assert np.all(np.isfinite(ss)) and ss.min() >= 0 and GRID.integrate(ss) == pytest.approx(1.0, abs=1e-15)
    assert ss[5] == ss.max()


def test_implicit_step_that_loses_the_identity_is_refused() -> None:
    """dt times the largest rate beyond 1/eps: I - dt L is singular in floating point; refuse by name."""
    with pytest.raises(FloatingPointError, match="`dt`"):
        hs.solve_fokker_planck(np.exp(-F), GRID, 1.0, potential=F, beta=1e-300, method="implicit")


# ----------------------------------------------------------------------------- one home for checks


def test_checks_are_exported_from_validation() -> None:
    for name in ("check_grid", "check_alpha", "check_real", "check_seed", "check_output_path"):
        assert callable(getattr(validation, name)), name
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\), got 1.0"):
        validation.check_alpha(1.0)
    with pytest.raises(ValueError, match=r"`alpha`"):
        hs.sde.smoothed_grad(lambda y: y, np.zeros(1), 1.0, 1.0, rng=0, alpha=1.5, averaging="exponential", chains=2)
