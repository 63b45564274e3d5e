"""Tests of the controlled HJB solver (4.31), the optimal control (4.32) and the
forward-backward system of the dynamics (4.29)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers.hj import solve_hj
from hjsmooth.solvers.hjb import ForwardBackwardSolution, optimal_control, solve_forward_backward, solve_hjb

ACCURACIES = ("first", "eno2", "weno5")
SCHEMES = ("godunov", "lax_friedrichs", "engquist_osher")


def riccati(tau: np.ndarray, a0: float, c0: float, nu: float, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed form for f = a0 |x|^2/2, V = c0 |x|^2/2: u = a(tau) |x|^2/2 + c(tau), tau = T - s.

    Substituting into u_tau = -grad f . grad u - |grad u|^2/2 + nu Lap u gives the Riccati
    ODE a' = -a (2 a0 + a), a(0) = c0, and c' = nu d a, c(0) = 0.  With k = 2 a0 and
    A = k/c0 + 1: 1/a = (1/c0 + 1/k) e^{k tau} - 1/k, c = nu d log((A - e^{-k tau}) / (A - 1))."""
    k = 2.0 * a0
    big_a = k / c0 + 1.0
    a = k / (big_a * np.exp(k * tau) - 1.0)
    c = nu * ndim * np.log((big_a - np.exp(-k * tau)) / (big_a - 1.0))
    return a, c


# ----------------------------------------------------------------------------- HJB


def test_riccati_formula_solves_its_ode() -> None:
    """The closed form used below: finite differences in tau of a and c match the ODE."""
    tau = np.linspace(0.0, 1.0, 2001)
    a, c = riccati(tau, 0.7, 1.5, 0.25, 2)
    d = tau[1] - tau[0]
    np.testing.assert_allclose(np.gradient(a, d, edge_order=2), -a * (1.4 + a), atol=1e-5)
    np.testing.assert_allclose(np.gradient(c, d, edge_order=2), 0.25 * 2 * a, atol=1e-5)
    assert a[0] == pytest.approx(1.5) and c[0] == 0.0


@pytest.mark.parametrize("accuracy", ACCURACIES)
@pytest.mark.parametrize("ndim", [1, 2])
def test_quadratic_closed_form(accuracy: str, ndim: int) -> None:
    """f = 0.7 |x|^2/2, V = 1.5 |x|^2/2, beta = 2, T = 1: u and alpha* = grad u = a(s) x
    at the snapshots, compared on |x|_inf <= 1.5 in [-3, 3]^d (the characteristics
    dx/dtau = (a0 + a) x leave the box, so only the edge layer is disturbed)."""
    a0, c0, beta, big_t = 0.7, 1.5, 2.0, 1.0
    n = 161 if ndim == 1 else 49
    grid = hs.Grid((-3.0,) * ndim, (3.0,) * ndim, (n,) * ndim)
    r2 = sum(c**2 for c in grid.coords)
    sol = solve_hjb(c0 * r2 / 2.0, grid, big_t, beta=beta, potential=a0 * r2 / 2.0, accuracy=accuracy, save_at=5)
    np.testing.assert_allclose(sol.times, np.linspace(0.0, 1.0, 5))
    a, c = riccati(big_t - sol.times, a0, c0, 0.5 / beta, ndim)
    inner = np.all([np.abs(x) <= 1.5 for x in grid.coords], axis=0)
    h = grid.spacing[0]
    tol = 0.5 * ndim * h if accuracy == "first" else 2e-3 * ndim
    control = optimal_control(sol, grid)
    assert control.shape == (5, ndim, *grid.shape)
    for j in range(5):
        exact = a[j] * r2 / 2.0 + c[j]
        assert np.abs(sol.snapshots[j] - exact)[inner].max() < tol, (j, accuracy)
        for k in range(ndim):
            assert np.abs(control[j, k] - a[j] * grid.coords[k])[inner].max() < 2.0 * tol
    np.testing.assert_array_equal(sol.values, sol.snapshots[0])
    np.testing.assert_array_equal(sol.snapshots[-1], c0 * r2 / 2.0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_quadratic_first_order_converges(scheme: str) -> None:
    """The upwinded Hamiltonian grad f . p + |p|^2/2: first-order error halves with h."""
    errors = []
    for n in (81, 161, 321):
        grid = hs.Grid(-3.0, 3.0, n)
        x = grid.coords[0]
        sol = solve_hjb(x**2, grid, 1.0, beta=2.0, grad_f=(0.5 * x)[None, :], scheme=scheme)
        a, c = riccati(np.array([1.0]), 0.5, 2.0, 0.25, 1)
        errors.append(np.abs(sol.values - (a[0] * x**2 / 2.0 + c[0]))[np.abs(x) <= 1.5].max())
    assert 0.8 < math.log2(errors[-2] / errors[-1]) < 1.3, errors


def test_advection_is_upwinded() -> None:
    """Linear V with f = a0 x^2/2, no viscosity: u(x, s) = V along characteristics of
    dx/dtau = a0 x + u_x, here u = m(s) x + c(s) with m' = -a0 m ... m(tau) = e^{-a0 tau},
    c(tau) = -(1 - e^{-2 a0 tau})/(4 a0).  Exercises both signs of grad f + p."""
    a0 = 1.0
    grid = hs.Grid(-2.0, 2.0, 401)
    x = grid.coords[0]
    sol = solve_hjb(x.copy(), grid, 0.5, potential=a0 * x**2 / 2.0, accuracy="eno2")
    m = math.exp(-a0 * 0.5)
    c = -(1.0 - math.exp(-2.0 * a0 * 0.5)) / (4.0 * a0)
    inner = np.abs(x) <= 1.0
    assert np.abs(sol.values - (m * x + c))[inner].max() < 1e-3


@pytest.mark.parametrize("beta", [math.inf, 3.0])
def test_zero_potential_is_hj_in_reversed_time(beta: float) -> None:
    """f = 0: (4.31) in reversed time is (4.1), so u(., 0) = solve_hj(V, T) exactly and
    agrees with the exact solvers local_entropy (viscous) / hopf_lax (inviscid)."""
    grid = hs.Grid(-4.0, 4.0, 321)
    x = grid.coords[0]
    V = 0.5 * np.sin(3.0 * x) + 0.1 * x**2
    sol = solve_hjb(V, grid, 0.5, beta=beta, accuracy="weno5")
    np.testing.assert_array_equal(sol.values, solve_hj(V, grid, 0.5, beta=beta, accuracy="weno5").values)
    exact = hs.hopf_lax(V, grid, 0.5) if math.isinf(beta) else hs.local_entropy(V, grid, 0.5, beta)
    inner = np.abs(x) <= 1.5
    assert np.abs(sol.values - exact)[inner].max() < 5e-3


def test_hjb_weno5_with_data_constant_along_an_axis() -> None:
    """V and f depend on x only (2D): the y slopes are all zero, which WENO5 must survive;
    every y line then carries the 1D solution (same steps: a dt below both CFL bounds)."""
    grid = hs.Grid((-2.0, -1.0), (2.0, 1.0), (41, 5))
    x = grid.coords[0]
    sol = solve_hjb(x**2, grid, 0.5, beta=4.0, potential=0.3 * x**2, accuracy="weno5", dt=2e-3)
    line_grid = hs.Grid(-2.0, 2.0, 41)
    line = solve_hjb(line_grid.axes[0] ** 2, line_grid, 0.5, beta=4.0, potential=0.3 * line_grid.axes[0] ** 2,
                     accuracy="weno5", dt=2e-3)
    assert sol.steps == line.steps == 250
    assert np.all(np.isfinite(sol.values))
    np.testing.assert_allclose(sol.values, np.broadcast_to(line.values[:, None], grid.shape), rtol=0, atol=1e-13)


def test_hjb_comparison_principle(rng: np.random.Generator) -> None:
    """Monotone first-order scheme: V1 <= V2 gives u1 <= u2 (same dt), with advection."""
    grid = hs.Grid(-1.0, 1.0, 41)
    x = grid.coords[0]
    v1 = np.cumsum(rng.normal(size=41)) * 0.05
    v2 = v1 + rng.uniform(0.0, 0.2, size=41)
    potential = np.sin(3.0 * x)
    for scheme in SCHEMES:
        u1 = solve_hjb(v1, grid, 0.2, beta=4.0, potential=potential, scheme=scheme, bc="neumann", dt=1e-4)
        u2 = solve_hjb(v2, grid, 0.2, beta=4.0, potential=potential, scheme=scheme, bc="neumann", dt=1e-4)
        assert u1.steps == u2.steps and u1.info["min_dt"] == u2.info["min_dt"]
        assert u1.info["last_dt"] <= 1e-4
        assert np.all(u1.values <= u2.values + 1e-13)


def test_optimal_control_without_snapshots() -> None:
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (21, 31))
    x, y = grid.coords
    sol = solve_hjb(x**2 + 3.0 * y, grid, 0.0)
    control = optimal_control(sol, grid)
    assert control.shape == (2, 21, 31)
    np.testing.assert_allclose(control[0], 2.0 * x, atol=1e-12)
    np.testing.assert_allclose(control[1], 3.0, atol=1e-12)


def test_hjb_backends_agree(backend) -> None:
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (33, 29))
    x, y = grid.coords
    V = 0.5 * (x - 0.5) ** 2 + np.cos(2.0 * y)
    f = 0.25 * (x**2 - 1.0) ** 2 + 0.5 * y**2
    reference = solve_hjb(V, grid, 0.4, beta=3.0, potential=f, accuracy="eno2", save_at=3)
    sol = solve_hjb(backend.asarray(V), grid, 0.4, beta=3.0, potential=backend.asarray(f), accuracy="eno2",
                    save_at=3)
    assert backend.is_same_kind(sol.values, backend.asarray(V))
    np.testing.assert_allclose(backend.to_numpy(sol.snapshots), reference.snapshots, atol=1e-10, rtol=0)
    control = optimal_control(sol, grid)
    np.testing.assert_allclose(backend.to_numpy(control), optimal_control(reference, grid), atol=1e-10, rtol=0)
    single = solve_hjb(backend.asarray(V, "float32"), grid, 0.4, beta=3.0, potential=f, accuracy="eno2")
    assert backend.is_same_kind(single.values, backend.asarray(V, "float32"))
    np.testing.assert_allclose(backend.to_numpy(single.values), reference.values, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"t": -1.0}, ValueError, "`t`"),
        ({"beta": 0.0}, ValueError, "`beta`"),
        ({"scheme": "roe"}, ValueError, "`scheme`"),
        ({"grad_f": np.zeros(21)}, ValueError, "`grad_f`"),
        ({"potential": np.zeros(5)}, ValueError, "`potential`"),
        ({"potential": np.zeros(21), "grad_f": np.zeros((1, 21))}, ValueError, "either"),
        ({"save_at": [3.0]}, ValueError, "`save_at`"),
        ({"save_at": "abc"}, ValueError, "`save_at` must be a count"),
        ({"beta": 1e-300}, ValueError, "^`beta`=1e-300"),
    ],
)
def test_hjb_bad_input(kwargs: dict, error: type, match: str) -> None:
    grid = hs.Grid(-1.0, 1.0, 21)
    args = {"V": grid.coords[0] ** 2, "grid": grid, "t": 1.0}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        solve_hjb(**args)


def test_final_time_is_t_and_T_is_deprecated() -> None:
    """Every solver takes the final time as ``t``; ``T`` still works for now, with a DeprecationWarning."""
    grid, f, V, rho0 = _double_well_problem(41)
    new = solve_hjb(V, grid, t=0.5, beta=2.0, potential=f)
    with pytest.warns(DeprecationWarning, match="`T` is deprecated"):
        old = solve_hjb(V, grid, T=0.5, beta=2.0, potential=f)
    np.testing.assert_array_equal(new.values, old.values)
    assert new.info["t"] == 0.5
    with pytest.raises(TypeError, match="not both"):
        solve_hjb(V, grid, 0.5, T=0.5)
    with pytest.raises(TypeError, match="missing the argument `t`"):
        solve_hjb(V, grid)
    fb = solve_forward_backward(V, rho0, grid, t=0.2, potential=f, beta=2.0, n_intervals=4)
    with pytest.warns(DeprecationWarning, match="`T` is deprecated"):
        fb_old = solve_forward_backward(V, rho0, grid, T=0.2, potential=f, beta=2.0, n_intervals=4)
    np.testing.assert_array_equal(fb.density.values, fb_old.density.values)
    control = hs.sde.riccati_control(0.5, 1.0, 2.0, t=1.0)
    with pytest.warns(DeprecationWarning, match="`horizon` is deprecated"):
        old_control = hs.sde.riccati_control(0.5, 1.0, 2.0, horizon=1.0)
    assert control.q(0.3) == old_control.q(0.3) and control.t == 1.0


def test_lazy_exports() -> None:
    assert hs.solve_hjb is solve_hjb and hs.solve_forward_backward is solve_forward_backward


# ----------------------------------------------------------------------------- forward-backward


def _double_well_problem(n: int = 241) -> tuple[hs.Grid, np.ndarray, np.ndarray, np.ndarray]:
    """f a double well with minima at -1, 1; V pulls towards +1; rho0 sits in the left well."""
    grid = hs.Grid(-3.0, 3.0, n)
    x = grid.coords[0]
    f = 0.25 * (x**2 - 1.0) ** 2
    V = 0.5 * (x - 1.0) ** 2
    rho0 = np.exp(-((x + 1.0) ** 2) / (2.0 * 0.3**2))
    return grid, f, V, rho0 / grid.integrate(rho0)


def test_forward_backward_theorem_4_11() -> None:
    """beta = 2, T = 1.  Mass is conserved and rho >= 0; the controlled terminal cost plus
    the control energy 1/2 E int |alpha|^2 ds (both from the densities, trapezoid in s)
    equals E[u(X_0, 0)] (verification theorem) and is below E[V] under the uncontrolled
    Fokker-Planck flow (Theorem 4.11)."""
    grid, f, V, rho0 = _double_well_problem()
    beta, big_t, n = 2.0, 1.0, 40
    fb = solve_forward_backward(V, rho0, grid, big_t, potential=f, beta=beta, n_intervals=n)
    assert isinstance(fb, ForwardBackwardSolution)
    value, density, control = fb
    np.testing.assert_allclose(density.times, np.linspace(0.0, big_t, n + 1))
    rho = density.snapshots
    assert rho.shape == (n + 1, *grid.shape) and control.shape == (n + 1, 1, *grid.shape)
    masses = np.array([grid.integrate(r) for r in rho])
    np.testing.assert_allclose(masses, 1.0, atol=1e-12)
    assert rho.min() >= 0.0
    controlled = grid.integrate(V * rho[-1])
    energy = 0.5 * np.trapezoid([grid.integrate(control[j, 0] ** 2 * rho[j]) for j in range(n + 1)], density.times)
    expected_value = grid.integrate(value.values * rho0)
    assert controlled + energy == pytest.approx(expected_value, abs=3e-3)
    uncontrolled = grid.integrate(V * hs.solve_fokker_planck(rho0, grid, big_t, potential=f, beta=beta).values)
    assert controlled <= uncontrolled - energy
    assert energy > 0.1  # the control does real work here
    # the control moves mass towards the right well: mean -0.08 against -0.81 without it
    x = grid.coords[0]
    uncontrolled_mean = grid.integrate(x * hs.solve_fokker_planck(rho0, grid, big_t, potential=f, beta=beta).values)
    assert grid.integrate(x * rho[-1]) > uncontrolled_mean + 0.5


def test_forward_backward_without_potential_is_pure_control() -> None:
    """f = 0, V = c0 x^2/2: alpha* = a(s) x, so the controlled density of a Gaussian stays
    Gaussian with mean m' = -a(s) m; checked on the mean at T."""
    grid = hs.Grid(-4.0, 4.0, 321)
    x = grid.coords[0]
    c0, beta, big_t = 1.0, 4.0, 1.0
    rho0 = np.exp(-((x - 1.0) ** 2) / (2.0 * 0.25**2))
    rho0 /= grid.integrate(rho0)
    fb = solve_forward_backward(c0 * x**2 / 2.0, rho0, grid, big_t, beta=beta, n_intervals=40)
    # with f = 0, a(tau) = 1/(1/c0 + tau) and the mean solves m' = -a(s) m with
    # a(s) = 1/(1/c0 + T - s): m(T) = m(0) (1/c0) / (1/c0 + T)
    mean_t = grid.integrate(x * fb.density.values)
    assert mean_t == pytest.approx(1.0 / (1.0 + big_t), abs=5e-3)


def test_forward_backward_bad_input() -> None:
    grid, f, V, rho0 = _double_well_problem(41)
    with pytest.raises(ValueError, match="`n_intervals`"):
        solve_forward_backward(V, rho0, grid, 1.0, potential=f, beta=2.0, n_intervals=0)
    with pytest.raises(ValueError, match="`rho0`"):
        solve_forward_backward(V, -rho0, grid, 1.0, potential=f, beta=2.0)
    with pytest.raises(ValueError, match="`t`"):
        solve_forward_backward(V, rho0, grid, -1.0, potential=f, beta=2.0)
    with pytest.raises(TypeError, match="`fokker_planck_options` must be a dict"):  # refused before any solve
        solve_forward_backward(V, rho0, grid, 1.0, potential=f, beta=2.0, fokker_planck_options="explicit")
