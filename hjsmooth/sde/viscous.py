"""Viscous HJ (Local Entropy) gradient by Langevin sampling of ``rho_1`` (Lemma 4.1, (4.21), (4.39)).

For each point ``x`` the fast variable ``y`` follows the unadjusted Langevin (Euler-Maruyama) chain

    y <- y - eta (grad f(y) + (y - x)/t) + sqrt(2 eta / beta) N(0, I),

whose invariant density is ``rho_1(y; x) ∝ exp(-beta (f(y) + |x - y|^2/(2t)))`` (up to the O(eta)
bias of the discretisation), and

    grad u(x, t) = (x - <y>)/t                                  (4.12)

with ``<y>`` the time average of the chain after burn-in (uniform, or the exponential average of
Algorithm 2).  The second form (4.13) runs the same chain in the variable ``z = x - y``,

    z <- z - eta (z/t - grad f(x - z)) + sqrt(2 eta / beta) N(0, I),   grad u = <grad f(x - z)>,

which averages gradients instead of positions (a different variance, the same mean).

A minibatch gradient (4.40) brings its own noise; with ``grad_noise_var = sigma^2`` (the variance
per coordinate of the noisy gradient) the injected noise is reduced to
``2 eta / beta - eta^2 sigma^2`` so that the total temperature stays ``1/beta``.
"""

from __future__ import annotations

import math
from typing import Any

from hjsmooth.backend import array_namespace
from hjsmooth.sde._common import GradientOracle
from hjsmooth.sde._rng import normal

__all__ = ["langevin_average", "N_BATCHES"]

#: batches used for the batch-means error bar of a single chain.
N_BATCHES = 20


def langevin_average(
    grad: GradientOracle,
    x: Any,
    t: float,
    beta: float,
    rng: Any,
    *,
    chains: int,
    steps: int,
    burn_in: int,
    eta: float,
    form: str = "rho1",
    averaging: str = "uniform",
    alpha: float = 0.75,
    grad_noise_var: float = 0.0,
    return_cov: bool = False,
    per_chain_window: bool = False,
) -> dict[str, Any]:
    """Run ``chains`` Langevin chains per point of ``x`` (shape ``(n, d)``) and average.

    Returns a dict with ``grad``, ``stderr``, ``mean_y``, ``ess``, ``cov_y`` (or None) and
    ``stderr_method``, all arrays of ``x``'s backend.  ``per_chain_window=True`` is the elastic
    (replica) estimate: each replica contributes the uniform average of its last ``steps`` states,
    and the error bar comes from the spread across replicas.
    """
    xp = array_namespace(x)
    n, d = x.shape
    m = chains
    noise_var = 2.0 * eta / beta - eta * eta * grad_noise_var
    if noise_var < 0:
        raise ValueError(
            f"`grad_noise_var` = {grad_noise_var!r} carries more noise than the temperature 1/beta "
            f"allows at step {eta:.3g} (eta * sigma^2 must be <= 2 / beta)"
        )
    noise_scale = math.sqrt(noise_var)
    x3 = x[:, None, :]
    state = xp.zeros((n, m, d), dtype=x.dtype, device=_dev(x)) if form == "rho2" else xp.broadcast_to(x3, (n, m, d))
    state = xp.asarray(state, copy=True)

    total = burn_in + steps
    exponential = averaging == "exponential" and not per_chain_window
    zeros = lambda shape: xp.zeros(shape, dtype=x.dtype, device=_dev(x))  # noqa: E731
    acc = zeros((n, m, d))  # per-chain sum of the averaged quantity
    acc_sq = zeros((n, m, d))  # per-chain sum of its squares
    ema: Any = zeros((n, m, d)) if exponential else None
    pos_acc = zeros((n, d))  # sum over chains and time of y - x
    cov_acc: Any = zeros((n, d, d)) if return_cov else None
    single = m == 1
    batches: Any = zeros((n, N_BATCHES, d)) if single else None
    batch_len = [0] * N_BATCHES

    inv_t = 1.0 / t
    for k in range(total):
        if form == "rho2":
            g = grad(x3 - state)
            quantity = g
            drift = state * inv_t - g
        else:
            g = grad(state)
            quantity = state
            drift = g + (state - x3) * inv_t
        if k >= burn_in:
            j = k - burn_in
            acc += quantity
            acc_sq += quantity * quantity
            if exponential:
                ema = quantity if j == 0 else alpha * ema + (1 - alpha) * quantity
            if return_cov:
                offset = state - x3 if form == "rho1" else -state
                cov_acc += xp.sum(offset[..., :, None] * offset[..., None, :], axis=1)
                pos_acc += xp.sum(offset, axis=1)
            elif form == "rho2":
                pos_acc -= xp.sum(state, axis=1)
            if single:
                b = j * N_BATCHES // steps
                batches[:, b, :] = batches[:, b, :] + quantity[:, 0, :]
                batch_len[b] += 1
        drift *= -eta
        drift += noise_scale * normal(rng, (n, m, d), x)
        state = state + drift
        if k % 10 == 9 or k == total - 1:
            _check_bounded(xp, state, eta)

    if form == "rho1" and not return_cov:
        pos_acc = xp.sum(acc, axis=1) - steps * m * x  # the sum of y - x, from the sum of y
    return _summarise(xp, x, t, acc, acc_sq, ema, pos_acc, cov_acc, batches, batch_len, steps, m, form, return_cov)


def _check_bounded(xp: Any, state: Any, eta: float) -> None:
    """Raise well before overflow (checked every 10 steps): the chains must stay below 1e60 (1e8 in float32)."""
    limit = 1e8 if state.dtype == xp.float32 else 1e60
    if not bool(xp.all(xp.abs(state) < limit)):
        raise FloatingPointError(
            f"the Langevin chains diverged (step_size={eta:.3g}); pass a smaller `step_size` or the "
            "Lipschitz constant of grad f as `lipschitz`"
        )


def _summarise(
    xp: Any,
    x: Any,
    t: float,
    acc: Any,
    acc_sq: Any,
    ema: Any,
    pos_acc: Any,
    cov_acc: Any,
    batches: Any,
    batch_len: list[int],
    steps: int,
    m: int,
    form: str,
    return_cov: bool,
) -> dict[str, Any]:
    """Estimates, error bars and effective sample sizes from the accumulated sums."""
    exponential = ema is not None
    single = batches is not None
    chain_est = ema if exponential else acc / steps
    estimate = xp.mean(chain_est, axis=1)
    count = steps * m
    pooled_mean = xp.sum(acc, axis=1) / count
    pooled_var = xp.clip(xp.sum(acc_sq, axis=1) / count - pooled_mean * pooled_mean, min=0.0)
    if single:
        lengths = xp.asarray([float(max(b, 1)) for b in batch_len], dtype=x.dtype, device=_dev(x))
        batch_means = batches / lengths[None, :, None]
        stderr = xp.std(batch_means, axis=1, correction=1) / math.sqrt(N_BATCHES)
        method = "batch_means"
    else:
        stderr = xp.std(chain_est, axis=1, correction=1) / math.sqrt(m)
        method = "chains"
    safe = xp.where(stderr > 0, stderr, xp.ones_like(stderr))
    ess = xp.where(stderr > 0, pooled_var / (safe * safe), xp.full_like(stderr, math.inf))

    if form == "rho2":
        grad_est, grad_err = estimate, stderr
    else:
        grad_est, grad_err = (x - estimate) / t, stderr / t
    mean_offset = pos_acc / count
    mean_y = x + mean_offset
    cov_y = None
    if return_cov:
        cov_y = cov_acc / count - mean_offset[:, :, None] * mean_offset[:, None, :]
    return {"grad": grad_est, "stderr": grad_err, "mean_y": mean_y, "ess": ess, "cov_y": cov_y, "stderr_method": method}


def _dev(x: Any) -> Any:
    from hjsmooth.backend import device

    return device(x)
