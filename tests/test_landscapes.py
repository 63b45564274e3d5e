"""The named landscapes: gradients, minima, batching, backends, Example 6.43's force."""

from __future__ import annotations

import numpy as np
import pytest

from hjsmooth import landscapes as L

ALL = [
    L.rugged_1d(),
    L.wide_sharp_2d(),
    L.double_well(1),
    L.double_well(2, tilt=0.1),
    L.double_well(3),
    L.rastrigin(1),
    L.rastrigin(2),
    L.quadratic(3, curvature=2.0),
    L.limit_cycles(0.5).potential,
]


@pytest.mark.parametrize("land", ALL, ids=lambda l: l.name)
def test_gradient_matches_central_differences(land: L.Landscape, rng: np.random.Generator) -> None:
    lo, hi = np.array(land.lower), np.array(land.upper)
    x = lo + (hi - lo) * rng.random((50, land.ndim))
    h = 1e-6
    fd = np.stack(
        [(land.value(x + h * e) - land.value(x - h * e)) / (2 * h) for e in np.eye(land.ndim)], axis=-1
    )
    np.testing.assert_allclose(land.grad(x), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("land", ALL, ids=lambda l: l.name)
def test_listed_minima_are_strict_local_minima(land: L.Landscape) -> None:
    assert land.minima, "every landscape lists its minima"
    for m in land.minima:
        m = np.asarray(m)
        np.testing.assert_allclose(land.grad(m[None]), 0.0, atol=1e-6)
        # strictly lower than every point on a small sphere around it
        dirs = np.concatenate([np.eye(land.ndim), -np.eye(land.ndim)])
        assert np.all(land.value(m + 1e-3 * dirs) > land.value(m[None]))
    values = [float(land.value(np.asarray(m)[None])[0]) for m in land.minima]
    assert values[0] == min(values), "the global minimum is listed first"


def test_batching_keeps_leading_shape() -> None:
    land = L.wide_sharp_2d()
    x = np.zeros((4, 3, 2))
    assert land.value(x).shape == (4, 3)
    assert land.grad(x).shape == (4, 3, 2)


def test_backends_agree(backend) -> None:
    for land in ALL:
        x = np.linspace(-1.5, 1.5, 7 * land.ndim).reshape(7, land.ndim)
        xb = backend.asarray(x)
        v = land.value(xb)
        assert backend.is_same_kind(v, xb)
        np.testing.assert_allclose(backend.to_numpy(v), land.value(x), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(backend.to_numpy(land.grad(xb)), land.grad(x), rtol=1e-13, atol=1e-14)


def test_on_grid_matches_pointwise_evaluation() -> None:
    land = L.rastrigin(2)
    grid = land.grid((11, 13))
    values = land.on_grid(grid)
    assert values.shape == (11, 13)
    assert values[3, 4] == pytest.approx(float(land.value(np.array([[grid.axes[0][3], grid.axes[1][4]]]))[0]))
    assert land.grad_on_grid(grid).shape == (2, 11, 13)


def test_rugged_1d_global_minimum_and_ripples() -> None:
    land = L.rugged_1d()
    assert len(land.minima) >= 5
    assert land.minima[0][0] == pytest.approx(np.pi / 3, abs=0.05)


def test_limit_cycle_force_keeps_the_gibbs_state() -> None:
    """div(j exp(-Phi)) = 0, so exp(-Phi) stays the steady state for every lambda (Example 6.43)."""
    lc = L.limit_cycles(lam=2.0)
    x = np.random.default_rng(0).uniform(-1.5, 1.5, size=(40, 2))
    h = 1e-5

    def flux(p: np.ndarray) -> np.ndarray:
        return lc.force(p) * np.exp(-lc.potential.value(p))[..., None]

    div = sum((flux(x + h * e)[:, k] - flux(x - h * e)[:, k]) / (2 * h) for k, e in enumerate(np.eye(2)))
    np.testing.assert_allclose(div, 0.0, atol=1e-7)
    # the force is a rotation: orthogonal to x, and zero for lambda = 0
    np.testing.assert_allclose(np.sum(lc.force(x) * x, axis=-1), 0.0, atol=1e-12)
    np.testing.assert_array_equal(L.limit_cycles(0.0).force(x), 0.0)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="`x` must have shape"):
        L.wide_sharp_2d().value(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="`ndim`"):
        L.double_well(4)
    with pytest.raises(ValueError, match="unknown `name`"):
        L.get("nope")
    with pytest.raises(ValueError, match="`lam`"):
        L.limit_cycles(-1.0)
