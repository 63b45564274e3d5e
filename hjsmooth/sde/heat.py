"""Heat-equation gradient by Gaussian perturbation ((4.27)-(4.28), (4.43)).

The heat flow ``v_t = 1/(2 beta) Lap v``, ``v(., 0) = f`` has ``v(., t) = G_{t/beta} * f`` and

    grad v(x, t) = E[grad f(x + z)],   z ~ N(0, (t/beta) I).

The fast variable of (4.27) is an Ornstein-Uhlenbeck process whose invariant law is exactly this
Gaussian, so it is sampled directly (independent draws, no burn-in).  With ``antithetic=True`` the
draws come in pairs ``z, -z`` and each sample is ``(grad f(x + z) + grad f(x - z))/2``: the odd part
of ``grad f`` around ``x`` cancels, which removes the leading term of the variance when
``grad f`` is close to linear on the scale ``sqrt(t/beta)``.
"""

from __future__ import annotations

import math
from typing import Any

from hjsmooth.backend import array_namespace
from hjsmooth.sde._common import GradientOracle
from hjsmooth.sde._rng import normal

__all__ = ["gaussian_average"]


def gaussian_average(
    grad: GradientOracle, x: Any, t: float, beta: float, rng: Any, *, samples: int, antithetic: bool = False
) -> dict[str, Any]:
    """Average ``grad f(x + z)`` over ``samples`` Gaussian draws (pairs when antithetic) per point of ``x``."""
    xp = array_namespace(x)
    n, d = x.shape
    scale = math.sqrt(t / beta)
    z = scale * normal(rng, (n, samples, d), x)
    x3 = x[:, None, :]
    if antithetic:
        both = grad(xp.concat([x3 + z, x3 - z], axis=1))
        values = (both[:, :samples, :] + both[:, samples:, :]) / 2
        single_var = xp.var(both, axis=1, correction=1)
    else:
        values = grad(x3 + z)
        single_var = xp.var(values, axis=1, correction=1)
    estimate = xp.mean(values, axis=1)
    stderr = xp.std(values, axis=1, correction=1) / math.sqrt(samples)
    # effective sample size: the variance of one plain draw over the squared error bar (for antithetic
    # pairs this exceeds the number of draws when the pairing helps)
    safe = xp.where(stderr > 0, stderr, xp.ones_like(stderr))
    ess = xp.where(stderr > 0, single_var / (safe * safe), xp.full_like(stderr, math.inf))
    return {"grad": estimate, "stderr": stderr, "mean_y": x + xp.mean(z, axis=1), "ess": ess, "stderr_method": "chains"}
