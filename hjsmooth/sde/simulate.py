"""``simulate``: Euler-Maruyama paths of the slow dynamics, many independent paths at once.

All dynamics use the noise convention of ``docs/conventions.md``, ``dX = b dt + beta^{-1/2} sigma dB``
(Itô), whose density solves ``rho_t = -div(b rho) + 1/(2 beta) sum_ij d_i d_j (D_ij rho)``,
``D = sigma sigma^T``.

=================  ==============================================================================
``kind``           dynamics
=================  ==============================================================================
``"sgd"``          (4.2) ``dX = -grad f(X) ds + beta^{-1/2} dB``
``"sde"``          (6.2) ``dX = b(X) ds + beta^{-1/2} sigma(X) dB`` with any drift (e.g. the
                   non-gradient force of Example 6.43) and a constant or state-dependent ``sigma``
``"controlled"``   (4.29) ``dX = -(grad f(X) + alpha(X, s)) ds + beta^{-1/2} dB``; the running cost
                   ``int |alpha|^2 ds`` of each path is recorded
``"entropy_sgd"``  (4.21) with ``replicas = 1``, and Elastic-SGD (4.25)-(4.26) with ``replicas > 1``:
                   ``dX = -(X - Ybar)/gamma ds``,
                   ``dY^i = -(1/eps) (grad f(Y^i) + (Y^i - X)/gamma) ds + sqrt(2/(beta eps)) dB^i``
=================  ==============================================================================

The fast noise of ``"entropy_sgd"`` is ``sqrt(2/beta)`` so that its invariant law for a frozen ``X`` is
``rho_1 ∝ exp(-beta (f(y) + |X - y|^2/(2 gamma)))`` as in ``smoothed_grad`` (the thesis' (4.21)
writes ``beta^{-1/2}``, whose invariant law would be ``exp(-2 beta H)``); as ``eps -> 0``, ``X`` follows
``dX = -grad u(X, gamma) ds`` (Theorem 4.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, device, from_numpy, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.sde._common import GradientOracle, as_points, check_count
from hjsmooth.sde._rng import check_generator, normal
from hjsmooth.sde.result import Paths
from hjsmooth.solvers.stepping import output_times
from hjsmooth.validation import as_real_array, check_beta, check_choice, check_grid, check_positive, check_time

__all__ = ["simulate", "histogram_density", "SIMULATION_KINDS"]

SIMULATION_KINDS = ("sgd", "sde", "controlled", "entropy_sgd")


def simulate(
    x0: Any,
    t: float,
    *,
    kind: str = "sgd",
    beta: float,
    rng: Any = None,
    grad_f: Callable[..., Any] | None = None,
    drift: Callable[[Any], Any] | None = None,
    sigma: Any = None,
    control: Callable[[Any, float], Any] | None = None,
    gamma: float | None = None,
    epsilon: float | None = None,
    replicas: int = 1,
    dt: float | None = None,
    n_paths: int | None = None,
    save_at: Any = None,
    grid: Grid | None = None,
    noisy_grad: bool = False,
) -> Paths:
    """Integrate ``n`` independent paths of an SDE from ``x0`` to time ``t`` by Euler-Maruyama.

    Parameters
    ----------
    x0 : array of shape ``(n, d)``, or ``(d,)`` with ``n_paths``
        Starting points (numpy or torch, CPU or CUDA, float32 or float64).
    t : float
        Final time, ``>= 0``; ``t = 0`` returns a copy of ``x0``.
    kind : {"sgd", "sde", "controlled", "entropy_sgd"}
        The dynamics (module table).
    beta : float
        Inverse temperature, ``0 < beta <= inf`` (``inf``: no noise).
    rng : None, int, numpy.random.Generator or torch.Generator
        SPEC 7: ``None`` (default) draws fresh entropy, an int seeds a new generator, a generator is used
        as it is.
    grad_f : callable
        ``grad f`` on batches ``(..., d)`` ("sgd", "controlled", "entropy_sgd"); with ``noisy_grad=True``
        it is called as ``grad_f(y, rng)``.  Every result of ``grad_f``, ``drift`` and ``control`` is
        checked for the input's shape, array type and dtype and for finite values; the error names the
        callable (or ``dt`` when the paths themselves diverged).
    drift : callable
        ``b(x)`` on batches ``(..., d)`` ("sde").
    sigma : None, array ``(d, d)`` or callable
        "sde": the noise matrix, constant or ``sigma(x) -> (..., d, d)`` (Itô: evaluated at the left end of
        each step); ``None`` is the identity.
    control : callable
        "controlled": ``alpha(x, s)`` (e.g. :func:`grid_control` of an HJB solution, or
        :func:`riccati_control`).
    gamma, epsilon : float
        "entropy_sgd": the scope (PDE time) and the time-scale ratio of the fast variable.
    replicas : int
        "entropy_sgd": fast chains per path (1: Entropy-SGD (4.21); more: Elastic-SGD (4.25)).
    dt : float, optional
        The step; default ``t / 1000`` (``0.1 eps gamma`` for "entropy_sgd", whose fast variable relaxes on the
        time scale ``eps gamma``).  Steps are shortened to land exactly on ``save_at`` and ``t``.
    n_paths : int, optional
        Replicate a single ``x0`` of shape ``(d,)`` this many times.
    save_at : None, int or sequence of float
        Times at which to keep the paths (as the grid solvers' ``save_at``: a count means equally spaced
        times including 0 and ``t``).
    grid : Grid, optional
        Also return the histogram density of the final states on this grid (see
        :func:`histogram_density`).

    Returns
    -------
    Paths
    """
    kind = check_choice(kind, "kind", SIMULATION_KINDS)
    if n_paths is not None:
        n_paths = check_count(n_paths, "n_paths")
        xp0, single, batch = as_points(x0, "x0")
        if batch != ():
            raise ValueError(f"`x0` must have shape (d,) when `n_paths` is given, got {tuple(np.shape(x0))}")
        x = xp0.asarray(xp0.broadcast_to(single, (n_paths, single.shape[-1])), copy=True)
    else:
        xp0, x, batch = as_points(x0, "x0")
        if len(batch) != 1:
            raise ValueError(f"`x0` must have shape (n, d) (or (d,) with `n_paths`), got shape {tuple(x0.shape)}")
        x = xp0.asarray(x, copy=True)
    xp = array_namespace(x)
    n, d = x.shape
    t = check_time(t)
    beta = check_beta(beta)
    gen = check_generator(rng, x)
    noise = 0.0 if beta == math.inf else 1.0 / math.sqrt(beta)

    if kind in ("sgd", "controlled", "entropy_sgd"):
        if grad_f is None:
            raise ValueError(f"`grad_f` is required for kind={kind!r}")
        grad = GradientOracle(grad_f, gen, noisy=noisy_grad, step_name="dt")
    if kind == "sde":
        if drift is None:
            raise ValueError("`drift` is required for kind='sde'")
        drift_fn = GradientOracle(drift, gen, name="drift", step_name="dt")
        sigma_fn = _sigma(sigma, x)
    if kind == "controlled":
        if control is None:
            raise ValueError("`control` is required for kind='controlled'")
        control_fn = GradientOracle(control, gen, name="control", step_name="dt")
    if kind == "entropy_sgd":
        if gamma is None or epsilon is None:
            raise ValueError("`gamma` and `epsilon` are required for kind='entropy_sgd'")
        gamma = check_positive(gamma, "gamma")
        epsilon = check_positive(epsilon, "epsilon")
        replicas = check_count(replicas, "replicas")
        fast = xp.asarray(xp.broadcast_to(x[:, None, :], (n, replicas, d)), copy=True)
        if dt is None:
            dt = 0.1 * epsilon * gamma
    if dt is None:
        dt = t / 1000 if t > 0 else 1.0
    dt = check_positive(dt, "dt")

    running = xp.zeros((n,), dtype=x.dtype, device=device(x)) if kind == "controlled" else None
    times = output_times(t, save_at)
    snaps = []
    now = 0.0
    steps = 0
    for target in times:
        while now < target * (1 - 1e-12) and target - now > 1e-14:
            h = min(dt, target - now)
            if kind == "sgd":
                x = x - h * grad(x) + noise * math.sqrt(h) * normal(gen, (n, d), x)
            elif kind == "sde":
                dw = math.sqrt(h) * normal(gen, (n, d), x)
                x = x + h * drift_fn(x) + noise * sigma_fn(x, dw)
            elif kind == "controlled":
                a = control_fn(x, now)
                running = running + h * xp.sum(a * a, axis=-1)
                x = x - h * (grad(x) + a) + noise * math.sqrt(h) * normal(gen, (n, d), x)
            else:
                assert gamma is not None and epsilon is not None  # checked above for kind="entropy_sgd"
                mean_fast = xp.mean(fast, axis=1)
                pull = grad(fast) + (fast - x[:, None, :]) / gamma
                fast = (
                    fast - (h / epsilon) * pull + math.sqrt(2 * h / (beta * epsilon)) * normal(gen, fast.shape, x)
                    if beta != math.inf
                    else fast - (h / epsilon) * pull
                )
                x = x - h * (x - mean_fast) / gamma
            now += h
            steps += 1
        if save_at is not None:
            snaps.append(x)
    if not bool(xp.all(xp.isfinite(x))):
        raise FloatingPointError(f"the paths diverged (dt={dt:.3g}); pass a smaller `dt`")
    density = counts = inside = None
    if grid is not None:
        density, counts, inside = histogram_density(x, grid)
    return Paths(
        x=x,
        times=times,
        steps=steps,
        dt=dt,
        paths=xp.stack(snaps, axis=0) if snaps else None,
        running_cost=running,
        density=density,
        counts=counts,
        inside=inside,
        fast=fast if kind == "entropy_sgd" else None,
        info={"kind": kind, "beta": beta, "gamma": gamma, "epsilon": epsilon, "replicas": replicas},
    )


def _sigma(sigma: Any, like: Any) -> Callable[[Any, Any], Any]:
    """``(x, dw) -> sigma(x) dw`` for ``sigma`` None, a constant ``(d, d)`` matrix, or a callable."""
    xp = array_namespace(like)
    d = like.shape[-1]
    if sigma is None:
        return lambda x, dw: dw
    if callable(sigma):

        def apply(x: Any, dw: Any) -> Any:
            s = sigma(x)
            if tuple(getattr(s, "shape", ())) != tuple(x.shape) + (d,):
                raise ValueError(
                    f"`sigma` must return shape (..., d, d) = {tuple(x.shape) + (d,)}, "
                    f"got {tuple(getattr(s, 'shape', ()))}"
                )
            if not bool(xp.all(xp.isfinite(s))):
                raise FloatingPointError("`sigma` returned NaN or inf values")
            return xp.sum(s * dw[..., None, :], axis=-1)

        return apply
    mat = as_real_array(sigma, "sigma")
    if mat.shape != (d, d):
        raise ValueError(f"`sigma` must be a ({d}, {d}) matrix or a callable, got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise ValueError("`sigma` must be finite")
    mat_like = from_numpy(mat, like)
    return lambda x, dw: dw @ xp.permute_dims(mat_like, (1, 0))


def histogram_density(points: Any, grid: Grid) -> tuple[Any, Any, float]:
    """Histogram density of ``points`` ``(n, d)`` on the nodes of ``grid``.

    Each node owns the points nearer to it than to any other node along every axis: a cell of width
    ``h`` inside and ``h/2`` on the edge nodes; points outside the box are not counted.  Returns
    ``(density, counts, inside)``: ``counts`` of ``grid.shape``, ``density = counts / (n * cell volume)``
    (so ``sum(density * cell volumes) = inside``) and the fraction ``inside`` of the points in the box.
    Arrays come back on ``points``' backend, device and dtype (the counting is done on the host).
    """
    check_grid(grid)
    pts = np.asarray(to_numpy(points), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != grid.ndim:
        raise ValueError(f"`points` must have shape (n, {grid.ndim}), got {pts.shape}")
    lower = np.asarray(grid.lower)
    upper = np.asarray(grid.upper)
    h = np.asarray(grid.spacing)
    shape = np.asarray(grid.shape)
    inside_mask = np.all((pts >= lower) & (pts <= upper), axis=1)
    idx = np.clip(np.rint((pts[inside_mask] - lower) / h).astype(np.int64), 0, shape - 1)
    flat = np.ravel_multi_index(tuple(idx.T), grid.shape)
    counts = np.bincount(flat, minlength=grid.size).reshape(grid.shape).astype(np.float64)
    volume = np.ones(grid.shape)
    for k in range(grid.ndim):
        w = np.full(grid.shape[k], h[k])
        w[0] = w[-1] = h[k] / 2
        volume = volume * w.reshape([-1 if j == k else 1 for j in range(grid.ndim)])
    n = max(pts.shape[0], 1)
    density = counts / (n * volume)
    return from_numpy(density, points), from_numpy(counts, points), float(inside_mask.mean()) if pts.shape[0] else 0.0
