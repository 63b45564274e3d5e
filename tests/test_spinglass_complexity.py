"""Lemma 2.2's complexity and Fyodorov's counts, against their defining integrals (scipy.integrate) and
against the Kac-Rice formula they come from.

Kac-Rice with the Hessian law of Lemma 2.5 (written for a GOE ``G`` whose spectrum fills [-2, 2]):
``Hess H = sqrt(p (p-1)) G - p u I`` at energy ``u = H/N``; the gradient is N(0, p I) and ``u`` is N(0, 1/N),
independent.  Collecting the volume of the sphere, the gradient's density at 0 and the Gaussian weight of
``u`` gives, with ``x = u sqrt(p/(p-1))``, ``Omega(x) = int log|l - x| rho_sc(l) dl`` and the GOE's
smallest-eigenvalue rate ``L(x) = 1/2 int_x^{-2} sqrt(w^2 - 4) dw``,

    Theta(u)   = sup_{v <= u} [ 1/2 + 1/2 log(p-1) - v^2/2 + Omega(x_v) ]
    Theta_k(u) = sup_{v <= min(u, -E_inf)} [ 1/2 + 1/2 log(p-1) - v^2/2 + Omega(x_v) - k L(x_v) ].

The tests evaluate these integrals by quadrature and compare them with the closed forms (2.11)-(2.12).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate

from hjsmooth.spinglass import (
    annealed_field,
    complexity,
    critical_field,
    critical_points_per_spin,
    expected_critical_points,
    field_for_regime,
    ground_state_energy,
    rate_function,
    regime_parameter,
    threshold_energy,
)

QUAD = dict(epsabs=1e-13, epsrel=1e-12, limit=200)


def semicircle_log_potential(x: float) -> float:
    """Omega(x) = int_{-2}^{2} log|l - x| sqrt(4 - l^2)/(2 pi) dl, by quadrature (log singularity at x)."""
    density = lambda l: math.sqrt(max(4.0 - l * l, 0.0)) / (2 * math.pi)  # noqa: E731
    f = lambda l: math.log(abs(l - x)) * density(l)  # noqa: E731
    points = [x] if -2 < x < 2 else None
    return integrate.quad(f, -2.0, 2.0, points=points, **QUAD)[0]


def goe_edge_rate(x: float) -> float:
    """L(x) = 1/2 int_x^{-2} sqrt(w^2 - 4) dw for x <= -2."""
    return 0.5 * integrate.quad(lambda w: math.sqrt(w * w - 4.0), x, -2.0, **QUAD)[0]


def kac_rice_exponent(v: float, p: int, k: int | None) -> float:
    x = v * math.sqrt(p / (p - 1))
    out = 0.5 + 0.5 * math.log(p - 1) - v * v / 2 + semicircle_log_potential(x)
    if k is not None:
        out -= k * goe_edge_rate(x)
    return out


@pytest.mark.parametrize("p", [3, 4, 6])
def test_rate_function_is_its_defining_integral(p: int) -> None:
    e_inf = threshold_energy(p)
    for u in (-e_inf, -e_inf - 1e-6, -e_inf - 0.01, -1.9, -2.5, -4.0):
        if u > -e_inf:
            continue
        quad = 2 / e_inf**2 * integrate.quad(lambda z: math.sqrt(max(z * z - e_inf**2, 0.0)), u, -e_inf, **QUAD)[0]
        assert rate_function(u, p) == pytest.approx(quad, rel=1e-9, abs=1e-14), u
    grid = np.linspace(-5.0, -e_inf, 50)
    values = rate_function(grid, p)
    assert values.shape == grid.shape and values[-1] == 0.0 and np.all(np.diff(values) < 0)
    with pytest.raises(ValueError, match="`u` must be <= -E_inf"):
        rate_function(-1.0, p)


@pytest.mark.parametrize("p", [3, 4])
def test_total_complexity_is_the_kac_rice_integral(p: int) -> None:
    grid = np.concatenate([np.linspace(-2.4, -0.05, 48), [0.0, 0.3]])
    raw = np.array([kac_rice_exponent(v, p, None) for v in np.minimum(grid, 0.0)])
    sup = np.maximum.accumulate(raw)     # the supremum over v <= u, on the grid
    np.testing.assert_allclose(complexity(grid, p), sup, rtol=0, atol=1e-9)


@pytest.mark.parametrize("p", [3, 5])
@pytest.mark.parametrize("k", [0, 1, 3])
def test_index_k_complexity_is_the_kac_rice_integral(p: int, k: int) -> None:
    e_inf = threshold_energy(p)
    below = np.linspace(-2.6, -e_inf, 30)
    raw = np.array([kac_rice_exponent(v, p, k) for v in below])
    np.testing.assert_allclose(complexity(below, p, k), np.maximum.accumulate(raw), rtol=0, atol=1e-9)
    # above the threshold the cumulative count of index-k points stops growing (no more of them)
    np.testing.assert_allclose(complexity(np.array([-1.0, 0.0, 2.0]), p, k), raw[-1], atol=1e-9)


def test_complexity_shapes_order_and_limits() -> None:
    p = 3
    u = np.linspace(-2.0, 1.0, 301)
    theta = complexity(u, p)
    assert theta.shape == u.shape and np.all(np.diff(theta) >= -1e-15)          # non-decreasing
    assert complexity(5.0, p) == pytest.approx(0.5 * math.log(2))               # all critical points: (p-1)^{N/2}
    ladder = np.stack([complexity(u, p, k) for k in range(5)])
    assert np.all(np.diff(ladder, axis=0) <= 1e-15)                             # Theta_k above Theta_{k+1}
    assert np.all(ladder <= theta + 1e-15)
    assert isinstance(complexity(-1.7, p, 0), float)
    assert complexity(-np.inf, p) == -np.inf
    with pytest.raises(ValueError, match="`k` must be >= 0"):
        complexity(-1.7, p, -1)
    with pytest.raises(ValueError, match="`p` must be >= 2"):
        complexity(-1.7, 1)


@pytest.mark.parametrize("p", [2, 3, 4, 8])
def test_threshold_is_where_the_hessian_spectrum_touches_zero(p: int) -> None:
    """E_inf = 2 sqrt((p-1)/p): the lower edge of sqrt(p(p-1)) [-2, 2] - p u is 0 at u = -E_inf."""
    e_inf = threshold_energy(p)
    assert e_inf == pytest.approx(2 * math.sqrt((p - 1) / p), rel=1e-15)
    assert -2 * math.sqrt(p * (p - 1)) + p * e_inf == pytest.approx(0.0, abs=1e-12)
    # (2.12)'s two branches meet there
    if p > 2:
        assert complexity(-e_inf, p, 0) == pytest.approx(0.5 * math.log(p - 1) - (p - 2) / p, abs=1e-12)


@pytest.mark.parametrize("p", [2, 3, 4, 5, 10])
def test_ground_state_is_the_zero_of_theta_0(p: int) -> None:
    e0 = ground_state_energy(p)
    assert e0 >= threshold_energy(p)
    assert complexity(-e0, p, 0) == pytest.approx(0.0, abs=1e-12)
    assert complexity(-e0 - 1e-3, p, 0) < 0 <= complexity(-e0 + 1e-3, p, 0) + (1e-12 if p == 2 else 0)


def test_ground_state_known_values() -> None:
    # Auffinger, Ben Arous and Cerny (2013), and the p = 3 Crisanti-Sommers value -1.657
    assert ground_state_energy(3) == pytest.approx(1.657, abs=5e-4)
    assert ground_state_energy(2) == pytest.approx(math.sqrt(2))


# ----------------------------------------------------------------------------- the field: (2.15)-(2.19)
def test_regime_parameter_and_critical_field() -> None:
    for p, coupling in ((3, 1.0), (5, 0.3)):
        vc = critical_field(p, coupling)
        assert vc == pytest.approx(coupling * math.sqrt(p * (p - 2)))
        assert regime_parameter(vc, p, coupling) == pytest.approx(0.0, abs=1e-15)
        assert regime_parameter(0.0, p, coupling) == pytest.approx(1 - 2 / p)
        assert -1 < regime_parameter(1e6, p, coupling) < -0.999
        for b in (-0.9, -0.2, 0.0, 0.1, 1 - 2 / p):
            assert regime_parameter(field_for_regime(b, p, coupling), p, coupling) == pytest.approx(b, abs=1e-12)
    # the thesis' three regimes for N = 100, p = 3
    n = 100
    assert regime_parameter(1 / n, 3) > 0.33
    polynomial = regime_parameter(math.sqrt(3 * (1 - 1 / n)), 3)
    assert 0 < polynomial * n < 1                                     # inside the band |B| = O(1/N)
    assert regime_parameter(3.0, 3) == pytest.approx(-1 / 3)
    with pytest.raises(ValueError, match="`b` must be a number in"):
        field_for_regime(0.5, 3)


def test_annealing_puts_b_at_minus_tau_over_n_for_large_p() -> None:
    n, tau = 10**6, 7.0
    for p in (3, 10, 100):
        b = regime_parameter(annealed_field(tau, n, p), p)
        assert b * n == pytest.approx(-tau * (p - 2) / (p - 1), rel=1e-4)
    with pytest.raises(ValueError, match="`tau` must be"):
        annealed_field(-10.0, 10, 3)


def test_theorem_2_7_and_2_8_agree_in_their_common_limit() -> None:
    """(2.16)'s B > 0 count over N tends to (2.17)'s tau << -1 tail at B = -tau/N as N grows."""
    for tau in (-3.0, -8.0):
        limit = critical_points_per_spin(tau)
        errors = [abs(expected_critical_points(-tau / n, n) / n / limit - 1) for n in (10**3, 10**5, 10**7)]
        assert errors[-1] < 1e-5 and errors[0] > errors[1] > errors[2]
    # the band: (2/sqrt(pi)) tau^{-3/2} N, and 2 (one minimum, one maximum) once B = -Omega(1)
    n = 10**4
    assert expected_critical_points(-5.0 / n, n) == pytest.approx(n * critical_points_per_spin(5.0))
    assert expected_critical_points(-0.3, n) == 2.0
    assert expected_critical_points(0.0, n) == math.inf
    counts = expected_critical_points(np.array([-0.5, -0.05, 0.05, 0.2]), 100)   # |B| N >> 1 each
    assert counts.shape == (4,) and counts[0] == 2.0 and np.all(np.diff(counts[1:]) > 0)
    # exponential regime: (1/N) log E crt -> (1/2) log((1+B)/(1-B))
    b = 0.25
    assert expected_critical_points(b, 10**5) == math.inf                      # past float64
    assert expected_critical_points(b, 100, log=True) == pytest.approx(math.log(expected_critical_points(b, 100)))
    rate = expected_critical_points(b, 10**7, log=True) / 10**7                  # + O(log N / N)
    assert rate == pytest.approx(0.5 * math.log((1 + b) / (1 - b)), rel=1e-5)
    with pytest.raises(ValueError, match="`b` must lie in"):
        expected_critical_points(1.0, 10)


def test_trivialized_sgd_applies_the_annealed_field_of_2_19() -> None:
    """Algorithm 1's field at step i has standard deviation v_c (1 + 2 tau_i / N)^{1/2}, tau_i = n (e^{-i/tau0} - 1/2):
    the annealing (2.19)-(2.20) that puts the landscape in the polynomial band."""
    torch = pytest.importorskip("torch")
    from hjsmooth.optim import TrivializedSGD

    class Recording(torch.optim.SGD):
        """SGD that keeps the gradient it is handed."""

        def step(self, closure: Any = None) -> Any:
            self.seen = self.param_groups[0]["params"][0].grad.clone()
            return super().step(closure)

    weight = torch.nn.Parameter(torch.zeros(300, 200))
    coupling, tau0 = 1e-3, 50.0
    opt = TrivializedSGD([weight], Recording, coupling=coupling, tau0=tau0, layers=5, lr=0.0, momentum=0.0,
                         generator=torch.Generator().manual_seed(0))
    n = weight.numel()
    for i in range(120):
        weight.grad = torch.zeros_like(weight)              # no loss: what reaches the base optimizer is the field
        opt.step()
        assert torch.equal(weight.grad, torch.zeros_like(weight))  # the user's gradient is left as it was
        if i in (0, 30, 119):
            tau = opt.neurons * (math.exp(-i / tau0) - 0.5)
            expected = annealed_field(tau, opt.weights, opt.layers, coupling)
            std = float(opt.base_optimizer.seen.std())
            assert abs(std - expected) < 5 * expected / math.sqrt(2 * n), i   # stderr of a sample std
    assert opt.layers == 5 and opt.neurons == opt.weights == n
