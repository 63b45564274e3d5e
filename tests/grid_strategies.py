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
