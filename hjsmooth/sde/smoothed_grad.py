"""``smoothed_grad``: the gradient of a PDE-smoothed loss at a batch of points, by sampling.

One entry point for the four estimators of chapter 4; each lives in its own module:

==============  ===========================================================================  =====================
``kind``        what is estimated                                                            module
==============  ===========================================================================  =====================
``"viscous"``   ``grad u`` of ``u_t = -1/2|grad u|^2 + 1/(2 beta) Lap u`` (Local Entropy):      :mod:`.viscous`
                Langevin time average over ``rho_1`` (4.12) or ``rho_2`` (4.13)
``"inviscid"``  ``grad u`` of ``u_t = -1/2|grad u|^2`` (Hopf-Lax): gradient flow to the        :mod:`.inviscid`
                proximal point (4.19), (4.42)
``"heat"``      ``grad v`` of ``v_t = 1/(2 beta) Lap v``: Gaussian average of ``grad f`` (4.28)  :mod:`.heat`
``"elastic"``   the viscous ``grad u`` again, by a replica average in place of the time        :mod:`.elastic`
                average (4.25)-(4.26)
==============  ===========================================================================  =====================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hjsmooth.sde._common import GradientOracle, as_points, check_count, default_step_size
from hjsmooth.sde._rng import check_generator
from hjsmooth.sde.elastic import replica_average
from hjsmooth.sde.heat import gaussian_average
from hjsmooth.sde.inviscid import convexity_on_segment, proximal_flow
from hjsmooth.sde.result import SmoothedGradient
from hjsmooth.sde.viscous import langevin_average
from hjsmooth.validation import (
    check_alpha,
    check_beta,
    check_choice,
    check_nonnegative_real,
    check_positive,
    check_time,
)

__all__ = ["smoothed_grad", "KINDS", "DEFAULTS"]

KINDS = ("viscous", "inviscid", "heat", "elastic")

#: default chains (replicas, samples), burn-in and averaged steps per kind; ``None`` means a count of
#: relaxation times ``t`` of the coupling, in steps of ``eta`` (see ``RELAXATION_TIMES``).
DEFAULTS: dict[str, dict[str, int | None]] = {
    "viscous": {"chains": 16, "burn_in": None, "steps": None},
    "elastic": {"chains": 256, "burn_in": None, "steps": 1},
    "heat": {"chains": 256, "burn_in": 0, "steps": 1},
    "inviscid": {"chains": 1, "burn_in": 0, "steps": 10_000},
}

#: default burn-in and averaging lengths, in relaxation times ``t`` of the coupling ``|x - y|^2/(2t)``.
RELAXATION_TIMES = {"burn_in": 10, "steps": 40}

#: fraction of 1/(1/t + L) used as the gradient-flow step of the deterministic inviscid flow.
FLOW_FRACTION = 0.5


def smoothed_grad(
    grad_f: Callable[..., Any],
    x: Any,
    t: float,
    beta: float | None = None,
    kind: str = "viscous",
    *,
    rng: Any = None,
    chains: int | None = None,
    steps: int | None = None,
    burn_in: int | None = None,
    step_size: float | None = None,
    lipschitz: float | None = None,
    form: str = "rho1",
    averaging: str = "uniform",
    alpha: float = 0.75,
    antithetic: bool = False,
    noisy_grad: bool = False,
    grad_noise_var: float = 0.0,
    return_cov: bool = False,
    tol: float | None = None,
    hessian: Callable[[Any], Any] | None = None,
) -> SmoothedGradient:
    """Estimate the gradient of the smoothed loss ``grad u(x, t)`` at every point of ``x``.

    Parameters
    ----------
    grad_f : callable
        ``grad_f(y)`` for a batch ``y`` of shape ``(..., d)`` returns ``grad f(y)`` of the same shape,
        backend and dtype, and finite: every result is checked (``ValueError`` or ``TypeError`` for the
        wrong shape or array type, ``FloatingPointError`` for NaN or inf, naming ``grad_f`` and the call;
        if the chains themselves diverged the error names ``step_size`` instead).  With ``noisy_grad=True``
        it is called as ``grad_f(y, rng)`` and may return a minibatch (noisy, unbiased) gradient, as in
        (4.40).
    x : array of shape ``(d,)`` or ``(..., d)``
        The points (numpy or torch, CPU or CUDA; float32 or float64).  All points and all chains are
        advanced together as one array computation of shape ``(n, chains, d)``.
    t : float
        The PDE time (the scope ``gamma``, a variance): ``t >= 0``.  ``t = 0`` returns ``grad_f(x)``.
    beta : float
        Inverse temperature of the viscous, heat and elastic kinds (required there); the inviscid kind
        has none (leave it ``None`` or pass ``inf``).
    kind : {"viscous", "inviscid", "heat", "elastic"}
        Which smoothing (see the module table).
    rng : None, int, numpy.random.Generator or torch.Generator
        The random generator, as SPEC 7 says: ``None`` (default) draws fresh entropy, an int seeds a
        new generator, a generator is used as it is (see :mod:`hjsmooth.sde._rng`).  The deterministic
        ``"inviscid"`` kind draws nothing (unless ``noisy_grad``).
    chains : int, optional
        Independent chains per point (viscous, default 16), replicas (elastic, default 256), Gaussian
        draws or antithetic pairs (heat, default 256).
    steps : int, optional
        Averaged Langevin steps per chain after burn-in (viscous, default ``ceil(40 t / eta)``: 40
        relaxation times of the coupling, 400 steps when ``L = 0``); the replica window (elastic, default 1);
        the most gradient-flow steps (inviscid, default 10000).
    burn_in : int, optional
        Langevin steps discarded first (default ``ceil(10 t / eta)``: 10 relaxation times, 100 steps when
        ``L = 0``).
    step_size : float, optional
        Langevin step ``eta``.  Default ``0.1 / (1/t + L)`` (inviscid: ``0.5 / (1/t + L)``): a fixed
        fraction of the inverse Lipschitz constant of ``grad_y H = grad f(y) + (y - x)/t``, the
        strongly convex coupling ``1/t`` plus ``L``; that is ``eta = 0.1 t`` when ``L = 0``.  ``L`` is
        ``lipschitz`` when given, otherwise twice the largest ``|Hess f(x)|`` found by power iteration
        of finite-difference Hessian-vector products at the points ``x``.
    lipschitz : float, optional
        A bound on the Lipschitz constant of ``grad f`` (used only for the default step).  With
        ``noisy_grad=True`` and no ``lipschitz`` the default step uses ``L = 0`` (``eta = 0.1 t``): finite
        differences of a noisy gradient carry no curvature information.
    form : {"rho1", "rho2"}
        Viscous / inviscid: average ``(x - y)/t`` under ``rho_1`` (4.12), or ``grad f(x - z)`` under
        ``rho_2`` (4.13) (inviscid: flow (4.19) in ``z`` and return ``grad f(x - z*)``).
    averaging : {"uniform", "exponential"}
        Viscous: the uniform time average (4.23) or the running average
        ``<y> <- alpha <y> + (1 - alpha) y`` of Algorithm 2 (needs ``chains >= 2`` for an error bar).
    alpha : float
        Weight of the old value in the exponential average, ``0 <= alpha < 1``.
    antithetic : bool
        Heat: draw ``z, -z`` pairs.
    noisy_grad : bool
        Call ``grad_f(y, rng)``.
    grad_noise_var : float
        Variance per coordinate of the noise of a noisy gradient; the injected Langevin noise is
        lowered to ``2 eta / beta - eta^2 grad_noise_var`` so that the temperature stays ``1/beta``
        ((4.40): ``1/beta = 1/beta_delta + 1/beta_ex``).
    return_cov : bool
        Viscous / elastic: also return the sampled covariance of ``y`` (``cov_y``).
    tol : float, optional
        Inviscid: stop when ``|grad f(y) + (y - x)/t| <= tol`` at every point (default ``1e-9`` in
        float64, ``1e-4`` in float32).
    hessian : callable, optional
        Inviscid: ``hessian(y) -> (n, d, d)`` used for the convexity check instead of finite differences.

    Returns
    -------
    SmoothedGradient
        ``grad`` and ``stderr`` of the shape of ``x`` plus diagnostics (see its docstring).

    Notes
    -----
    Langevin chains start at ``y = x`` (``z = 0``), as in Algorithm 2.  The chain is the unadjusted
    Euler-Maruyama discretisation: its invariant law differs from ``rho_1`` by ``O(eta)``; lower
    ``step_size`` to shrink that bias (the error bar does not include it).
    """
    kind = check_choice(kind, "kind", KINDS)
    form = check_choice(form, "form", ("rho1", "rho2"))
    averaging = check_choice(averaging, "averaging", ("uniform", "exponential"))
    xp, x2, batch = as_points(x)
    t = check_time(t)
    if kind == "inviscid":
        if beta is not None and check_beta(beta) != math.inf:
            raise ValueError(f"`beta` must be None or inf for the inviscid kind (no noise), got {beta!r}")
        beta_f = math.inf
    else:
        if beta is None:
            raise ValueError(f"`beta` is required for kind={kind!r}")
        beta_f = check_beta(beta)
        if beta_f == math.inf:
            raise ValueError(f"`beta` must be finite for kind={kind!r} (use kind='inviscid' for beta = inf)")
    defaults = DEFAULTS[kind]
    chains = check_count(
        defaults["chains"] if chains is None else chains,
        "chains",
        2 if kind == "elastic" or averaging == "exponential" else 1,
    )
    if steps is not None:
        steps = check_count(steps, "steps")
    if burn_in is not None:
        burn_in = check_count(burn_in, "burn_in", 0)
    alpha = check_alpha(alpha)
    grad_noise_var = check_nonnegative_real(grad_noise_var, "grad_noise_var")
    gen = check_generator(rng, x2) if (kind != "inviscid" or noisy_grad or rng is not None) else None
    oracle = GradientOracle(grad_f, gen, noisy=noisy_grad)

    if kind == "heat":
        steps, burn_in = 1, 0
    if t == 0.0:
        g = oracle(x2)
        zeros = xp.zeros_like(x2)
        return _result(
            xp,
            batch,
            kind,
            {
                "grad": g,
                "stderr": zeros,
                "mean_y": xp.asarray(x2, copy=True),
                "ess": xp.full_like(x2, math.inf),
                "stderr_method": "none",
            },
            steps=0,
            burn_in=0,
            eta=0.0,
            chains=0,
            info={"t": 0.0},
        )

    info = {"t": t, "beta": beta_f, "form": form}
    if kind == "heat":
        out = gaussian_average(oracle, x2, t, beta_f, gen, samples=chains, antithetic=bool(antithetic))
        info["antithetic"] = bool(antithetic)
        return _result(xp, batch, kind, out, steps=1, burn_in=0, eta=math.nan, chains=chains, info=info)

    fraction = FLOW_FRACTION if kind == "inviscid" else 0.1
    if step_size is None:
        if noisy_grad and lipschitz is None:
            lipschitz = 0.0  # finite differences of a noisy gradient say nothing about the curvature
        eta, lip = default_step_size(oracle, x2, t, lipschitz, fraction)
        info["lipschitz_used"] = lip
    else:
        eta = check_positive(step_size, "step_size")
    relax = t / eta
    if steps is None:
        steps = (
            defaults["steps"] if defaults["steps"] is not None else math.ceil(RELAXATION_TIMES["steps"] * relax - 1e-9)
        )
    if burn_in is None:
        burn_in = (
            defaults["burn_in"]
            if defaults["burn_in"] is not None
            else math.ceil(RELAXATION_TIMES["burn_in"] * relax - 1e-9)
        )
    if kind == "viscous" and chains == 1 and steps < 40:
        raise ValueError(f"`steps` must be >= 40 for a batch-means error bar with one chain, got {steps}")
    if kind == "inviscid":
        if tol is None:
            tol = 1e-9 if x2.dtype == xp.float64 else 1e-4
        tol = check_positive(tol, "tol")
        out = proximal_flow(oracle, x2, t, eta=eta, max_steps=steps, tol=tol, form=form)
        curvature, convex = convexity_on_segment(oracle, x2, out["mean_y"], t, hessian)
        out.update(stderr=xp.zeros_like(x2), ess=xp.full_like(x2, math.inf), stderr_method="none")
        info["tol"] = tol
        return _result(
            xp,
            batch,
            kind,
            out,
            steps=out["steps"],
            burn_in=0,
            eta=eta,
            chains=1,
            info=info,
            converged=out["converged"],
            convex=convex,
            min_curvature=curvature,
        )
    if kind == "elastic":
        out = replica_average(
            oracle,
            x2,
            t,
            beta_f,
            gen,
            replicas=chains,
            burn_in=burn_in,
            window=steps,
            eta=eta,
            grad_noise_var=grad_noise_var,
            return_cov=return_cov,
        )
    else:
        out = langevin_average(
            oracle,
            x2,
            t,
            beta_f,
            gen,
            chains=chains,
            steps=steps,
            burn_in=burn_in,
            eta=eta,
            form=form,
            averaging=averaging,
            alpha=alpha,
            grad_noise_var=grad_noise_var,
            return_cov=return_cov,
        )
        info.update(averaging=averaging, alpha=alpha)
    return _result(xp, batch, kind, out, steps=steps, burn_in=burn_in, eta=eta, chains=chains, info=info)


def _result(
    xp: Any,
    batch: tuple[int, ...],
    kind: str,
    out: dict[str, Any],
    *,
    steps: int,
    burn_in: int,
    eta: float,
    chains: int,
    info: dict,
    converged: Any = None,
    convex: Any = None,
    min_curvature: Any = None,
) -> SmoothedGradient:
    d = out["grad"].shape[-1]

    def shaped(a: Any) -> Any:
        return xp.reshape(a, batch + (d,))

    def per_point(a: Any) -> Any:
        return None if a is None else xp.reshape(a, batch)

    cov = out.get("cov_y")
    return SmoothedGradient(
        grad=shaped(out["grad"]),
        stderr=shaped(out["stderr"]),
        mean_y=shaped(out["mean_y"]),
        kind=kind,
        steps=int(steps),
        burn_in=int(burn_in),
        step_size=float(eta),
        chains=int(chains),
        ess=shaped(out["ess"]),
        stderr_method=out["stderr_method"],
        cov_y=None if cov is None else xp.reshape(cov, batch + (d, d)),
        converged=per_point(converged),
        convex=per_point(convex),
        min_curvature=per_point(min_curvature),
        info=info,
    )
