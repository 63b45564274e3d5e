"""LocalEntropy / EntropySGD / HJ / Heat / TrivializedSGD: closed forms, references, errors."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch

import hjsmooth.optim as O
from hjsmooth.optim import schedules as S
from hjsmooth.optim.trivialized import field_factor


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _quadratic_problem(dim: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    q = a @ a.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64)
    x0 = torch.randn(dim, generator=g, dtype=torch.float64)
    return q, x0


FORMS = {  # inner_momentum, inner_nesterov, coupling_in_momentum
    "plain": (0.0, True, False),
    "nesterov_in_momentum": (0.9, True, True),
    "heavy_ball_in_momentum": (0.5, False, True),
    "nesterov_after_momentum": (0.9, True, False),
}


@pytest.mark.parametrize("form", FORMS)
def test_hj_closed_form_lemma_4_4(form: str) -> None:
    """One HJ step with a long inner loop on x^T Q x / 2 moves x by lr (gamma Q + I)^{-1} Q x (Lemma 4.4).

    Momentum SGD on f(y) + |y - x|^2/(2 gamma) (the coupling in the buffer) has the proximal point as
    its fixed point whatever the momentum.  With the coupling added *after* a momentum mu the fixed
    point is where grad f(y)/(1 - mu) + (y - x)/gamma = 0: the proximal point of scope gamma/(1 - mu),
    and the step (x - y)/gamma is 1/(1 - mu) times the Hopf-Lax gradient at that time.
    """
    mu, nesterov, in_momentum = FORMS[form]
    q, x0 = _quadratic_problem()
    gamma, lr = 0.7, 0.3
    x = torch.nn.Parameter(x0.clone())
    lam_max = float(torch.linalg.eigvalsh(q).max())
    opt = O.HJ([x], lr=lr, gamma=gamma, L=3000, inner_lr=0.2 / (lam_max + 1 / gamma), momentum=0.0,
               inner_momentum=mu, inner_nesterov=nesterov, coupling_in_momentum=in_momentum, scale_by_gamma=False)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * x @ q @ x
        loss.backward()
        return loss

    opt.step_outer(closure)
    eye = torch.eye(len(x0), dtype=torch.float64)
    scope, factor = (gamma, 1.0) if in_momentum or mu == 0 else (gamma / (1 - mu), 1 / (1 - mu))
    expected = x0 - lr * factor * torch.linalg.solve(scope * q + eye, q @ x0)
    assert torch.allclose(x.detach(), expected, rtol=0, atol=1e-12)
    # and the step is not plain gradient descent
    assert not torch.allclose(x.detach(), x0 - lr * q @ x0, atol=1e-3)


def _reference_entropy_sgd(x0: torch.Tensor, grad_f: Any, steps: int, lr: float, gamma: Any, L: int,
                           inner_lr: float, noise: float, alpha: float, inner_momentum: float, momentum: float,
                           weight_decay: float, seed: int, inner_nesterov: bool = True,
                           coupling_in_momentum: bool = False, keep_inner_buffer: bool = False,
                           scale_by_gamma: bool = False) -> torch.Tensor:
    """Algorithm 2 written out line by line (positions y, z, not displacements), Nesterov SGD outside.

    The inner momentum b (coefficient mu) takes grad f(y), or grad f(y) + (y - x)/gamma when the
    coupling goes into the buffer; the step direction is g + mu b (Nesterov) or b (heavy ball),
    plus the coupling when it stays outside the buffer.
    """
    g = torch.Generator().manual_seed(seed)
    x = x0.clone()
    buf = None
    b = torch.zeros_like(x)
    for k in range(steps):
        gam = gamma(k) if callable(gamma) else gamma
        y, z = x.clone(), x.clone()
        if not keep_inner_buffer:
            b = torch.zeros_like(x)
        for _ in range(L):
            grad, coupling = grad_f(y), (y - x) / gam
            if inner_momentum > 0:
                if coupling_in_momentum:
                    grad, coupling = grad + coupling, 0.0
                b = inner_momentum * b + grad
                grad = grad + inner_momentum * b if inner_nesterov else b
            y = y - inner_lr * (grad + coupling)
            if noise > 0:
                y = y + math.sqrt(2 * inner_lr * noise) * torch.randn(x.shape, generator=g, dtype=x.dtype)
            z = alpha * z + (1 - alpha) * y
        d = (x - z) if scale_by_gamma else (x - z) / gam
        d = d + weight_decay * x
        buf = d.clone() if buf is None else momentum * buf + d
        x = x - lr * (d + momentum * buf)
    return x


REFERENCE_FORMS = {  # noise, inner_momentum, inner_nesterov, coupling_in_momentum, keep_inner_buffer
    "plain_noiseless": (0.0, 0.0, True, False, False),
    "plain_noisy": (1e-3, 0.0, True, False, False),
    "heavy_ball_in_momentum_reset": (1e-3, 0.5, False, True, False),
    "nesterov_after_momentum_reset": (0.0, 0.9, True, False, False),
    "nesterov_after_momentum_kept": (1e-3, 0.9, True, False, True),
    "nesterov_in_momentum_kept": (1e-3, 0.9, True, True, True),
}


def _nonconvex(dim: int, seed: int) -> tuple[Any, Any, torch.Tensor]:
    q, x0 = _quadratic_problem(dim, seed)

    def f(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * z @ q @ z + torch.sin(3 * z).sum()

    def grad_f(z: torch.Tensor) -> torch.Tensor:
        return q @ z + 3 * torch.cos(3 * z)

    return f, grad_f, x0


@pytest.mark.parametrize("form", REFERENCE_FORMS)
def test_entropy_sgd_matches_algorithm_2(form: str) -> None:
    noise, mu, nesterov, in_momentum, keep = REFERENCE_FORMS[form]
    f, grad_f, x0 = _nonconvex(5, 1)
    kw = dict(lr=0.05, gamma=0.4, L=7, inner_lr=0.05, noise=noise, alpha=0.75, inner_momentum=mu,
              momentum=0.9, weight_decay=1e-2, inner_nesterov=nesterov, coupling_in_momentum=in_momentum,
              keep_inner_buffer=keep, scale_by_gamma=False)
    x = torch.nn.Parameter(x0.clone())
    opt = O.EntropySGD([x], generator=torch.Generator().manual_seed(4), **kw)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    for _ in range(6):
        opt.step_outer(closure)
    ref = _reference_entropy_sgd(x0, grad_f, 6, seed=4, **kw)
    assert torch.allclose(x.detach(), ref, rtol=0, atol=1e-12)
    assert opt.outer_step == 6 and set(opt.stats) == {"loss", "inner_loss", "grad_norm", "gamma"}


# ----------------------------------------------------------------------------- the original implementations
# Each reference below is the update rule of one original code, transcribed as plain tensor algebra in the
# order that code performs it (noise 0, no weight decay: deterministic gradients make the runs comparable).
def _original_entropy_sgd_pytorch(x0: torch.Tensor, grad_f: Any, steps: int, lr: float, g0: float, L: int,
                                  llr: float, mom: float, beta1: float) -> torch.Tensor:
    """entropy-sgd ``python/optim.py``: one momentum ``mom`` (Nesterov) in both loops, the inner buffer zeroed
    every step, the coupling ``g0 (w - wc)`` added after the momentum, ``x - <y>`` handed to the outer step.

    One deliberate difference: the original starts its outer momentum buffer at the gradient of its first
    closure call; here it starts as ``torch.optim.SGD`` starts it, at the first update direction.
    """
    wc, outer = x0.clone(), None
    for _ in range(steps):
        w, mw, mdw = wc.clone(), wc.clone(), torch.zeros_like(wc)
        for _ in range(L):
            dw = grad_f(w)
            mdw = mom * mdw + dw
            dw = dw + mom * mdw
            dw = dw + g0 * (w - wc)
            w = w - llr * dw
            mw = beta1 * mw + (1 - beta1) * w
        dw = wc - mw
        outer = dw.clone() if outer is None else mom * outer + dw
        wc = wc - lr * (dw + mom * outer)
    return wc


def _original_entropy_sgd_lua(x0: torch.Tensor, grad_f: Any, steps: int, lr: float, gamma: float, scoping: float,
                              L: int, lclr: float, mom: float, beta1: float) -> torch.Tensor:
    """entropy-sgd ``entropyoptim.lua``: Nesterov inner momentum zeroed every step, coupling
    ``gamma (1 + scoping)^k (lx - xc)`` after the momentum at the k-th call (k = 1, 2, ...), and the outer
    step ``x <- xc - lr (xc - <x>)`` (the gradient at ``x`` and its momentum are discarded when L > 0)."""
    x = x0.clone()
    for k in range(1, steps + 1):
        xc, lx, lmx, mdfdx = x.clone(), x.clone(), x.clone(), torch.zeros_like(x)
        cgamma = gamma * (1 + scoping) ** k
        for _ in range(L):
            ldfdx = grad_f(lx)
            mdfdx = mom * mdfdx + ldfdx
            ldfdx = ldfdx + mom * mdfdx
            ldfdx = ldfdx + cgamma * (lx - xc)
            lx = lx - lclr * ldfdx
            lmx = beta1 * lmx + (1 - beta1) * lx
        x = xc - lr * (xc - lmx)
    return x


def _original_hamilton_jacobi_esgd(x0: torch.Tensor, grad_f: Any, steps: int, lr: float, g0: float, g1: float,
                                   L: int, llr: float, mom: float, beta1: float) -> torch.Tensor:
    """hamilton-jacobi ``code/optim.py`` ``ESGD``: the coupling ``g (w - wc)`` inside the Nesterov buffer, that
    buffer kept across outer steps, ``g = g0 (1 + g1)^t`` at step t = 1, 2, ...; Nesterov SGD outside on
    ``wc - <w>``."""
    wc, inner, outer = x0.clone(), torch.zeros_like(x0), torch.zeros_like(x0)
    for t in range(1, steps + 1):
        g = g0 * (1 + g1) ** t
        w, mw = wc.clone(), wc.clone()
        for _ in range(L):
            dw = grad_f(w) + g * (w - wc)
            inner = mom * inner + dw
            dw = dw + mom * inner
            w = w - llr * dw
            mw = beta1 * mw + (1 - beta1) * w
        dw = wc - mw
        outer = mom * outer + dw
        wc = wc - lr * (dw + mom * outer)
    return wc


def _run(opt_factory: Any, f: Any, x0: torch.Tensor, steps: int) -> torch.Tensor:
    x = torch.nn.Parameter(x0.clone())
    opt = opt_factory([x])

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step_outer(closure)
    return x.detach()


def test_matches_the_original_entropy_sgd_pytorch_code() -> None:
    f, grad_f, x0 = _nonconvex(5, 2)
    got = _run(lambda p: O.EntropySGD(p, lr=0.3, gamma=1 / 0.5, L=6, inner_lr=0.05, alpha=0.75, momentum=0.9,
                                      inner_momentum=0.9, inner_nesterov=True, coupling_in_momentum=False,
                                      keep_inner_buffer=False, scale_by_gamma=True), f, x0, 8)
    ref = _original_entropy_sgd_pytorch(x0, grad_f, 8, lr=0.3, g0=0.5, L=6, llr=0.05, mom=0.9, beta1=0.75)
    assert torch.allclose(got, ref, rtol=0, atol=1e-13)


def test_matches_the_original_entropy_sgd_lua_code() -> None:
    f, grad_f, x0 = _nonconvex(5, 3)
    g0, s = 0.3, 0.2

    def gamma(k: int) -> float:  # the coupling g0 (1 + s)^(k + 1) at outer step k = 0, 1, ...
        return 1.0 / (g0 * (1 + s) ** (k + 1))

    got = _run(lambda p: O.EntropySGD(p, lr=0.7, gamma=gamma, L=5, inner_lr=0.05, alpha=0.75, momentum=0.0,
                                      inner_momentum=0.9, keep_inner_buffer=False, scale_by_gamma=True), f, x0, 8)
    ref = _original_entropy_sgd_lua(x0, grad_f, 8, lr=0.7, gamma=g0, scoping=s, L=5, lclr=0.05, mom=0.9,
                                    beta1=0.75)
    assert torch.allclose(got, ref, rtol=0, atol=1e-13)


def test_matches_the_original_hamilton_jacobi_esgd_code() -> None:
    f, grad_f, x0 = _nonconvex(5, 4)
    g0, g1 = 0.4, 0.1
    got = _run(lambda p: O.EntropySGD(p, lr=0.1, gamma=lambda k: 1.0 / (g0 * (1 + g1) ** (k + 1)), L=5,
                                      inner_lr=0.03, alpha=0.75, momentum=0.9, inner_momentum=0.9,
                                      coupling_in_momentum=True, keep_inner_buffer=True, scale_by_gamma=True),
               f, x0, 8)
    ref = _original_hamilton_jacobi_esgd(x0, grad_f, 8, lr=0.1, g0=g0, g1=g1, L=5, llr=0.03, mom=0.9, beta1=0.75)
    assert torch.allclose(got, ref, rtol=0, atol=1e-13)


def test_alpha_zero_keeps_last_iterate_and_scale_by_gamma_gives_x_equals_z() -> None:
    """Thesis 3.2.3: lr = 1, no momentum, scale_by_gamma -> x <- <y>; alpha = 0 -> <y> = y_L."""
    q, x0 = _quadratic_problem(3, 2)
    x = torch.nn.Parameter(x0.clone())
    opt = O.EntropySGD([x], lr=1.0, gamma=0.5, L=4, inner_lr=0.1, alpha=0.0, momentum=0.0, scale_by_gamma=True,
                       inner_momentum=0.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * x @ q @ x
        loss.backward()
        return loss

    opt.step_outer(closure)
    y = x0.clone()
    for _ in range(4):
        y = y - 0.1 * (q @ y + (y - x0) / 0.5)
    assert torch.allclose(x.detach(), y, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls", ["entropy", "heat"])
def test_foreach_and_loop_paths_agree(cls: str) -> None:
    torch.manual_seed(0)
    results = []
    for foreach in (False, True):
        model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
        with torch.no_grad():
            for i, p in enumerate(model.parameters()):
                p.copy_(torch.linspace(-1, 1, p.numel(), dtype=torch.float64).view_as(p) * (i + 1))
        gen = torch.Generator().manual_seed(3)
        if cls == "entropy":
            opt = O.EntropySGD(model.parameters(), lr=0.1, gamma=0.3, L=4, noise=1e-3, inner_momentum=0.3,
                               generator=gen, foreach=foreach)
        else:
            opt = O.Heat(model.parameters(), lr=0.1, gamma=0.3, L=4, generator=gen, foreach=foreach)
        xb = torch.linspace(-1, 1, 30, dtype=torch.float64).view(10, 3)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (model(xb) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step_outer(closure)
        results.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], rtol=0, atol=1e-14)


def test_heat_matches_reference_average_of_perturbed_gradients() -> None:
    q, x0 = _quadratic_problem(3, 5)

    def grad_f(z: torch.Tensor) -> torch.Tensor:
        return q @ z + 3 * torch.cos(3 * z)

    gamma, noise, L, lr = 0.2, 0.5, 6, 0.1
    x = torch.nn.Parameter(x0.clone())
    opt = O.Heat([x], lr=lr, gamma=gamma, L=L, noise=noise, momentum=0.0, generator=torch.Generator().manual_seed(8),
                 perturbation="absolute")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * x @ q @ x + torch.sin(3 * x).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step_outer(closure)
    # the first gradient of the run is taken at x0 itself; every later one at a perturbation drawn after the
    # previous call, in the order of the calls
    g = torch.Generator().manual_seed(8)
    expected = x0.clone()
    for k in range(3):
        eps = [torch.zeros(3, dtype=torch.float64) if k == j == 0 else
               math.sqrt(gamma * noise) * torch.randn(3, generator=g, dtype=torch.float64) for j in range(L)]
        expected = expected - lr * sum(grad_f(expected + e) for e in eps) / L
    with opt.at_anchor():
        assert torch.allclose(x.detach(), expected, rtol=0, atol=1e-14)
    next_eps = math.sqrt(gamma * noise) * torch.randn(3, generator=g, dtype=torch.float64)
    assert torch.allclose(x.detach(), expected + next_eps, rtol=0, atol=1e-14)  # the next evaluation point


def test_heat_perturbation_variance_is_gamma_over_beta() -> None:
    """Sample variance of the perturbations (gradient of f = |x|^2/2 is x + eps) within 4 standard errors."""
    d, gamma, noise, n = 2000, 0.3, 0.5, 1
    x = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = O.Heat([x], lr=1.0, gamma=gamma, L=n, noise=noise, momentum=0.0, generator=torch.Generator().manual_seed(0),
                 perturbation="absolute")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * (x ** 2).sum()
        loss.backward()
        return loss

    opt.step_outer(closure)
    eps = -x.detach()  # x_new = 0 - 1 * (0 + eps)
    var, target = float(eps.var()), gamma * noise
    se = target * math.sqrt(2 / (d - 1))
    assert abs(var - target) < 4 * se


def test_inner_noise_variance() -> None:
    """With f = 0, L = 1 and alpha = 0: <y> - x = sqrt(2 eta noise) xi, so g has variance 2 eta noise / gamma^2."""
    d, gamma, eta, noise = 4000, 0.5, 0.1, 0.2
    x = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = O.LocalEntropy([x], torch.optim.SGD, gamma=gamma, L=1, inner_lr=eta, noise=noise, alpha=0.0,
                         generator=torch.Generator().manual_seed(1), lr=1.0, scale_by_gamma=False)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.0 * x.sum()
        loss.backward()
        return loss

    opt.step_outer(closure)
    step = x.detach()  # = -g = (<y> - x)/gamma
    target = 2 * eta * noise / gamma**2
    assert abs(float(step.var()) - target) < 4 * target * math.sqrt(2 / (d - 1))
    assert abs(float(step.mean())) < 4 * math.sqrt(target / d)


def test_wrapper_shares_param_groups_after_load_state_dict() -> None:
    """SAM issue 34: after load_state_dict the scheduler must still drive the base optimizer."""
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = O.LocalEntropy([p], torch.optim.Adam, gamma=0.1, L=2, lr=0.01)
    sd = opt.state_dict()
    opt2 = O.LocalEntropy([p], torch.optim.Adam, gamma=0.1, L=2, lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.base_optimizer.param_groups is opt2.param_groups
    assert opt2.param_groups[0]["lr"] == 0.01
    sched = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.1)

    def closure() -> torch.Tensor:
        opt2.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    opt2.step_outer(closure)
    sched.step()
    assert opt2.base_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_gamma_schedule_is_used_per_outer_step() -> None:
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    sched = S.exponential(1.0, 0.5)
    opt = O.HJ([p], lr=0.1, gamma=sched, L=2)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    seen = []
    for _ in range(4):
        opt.step_outer(closure)
        seen.append(opt.stats["gamma"])
    assert seen == [1.0, 0.5, 0.25, 0.125]


def test_freeze_bn_keeps_statistics_of_the_first_evaluation() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)).double()
    bn = model[1]
    data = [torch.randn(16, 3, dtype=torch.float64) + k for k in range(5)]
    calls = {"n": 0}
    opt = O.EntropySGD(model.parameters(), lr=0.1, gamma=0.1, L=5, freeze_bn=model)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(data[calls["n"]]).pow(2).mean()
        calls["n"] += 1
        loss.backward()
        return loss

    reference = torch.nn.BatchNorm1d(4).double()
    with torch.no_grad():
        reference(model[0](data[0]))  # running stats after the first batch only, at x
    opt.step_outer(closure)
    assert torch.allclose(bn.running_mean, reference.running_mean, rtol=0, atol=1e-14)
    assert torch.allclose(bn.running_var, reference.running_var, rtol=0, atol=1e-14)
    assert int(bn.num_batches_tracked) == 1


def test_trivialized_matches_algorithm_1() -> None:
    x0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x = torch.nn.Parameter(x0.clone())
    opt = O.TrivializedSGD([x], lr=0.1, momentum=0.0, coupling=0.2, tau0=3.0, layers=4,
                           generator=torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(6)
    h = 0.2 * math.sqrt(4 * 2) * torch.randn(3, generator=g, dtype=torch.float64)
    ref = x0.clone()
    for i in range(5):
        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (x**4).sum()
            loss.backward()
            return loss

        opt.step_outer(closure)
        c = math.sqrt(1 + 2 * 3 * (math.exp(-i / 3.0) - 0.5) / 3)
        ref = ref - 0.1 * (4 * ref**3 + c * h)
    assert torch.allclose(x.detach(), ref, rtol=0, atol=1e-14)
    assert field_factor(0, 3.0, 3, 3) == pytest.approx(math.sqrt(2))
    assert field_factor(10**6, 3.0, 3, 3) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------- errors
def _p() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(2))]


@pytest.mark.parametrize("kwargs,match", [
    (dict(gamma=0.0), "`gamma` must be > 0"),
    (dict(gamma=-1.0), "`gamma` must be > 0"),
    (dict(gamma=1.0, L=0), "`L` must be >= 1"),
    (dict(gamma=1.0, L=2.5), "`L` must be an integer"),
    (dict(gamma=1.0, alpha=1.0), r"`alpha` must be in \[0, 1\)"),
    (dict(gamma=1.0, alpha=-0.1), r"`alpha` must be in \[0, 1\)"),
    (dict(gamma=1.0, noise=-1.0), "`noise` must be >= 0"),
    (dict(gamma=1.0, inner_lr=0.0), "`inner_lr` must be > 0"),
])
def test_bad_hyperparameters_name_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        O.EntropySGD(_p(), lr=0.1, **kwargs)


def test_bad_base_optimizer_and_freeze_bn() -> None:
    with pytest.raises(TypeError, match="base_optimizer"):
        O.LocalEntropy(_p(), "sgd", gamma=1.0)
    with pytest.raises(TypeError, match="freeze_bn"):
        O.EntropySGD(_p(), lr=0.1, gamma=1.0, freeze_bn=True)


@pytest.mark.parametrize("make", [
    lambda p: O.EntropySGD(p, lr=0.1, gamma=1.0), lambda p: O.HJ(p, lr=0.1, gamma=1.0),
    lambda p: O.Heat(p, lr=0.1, gamma=1.0)], ids=["entropy_sgd", "hj", "heat"])
def test_missing_closure_is_a_clear_error(make: Any) -> None:
    """step() consumes the gradient in p.grad (none here: a no-op, as for torch.optim.SGD); step_outer needs one."""
    opt = make(_p())
    assert opt.step() is None and opt.position == 0 and opt.outer_step == 0
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step_outer(None)


def test_nan_loss_names_the_inner_step_and_restores_x() -> None:
    x = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    opt = O.EntropySGD([x], lr=0.1, gamma=1.0, L=5)
    calls = {"n": 0}

    def closure() -> torch.Tensor:
        opt.zero_grad()
        calls["n"] += 1
        loss = (x**2).sum() * (float("nan") if calls["n"] == 3 else 1.0)
        loss.backward()
        return loss

    with pytest.raises(ValueError, match=r"call 3 of 5 of outer step 0"):
        opt.step_outer(closure)
    assert torch.equal(x.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert opt.position == 0 and opt.outer_step == 0


def test_closure_returns_what_it_returned() -> None:
    """As torch.optim: step returns what the closure returned, None included; a string is no loss."""
    x = torch.nn.Parameter(torch.ones(2))
    opt = O.HJ([x], lr=0.1, gamma=1.0)
    assert opt.step(lambda: None) is None
    with pytest.raises(TypeError, match="must return the loss"):
        opt.step(lambda: "loss")


def test_schedules() -> None:
    s = S.exponential(2.0, 0.1)
    assert s(0) == 2.0 and s(3) == pytest.approx(2.0 * 0.9**3)
    p = S.parle(100.0, n_batches=50, minimum=1.0)
    assert p(10) == pytest.approx(100.0 * (1 - 1 / 100) ** 10)
    assert p(10**6) == 1.0
    assert S.exponential(1.0, 0.5, every=3)(5) == 0.5
    assert S.constant(0.3)(1000) == 0.3
    with pytest.raises(ValueError, match="`rate` must be < 1"):
        S.exponential(1.0, 1.0)
    with pytest.raises(ValueError, match="`initial` must be > 0"):
        S.exponential(0.0, 0.1)
    with pytest.raises(ValueError, match="outer step"):
        s(-1)


# ----------------------------------------------------------------------------- options of the inner loop
@pytest.mark.parametrize("kwargs,limit", [
    (dict(inner_momentum=0.9, coupling_in_momentum=False), 2.0),
    (dict(inner_momentum=0.0), 2.0),
    (dict(inner_momentum=0.9, coupling_in_momentum=True), 2 * 1.9 / 2.8),
    (dict(inner_momentum=0.5, inner_nesterov=False, coupling_in_momentum=True), 2 * 1.5),
])
def test_unstable_coupling_step_warns_and_diverges(kwargs: dict, limit: float) -> None:
    """inner_lr / gamma at the stability limit of the coupling term warns; just below it does not, and the
    inner loop on f = 0 (only the coupling acts) shrinks y - x, while just above it grows."""
    gamma = 0.5

    def inner_growth(inner_lr: float) -> float:
        x = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = O.LocalEntropy([x], torch.optim.SGD, gamma=gamma, L=60, inner_lr=inner_lr, alpha=0.0, lr=1.0,
                             scale_by_gamma=True, **kwargs)
        first = {"done": False}

        def closure() -> torch.Tensor:
            opt.zero_grad()
            kick = 0.0 if first["done"] else 1.0  # one unit gradient at x, then f = 0: the coupling alone
            first["done"] = True
            loss = kick * x.sum()
            loss.backward()
            return loss

        opt.step_outer(closure)
        return float(x.detach().abs().max())  # |<y> - x| after L steps (x was 0, lr 1: x <- <y>)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        below = inner_growth(0.97 * limit * gamma)
    with pytest.warns(UserWarning, match=rf"inner_lr / gamma = .* is >= {limit:g}, the stability limit"):
        above = inner_growth(1.03 * limit * gamma)
    assert below < 1.0 < above


def test_keep_inner_buffer_is_state_and_reset_is_not() -> None:
    """With keep_inner_buffer the buffer survives the outer step (and state_dict); without it the next step
    starts from zero, which a run with a fresh buffer reproduces."""
    f, grad_f, x0 = _nonconvex(4, 5)
    for keep in (True, False):
        x = torch.nn.Parameter(x0.clone())
        opt = O.EntropySGD([x], lr=0.5, gamma=1.0, L=3, inner_lr=0.05, keep_inner_buffer=keep)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = f(x)
            loss.backward()
            return loss

        opt.step_outer(closure)
        sd = opt.state_dict()
        assert ("inner_buffer" in sd["state"].get(0, {})) is keep
        if keep:
            assert float(sd["state"][0]["inner_buffer"].abs().max()) > 0
    ref = _reference_entropy_sgd(x0, grad_f, 3, lr=0.5, gamma=1.0, L=3, inner_lr=0.05, noise=0.0, alpha=0.75,
                                 inner_momentum=0.9, momentum=0.9, weight_decay=0.0, seed=0, keep_inner_buffer=True)
    x = torch.nn.Parameter(x0.clone())
    opt = O.EntropySGD([x], lr=0.5, gamma=1.0, L=3, inner_lr=0.05, keep_inner_buffer=True)
    for _ in range(3):
        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = f(x)
            loss.backward()
            return loss

        opt.step_outer(closure)
    assert torch.allclose(x.detach(), ref, rtol=0, atol=1e-13)


def test_one_fused_finiteness_reduction_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gradients of all 30 parameter tensors are checked with one torch._foreach_norm per evaluation."""
    params = [torch.nn.Parameter(torch.randn(3, dtype=torch.float64)) for _ in range(30)]
    opt = O.EntropySGD(params, L=4)
    calls = {"n": 0}
    real = torch._foreach_norm

    def counting(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real(tensors, *args, **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sum((p**2).sum() for p in params)
        loss.backward()
        return loss

    monkeypatch.setattr(torch, "_foreach_norm", counting)
    opt.step_outer(closure)
    assert calls["n"] == 4 + 1  # one per evaluation, one for stats["grad_norm"]


def test_heat_filter_perturbation_is_relative_to_each_filter() -> None:
    """perturbation="filter": filter j of a weight matrix is perturbed with standard deviation
    sqrt(gamma noise) * rms(W[j]); a scaled copy of the network sees the scaled perturbation."""
    rows, cols, gamma = 4, 3000, 0.02
    scale = torch.tensor([0.01, 0.1, 1.0, 10.0], dtype=torch.float64)
    w = torch.nn.Parameter(torch.randn(rows, cols, generator=_gen(1), dtype=torch.float64) * scale[:, None])
    rms = w.detach().square().mean(1).sqrt()
    opt = O.Heat([w], lr=1.0, gamma=gamma, L=1, momentum=0.0, generator=_gen(2))
    seen = {}

    def closure() -> torch.Tensor:
        seen["eps"] = w.detach() - w0
        opt.zero_grad()
        loss = 0.0 * w.sum()
        loss.backward()
        return loss

    w0 = w.detach().clone()
    opt.step_outer(closure)  # the first gradient of a run is taken at x itself
    assert torch.equal(seen["eps"], torch.zeros_like(w0))
    opt.step_outer(closure)
    std = seen["eps"].std(dim=1)
    target = math.sqrt(gamma) * rms
    assert torch.all((std / target - 1).abs() < 4 / math.sqrt(2 * (cols - 1)))
    with opt.at_anchor():
        assert torch.equal(w.detach(), w0)  # f = 0: the average gradient is 0, x stays


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
