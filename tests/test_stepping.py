"""The shared time loop ``march``: runs that would exceed ``max_steps`` are refused before the first step."""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers.stepping import march


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
        lambda g, f: hs.solve_fokker_planck(np.exp(-f), g, 1e12, potential=f),
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
