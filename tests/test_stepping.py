"""The time loops ``march`` and ``march_adaptive``: runs that would exceed ``max_steps`` are refused before the
first step; the error-controlled loop accepts, rejects, grows and lands as documented."""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers.stepping import march, march_adaptive


def test_march_refuses_up_front_and_names_the_estimate() -> None:
    calls = []

    def step(state: float, h: float) -> float:
        calls.append(h)
        return state

    with pytest.raises(ValueError, match=r"`t`=1e\+06 needs about 1e\+09 steps .*dt=0\.001.*`max_steps`=1000"):
        march(np.zeros(3), 1e6, step, lambda _: 1e-3, max_steps=1000)
    assert calls == []
    run = march(np.zeros(3), 1.0, step, lambda _: 1e-3, max_steps=1000)  # 1000 steps: allowed
    assert run.steps == 1000


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "solve",
    [
        lambda g, f: hs.solve_hj(f, g, 1e12, beta=2.0),
        lambda g, f: hs.solve_hj(f, g, 1e12, accuracy="weno5"),
        lambda g, f: hs.solve_hjb(f, g, 1e12, beta=2.0, potential=f),
        lambda g, f: hs.solve_fokker_planck(np.exp(-f), g, 1e12, potential=f, method="explicit"),
        lambda g, f: hs.solve_fokker_planck(np.exp(-f), g, 1e6, potential=f, method="implicit", dt=1e-4),
    ],
    ids=["hj", "hj-weno5", "hjb", "fokker-planck-explicit", "fokker-planck-implicit"],
)
def test_solvers_refuse_runs_past_max_steps_before_starting(solve) -> None:
    """t = 1e12 on a fine grid needs ~1e16 steps: an immediate ValueError that gives the estimate."""
    grid = hs.Grid(-2.0, 2.0, 201)
    with pytest.raises(ValueError, match=r"needs about [0-9.e+]+ steps.*`max_steps`=10000000"):
        solve(grid, grid.axes[0] ** 2)


def test_max_steps_is_a_solver_argument() -> None:
    grid = hs.Grid(-2.0, 2.0, 41)
    f = grid.axes[0] ** 2
    with pytest.raises(ValueError, match="`max_steps`=10"):
        hs.solve_hj(f, grid, 1.0, max_steps=10)
    with pytest.raises(ValueError, match="`max_steps`=10"):
        hs.solve_fokker_planck(np.exp(-f), grid, 1.0, potential=f, max_steps=10)
    with pytest.raises(ValueError, match="`max_steps`=10"):
        hs.solve_hjb(f, grid, 1.0, max_steps=10)
    sol = hs.solve_fokker_planck(np.exp(-f), grid, 1.0, potential=f, method="implicit", dt=0.1, max_steps=10)
    assert sol.steps == 10
    with pytest.raises(ValueError, match="`max_steps`"):
        hs.solve_hj(f, grid, 1.0, max_steps=0)


def _decay_attempt(log: list, negative_above: float = np.inf):
    """Steps of y' = -y by the exact factor; the error is (h / 0.1)^3 (so h = 0.1 is the largest step
    accepted), and a step longer than ``negative_above`` fails the caller's check (error inf)."""
    def attempt(y: np.ndarray, h: float) -> tuple[np.ndarray, float]:
        log.append(h)
        return y * np.exp(-h), (np.inf if h > negative_above else (h / 0.1) ** 3)
    return attempt


def test_march_adaptive_controls_the_step_and_lands_on_output_times() -> None:
    log: list = []
    run = march_adaptive(np.ones(2), 2.0, _decay_attempt(log), 1e-3, order=2, save_at=[0.5, 1.0])
    np.testing.assert_array_equal(run.times, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(run.snapshots[:, 0], np.exp(-run.times), rtol=1e-12)
    assert run.steps + run.rejected == len(log) and run.max_dt <= 0.1 * (1 + 1e-12)
    assert log[1] == pytest.approx(5 * log[0])  # growth capped at 5 while the error is small
    assert 14 <= run.steps <= 40, run.steps  # about 2 / (0.9 * 0.1) steps once grown
    assert run.rejected <= 2


def test_march_adaptive_halves_steps_that_fail_the_check_and_grows_back() -> None:
    log: list = []
    run = march_adaptive(np.ones(1), 1.0, _decay_attempt(log, negative_above=0.03), 0.2, order=2, max_growth=2.0)
    assert log[:4] == pytest.approx([0.2, 0.1, 0.05, 0.025])  # inf: halved until the check passes
    assert run.rejected >= 3 and run.max_dt <= 0.03 and run.state[0] == pytest.approx(np.exp(-1.0), rel=1e-12)


def test_march_adaptive_refuses_and_stops_as_documented() -> None:
    with pytest.raises(ValueError, match=r"at least 1e\+03 steps.*`max_steps`=100"):
        march_adaptive(np.ones(1), 1.0, _decay_attempt([]), 1e-3, order=2, max_dt=1e-3, max_steps=100)
    with pytest.raises(RuntimeError, match="`max_steps`=5"):
        march_adaptive(np.ones(1), 1.0, _decay_attempt([]), 1e-3, order=2, max_steps=5)
    with pytest.raises(FloatingPointError, match="loosen the tolerances"):
        march_adaptive(np.ones(1), 1.0, lambda y, h: (y, np.inf), 0.1, order=2)
