"""Reachability: backward reachable sets and tubes of control- and disturbance-affine dynamics.

Closed forms: for ``dx/ds = u + d`` with ``|u| <= a`` and ``|d| <= b`` the value of the target
``|x| - 1`` moves at speed ``a - b`` (the control avoids) or ``b - a`` (it pursues); Air3D's
symmetry ``(x, y, psi) -> (x, -y, -psi)``; the fused engine against the array code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import kernels
from hjsmooth.solvers.reachability import ControlAffineDynamics, air3d


def single_integrator(control: str = "max", a: float = 1.0, b: float = 0.5) -> ControlAffineDynamics:
    return ControlAffineDynamics(lambda x, u, d: (u[0] + d[0] + 0.0 * x[0],), ([-a], [a]), ([-b], [b]),
                                 control=control, disturbance="min" if control == "max" else "max")


@pytest.mark.parametrize("control, speed", [("max", 0.5), ("min", -0.5)])
@pytest.mark.parametrize("accuracy", ["first", "weno5"])
def test_single_integrator_set_has_its_closed_form(control, speed, accuracy) -> None:
    """``V(x, -t) = |x| - 1 + (a - b) t`` for an avoiding control (the set shrinks: the kink at 0
    stays sharp, the scheme is exact wherever the slopes are) and ``max(|x| - (b - a) t, 0) - 1``
    for a pursuing one (its corner at ``|x| = (a - b) t`` spreads errors that decay away from it);
    the set ``{V <= 0}`` is ``|x| <= 1 - (a - b) t`` at every node farther than ``h`` from its edge."""
    grid = hs.Grid(-3.0, 3.0, 121)
    x = grid.coords[0]
    t = 0.8
    sol = hs.solve_reachability(np.abs(x) - 1.0, grid, t, single_integrator(control), accuracy=accuracy)
    exact = np.maximum(np.abs(x) + speed * t, 0.0 if speed > 0 else -speed * t) - 1.0
    far = np.abs(x) > 1.5
    np.testing.assert_allclose(sol.values[far], exact[far], rtol=0, atol=1e-13 if speed > 0 else 1e-7)
    edge = 1.0 - speed * t
    clear = np.abs(np.abs(x) - edge) > grid.spacing[0]
    np.testing.assert_array_equal((sol.values <= 0)[clear], (np.abs(x) <= edge)[clear])


def test_tube_never_grows_and_lies_below_the_set() -> None:
    """The tube's value never exceeds the target's and, by the comparison principle of the monotone
    first-order scheme, lies below the set's value."""
    grid = hs.Grid(-3.0, 3.0, 121)
    x = grid.coords[0]
    target = np.abs(x - 0.3) - 1.0
    dyn = ControlAffineDynamics(lambda x, u, d: (0.4 + u[0] + 0.2 * np.sin(x[0]),), ([-1.0], [0.5]), control="max")
    tube = hs.solve_reachability(target, grid, 1.0, dyn, tube=True, accuracy="first", save_at=5)
    brs = hs.solve_reachability(target, grid, 1.0, dyn, accuracy="first", save_at=5)
    assert tube.info["tube"] and not brs.info["tube"]
    assert np.all(np.diff(tube.snapshots, axis=0) <= 1e-15)
    assert np.all(tube.snapshots <= target + 1e-15)
    assert np.all(tube.values <= brs.values + 1e-12)
    assert np.any(tube.values < brs.values - 1e-3)


def test_optimal_control_points_up_the_gradient() -> None:
    grid = hs.Grid(-3.0, 3.0, 61)
    x = grid.coords[0]
    dyn = single_integrator("max")
    sol = hs.solve_reachability(np.abs(x) - 1.0, grid, 0.5, dyn, accuracy="eno2")
    (u,) = dyn.optimal_control(grid, sol.values)
    (d,) = dyn.optimal_disturbance(grid, sol.values)
    far = np.abs(x) > 0.2
    np.testing.assert_array_equal(u[far], np.where(x[far] > 0, 1.0, -1.0))  # away from the target
    np.testing.assert_array_equal(d[far], np.where(x[far] > 0, -0.5, 0.5))  # towards it


def test_air3d_is_symmetric_and_the_fused_engine_equals_the_array_code(monkeypatch) -> None:
    """Air3D on a coarse version of hj_reachability's grid (the angle periodic): the tube contains
    the target, is symmetric under ``(x, y, psi) -> (x, -y, -psi)`` and the fused CPU engine gives
    the array code's values."""
    grid = hs.Grid((-6.0, -10.0, 0.0), (20.0, 10.0, 2 * math.pi), (27, 21, 25))
    x, y, psi = grid.coords
    target = np.hypot(x, y) - 5.0
    args = dict(tube=True, accuracy="weno5", bc=("extrapolate", "extrapolate", "periodic"))
    fused = hs.solve_reachability(target, grid, 1.0, air3d(), **args)
    monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
    plain = hs.solve_reachability(target, grid, 1.0, air3d(), **args)
    assert fused.info["engine"] == "numba" and plain.info["engine"] == "array" and fused.steps == plain.steps
    np.testing.assert_allclose(fused.values, plain.values, rtol=0, atol=1e-11)
    v = fused.values
    assert np.all(v <= target + 1e-12) and np.sum(v <= 0) > np.sum(target <= 0)
    mirrored = v[:, ::-1, :][:, :, (-np.arange(grid.shape[2])) % (grid.shape[2] - 1)]
    np.testing.assert_allclose(v, mirrored, rtol=0, atol=1e-9)


def test_affine_dynamics_are_checked() -> None:
    grid = hs.Grid(-1.0, 1.0, 11)
    dyn = ControlAffineDynamics(lambda x, u, d: (u[0] ** 2 + 0.0 * x[0],), ([-1.0], [1.0]))
    with pytest.raises(ValueError, match="not affine in the control"):
        dyn.hamiltonian(grid)
    with pytest.raises(ValueError, match="`control_bounds`"):
        ControlAffineDynamics(lambda x, u, d: (u[0],), ([1.0], [-1.0]))
    with pytest.raises(ValueError, match="`control`"):
        ControlAffineDynamics(lambda x, u, d: (u[0],), ([-1.0], [1.0]), control="avoid")
    with pytest.raises(TypeError, match="`dynamics`"):
        hs.solve_reachability(np.zeros(11), grid, 0.1, lambda x, u, d: x)
    with pytest.raises(ValueError, match="one per state axis|2 components"):
        ControlAffineDynamics(lambda x, u, d: (u[0], u[0]), ([-1.0], [1.0])).hamiltonian(grid)
