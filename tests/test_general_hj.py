"""``solve_hj`` with a general Hamiltonian: ``u_t + H(x, grad u) = 1/(2 beta) Laplacian u``.

References: the specialised ``|p|^2/2`` path (to rounding), the nonconvex Osher-Shu / Jiang-Peng
problem ``u_t - cos(u_x + 1) = 0`` before its kink (characteristics), the eikonal equation
``u_t + |grad u| = 0`` whose solution is a signed distance, and linear transport with time- and
value-dependent coefficients (closed forms).  Orders are measured under refinement.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers.general_hj import BOUND_SAFETY, GeneralHJOperator, LinearForms
from hjsmooth.solvers.hj_operator import method_for

from grid_strategies import periodic_field


def order_of(errors: list[float]) -> float:
    return math.log2(errors[-2] / errors[-1])


def half_square(x, p):
    return 0.5 * sum(q * q for q in p)


def half_square_bound(x, low, high):
    return tuple(np.maximum(np.abs(lo), np.abs(hi)) for lo, hi in zip(low, high))


# ----------------------------------------------------------------------------- the specialised path
@pytest.mark.parametrize("accuracy", ["first", "eno2", "weno5"])
@pytest.mark.parametrize("scheme", ["godunov", "lax_friedrichs"])
@pytest.mark.parametrize("beta", [math.inf, 3.0])
def test_general_path_on_the_half_square_equals_the_specialised_path(accuracy, scheme, beta, monkeypatch) -> None:
    """Same slopes, same numerical Hamiltonian (Godunov's choice; Lax-Friedrichs with the global
    ``max |p|``), same steps: the two paths agree to 1e-12 in 2D, on the array engine."""
    monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
    grid = hs.Grid((-2.0, -1.5), (2.0, 1.5), (41, 31))
    x, y = grid.coords
    f = np.cos(2 * x) * np.sin(y) + 0.2 * (x**2 + y**2)
    h = hs.Hamiltonian(half_square, bound=half_square_bound, convex=True)
    special = hs.solve_hj(f, grid, 0.3, beta=beta, scheme=scheme, accuracy=accuracy, dt=2e-3)
    general = hs.solve_hj(f, grid, 0.3, beta=beta, scheme=scheme, accuracy=accuracy, dt=2e-3, hamiltonian=h)
    assert special.steps == general.steps == 150
    assert general.info["hamiltonian"] == "general" and general.info["method"] == special.info["method"]
    np.testing.assert_allclose(general.values, special.values, rtol=0, atol=1e-12)


def test_general_path_takes_the_same_cfl_steps_as_the_specialised_lax_friedrichs() -> None:
    grid = hs.Grid(-2.0, 2.0, 81)
    f = np.sin(3 * grid.coords[0])
    h = hs.Hamiltonian(half_square, bound=half_square_bound)
    special = hs.solve_hj(f, grid, 0.5, scheme="lax_friedrichs")
    general = hs.solve_hj(f, grid, 0.5, scheme="lax_friedrichs", hamiltonian=h)
    assert special.steps == general.steps
    np.testing.assert_allclose(general.values, special.values, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- Osher-Shu / Jiang-Peng
def osher_shu_exact(x: np.ndarray, t: float) -> np.ndarray:
    """``u_t - cos(u_x + 1) = 0``, ``u(x, 0) = -cos(pi x)``, before the kink (``t < 1/pi^2``): along the
    characteristic from ``y``, ``x = y + t sin(p + 1)`` with ``p = pi sin(pi y)``, and
    ``u = -cos(pi y) + t (p sin(p + 1) + cos(p + 1))``."""
    y = x.copy()
    for _ in range(50):
        p = math.pi * np.sin(math.pi * y)
        residual = y + t * np.sin(p + 1.0) - x
        y = y - residual / (1.0 + t * np.cos(p + 1.0) * math.pi**2 * np.cos(math.pi * y))
    p = math.pi * np.sin(math.pi * y)
    return -np.cos(math.pi * y) + t * (p * np.sin(p + 1.0) + np.cos(p + 1.0))


def minus_cos(x, p):
    return -np.cos(p[0] + 1.0)


OSHER_SHU = {  # accuracy -> (grids, smallest order of the last refinement)
    "first": ((80, 160, 320), 0.9),
    "eno2": ((40, 80, 160), 1.85),
    "weno5": ((160, 320, 640), 4.6),
}


@pytest.mark.parametrize("accuracy", sorted(OSHER_SHU))
@pytest.mark.parametrize("scheme, bound", [("lax_friedrichs", 1.0), ("lax_friedrichs", None),
                                           ("local_lax_friedrichs", None), ("local_local_lax_friedrichs", 1.0)])
def test_osher_shu_nonconvex_convergence_order(accuracy, scheme, bound) -> None:
    """The nonconvex ``H(p) = -cos(p + 1)`` (Osher-Shu 1991, Jiang-Peng 2000) on the periodic box
    ``[-1, 1]`` at ``t = 0.5 / pi^2``, smooth: first order, ENO2 second, WENO5 with its default
    fifth-order Runge-Kutta method fifth, with the exact bound ``|H'| <= 1`` or an estimated one."""
    t = 0.5 / math.pi**2
    grids, smallest = OSHER_SHU[accuracy]
    h = hs.Hamiltonian(minus_cos, bound=bound)
    errors = []
    for n in grids:
        grid = hs.Grid(-1.0, 1.0, n + 1)
        x = grid.coords[0]
        sol = hs.solve_hj(-np.cos(math.pi * x), grid, t, hamiltonian=h, accuracy=accuracy, scheme=scheme,
                          bc="periodic")
        errors.append(np.abs(sol.values - osher_shu_exact(x, t)).max())
    assert smallest < order_of(errors) < smallest + 1.5, errors


def test_weno5_time_order_limits_third_order_runge_kutta() -> None:
    """The same WENO5 problem with TVD RK3 at the same CFL step: third order, the time error
    dominating (why WENO5's default integrator is fifth order)."""
    t = 0.5 / math.pi**2
    h = hs.Hamiltonian(minus_cos, bound=1.0)
    errors = {"rk5": [], "ssp33": []}
    for n in (320, 640):
        grid = hs.Grid(-1.0, 1.0, n + 1)
        x = grid.coords[0]
        for integrator in errors:
            sol = hs.solve_hj(-np.cos(math.pi * x), grid, t, hamiltonian=h, accuracy="weno5", bc="periodic",
                              integrator=integrator)
            assert sol.info["method"] == integrator
            errors[integrator].append(np.abs(sol.values - osher_shu_exact(x, t)).max())
    assert order_of(errors["ssp33"]) < 3.5 < 4.6 < order_of(errors["rk5"])
    assert errors["rk5"][-1] < 0.5 * errors["ssp33"][-1]


# ----------------------------------------------------------------------------- eikonal: a distance function
def eikonal(x, p):
    return np.sqrt(p[0] ** 2 + p[1] ** 2)


EIKONAL = {("first", "godunov"): 0.9, ("first", "lax_friedrichs"): 0.9, ("eno2", "godunov"): 1.85,
           ("weno5", "godunov"): 4.5}


@pytest.mark.parametrize("accuracy, scheme", sorted(EIKONAL))
def test_eikonal_front_keeps_a_signed_distance(accuracy, scheme) -> None:
    """``u_t + |grad u| = 0`` from the signed distance to the circle of radius 1/2 moves the front out
    at unit speed: ``u(x, t) = max(|x| - t, 0) - 1/2``, the signed distance to the circle of radius
    ``1/2 + t`` where ``|x| >= t``.  Errors on the ring ``1.2 <= |x| <= 1.6`` (smooth there)."""
    h = hs.Hamiltonian(eikonal, convex=True, bound=1.0)
    t, errors = 0.5, []
    for n in (41, 81, 161):
        grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (n, n))
        r = np.hypot(*grid.coords)
        sol = hs.solve_hj(r - 0.5, grid, t, hamiltonian=h, accuracy=accuracy, scheme=scheme)
        ring = (r >= 1.2) & (r <= 1.6)
        errors.append(np.abs(sol.values - (np.maximum(r - t, 0.0) - 0.5))[ring].max())
    smallest = EIKONAL[(accuracy, scheme)]
    assert smallest < order_of(errors) < smallest + 1.5, errors


def test_eikonal_godunov_is_exact_on_a_plane_and_monotone() -> None:
    """A plane of unit slope moves exactly (every one-sided slope is exact); first-order Godunov
    keeps the order of two ordered initial data (a comparison principle)."""
    h = hs.Hamiltonian(eikonal, convex=True, bound=1.0)
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (21, 21))
    x, y = grid.coords
    plane = 0.6 * x - 0.8 * y
    sol = hs.solve_hj(plane, grid, 0.4, hamiltonian=h)
    np.testing.assert_allclose(sol.values, plane - 0.4, rtol=0, atol=1e-13)
    low = np.cos(3 * x) * np.sin(2 * y)
    high = low + 0.1 * (1 + np.sin(x + y))
    a = hs.solve_hj(low, grid, 0.3, hamiltonian=h, save_at=4).snapshots
    b = hs.solve_hj(high, grid, 0.3, hamiltonian=h, save_at=4).snapshots
    assert np.all(b >= a - 1e-13)


# ----------------------------------------------------------------------------- time and value dependence
def test_time_dependent_hamiltonian_is_evaluated_at_the_stage_times() -> None:
    """``u_t + cos(t) u_x = 0``: ``u = sin(x - sin t)``.  Fifth order needs every Runge-Kutta stage
    to see its own time (evaluated at the step's start the order would drop to one)."""
    h = hs.Hamiltonian(lambda x, p, t: math.cos(t) * p[0], bound=1.0, time_dependent=True)
    errors = []
    for n in (40, 80, 160):
        grid = hs.Grid(0.0, 2 * math.pi, n + 1)
        x = grid.coords[0]
        sol = hs.solve_hj(np.sin(x), grid, 1.0, hamiltonian=h, accuracy="weno5", bc="periodic")
        errors.append(np.abs(sol.values - np.sin(x - math.sin(1.0))).max())
    assert order_of(errors) > 4.5, errors


def test_value_dependent_hamiltonian_gets_the_values() -> None:
    """``u_t + lambda u + a u_x = 0``: ``u = exp(-lambda t) u0(x - a t)``."""
    lam, a = 0.7, 1.3
    h = hs.Hamiltonian(lambda x, p, u: lam * u + a * p[0], bound=abs(a), value_dependent=True)
    grid = hs.Grid(0.0, 2 * math.pi, 161)
    x = grid.coords[0]
    sol = hs.solve_hj(np.sin(x), grid, 0.5, hamiltonian=h, accuracy="weno5", bc="periodic")
    np.testing.assert_allclose(sol.values, math.exp(-lam * 0.5) * np.sin(x - a * 0.5), rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- viscosity, bounds, backends
def test_viscous_general_path_matches_cole_hopf() -> None:
    """``|p|^2/2`` with viscosity as a plain callable (estimated bound): ``u = |x|^2/(2(1+t)) + log(1+t)/(2 beta)``."""
    beta, t = 4.0, 0.5
    grid = hs.Grid(-2.0, 2.0, 161)
    x = grid.coords[0]
    sol = hs.solve_hj(0.5 * x**2, grid, t, beta=beta, hamiltonian=half_square, accuracy="weno5")
    exact = x**2 / (2 * (1 + t)) + math.log(1 + t) / (2 * beta)
    assert np.abs(sol.values - exact)[np.abs(x) <= 1].max() < 1e-6


def test_estimated_bound_is_the_largest_sampled_derivative() -> None:
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (9, 9))
    h = hs.Hamiltonian(lambda x, p: 3.0 * p[0] + np.sin(2.0 * p[1]))
    u = np.zeros(grid.shape)
    op = GeneralHJOperator(grid, h, "local_local_lax_friedrichs", "first", "extrapolate", math.inf, 0.5,
                           method_for("lax_friedrichs", "first"), u)
    alphas = op.estimated_bounds([(u, u), (u, u), (u, u)], 0.0, u, local=True)
    np.testing.assert_allclose(alphas[0], 3.0 * BOUND_SAFETY, rtol=1e-9)
    np.testing.assert_allclose(alphas[1], 2.0 * BOUND_SAFETY, rtol=1e-9)


def test_field_bounds_and_linear_forms() -> None:
    """Linear forms ``g.p + s |v.p|`` with bounds given as fields: transport at speed ``g + |v|``
    where ``u_x > 0``."""
    grid = hs.Grid(0.0, 2 * math.pi, 201)
    x = grid.coords[0]
    ones = np.ones(grid.shape)
    forms = LinearForms((0.5 * ones,), ((0.25 * ones,),), (1.0,))
    h = hs.Hamiltonian(forms, bound=(0.75 * ones,))
    sol = hs.solve_hj(x.copy(), grid, 0.4, hamiltonian=h, accuracy="eno2")
    np.testing.assert_allclose(sol.values, x - 0.75 * 0.4, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scheme", ["lax_friedrichs", "local_lax_friedrichs", "godunov"])
def test_backends_agree(backend, scheme) -> None:
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (25, 21))
    x, y = grid.coords
    f = np.cos(3 * x) * np.sin(2 * y) + x * y
    xp_h = hs.Hamiltonian(lambda x, p: (p[0] ** 2 + p[1] ** 2) ** 0.5 * (1.0 + 0.5 * x[0] ** 2), convex=True)
    ref = hs.solve_hj(f, grid, 0.2, hamiltonian=xp_h, scheme=scheme, accuracy="eno2")
    got = hs.solve_hj(backend.asarray(f), grid, 0.2, hamiltonian=xp_h, scheme=scheme, accuracy="eno2")
    assert backend.is_same_kind(got.values, backend.asarray(f))
    np.testing.assert_allclose(backend.to_numpy(got.values), ref.values, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- the fused CPU engine
def nonconvex_2d(x, p):
    return -np.cos(p[0] + 0.5 * p[1]) + 0.3 * x[0] * p[1]


NONCONVEX_COMPILED = numba.njit(nonconvex_2d)


@pytest.mark.parametrize("accuracy", ["first", "weno5"])
def test_compiled_hamiltonian_takes_the_numba_engine_and_equals_the_array_code(accuracy, monkeypatch) -> None:
    """One compiled ``H`` over every Lax-Friedrichs variant with estimated bounds (the global one in
    two passes), constant bounds, periodic and extrapolated axes, with viscosity: the fused engine
    equals the array code to rounding."""
    grid = hs.Grid((-1.0, 0.0), (1.0, 2 * math.pi), (23, 29))
    x, y = grid.coords
    f = periodic_field(np.cos(2 * x) * np.sin(y) + 0.3 * x)
    for scheme, bound, beta in [("lax_friedrichs", None, math.inf), ("local_lax_friedrichs", None, 5.0),
                                ("local_local_lax_friedrichs", (1.5, 1.2), math.inf)]:
        args = dict(hamiltonian=hs.Hamiltonian(nonconvex_2d, bound=bound, compiled=NONCONVEX_COMPILED),
                    scheme=scheme, accuracy=accuracy, beta=beta, bc=("extrapolate", "periodic"), save_at=3)
        fused = hs.solve_hj(f, grid, 0.3, **args)
        with monkeypatch.context() as patch:
            patch.setitem(kernels._PACKAGES, "numba", lambda: False)
            plain = hs.solve_hj(f, grid, 0.3, **args)
        assert fused.info["engine"] == "numba" and plain.info["engine"] == "array"
        assert fused.steps == plain.steps
        np.testing.assert_allclose(fused.snapshots, plain.snapshots, rtol=0, atol=1e-12)


def test_godunov_on_linear_forms_takes_the_numba_engine(monkeypatch) -> None:
    """``H = |p_0| + 2 |p_1|`` (convex, separable, smallest at 0) as linear forms: Godunov on the fused
    engine equals the array code, and a plane moves exactly."""
    grid = hs.Grid((-2.0, -2.0), (2.0, 2.0), (41, 37))
    ones = np.ones(grid.shape)
    zeros = np.zeros(grid.shape)
    forms = LinearForms((zeros, zeros), ((ones, zeros), (zeros, 2.0 * ones)), (1.0, 1.0))
    h = hs.Hamiltonian(forms, convex=True, bound=(1.0, 2.0), forms=forms)
    r = np.hypot(*grid.coords)
    fused = hs.solve_hj(r - 0.5, grid, 0.5, hamiltonian=h, accuracy="eno2")
    with monkeypatch.context() as patch:
        patch.setitem(kernels._PACKAGES, "numba", lambda: False)
        plain = hs.solve_hj(r - 0.5, grid, 0.5, hamiltonian=h, accuracy="eno2")
    assert fused.info["engine"] == "numba" and plain.info["engine"] == "array"
    np.testing.assert_allclose(fused.values, plain.values, rtol=0, atol=1e-12)
    x, y = grid.coords
    plane = hs.solve_hj(0.6 * x - 0.8 * y, grid, 0.5, hamiltonian=h)
    np.testing.assert_allclose(plane.values, 0.6 * x - 0.8 * y - 0.5 * (0.6 + 1.6), rtol=0, atol=1e-12)


def test_uncompiled_or_time_dependent_hamiltonians_run_the_array_code() -> None:
    grid = hs.Grid(-1.0, 1.0, 21)
    f = grid.coords[0] ** 2
    assert hs.solve_hj(f, grid, 0.1, hamiltonian=half_square).info["engine"] == "array"
    h = hs.Hamiltonian(lambda x, p, t: p[0] * t, compiled=numba.njit(lambda x, p: p[0]), time_dependent=True)
    assert hs.solve_hj(f, grid, 0.1, hamiltonian=h).info["engine"] == "array"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"hamiltonian": 3.0}, TypeError, "`hamiltonian`"),
        ({"hamiltonian": half_square, "scheme": "hybrid"}, ValueError, "'local_lax_friedrichs'"),
        ({"hamiltonian": half_square, "scheme": "godunov"}, ValueError, "convex"),
        ({"hamiltonian": hs.Hamiltonian(half_square, bound=(1.0, 2.0))}, ValueError, "`bound`"),
        ({"hamiltonian": hs.Hamiltonian(half_square, bound=-1.0)}, ValueError, "`bound`"),
        ({"hamiltonian": hs.Hamiltonian(half_square, convex=True, minimizer=(0.0, 1.0))}, ValueError, "`minimizer`"),
        ({"hamiltonian": half_square, "integrator": "rk4"}, ValueError, "`integrator`"),
        ({"integrator": "rk4"}, ValueError, "`integrator`"),
        ({"bc": ("periodic",)}, ValueError, "`bc`"),
        ({"bc": ("dirichlet", "periodic")}, ValueError, "`bc`"),
    ],
)
def test_bad_input(kwargs, error, match) -> None:
    grid = hs.Grid((-1.0, -1.0), (1.0, 1.0), (11, 11)) if "bc" in kwargs else hs.Grid(-1.0, 1.0, 11)
    with pytest.raises(error, match=match):
        hs.solve_hj(np.zeros(grid.shape), grid, 0.1, **kwargs)


def test_per_axis_boundary_conditions_on_the_specialised_path(monkeypatch) -> None:
    """A periodic axis beside an extrapolated one: numba and array engines agree, and the periodic
    axis stays periodic."""
    grid = hs.Grid((-1.0, 0.0), (1.0, 2 * math.pi), (21, 33))
    x, y = grid.coords
    f = periodic_field(np.cos(y) * x + 0.5 * x**2)
    fused = hs.solve_hj(f, grid, 0.3, beta=4.0, bc=("extrapolate", "periodic"), accuracy="weno5")
    monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
    plain = hs.solve_hj(f, grid, 0.3, beta=4.0, bc=("extrapolate", "periodic"), accuracy="weno5")
    assert fused.info["engine"] == "numba" and plain.info["engine"] == "array"
    np.testing.assert_allclose(fused.values, plain.values, rtol=0, atol=1e-13 * np.abs(plain.values).max())
    np.testing.assert_array_equal(fused.values[:, 0], fused.values[:, -1])
