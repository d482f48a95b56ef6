"""Shape metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import trimesh

from shapes.metrics import (
    chamfer_distance,
    cov_cd,
    emd,
    f_score,
    mmd_cd,
    normal_consistency,
    one_nna,
    sample_surface,
    volumetric_iou,
)


def test_chamfer_self_zero_and_two_points_by_hand():
    p = np.random.default_rng(0).normal(size=(500, 3))
    assert chamfer_distance(p, p) == 0.0
    a, b = np.array([[0.0, 0, 0]]), np.array([[3.0, 4, 0]])
    assert chamfer_distance(a, b) == 10.0  # 5 + 5 (sum of directional means)
    assert chamfer_distance(a, b, squared=True) == 50.0


def test_chamfer_of_scaled_sphere_samples():
    # points on the unit sphere vs the same points scaled by 1.5: every nearest neighbour is
    # the radial partner when the sampling is dense enough, so CD-L1 = 0.5 + 0.5.
    rng = np.random.default_rng(1)
    p = rng.normal(size=(4000, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    assert abs(chamfer_distance(p, 1.5 * p) - 1.0) < 1e-9
    assert abs(chamfer_distance(p, 1.5 * p, squared=True) - 0.5) < 1e-9


def test_f_score_by_hand():
    a = np.array([[0.0, 0, 0], [10, 0, 0]])
    b = np.array([[0.0, 0, 0.05], [0, 0, 20]])
    # precision 1/2, recall 1/2 at threshold 0.1
    assert f_score(a, b, 0.1) == 0.5
    assert f_score(a, a, 0.0) == 1.0


def test_normal_consistency_and_sampling():
    box = trimesh.creation.box()
    pts, nrm = sample_surface(box, 1000, seed=3)
    np.testing.assert_allclose(np.abs(pts).max(1), 0.5, atol=1e-12)  # on the faces
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1, atol=1e-12)
    assert abs(normal_consistency(box, box, 2000) - 1) < 1e-9
    # a box against a sphere: still a number in [0, 1], well below 1
    assert 0.3 < normal_consistency(box, trimesh.creation.icosphere(3, 0.5), 2000) < 0.99


def test_iou_and_emd():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2], b[1:3] = True, True
    assert volumetric_iou(a, b) == 16 / 48
    p = np.random.default_rng(0).normal(size=(50, 3))
    assert abs(emd(p, p + np.array([0.3, 0.4, 0])) - 0.5) < 1e-9  # W1 of a translation
    assert emd(p, p) < 1e-12


def test_generation_metrics_on_identical_and_disjoint_sets():
    rng = np.random.default_rng(0)
    ref = [rng.normal(size=(200, 3)) + 5 * i for i in range(4)]
    assert mmd_cd(ref, ref) == 0.0
    assert cov_cd(ref, ref) == 1.0
    far = [r + 100 for r in ref]
    assert one_nna(far, ref) == 1.0  # fully separated sets
    assert cov_cd([ref[0]] * 4, ref) == 0.25
