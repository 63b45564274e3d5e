"""Helpers shared by the samplers: point batches, the gradient callable, curvature estimates, step sizes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace
from hjsmooth.validation import as_field, check_count, check_positive

__all__ = [
    "as_points",
    "GradientOracle",
    "check_count",
    "local_curvature_scale",
    "min_eigenvalue",
    "default_step_size",
    "STEP_FRACTION",
]

#: the Langevin step is this fraction of 1/(1/t + L), the inverse Lipschitz constant of grad_y H.
STEP_FRACTION = 0.1


def as_points(x: Any, name: str = "x") -> tuple[Any, Any, tuple[int, ...]]:
    """Validate a batch of points ``(..., d)`` and return ``(xp, x2, batch_shape)`` with ``x2`` of shape ``(n, d)``.

    Coerced and checked like any field (:func:`hjsmooth.validation.as_field`: lists become float64
    numpy arrays, integer arrays are promoted, NaN/inf refused), then the last axis must be ``d >= 1``.
    """
    x = as_field(x, name)
    xp = array_namespace(x)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"`{name}` must have shape (..., d) with d >= 1, got shape {tuple(x.shape)}")
    batch = tuple(x.shape[:-1])
    return xp, xp.reshape(x, (math.prod(batch), x.shape[-1])), batch


class GradientOracle:
    """Calls a user callable (``grad_f``, ``drift``, ``control``) on batches ``(..., d)`` and checks
    every result: the input's shape, array type and dtype, and finite values.

    With ``noisy=True`` the callable is ``grad_f(y, rng)`` (a minibatch gradient drawing its own
    noise from the sampler's generator, as in (4.40)); otherwise ``grad_f(y)``, or
    ``grad_f(y, s)`` when called with a time ``s``.  A non-finite result raises
    ``FloatingPointError`` naming the callable, unless the points themselves had left the
    finite range or exceeded ``1e60`` (``1e8`` in float32), where the chains diverged and the
    message names the step (``step_name``) instead.
    """

    def __init__(
        self,
        grad_f: Callable[..., Any],
        rng: Any,
        noisy: bool = False,
        name: str = "grad_f",
        step_name: str = "step_size",
    ):
        if not callable(grad_f):
            raise TypeError(f"`{name}` must be callable, got {type(grad_f).__name__}")
        self.grad_f = grad_f
        self.rng = rng
        self.noisy = bool(noisy)
        self.name = name
        self.step_name = step_name
        self.calls = 0
        self._namespaces: dict[type, Any] = {}

    def _namespace(self, g: Any) -> Any:
        """``array_namespace(g)``, looked up once per array type (it is called at every step)."""
        xp = self._namespaces.get(type(g))
        if xp is None:
            xp = self._namespaces[type(g)] = array_namespace(g)
        return xp

    def __call__(self, y: Any, *time: float) -> Any:
        self.calls += 1
        if self.noisy:
            g = self.grad_f(y, self.rng)
        else:
            g = self.grad_f(y, *time)
        self._check(y, g)
        return g

    def _check(self, y: Any, g: Any) -> None:
        where = f"(call {self.calls})"
        if type(g) is not type(y) or g.dtype != y.dtype:
            raise TypeError(
                f"`{self.name}` must return the input's array type and dtype "
                f"({type(y).__name__}, {y.dtype}), got {type(g).__name__}, {getattr(g, 'dtype', None)} {where}"
            )
        if tuple(g.shape) != tuple(y.shape):
            raise ValueError(
                f"`{self.name}` must return an array of the input's shape {tuple(y.shape)}, "
                f"got {tuple(g.shape)} {where}"
            )
        xp = self._namespace(g)
        if math.isfinite(float(xp.sum(g))):  # one reduction (a sum of finite values may overflow: recheck)
            return
        bad = ~xp.isfinite(g)
        n_bad = int(xp.sum(xp.astype(bad, xp.int64)))
        if n_bad == 0:
            return
        limit = 1e8 if y.dtype == xp.float32 else 1e60
        size = float(xp.max(xp.abs(xp.where(bad, y, xp.zeros_like(y)))))
        if not math.isfinite(size) or size > limit:
            raise FloatingPointError(
                f"the chains diverged: `{self.name}` overflowed at points as large as {size:.3g} {where}; "
                f"pass a smaller `{self.step_name}`"
            )
        raise FloatingPointError(f"`{self.name}` returned {n_bad} NaN or inf value(s) at finite points {where}")


def _fd_step(y: Any) -> float:
    xp = array_namespace(y)
    eps = float(np.finfo(np.float32 if y.dtype == xp.float32 else np.float64).eps)
    return eps ** (1.0 / 3.0)


def hessian_vector(grad: Callable[[Any], Any], y: Any, v: Any) -> Any:
    """Central finite difference ``(grad(y + h v) - grad(y - h v)) / (2 h)`` for unit-scale ``v`` (batched)."""
    xp = array_namespace(y)
    scale = 1.0 + xp.max(xp.abs(y)) if y.shape[0] else 1.0
    h = _fd_step(y) * float(scale)
    both = xp.concat([y + h * v, y - h * v], axis=0)
    g = grad(both)
    n = y.shape[0]
    return (g[:n, ...] - g[n:, ...]) / (2 * h)


def _normalise(v: Any) -> Any:
    xp = array_namespace(v)
    norm = xp.sqrt(xp.sum(v * v, axis=-1, keepdims=True))
    return v / xp.where(norm > 0, norm, xp.ones_like(norm))


def _power_iteration(apply: Callable[[Any], Any], v: Any, iterations: int) -> Any:
    """Rayleigh quotient after ``iterations`` power steps, per row of ``v`` (shape ``(n, d)``)."""
    xp = array_namespace(v)
    v = _normalise(v)
    rayleigh = xp.sum(v * apply(v), axis=-1)
    for _ in range(iterations):
        w = apply(v)
        rayleigh = xp.sum(v * w, axis=-1)
        v = _normalise(w)
    return rayleigh


def local_curvature_scale(grad: Callable[[Any], Any], y: Any, iterations: int = 10) -> float:
    """An estimate of ``max_points |Hess f(y)|_2`` by power iteration on finite-difference
    Hessian-vector products started from a deterministic direction (largest over the batch ``y``)."""
    xp = array_namespace(y)
    d = y.shape[-1]
    v = xp.ones_like(y) + xp.reshape(xp.arange(d, dtype=y.dtype, device=_device(y)), (1, d)) / (2 * d)
    lam = _power_iteration(lambda w: hessian_vector(grad, y, w), v, iterations)
    return float(xp.max(xp.abs(lam))) if y.shape[0] else 0.0


def _device(x: Any) -> Any:
    from hjsmooth.backend import device

    return device(x)


def min_eigenvalue(
    grad: Callable[[Any], Any], y: Any, hessian: Callable[[Any], Any] | None = None, dense_limit: int = 32
) -> Any:
    """Smallest eigenvalue of ``Hess f(y)`` per point (``y`` of shape ``(n, d)``, result ``(n,)``).

    A user ``hessian(y) -> (n, d, d)`` is used when given; otherwise for ``d <= dense_limit`` the
    Hessian is assembled from ``d`` finite-difference Hessian-vector products (symmetrised) and
    its eigenvalues computed exactly; above that, a shifted power iteration (spectral radius
    ``r``, then the top eigenvalue of ``r I - H``) estimates it.
    """
    xp = array_namespace(y)
    n, d = y.shape
    if hessian is not None:
        hess = hessian(y)
        if tuple(hess.shape) != (n, d, d):
            raise ValueError(f"`hessian` must return shape (n, d, d) = {(n, d, d)}, got {tuple(hess.shape)}")
        hess = (hess + xp.permute_dims(hess, (0, 2, 1))) / 2
        return xp.linalg.eigvalsh(hess)[:, 0]
    if d <= dense_limit:
        eye = xp.eye(d, dtype=y.dtype, device=_device(y))
        ys = xp.reshape(xp.broadcast_to(y[:, None, :], (n, d, d)), (n * d, d))
        vs = xp.reshape(xp.broadcast_to(eye[None, :, :], (n, d, d)), (n * d, d))
        cols = xp.reshape(hessian_vector(grad, ys, vs), (n, d, d))
        hess = (cols + xp.permute_dims(cols, (0, 2, 1))) / 2
        return xp.linalg.eigvalsh(hess)[:, 0]
    start = xp.ones_like(y) + xp.reshape(xp.arange(d, dtype=y.dtype, device=_device(y)), (1, d)) / (2 * d)
    radius = xp.abs(_power_iteration(lambda w: hessian_vector(grad, y, w), start, 30))[:, None]
    top = _power_iteration(lambda w: radius * w - hessian_vector(grad, y, w), start, 60)
    return radius[:, 0] - top


def default_step_size(
    grad: Callable[[Any], Any], x: Any, t: float, lipschitz: float | None, fraction: float = STEP_FRACTION
) -> tuple[float, float]:
    """The Langevin / gradient-flow step ``eta = fraction / (1/t + L)`` and the ``L`` used.

    ``1/t + L`` bounds the Lipschitz constant of ``grad_y H = grad f(y) + (y - x)/t``; ``L`` is
    ``lipschitz`` when given, otherwise twice the largest ``|Hess f(x)|_2`` found by power iteration
    at the points ``x``.  With ``L = 0`` this is ``eta = fraction * t``: a tenth of the relaxation time
    ``t`` of the coupling.
    """
    if lipschitz is None:
        lip = 2.0 * local_curvature_scale(grad, x)
    else:
        lip = check_positive(lipschitz, "lipschitz") if lipschitz != 0 else 0.0
    return fraction / (1.0 / t + lip), lip
