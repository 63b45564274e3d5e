"""The node-centred grid."""

from __future__ import annotations

import numpy as np
import pytest

import hjsmooth as hs


def test_public_attributes() -> None:
    g = hs.Grid(lower=(-3.0,), upper=(3.0,), shape=(601,))
    assert g.ndim == 1 and g.shape == (601,)
    assert g.spacing == pytest.approx((0.01,))
    assert g.axes[0][0] == -3.0 and g.axes[0][-1] == 3.0
    assert g.coords[0].shape == (601,)


def test_two_and_three_dimensions_are_ij_indexed() -> None:
    g = hs.Grid((0.0, -1.0, 2.0), (1.0, 1.0, 3.0), (3, 5, 4))
    x, y, z = g.coords
    assert x.shape == (3, 5, 4)
    assert x[2, 0, 0] == 1.0 and y[0, 4, 0] == 1.0 and z[0, 0, 3] == 3.0
    assert g.points().shape == (60, 3)
    assert g.cell_volume == pytest.approx(0.5 * 0.5 * (1 / 3))


def test_scalars_accepted_in_one_dimension() -> None:
    assert hs.Grid(-1, 1, 5).spacing == (0.5,)


def test_integrate_is_the_riemann_sum() -> None:
    g = hs.Grid((-8.0, -8.0), (8.0, 8.0), (161, 161))
    x, y = g.coords
    gauss = np.exp(-(x**2 + y**2) / 2) / (2 * np.pi)
    assert float(g.integrate(gauss)) == pytest.approx(1.0, abs=1e-12)


def test_refine_keeps_old_nodes() -> None:
    g = hs.Grid((-1.0,), (1.0,), (5,))
    fine = g.refine(4)
    assert fine.shape == (17,)
    np.testing.assert_allclose(fine.axes[0][::4], g.axes[0])


def test_coords_like_follow_the_backend(backend) -> None:
    g = hs.Grid((-1.0, 0.0), (1.0, 2.0), (4, 3))
    like = backend.asarray(np.zeros(1), dtype="float32")
    cx, cy = g.coords_like(like)
    assert backend.is_same_kind(cx, like)
    np.testing.assert_allclose(backend.to_numpy(cy), g.coords[1], rtol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lower=(0.0,), upper=(1.0, 2.0), shape=(3,)), "same length"),
        (dict(lower=(1.0,), upper=(0.0,), shape=(3,)), "`lower` must be < `upper`"),
        (dict(lower=(0.0,), upper=(1.0,), shape=(2,)), "at least 3 nodes"),
        (dict(lower=(0.0,), upper=(float("inf"),), shape=(5,)), "finite"),
        (dict(lower=(0.0,) * 4, upper=(1.0,) * 4, shape=(3,) * 4), "1, 2 or 3 dimensions"),
    ],
)
def test_bad_grids_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hs.Grid(**kwargs)


def test_non_integer_shape_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="`shape`"):
        hs.Grid((0.0,), (1.0,), (3.5,))
