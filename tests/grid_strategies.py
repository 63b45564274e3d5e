"""Grid helpers and hypothesis strategies shared by the solver tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import hjsmooth as hs

#: grid shapes in 1, 2 and 3 dimensions, small enough for brute-force references
shapes = st.one_of(
    st.tuples(st.integers(3, 40)),
    st.tuples(st.integers(3, 9), st.integers(3, 9)),
    st.tuples(st.integers(3, 5), st.integers(3, 5), st.integers(3, 5)),
)


def small_grid(shape: tuple[int, ...]) -> hs.Grid:
    """The box ``[-1, 1.5]^d`` with ``shape`` nodes."""
    return hs.Grid([-1.0] * len(shape), [1.5] * len(shape), shape)


def periodic_field(u: np.ndarray) -> np.ndarray:
    """``u`` with its last node along every axis set to its first (the HJ periodic convention)."""
    u = u.copy()
    for k in range(u.ndim):
        index = [slice(None)] * u.ndim
        index[k] = -1
        first = [slice(None)] * u.ndim
        first[k] = 0
        u[tuple(index)] = u[tuple(first)]
    return u


def grid_functions(bound: float) -> st.SearchStrategy[tuple[hs.Grid, np.ndarray]]:
    """``(grid, f)``: a small grid from :data:`shapes` and finite values of ``f`` in ``[-bound, bound]``."""

    @st.composite
    def draw_pair(draw: st.DrawFn) -> tuple[hs.Grid, np.ndarray]:
        shape = draw(shapes)
        values = draw(arrays(np.float64, shape,
                             elements=st.floats(-bound, bound, allow_nan=False, allow_infinity=False)))
        return small_grid(shape), values

    return draw_pair()


def fp_operator(shape: tuple[int, ...], coefficients: str, bc: str, dtype: str, rng: np.random.Generator):
    """``(grid, operator)``: an axis-links-only Fokker-Planck operator on a small grid of ``shape``,
    driven by a rough ``"potential"``, a non-gradient ``"drift"`` or a per-axis ``"diffusion"``."""
    from hjsmooth.solvers.fokker_planck import fokker_planck_operator

    grid = hs.Grid([-1.0] * len(shape), [1.2] * len(shape), shape)
    like = np.zeros((), dtype=dtype)
    x = grid.coords
    if coefficients == "potential":
        f = sum(np.sin(2.0 * xi + k) for k, xi in enumerate(x)) + 0.3 * rng.standard_normal(shape)
        return grid, fokker_planck_operator(grid, like, potential=f, beta=2.0, bc=bc)
    if coefficients == "drift":
        drift = np.stack([np.cos(3.0 * xi) + 0.5 * x[(k + 1) % len(x)] for k, xi in enumerate(x)])
        return grid, fokker_planck_operator(grid, like, drift=drift, beta=1.5, bc=bc)
    diffusion = 0.5 + np.arange(1, len(shape) + 1, dtype=float)  # diagonal, different per axis
    return grid, fokker_planck_operator(grid, like, potential=np.cos(x[0]), diffusion=diffusion, beta=0.7, bc=bc)
