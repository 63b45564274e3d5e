"""Elastic (replica) estimate of the viscous HJ gradient (section 4.3.3, (4.25)-(4.26)).

Elastic-SGD runs ``n`` replicas ``Y^i``, each an SGD on ``f`` pulled towards a centre with
strength ``1/t``.  With the centre held at ``x`` (the fast time scale of the homogenised system),
the replicas are independent Langevin chains

    Y^i <- Y^i - eta (grad f(Y^i) + (Y^i - x)/t) + sqrt(2 eta / beta) N(0, I),

each ergodic for ``rho_1(y; x)``.  By ergodicity the average over replicas at one time replaces the
time average of one chain in (4.23): ``<y> ~ (1/n) sum_i Y^i(s)`` for ``s`` past the burn-in, and
``grad u(x, t) = (x - <y>)/t``.  ``window > 1`` combines both averages (the last ``window`` states
of each replica), as the thesis' (4.26) allows.  The replicas are independent given ``x``, so the
error bar is the spread across replicas over ``sqrt(n)``.

The coupled dynamics with a moving centre (Elastic-SGD in continuous time) is
``hjsmooth.sde.simulate(kind="entropy_sgd", replicas=n)``.
"""

from __future__ import annotations

from typing import Any

from hjsmooth.sde._common import GradientOracle
from hjsmooth.sde.viscous import langevin_average

__all__ = ["replica_average"]


def replica_average(
    grad: GradientOracle,
    x: Any,
    t: float,
    beta: float,
    rng: Any,
    *,
    replicas: int,
    burn_in: int,
    window: int,
    eta: float,
    grad_noise_var: float = 0.0,
    return_cov: bool = False,
) -> dict[str, Any]:
    """Run ``replicas`` chains per point of ``x`` for ``burn_in + window`` steps; average over replicas."""
    return langevin_average(
        grad,
        x,
        t,
        beta,
        rng,
        chains=replicas,
        steps=window,
        burn_in=burn_in,
        eta=eta,
        form="rho1",
        averaging="uniform",
        grad_noise_var=grad_noise_var,
        return_cov=return_cov,
        per_chain_window=True,
    )
