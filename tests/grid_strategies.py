"""Hypothesis strategies shared by the exact-solver property tests."""

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


def grid_functions(bound: float) -> st.SearchStrategy[tuple[hs.Grid, np.ndarray]]:
    """``(grid, f)``: a small grid from :data:`shapes` and finite values of ``f`` in ``[-bound, bound]``."""

    @st.composite
    def draw_pair(draw: st.DrawFn) -> tuple[hs.Grid, np.ndarray]:
        shape = draw(shapes)
        values = draw(arrays(np.float64, shape,
                             elements=st.floats(-bound, bound, allow_nan=False, allow_infinity=False)))
        return small_grid(shape), values

    return draw_pair()
