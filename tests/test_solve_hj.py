"""Tests of the time-stepping Hamilton-Jacobi solver ``solve_hj``.

Closed forms (Example 4.12), the exact Hopf-Lax and Cole-Hopf solutions on a non-convex
loss, convergence orders measured under refinement, the comparison principle of the
monotone schemes, semi-concavity (Lemma 4.17), boundary conditions, backends, bad input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers.hj import solve_hj
from hjsmooth.solvers.runge_kutta import SSP_METHODS, rk_step

from grid_strategies import periodic_field

SCHEMES = ("godunov", "lax_friedrichs", "engquist_osher")
ACCURACIES = ("first", "eno2", "weno5")


# ----------------------------------------------------------------------------- references


def exact_inviscid_sin(x: np.ndarray, t: float) -> np.ndarray:
    """u_t + u_x^2/2 = 0, u(x,0) = sin x, for t < 1 (before the first shock): along the
    characteristic from y, x = y + t cos y and u = sin y + t cos^2 y / 2."""
    y = x.copy()
    for _ in range(60):
        y = y - (y + t * np.cos(y) - x) / (1.0 - t * np.sin(y))
    return np.sin(y) + 0.5 * t * np.cos(y) ** 2


def exact_viscous_periodic(f: np.ndarray, t: float, beta: float, period: float) -> np.ndarray:
    """Cole-Hopf on a periodic box: exp(-beta u) solves v_t = v_xx / (2 beta), solved
    exactly mode by mode with the FFT (``f`` sampled on a fine periodic grid)."""
    v = np.exp(-beta * f)
    k = 2.0 * np.pi * np.fft.fftfreq(f.size, d=period / f.size)
    v_t = np.fft.ifft(np.fft.fft(v) * np.exp(-(k**2) * t / (2.0 * beta))).real
    return -np.log(v_t) / beta


def nonconvex(x: np.ndarray) -> np.ndarray:
    """A smooth non-convex loss with several local minima."""
    return 0.5 * np.sin(3.0 * x) + 0.1 * x**2


def order_of(errors: list[float]) -> float:
    return math.log2(errors[-2] / errors[-1])


# ----------------------------------------------------------------------------- closed forms

CLOSED_FORM_GRIDS = {1: 161, 2: 61, 3: 21}
#: max error in the interior |x|_inf <= 1 allowed, per accuracy (h = 0.025, 0.067, 0.2)
CLOSED_FORM_TOL = {"first": lambda d, h: 0.25 * d * h, "eno2": lambda d, h: 1e-3, "weno5": lambda d, h: 1e-3}


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("beta", [math.inf, 4.0])
@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_quadratic_closed_form(ndim: int, beta: float, accuracy: str) -> None:
    """Example 4.12 with c = 1: u = |x|^2 / (2 (1 + t)) + d/(2 beta) log(1 + t).

    Compared on the interior nodes |x|_inf <= 1 of [-2, 2]^d: the characteristics
    x = x0 (1 + t) leave the box, so only the extrapolated edge layer (and, with
    viscosity, what diffuses in from it) is disturbed."""
    n = CLOSED_FORM_GRIDS[ndim]
    grid = hs.Grid((-2.0,) * ndim, (2.0,) * ndim, (n,) * ndim)
    r2 = sum(c**2 for c in grid.coords)
    t = 0.5
    sol = solve_hj(r2 / 2.0, grid, t, beta=beta, accuracy=accuracy)
    exact = r2 / (2.0 * (1.0 + t)) + (0.0 if math.isinf(beta) else ndim / (2.0 * beta) * math.log1p(t))
    interior = np.all([np.abs(c) <= 1.0 + 1e-12 for c in grid.coords], axis=0)
    err = np.abs(sol.values - exact)[interior].max()
    assert err < CLOSED_FORM_TOL[accuracy](ndim, grid.spacing[0])
    assert sol.steps > 0 and sol.t == t


@pytest.mark.parametrize("scheme", SCHEMES)
def test_quadratic_first_order_error_halves(scheme: str) -> None:
    """First-order schemes on the closed form: the interior error halves with h (1D)."""
    errors = []
    for n in (81, 161, 321):
        grid = hs.Grid(-2.0, 2.0, n)
        x = grid.coords[0]
        sol = solve_hj(x**2 / 2.0, grid, 0.5, scheme=scheme)
        errors.append(np.abs(sol.values - x**2 / 3.0)[np.abs(x) <= 1.0].max())
    assert 0.85 < order_of(errors) < 1.3


# ----------------------------------------------------------------------------- exact solvers, non-convex f


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_nonconvex_inviscid_matches_hopf_lax(scheme: str, accuracy: str) -> None:
    """Non-convex smooth f: kinks form (the Hopf-Lax minimiser jumps), the schemes
    still converge to the viscosity solution.  Reference: hs.hopf_lax on the same grid,
    compared where its window constraint does not act (|x| <= 1.5 in [-4, 4])."""
    t = 0.5
    errors = []
    for n in (401, 801):
        grid = hs.Grid(-4.0, 4.0, n)
        x = grid.coords[0]
        f = nonconvex(x)
        reference = hs.hopf_lax(f, grid, t)
        sol = solve_hj(f, grid, t, scheme=scheme, accuracy=accuracy)
        errors.append(np.abs(sol.values - reference)[np.abs(x) <= 1.5].max())
    assert errors[-1] < 0.02
    assert errors[-1] < 0.75 * errors[0]  # converges under refinement


@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_nonconvex_viscous_matches_cole_hopf(accuracy: str) -> None:
    """Viscous (beta = 4) on the non-convex f against the Cole-Hopf formula (4.11),
    hs.local_entropy on the same grid (its window truncation, at 7 standard deviations
    of the kernel from |x| <= 1.5, is far below the tolerance)."""
    beta, t = 4.0, 0.5
    grid = hs.Grid(-4.0, 4.0, 401)
    x = grid.coords[0]
    sol = solve_hj(nonconvex(x), grid, t, beta=beta, accuracy=accuracy)
    inner = np.abs(x) <= 1.5
    reference = hs.local_entropy(nonconvex(x), grid, t, beta)[inner]
    tol = {"first": 1e-2, "eno2": 1e-3, "weno5": 1e-3}[accuracy]
    assert np.abs(sol.values[inner] - reference).max() < tol


# ----------------------------------------------------------------------------- convergence order


#: smallest accepted order (first ~1, ENO2 ~2, WENO5 >= 3 with RK3 and dt ~ h)
MIN_ORDER = {"first": 0.9, "eno2": 1.85, "weno5": 2.8}
RESOLUTIONS = {"first": (64, 128, 256), "eno2": (64, 128, 256), "weno5": (32, 64, 128)}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_inviscid_convergence_order(scheme: str, accuracy: str) -> None:
    """u(x,0) = sin x on the periodic box [0, 2 pi] at t = 0.3 (smooth; the first
    shock forms at t = 1): max-norm order measured from the two finest grids."""
    t = 0.3
    errors = []
    for n in RESOLUTIONS[accuracy]:
        grid = hs.Grid(0.0, 2.0 * math.pi, n + 1)
        x = grid.coords[0]
        sol = solve_hj(np.sin(x), grid, t, scheme=scheme, accuracy=accuracy, bc="periodic")
        errors.append(np.abs(sol.values - exact_inviscid_sin(x, t)).max())
    order = order_of(errors)
    assert order > MIN_ORDER[accuracy], (errors, order)
    assert order < MIN_ORDER[accuracy] + 1.5 + (2.0 if accuracy == "weno5" else 0.0)


@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_viscous_convergence_order(accuracy: str) -> None:
    """Viscous (beta = 1), u(x,0) = sin x, periodic, t = 0.3, against the FFT Cole-Hopf
    solution; WENO5 pairs with the fourth-order Laplacian (order > 3 expected)."""
    t, beta = 0.3, 1.0
    errors = []
    resolutions = (16, 32, 64) if accuracy == "weno5" else (32, 64, 128)
    for n in resolutions:
        grid = hs.Grid(0.0, 2.0 * math.pi, n + 1)
        x = grid.coords[0]
        sol = solve_hj(np.sin(x), grid, t, beta=beta, accuracy=accuracy, bc="periodic")
        fine = np.linspace(0.0, 2.0 * math.pi, 16 * n, endpoint=False)
        exact = exact_viscous_periodic(np.sin(fine), t, beta, 2.0 * math.pi)[::16]
        errors.append(np.abs(sol.values[:-1] - exact).max())
    assert order_of(errors) > {"first": 0.9, "eno2": 1.85, "weno5": 3.0}[accuracy], errors


#: (smallest, largest) order accepted per three-point scheme on a smooth viscous problem
VISCOUS_ORDERS = {"godunov": (0.9, 1.5), "lax_friedrichs": (0.9, 1.5), "engquist_osher": (0.9, 1.5),
                  "hybrid": (1.85, 2.5)}


@pytest.mark.parametrize("scheme", sorted(VISCOUS_ORDERS))
def test_viscous_convergence_order_of_each_three_point_scheme(scheme: str) -> None:
    """As above, per scheme: the monotone ones are first order, the hybrid scheme (central where
    max |p| h <= 2 nu, here everywhere, with SSP-RK(4,2)) second order in space and time."""
    t, beta = 0.3, 1.0
    errors = []
    for n in (32, 64, 128):
        grid = hs.Grid(0.0, 2.0 * math.pi, n + 1)
        x = grid.coords[0]
        sol = solve_hj(np.sin(x), grid, t, beta=beta, scheme=scheme, bc="periodic")
        fine = np.linspace(0.0, 2.0 * math.pi, 16 * n, endpoint=False)
        exact = exact_viscous_periodic(np.sin(fine), t, beta, 2.0 * math.pi)[::16]
        errors.append(np.abs(sol.values[:-1] - exact).max())
    low, high = VISCOUS_ORDERS[scheme]
    assert low < order_of(errors) < high, errors


def double_well_viscous(x: np.ndarray, t: float, beta: float) -> np.ndarray:
    """Cole-Hopf in closed form for ``exp(-beta f) = sum_i a_i exp(-beta (x - c_i)^2 / 2)`` (1D):
    each Gaussian of variance ``1/beta`` spreads to ``(1 + t)/beta``."""
    total = sum(a * np.exp(-beta * (x - c) ** 2 / (2.0 * (1.0 + t))) for a, c in ((1.0, -1.0), (0.6, 1.2)))
    return -np.log(total / math.sqrt(1.0 + t)) / beta


def test_default_is_second_order_on_a_non_convex_viscous_problem() -> None:
    """The default scheme on a double well (non-convex f, exact Cole-Hopf in closed form),
    away from the extrapolated edges: error falls about 4x per halving of h."""
    t, beta = 0.5, 2.0
    errors = []
    for n in (121, 241, 481):
        grid = hs.Grid(-4.0, 4.0, n)
        x = grid.coords[0]
        sol = solve_hj(double_well_viscous(x, 0.0, beta), grid, t, beta=beta)
        assert sol.info["scheme"] == "hybrid" and sol.info["method"] == "ssp42"
        inner = np.abs(x) <= 2.0
        errors.append(np.abs(sol.values - double_well_viscous(x, t, beta))[inner].max())
    assert 1.85 < order_of(errors) < 2.5, errors
    assert errors[-1] < 2e-4


def test_hybrid_keeps_order_where_the_grid_resolves_the_viscous_scale(rng: np.random.Generator) -> None:
    """With max |p| h <= 2 nu everywhere the hybrid update is the central one, monotone under its
    CFL step: data ordered at t = 0 stay ordered (a comparison principle), in 2D, any bc."""
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 41))
    x, y = grid.coords
    beta = 2.0  # 2 nu / h = 5 > max |p| of the data below
    for bc in ("extrapolate", "neumann", "periodic"):
        low = 0.5 * np.sin(2.0 * x) * np.cos(y) + 0.01 * rng.standard_normal(grid.shape)
        high = low + 0.05 * (1.0 + np.cos(x + y))  # >= low, touching nowhere
        if bc == "periodic":
            low, high = (periodic_field(v) for v in (low, high))
        a = solve_hj(low, grid, 0.4, beta=beta, bc=bc, save_at=5)
        b = solve_hj(high, grid, 0.4, beta=beta, bc=bc, save_at=5)
        assert a.info["scheme"] == "hybrid"
        assert np.all(b.snapshots >= a.snapshots - 1e-13)


def test_auto_scheme_choice() -> None:
    grid = hs.Grid(-1.0, 1.0, 41)
    f = grid.coords[0] ** 2
    assert solve_hj(f, grid, 0.1, beta=3.0).info["scheme"] == "hybrid"
    assert solve_hj(f, grid, 0.1).info["scheme"] == "godunov"  # inviscid: monotone Godunov
    assert solve_hj(f, grid, 0.1, beta=3.0, accuracy="eno2").info["scheme"] == "godunov"
    with pytest.raises(ValueError, match="`accuracy` must be 'first'"):
        solve_hj(f, grid, 0.1, beta=3.0, scheme="hybrid", accuracy="weno5")


@pytest.mark.parametrize("name", sorted(SSP_METHODS))
def test_ssp_methods_have_their_order_and_convex_stages(name: str) -> None:
    """On u' = -u the one-step error is O(dt^(order+1)); every stage is a convex combination."""
    method = SSP_METHODS[name]
    assert all(a >= 0 and b > 0 and abs(a + b - 1.0) < 1e-15 and c > 0 for a, b, c in method.stages)
    errors = [abs(rk_step(1.0, dt, lambda u, t: -u, method) - math.exp(-dt)) for dt in (0.1, 0.05)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(method.order + 1, abs=0.2)
    # the SSP coefficient: each forward-Euler substep is c dt <= dt_FE when dt = C dt_FE
    assert max(c for _, _, c in method.stages) * method.coefficient == pytest.approx(1.0)


# ----------------------------------------------------------------------------- comparison principle


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scheme=st.sampled_from(SCHEMES),
    bc=st.sampled_from(["periodic", "neumann", "dirichlet"]),
    viscous=st.booleans(),
)
def test_comparison_principle(seed: int, scheme: str, bc: str, viscous: bool) -> None:
    """f <= g implies u_f <= u_g for the monotone (first-order) schemes, with the same dt
    for both runs (chosen below both CFL bounds, so neither run shortens it)."""
    rng = np.random.default_rng(seed)
    grid = hs.Grid(0.0, 2.0, 41)
    f = rng.normal(size=41).cumsum() * 0.1
    g = f + np.abs(rng.normal(size=41)) * rng.uniform(0.0, 0.5)
    if bc == "periodic":
        f[-1], g[-1] = f[0], g[0]
    beta = 3.0 if viscous else math.inf
    h = grid.spacing[0]
    lipschitz = max(np.abs(np.diff(f)).max(), np.abs(np.diff(g)).max()) / h
    dt = 0.4 / (2.0 * lipschitz / h + (0.0 if math.isinf(beta) else 1.0 / (beta * h * h)))
    t = 25 * dt
    uf = solve_hj(f, grid, t, beta=beta, scheme=scheme, bc=bc, dt=dt)
    ug = solve_hj(g, grid, t, beta=beta, scheme=scheme, bc=bc, dt=dt)
    assert uf.steps == ug.steps == 25
    assert uf.info["min_dt"] == pytest.approx(dt) and ug.info["min_dt"] == pytest.approx(dt)
    assert np.all(uf.values <= ug.values + 1e-13)


def test_comparison_principle_2d(rng: np.random.Generator) -> None:
    """The same in 2D, all three schemes, periodic box."""
    grid = hs.Grid((0.0, 0.0), (1.0, 1.0), (25, 25))
    f = rng.normal(size=grid.shape) * 0.05
    g = f + rng.uniform(0.0, 0.1, size=grid.shape)
    for a in (f, g):
        a[-1, :] = a[0, :]
        a[:, -1] = a[:, 0]
    h = grid.spacing[0]
    lipschitz = max(np.abs(np.diff(a, axis=k)).max() for a in (f, g) for k in (0, 1)) / h
    dt = 0.4 / (4.0 * lipschitz / h + 2.0 / (5.0 * h * h))
    for scheme in SCHEMES:
        uf = solve_hj(f, grid, 20 * dt, beta=5.0, scheme=scheme, bc="periodic", dt=dt)
        ug = solve_hj(g, grid, 20 * dt, beta=5.0, scheme=scheme, bc="periodic", dt=dt)
        assert uf.steps == ug.steps == 20
        assert np.all(uf.values <= ug.values + 1e-13)


# ----------------------------------------------------------------------------- semi-concavity


def _semiconcavity_setup(n: int = 401) -> tuple[hs.Grid, np.ndarray, float]:
    """f = 0.5 sin(3x) + cos(x) on the periodic box [0, 2 pi] (``n`` nodes) and
    C = sup_x of its second difference (about 5.37).  Kinks of the inviscid solution
    appear at t = 1 / sup(-f'') ~ 0.186."""
    grid = hs.Grid(0.0, 2.0 * math.pi, n)
    x = grid.coords[0]
    f = 0.5 * np.sin(3.0 * x) + np.cos(x)
    return grid, f, float(_second_difference(f, grid.spacing[0]).max())


def _second_difference(u: np.ndarray, h: float) -> np.ndarray:
    """Periodic second difference over the distinct nodes 0 .. N-2."""
    v = u[:-1]
    return (np.roll(v, -1) - 2.0 * v + np.roll(v, 1)) / h**2


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_semiconcavity_lemma_4_17_viscous(scheme: str, accuracy: str) -> None:
    """Lemma 4.17, sup_x u_xx(x, t) <= 1 / (C^-1 + t) with C = sup f_xx, on the second
    differences of the numerical solution (beta = 2, t up to 0.5, 201 nodes).  Slack
    0.02: the second difference of a smooth u is within h^2 sup|u_xxxx| / 12 ~ 4e-3 of u_xx."""
    grid, f, c = _semiconcavity_setup(201)
    sol = solve_hj(f, grid, 0.5, beta=2.0, scheme=scheme, accuracy=accuracy, bc="periodic",
                   save_at=[0.05, 0.2, 0.5])
    for t, u in zip(sol.times, sol.snapshots):
        assert _second_difference(u, grid.spacing[0]).max() <= 1.0 / (1.0 / c + t) + 0.02, t


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("accuracy", ["eno2", "weno5"])
def test_semiconcavity_lemma_4_17_inviscid_high_order(scheme: str, accuracy: str) -> None:
    """Inviscid, while the solution is smooth (t <= 0.15, before the first kink at
    t ~ 0.186): the bound holds to 0.02, and it is sharp (attained to 0.02 as well,
    at the minimum of f where f_xx = C).  After kinks form, the non-monotone ENO/WENO
    stencils overshoot next to them and the discrete curvature is no longer a
    consistent approximation (a known limitation, not tested)."""
    grid, f, c = _semiconcavity_setup()
    sol = solve_hj(f, grid, 0.15, scheme=scheme, accuracy=accuracy, bc="periodic", save_at=[0.05, 0.1, 0.15])
    for t, u in zip(sol.times, sol.snapshots):
        bound = 1.0 / (1.0 / c + t)
        assert abs(_second_difference(u, grid.spacing[0]).max() - bound) <= 0.02, t


@pytest.mark.parametrize("scheme", SCHEMES)
def test_semiconcavity_first_order_inviscid(scheme: str) -> None:
    """Monotone first-order schemes: the discrete semi-concavity constant never increases
    (checked at 0, 0.05, 0.2, 0.5, 1, through the kinks).  The sharp rate of Lemma 4.17
    holds for Lax-Friedrichs; Godunov and Engquist-Osher upwind to zero slope at a
    minimum, where the second difference of -|p|^2/2 is a quarter of the exact one, so
    their discrete curvature decays more slowly there (an O(1) error of the second
    difference, though u itself converges at first order)."""
    grid, f, c = _semiconcavity_setup()
    sol = solve_hj(f, grid, 1.0, scheme=scheme, bc="periodic", save_at=[0.0, 0.05, 0.2, 0.5, 1.0])
    sups = [_second_difference(u, grid.spacing[0]).max() for u in sol.snapshots]
    assert sups[0] == pytest.approx(c)
    assert all(b <= a + 1e-12 for a, b in zip(sups, sups[1:])), sups
    assert sups[-1] < 0.5 * c
    if scheme == "lax_friedrichs":
        assert all(s <= 1.0 / (1.0 / c + t) + 1e-9 for s, t in zip(sups, sol.times))


# ----------------------------------------------------------------------------- boundary conditions


@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_periodic_exact_periodicity_and_translation(accuracy: str) -> None:
    """Periodic box: node N-1 equals node 0 exactly at all times; shifting f by m nodes
    shifts the solution by m nodes (to rounding)."""
    rng = np.random.default_rng(7)
    n = 64
    grid = hs.Grid(0.0, 2.0 * math.pi, n + 1)
    x = grid.coords[0]
    coeffs = rng.normal(size=4)
    f = sum(a * np.sin((k + 1) * x + k) for k, a in enumerate(coeffs)) * 0.3
    sol = solve_hj(f, grid, 0.4, beta=5.0, accuracy=accuracy, bc="periodic", save_at=3)
    assert np.all(sol.snapshots[:, -1] == sol.snapshots[:, 0])
    m = 13
    shifted_f = np.append(np.roll(f[:-1], m), 0.0)
    shifted_f[-1] = shifted_f[0]
    shifted = solve_hj(shifted_f, grid, 0.4, beta=5.0, accuracy=accuracy, bc="periodic", save_at=3)
    np.testing.assert_allclose(shifted.values[:-1], np.roll(sol.values[:-1], m), atol=1e-12, rtol=0)


def test_periodic_ignores_last_node() -> None:
    """The input's last node along a periodic axis is replaced by its first (documented)."""
    grid = hs.Grid(0.0, 1.0, 21)
    f = np.cos(2 * math.pi * grid.coords[0])
    g = f.copy()
    g[-1] = 5.0
    a = solve_hj(f, grid, 0.1, bc="periodic")
    b = solve_hj(g, grid, 0.1, bc="periodic")
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("accuracy", ACCURACIES)
@pytest.mark.parametrize("beta", [math.inf, 3.0])
def test_neumann_is_the_mirrored_periodic_problem(accuracy: str, beta: float) -> None:
    """Mirror about the end nodes: the Neumann problem on [0, pi] equals the periodic
    problem on [0, 2 pi] whose data is f reflected about x = pi, restricted to [0, pi]."""
    m = 40
    half = hs.Grid(0.0, math.pi, m + 1)
    full = hs.Grid(0.0, 2.0 * math.pi, 2 * m + 1)
    f = np.cos(half.coords[0]) + 0.3 * np.cos(2.0 * half.coords[0]) ** 3
    f_full = np.concatenate([f, f[-2::-1]])
    neumann = solve_hj(f, half, 0.5, beta=beta, accuracy=accuracy, bc="neumann")
    periodic = solve_hj(f_full, full, 0.5, beta=beta, accuracy=accuracy, bc="periodic")
    np.testing.assert_allclose(neumann.values, periodic.values[: m + 1], atol=1e-12, rtol=0)
    assert neumann.steps == periodic.steps


def test_neumann_zero_normal_derivative() -> None:
    """With the mirror condition the one-sided slope at an end node is zero in the scheme,
    so a linear f (slope 1) is worn down at the ends and left unchanged in the interior."""
    grid = hs.Grid(0.0, 4.0, 81)
    x = grid.coords[0]
    sol = solve_hj(x.copy(), grid, 0.5, bc="neumann")
    # far from the ends the exact solution of u_t = -u_x^2/2 with u = x is x - t/2
    inner = (x > 1.0) & (x < 3.0)
    np.testing.assert_allclose(sol.values[inner], x[inner] - 0.25, atol=1e-12)
    # at the ends the zero-slope reflection keeps u from decreasing as fast
    assert sol.values[0] > -0.25 and sol.values[-1] > x[-1] - 0.25


@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_dirichlet_holds_boundary_values(accuracy: str) -> None:
    """End nodes stay at f's boundary values (default) or at bc_value; the interior far
    from the edges follows the closed form."""
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 41))
    r2 = grid.coords[0] ** 2 + grid.coords[1] ** 2
    f = r2 / 2.0
    sol = solve_hj(f, grid, 0.3, bc="dirichlet", accuracy=accuracy, save_at=3)
    edge = np.zeros(grid.shape, bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    for snap in sol.snapshots:
        np.testing.assert_array_equal(snap[edge], f[edge])
    inner = np.all([np.abs(c) <= 0.5 for c in grid.coords], axis=0)
    assert np.abs(sol.values - r2 / 2.6)[inner].max() < 0.05
    held = solve_hj(f, grid, 0.3, bc="dirichlet", bc_value=1.25, accuracy=accuracy)
    assert np.all(held.values[edge] == 1.25)
    assert np.all(solve_hj(f, grid, 0.1, bc="dirichlet", bc_value=np.int64(2)).values[edge] == 2.0)
    values = np.full(grid.shape, -3.0)
    held_array = solve_hj(f, grid, 0.3, bc="dirichlet", bc_value=values)
    assert np.all(held_array.values[edge] == -3.0)


# ----------------------------------------------------------------------------- backends and dtypes


@pytest.mark.parametrize(
    "scheme, accuracy, bc, beta",
    [
        ("godunov", "first", "extrapolate", math.inf),
        ("lax_friedrichs", "eno2", "periodic", 2.0),
        ("engquist_osher", "weno5", "neumann", 4.0),
        ("godunov", "weno5", "dirichlet", math.inf),
        ("hybrid", "first", "dirichlet", 2.0),
        ("engquist_osher", "first", "periodic", 3.0),
        ("lax_friedrichs", "first", "neumann", 1.0),
    ],
)
@pytest.mark.parametrize("engine", ["default", "array"])
def test_backends_agree(backend, scheme: str, accuracy: str, bc: str, beta: float, engine: str,
                        monkeypatch) -> None:
    """Every backend, with its default engine and with the array code, returns its own array
    type/device/dtype and agrees with numpy's default engine to 1e-10 (float64)."""
    grid = hs.Grid((-2.0, -1.0), (2.0, 1.0), (33, 21))
    x, y = grid.coords
    f = nonconvex(x) + 0.5 * np.cos(2.0 * y) + 0.2 * x * y
    reference = solve_hj(f, grid, 0.3, beta=beta, scheme=scheme, accuracy=accuracy, bc=bc, save_at=2)
    data = backend.asarray(f)
    if engine == "array":
        monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
        monkeypatch.setitem(kernels._PACKAGES, "cuda", lambda: False)
    sol = solve_hj(data, grid, 0.3, beta=beta, scheme=scheme, accuracy=accuracy, bc=bc, save_at=2)
    if engine == "array":
        assert sol.info["engine"] == "array"
    assert backend.is_same_kind(sol.values, data) and backend.is_same_kind(sol.snapshots, data)
    assert sol.steps == reference.steps
    np.testing.assert_allclose(backend.to_numpy(sol.values), reference.values, atol=1e-10, rtol=0)
    np.testing.assert_allclose(backend.to_numpy(sol.snapshots), reference.snapshots, atol=1e-10, rtol=0)


@pytest.mark.parametrize("accuracy", ACCURACIES)
def test_float32(backend, accuracy: str) -> None:
    """float32 in, float32 out, close to the float64 result."""
    grid = hs.Grid(-3.0, 3.0, 121)
    f = nonconvex(grid.coords[0])
    reference = solve_hj(f, grid, 0.5, beta=3.0, accuracy=accuracy)
    data = backend.asarray(f, dtype="float32")
    sol = solve_hj(data, grid, 0.5, beta=3.0, accuracy=accuracy)
    assert backend.is_same_kind(sol.values, data)
    np.testing.assert_allclose(backend.to_numpy(sol.values), reference.values, atol=2e-4, rtol=0)


# ----------------------------------------------------------------------------- t = 0, dt, result


def test_zero_time_returns_a_copy(backend) -> None:
    grid = hs.Grid(-1.0, 1.0, 11)
    f = backend.asarray(grid.coords[0] ** 2)
    sol = solve_hj(f, grid, 0.0)
    assert sol.steps == 0 and sol.values is not f
    np.testing.assert_array_equal(backend.to_numpy(sol.values), backend.to_numpy(f))
    sol.values[0] = 99.0
    assert float(f[0]) == 1.0


def test_user_dt_above_bound_is_reduced_not_refused() -> None:
    grid = hs.Grid(-2.0, 2.0, 81)
    f = grid.coords[0] ** 2 / 2.0
    free = solve_hj(f, grid, 0.5, beta=2.0)
    capped = solve_hj(f, grid, 0.5, beta=2.0, dt=10.0)
    np.testing.assert_array_equal(free.values, capped.values)
    small = solve_hj(f, grid, 0.5, beta=2.0, dt=free.info["min_dt"] / 2.0)
    assert small.steps > free.steps


def test_save_at_lands_on_requested_times() -> None:
    grid = hs.Grid(-2.0, 2.0, 81)
    x = grid.coords[0]
    sol = solve_hj(x**2 / 2.0, grid, 1.0, accuracy="weno5", save_at=[0.0, 0.25, 0.6])
    np.testing.assert_array_equal(sol.times, [0.0, 0.25, 0.6, 1.0])
    inner = np.abs(x) <= 1.0
    for t, snap in zip(sol.times, sol.snapshots):
        assert np.abs(snap - x**2 / (2.0 * (1.0 + t)))[inner].max() < 1e-6


def test_constant_data_stays_constant() -> None:
    grid = hs.Grid((0.0, 0.0), (1.0, 1.0), (9, 9))
    sol = solve_hj(np.full(grid.shape, 2.5), grid, 3.0)
    np.testing.assert_array_equal(sol.values, 2.5)


def test_lazy_export() -> None:
    assert hs.solve_hj is solve_hj


# ----------------------------------------------------------------------------- degenerate data, high order


@pytest.mark.parametrize("accuracy", ["eno2", "weno5"])
@pytest.mark.parametrize("value", [0.0, 2.5, -1e-300, 1e300])
def test_constant_data_stays_constant_at_high_order(accuracy: str, value: float) -> None:
    """Zero slopes everywhere: the WENO smoothness indicators are all zero, and the weights
    must still be the optimal ones (no 0/0), so u stays exactly constant."""
    grid = hs.Grid((0.0, 0.0), (1.0, 1.0), (9, 7))
    sol = solve_hj(np.full(grid.shape, value), grid, 1.0, beta=4.0, accuracy=accuracy)
    np.testing.assert_array_equal(sol.values, value)


@pytest.mark.parametrize("shape", [(41, 9), (41, 3)])
def test_weno5_field_constant_along_an_axis(shape: tuple[int, int]) -> None:
    """2D f = x^2 is constant along y (a 3-node y axis included): the solution is the 1D
    solution on every line, x^2 / (1 + 2t) inside the box for the inviscid equation."""
    grid = hs.Grid((-2.0, -1.0), (2.0, 1.0), shape)
    x = grid.coords[0]
    sol = solve_hj(x**2, grid, 0.5, accuracy="weno5")
    line = solve_hj(grid.axes[0] ** 2, hs.Grid(-2.0, 2.0, shape[0]), 0.5, accuracy="weno5")
    np.testing.assert_allclose(sol.values, np.broadcast_to(line.values[:, None], shape), rtol=0, atol=1e-14)
    inner = np.abs(x) <= 1.0
    assert np.abs(sol.values - x**2 / 2.0)[inner].max() < 1e-3


@pytest.mark.parametrize("scale", [1e-100, 1e-30, 1e30, 1e100])
def test_weno5_is_scale_invariant(scale: float) -> None:
    """The regularisation of the smoothness indicators is relative to the data, so one WENO5
    reconstruction of c u is c times that of u (to rounding), for tiny and huge c alike."""
    from hjsmooth.solvers.derivatives import one_sided_differences

    u = np.sin(3.0 * np.linspace(-1.0, 1.0, 27)) + np.abs(np.linspace(-1.0, 1.0, 27))  # a kink inside
    minus, plus = one_sided_differences(u, 0, 0.08, "weno5")
    minus_c, plus_c = one_sided_differences(scale * u, 0, 0.08, "weno5")
    np.testing.assert_allclose(minus_c / scale, minus, rtol=1e-12, atol=0)
    np.testing.assert_allclose(plus_c / scale, plus, rtol=1e-12, atol=0)


def test_weno5_tiny_quadratic_evolves_like_the_unit_one() -> None:
    """f = 1e-100 x^2: the slopes are tiny but not zero; u = 1e-100 x^2 / (1 + 2e-100 t) = f to rounding."""
    grid = hs.Grid(-1.0, 1.0, 41)
    f = 1e-100 * grid.axes[0] ** 2
    sol = solve_hj(f, grid, 1.0, accuracy="weno5")
    assert np.all(np.isfinite(sol.values))
    np.testing.assert_allclose(sol.values, f, rtol=1e-12, atol=1e-115)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"t": -1.0}, ValueError, "`t`"),
        ({"t": float("nan")}, ValueError, "`t`"),
        ({"beta": 0.0}, ValueError, "`beta`"),
        ({"beta": -2.0}, ValueError, "`beta`"),
        ({"scheme": "upwind"}, ValueError, "'godunov', 'lax_friedrichs', 'engquist_osher'"),
        ({"bc": "reflect"}, ValueError, "'extrapolate', 'periodic', 'neumann', 'dirichlet'"),
        ({"accuracy": "eno3"}, ValueError, "'first', 'eno2', 'weno5'"),
        ({"cfl": 0.0}, ValueError, "`cfl`"),
        ({"cfl": 1.5}, ValueError, "`cfl`"),
        ({"dt": -0.1}, ValueError, "`dt`"),
        ({"bc_value": 1.0}, ValueError, "`bc_value`"),
        ({"bc": "dirichlet", "bc_value": float("inf")}, ValueError, "`bc_value`"),
        ({"bc": "dirichlet", "bc_value": np.zeros(3)}, ValueError, "`bc_value`"),
        ({"save_at": [2.0]}, ValueError, "`save_at`"),
        ({"save_at": "abc"}, ValueError, "`save_at` must be a count"),  # not "could not convert string"
        ({"beta": 1e-300}, ValueError, "^`beta`=1e-300 makes the viscous term"),  # blames beta, not t
        ({"t": "soon"}, TypeError, "`t`"),
    ],
)
def test_bad_input(kwargs: dict, error: type, match: str) -> None:
    grid = hs.Grid(-1.0, 1.0, 21)
    args = {"f": grid.coords[0] ** 2, "grid": grid, "t": 1.0}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        solve_hj(**args)


def test_bad_field() -> None:
    grid = hs.Grid(-1.0, 1.0, 21)
    with pytest.raises(ValueError, match="`f`"):
        solve_hj(np.zeros(20), grid, 1.0)
    bad = np.zeros(21)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="`f`"):
        solve_hj(bad, grid, 1.0)
    with pytest.raises(TypeError, match="`grid`"):
        solve_hj(np.zeros(21), (21,), 1.0)
    with pytest.raises(ValueError, match="nodes"):
        solve_hj(np.zeros(3), hs.Grid(0.0, 1.0, 3), 1.0, accuracy="weno5", bc="periodic")
