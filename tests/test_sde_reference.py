"""Reference values for the sampler tests, by quadrature and brute force on fine grids.

The smoothed gradients have integral / minimisation formulas (Lemma 4.1, Lemma 4.2, (4.28)):

    viscous   grad u(x, t) = (x - E[y]) / t,  y ~ rho_1 ∝ exp(-beta (f(y) + |x - y|^2/(2t)))
    inviscid  grad u(x, t) = (x - y*) / t,    y* = argmin_y f(y) + |x - y|^2/(2t)
    heat      grad v(x, t) = E[grad f(x + z)], z ~ N(0, t/beta I)

In 1D and 2D these are computed here to near machine precision (trapezoid quadrature of smooth,
rapidly decaying integrands on fine grids; Gauss-Hermite; brute-force minimisation polished by
Newton), independently of the grid PDE solvers.  The tests at the bottom pin the references
themselves to closed forms.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from hjsmooth.landscapes import Landscape, quadratic


def viscous_reference(land: Landscape, x: np.ndarray, t: float, beta: float, n: int = 4001,
                      half_width: float = 8.0) -> np.ndarray:
    """``grad u(x, t)`` of the viscous HJ equation by quadrature of the mean of ``rho_1``; ``x`` is ``(m, d)``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    d = x.shape[1]
    m_per_axis = n if d == 1 else 801
    out = np.empty_like(x)
    for i, xi in enumerate(x):
        axes = [np.linspace(c - half_width, c + half_width, m_per_axis) for c in xi]
        ys = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
        logw = -beta * (land.value(ys) + np.sum((ys - xi) ** 2, axis=-1) / (2 * t))
        w = np.exp(logw - logw.max())
        mean_y = (w[:, None] * ys).sum(axis=0) / w.sum()
        out[i] = (xi - mean_y) / t
    return out


def viscous_moments(land: Landscape, x: np.ndarray, t: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``rho_1(.; x)`` by quadrature (one point ``x`` of shape ``(d,)``)."""
    d = x.shape[0]
    axes = [np.linspace(c - 8.0, c + 8.0, 4001 if d == 1 else 801) for c in x]
    ys = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    logw = -beta * (land.value(ys) + np.sum((ys - x) ** 2, axis=-1) / (2 * t))
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = w @ ys
    centred = ys - mean
    return mean, (w[:, None] * centred).T @ centred


def heat_reference(land: Landscape, x: np.ndarray, t: float, beta: float, order: int = 80) -> np.ndarray:
    """``grad v(x, t) = E[grad f(x + z)]`` by tensor Gauss-Hermite quadrature; ``x`` is ``(m, d)``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    d = x.shape[1]
    nodes, weights = np.polynomial.hermite_e.hermegauss(order if d == 1 else 60)
    weights = weights / weights.sum()
    grids = np.meshgrid(*([nodes] * d), indexing="ij")
    z = np.stack([g.ravel() for g in grids], axis=-1) * np.sqrt(t / beta)
    w = np.prod(np.meshgrid(*([weights] * d), indexing="ij"), axis=0).ravel()
    return np.stack([w @ land.grad(xi + z) for xi in x])


def prox_reference(land: Landscape, x: np.ndarray, t: float, half_width: float = 4.0) -> np.ndarray:
    """``prox_{t f}(x)`` by brute force on a fine grid around ``x``, polished by BFGS; ``x`` is ``(m, d)``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    d = x.shape[1]
    out = np.empty_like(x)
    for i, xi in enumerate(x):
        axes = [np.linspace(c - half_width, c + half_width, 8001 if d == 1 else 601) for c in xi]
        ys = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
        h = land.value(ys) + np.sum((ys - xi) ** 2, axis=-1) / (2 * t)
        start = ys[np.argmin(h)]
        res = minimize(lambda y: float(land.value(y[None])[0] + np.sum((y - xi) ** 2) / (2 * t)), start,
                       jac=lambda y: land.grad(y[None])[0] + (y - xi) / t, method="BFGS",
                       options={"gtol": 1e-13})
        out[i] = res.x
    return out


def inviscid_reference(land: Landscape, x: np.ndarray, t: float) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return (x - prox_reference(land, x, t)) / t


def z_scores(estimate: np.ndarray, reference: np.ndarray, stderr: np.ndarray, extra: float = 0.0) -> np.ndarray:
    """``(estimate - reference) / sqrt(stderr^2 + extra^2)`` elementwise."""
    return (np.asarray(estimate) - reference) / np.sqrt(np.asarray(stderr) ** 2 + extra**2)


# ----------------------------------------------------------------------------- the references themselves
def test_viscous_reference_matches_example_4_12() -> None:
    # f = c|x|^2/2: grad u = x / (t + 1/c) (Example 4.12)
    c, t, beta = 2.0, 0.7, 3.0
    x = np.array([[-1.3], [0.4], [2.0]])
    got = viscous_reference(quadratic(1, c), x, t, beta)
    np.testing.assert_allclose(got, x / (t + 1 / c), rtol=1e-10, atol=1e-12)
    x2 = np.array([[0.5, -1.0]])
    np.testing.assert_allclose(viscous_reference(quadratic(2, c), x2, t, beta), x2 / (t + 1 / c), rtol=1e-8)


def test_heat_reference_on_a_cubic_gradient() -> None:
    # f = x^4/4: grad f = x^3, E[(x+z)^3] = x^3 + 3 x s with s = t/beta
    land = Landscape("quartic", 1, (-3.0,), (3.0,), lambda xp, x: x[..., 0] ** 4 / 4, lambda xp, x: x**3)
    x = np.array([[-1.0], [0.3], [1.7]])
    s = 0.4 / 2.0
    np.testing.assert_allclose(heat_reference(land, x, 0.4, 2.0), x**3 + 3 * x * s, rtol=1e-12)


def test_prox_reference_on_a_quadratic() -> None:
    c, t = 3.0, 0.5
    x = np.array([[-1.0, 2.0], [0.3, 0.1]])
    np.testing.assert_allclose(prox_reference(quadratic(2, c), x, t), x / (1 + c * t), atol=1e-9)


# ----------------------------------------------------------------------------- gradients of the grid solutions
def grid_gradient(solve, land: Landscape, x: np.ndarray, shape: int, lower=None, upper=None) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of a grid solution at the points ``x`` ``(m, d)``, and its discretisation error.

    ``solve(f_on_grid, grid)`` returns the solution on the grid; its gradient is taken by central
    differences (``numpy.gradient``) and interpolated (multi)linearly to ``x``.  The error estimate is
    the difference from the same computation on the grid with half as many intervals (an
    overestimate of the fine grid's error for a second-order method).
    """
    from scipy.interpolate import RegularGridInterpolator

    import hjsmooth as hs

    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    lower = land.lower if lower is None else lower
    upper = land.upper if upper is None else upper
    results = []
    for n in (shape, (shape - 1) // 2 + 1):
        grid = hs.Grid(lower, upper, (n,) * land.ndim)
        u = np.asarray(solve(land.on_grid(grid), grid))
        grads = np.gradient(u, *grid.axes)
        grads = [grads] if land.ndim == 1 else grads
        results.append(np.stack([RegularGridInterpolator(grid.axes, g)(x) for g in grads], axis=-1))
    return results[0], np.abs(results[0] - results[1])
