"""The Runge-Kutta methods: their orders on ODEs with exact solutions, their stage times, and the
Butcher form of the SSP methods that the fused general-Hamiltonian engine runs."""

from __future__ import annotations

import math

import pytest

from hjsmooth.solvers.runge_kutta import RK5, RK_METHODS, SSP_METHODS, ButcherMethod, butcher_form, rk_step


def one_step_order(method, rhs, exact, t0: float = 0.3) -> float:
    """The order of the one-step error ``O(dt^(order+1))``, from two step sizes."""
    errors = [abs(rk_step(exact(t0), dt, rhs, method, t=t0) - exact(t0 + dt)) for dt in (0.1, 0.05)]
    return math.log2(errors[0] / errors[1]) - 1.0


@pytest.mark.parametrize("name", sorted(RK_METHODS))
def test_order_on_autonomous_and_time_dependent_odes(name: str) -> None:
    """``u' = -u`` and ``u' = cos(t) u`` (exact ``exp(sin t)``): the second fails unless every stage
    sees its own time ``t + tau_k dt``."""
    method = RK_METHODS[name]
    assert one_step_order(method, lambda u, t: -u, lambda t: math.exp(-t)) == pytest.approx(method.order, abs=0.25)
    order = one_step_order(method, lambda u, t: math.cos(t) * u, lambda t: math.exp(math.sin(t)))
    assert order == pytest.approx(method.order, abs=0.3)


def test_rk5_is_fifth_order_with_six_stages() -> None:
    assert RK5.order == 5 and RK5.stage_count == 6 and isinstance(RK5, ButcherMethod)
    assert RK5.stage_times == pytest.approx((0.0, 0.2, 0.3, 0.8, 8 / 9, 1.0))
    assert sum(RK5.b) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("name", sorted(SSP_METHODS))
def test_butcher_form_of_an_ssp_method_takes_the_same_steps(name: str) -> None:
    method = SSP_METHODS[name]
    converted = butcher_form(method)
    assert converted.stage_count == method.stage_count and converted.stage_times == pytest.approx(method.stage_times)
    for rhs in (lambda u, t: -u * u + math.sin(3 * t), lambda u, t: math.cos(u + t)):
        assert rk_step(0.7, 0.1, rhs, converted, t=0.2) == pytest.approx(rk_step(0.7, 0.1, rhs, method, t=0.2),
                                                                        rel=1e-14)


def test_projection_after_every_stage() -> None:
    """The projection (the Dirichlet hold) is applied to every stage and to the result."""
    seen = []

    def project(u):
        seen.append(u)
        return min(u, 1.0)

    rk_step(0.5, 0.1, lambda u, t: 10.0, RK5, project)
    assert len(seen) == RK5.stage_count and max(seen) > 1.0
