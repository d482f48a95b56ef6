"""The flood-fill SDF of an unoriented point cloud against closed forms (sphere, box, sheet)."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import DataError
from shapes.point_sdf import exterior, points_to_sdf, unsigned_distance_grid
from shapes.sdf import grid_points


def _sphere_points(n: int, radius: float, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def test_sphere_sign_and_distance_match_the_closed_form():
    """Dense points on a sphere of radius 0.3: inside = the ball, |SDF| = the point distance."""
    res, r = 33, 0.3
    pts = _sphere_points(4000, r)
    sdf, info = points_to_sdf(pts, res, truncation=None)
    nodes = grid_points(res)
    exact = np.linalg.norm(nodes, axis=1) - r
    inside = sdf.reshape(-1) < 0
    assert inside[np.argmin(np.linalg.norm(nodes, axis=1))]  # the centre
    assert not inside[0]  # a corner
    far = np.abs(exact) > 1.5 / (res - 1)  # away from the surface the sign is the true one
    assert (inside[far] == (exact[far] < 0)).all()
    d = np.linalg.norm(nodes[:, None] - pts[None, ::40], axis=2).min(1)  # spot check a subset
    assert np.all(np.abs(sdf.reshape(-1)) <= d + 1e-6)
    np.testing.assert_allclose(np.abs(sdf.reshape(-1)), unsigned_distance_grid(pts, res)
                               .reshape(-1), atol=1e-6)
    assert info["radius"] == 1.0  # dense points seal at the smallest radius
    assert info["inside_fraction"] == pytest.approx((exact < 0).mean(), rel=0.15)


def _fibonacci_sphere(n: int, radius: float) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    return radius * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi),
                              np.cos(phi)], 1)


def test_sparse_points_need_a_larger_sealing_radius_and_truncation_clips():
    """200 points ~2.6 cells apart leak at radius 1 (the flood reaches the centre); the chosen
    radius seals them and the inside is the ball (4/3 pi (0.35 * 32)^3 = 5885 nodes)."""
    res = 33
    pts = _fibonacci_sphere(200, 0.35)
    udf = unsigned_distance_grid(pts, res)
    assert exterior(udf, 1.0).all()
    sdf, info = points_to_sdf(pts, res, truncation=0.1)
    assert info["radius"] > 1.0
    assert (sdf < 0).sum() == pytest.approx(4 / 3 * np.pi * (0.35 * 32) ** 3, rel=0.1)
    centre = res // 2
    assert sdf[centre, centre, centre] == pytest.approx(-0.1)  # deep inside, clipped
    assert sdf.max() == pytest.approx(0.1) and np.abs(sdf).max() <= 0.1 + 1e-7


def test_open_sheet_has_no_inside_and_bad_points_are_refused():
    """A flat sheet of points encloses nothing: nothing deeper than half a cell is inside."""
    g = np.linspace(-0.4, 0.4, 40)
    sheet = np.stack(np.meshgrid(g, g, [0.0], indexing="ij"), -1).reshape(-1, 3)
    sdf, _ = points_to_sdf(sheet, 25, truncation=None)
    assert sdf.min() > -0.5 / 24  # no volume: at most the nodes on the sheet itself
    assert (sdf < 0).mean() < 1.5 / 25
    with pytest.raises(DataError, match="points"):
        points_to_sdf(np.array([[0.0, np.nan, 0.0]]), 9)
