"""Inviscid HJ gradient by gradient flow to the proximal point (Lemmas 4.2-4.3, (4.19), (4.42)).

The Hopf-Lax solution ``u(x, t) = min_y f(y) + |x - y|^2/(2t)`` has ``grad u(x, t) = (x - y*)/t``
with ``y* = prox_{t f}(x)`` (4.18).  Two equivalent flows are run, explicit Euler with step ``eta``:

* ``form="rho1"``: ``y <- y - eta (grad f(y) + (y - x)/t)`` from ``y = x``; ``grad u = (x - y*)/t``.
* ``form="rho2"`` ((4.19) in the variable ``z = x - y``, the HJ update (4.42)):
  ``z <- (1 - eta/t) z + eta grad f(x - z)`` from ``z = 0``; ``grad u = grad f(x - z*)``.

Lemma 4.3: the flow converges exponentially to the unique proximal point when
``h(y) = f(y) + |x - y|^2/(2t)`` is convex, i.e. ``I + t Hess f > 0``.  Where it is not, the flow
may stop at a *local* proximal point and the answer is then the gradient of a different branch;
the result flags this (``convex``), checking the condition at five points of the segment
from ``x`` to ``y*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hjsmooth.backend import array_namespace
from hjsmooth.sde._common import GradientOracle, min_eigenvalue

__all__ = ["proximal_flow", "convexity_on_segment"]


def proximal_flow(
    grad: GradientOracle,
    x: Any,
    t: float,
    *,
    eta: float,
    max_steps: int,
    tol: float,
    form: str = "rho1",
    check_every: int = 10,
) -> dict[str, Any]:
    """Run the gradient flow for every point of ``x`` (shape ``(n, d)``) until ``|grad_y h| <= tol``
    everywhere (checked every ``check_every`` steps) or ``max_steps`` steps."""
    xp = array_namespace(x)
    if form == "rho2":
        z = xp.zeros_like(x)
    else:
        y = xp.asarray(x, copy=True)
    steps = 0
    residual = None
    while True:
        if form == "rho2":
            g = grad(x - z)
            step_dir = z / t - g
        else:
            g = grad(y)
            step_dir = g + (y - x) / t
        residual = xp.sqrt(xp.sum(step_dir * step_dir, axis=-1))
        if steps >= max_steps or (steps % check_every == 0 and bool(xp.all(residual <= tol))):
            break
        if form == "rho2":
            z = z - eta * step_dir
        else:
            y = y - eta * step_dir
        steps += 1
    if form == "rho2":
        y_star = x - z
        grad_est = g
    else:
        y_star = y
        grad_est = (x - y) / t
    if not bool(xp.all(xp.isfinite(y_star))):
        raise FloatingPointError(
            f"the proximal gradient flow diverged (step_size={eta:.3g}); pass a smaller `step_size` or the "
            "Lipschitz constant of grad f as `lipschitz`"
        )
    return {"grad": grad_est, "mean_y": y_star, "converged": residual <= tol, "residual": residual, "steps": steps}


def convexity_on_segment(
    grad: GradientOracle, x: Any, y_star: Any, t: float, hessian: Callable[[Any], Any] | None = None, points: int = 5
) -> tuple[Any, Any]:
    """Smallest eigenvalue of ``I + t Hess f`` over ``points`` equally spaced points of the segment
    ``[x, y*]`` (ends included), and whether it is positive; both of shape ``(n,)``."""
    xp = array_namespace(x)
    n, d = x.shape
    fractions = [k / (points - 1) for k in range(points)]
    stacked = xp.concat([x + s * (y_star - x) for s in fractions], axis=0)
    lam = min_eigenvalue(grad, stacked, hessian)
    lam = xp.min(xp.reshape(lam, (points, n)), axis=0)
    curvature = 1.0 + t * lam
    return curvature, curvature > 0
