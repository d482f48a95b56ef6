"""Feature round trips (features -> BVH -> features), FK consistency, layout and contacts."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import DataError
from motion.bvh import load_bvh, save_bvh
from motion.features import (
    FeatureLayout,
    clip_to_features,
    features_to_clip,
    heading,
    positions_from_features,
)
from motion.procedural import generate_clip
from motion.skeleton import SkeletonInfo

BANDAI = "motion/bandai-namco-1/data/dataset-1_walk-left_tired_001.bvh.gz"


def _clips(shared_data):
    return [load_bvh(shared_data / BANDAI),
            load_bvh(shared_data / "motion/semi-mst-m21/style/OLD-1.bvh.gz", fps=30),
            # 31-joint CMU, ZYX channels, positions on the root only, 120 -> 30 fps
            load_bvh(shared_data / "motion/xia-test-deep-motion-editing/bvh/angry_13_000.bvh.gz",
                     fps=30),
            generate_clip("childlike", "turn", 90, seed=3)]


def test_layout_dims():
    lay = FeatureLayout(21)
    assert lay.dim == 4 + 60 + 126 + 63 + 4 == 257
    assert lay.slice("contact") == slice(253, 257) and lay.slice("rot6d").start == 64


def test_features_bvh_features_round_trip(shared_data, tmp_path):
    for clip in _clips(shared_data):
        feats, start = clip_to_features(clip)
        assert feats.shape == (clip.n_frames, FeatureLayout(clip.n_joints).dim)
        rebuilt = features_to_clip(feats, clip, start)
        scale = np.abs(clip.global_positions()).max()
        np.testing.assert_allclose(rebuilt.global_positions(), clip.global_positions(),
                                   atol=1e-5 * scale)
        path = save_bvh(rebuilt, tmp_path / f"{clip.name}.bvh")
        again, start2 = clip_to_features(load_bvh(path))
        # BVH text keeps 6 decimals (degrees, cm): a few 1e-5 in feature units
        np.testing.assert_allclose(again, feats, atol=2e-4 * max(1.0, scale / 100))
        assert abs(start2["theta0"] - start["theta0"]) < 1e-4


def test_ric_channels_reproduce_fk_positions(shared_data):
    for clip in _clips(shared_data):
        feats, start = clip_to_features(clip)
        pos = positions_from_features(feats, clip.n_joints, start)
        scale = np.abs(clip.global_positions()).max()
        np.testing.assert_allclose(pos, clip.global_positions(), atol=1e-5 * scale)


def test_heading_follows_a_known_yaw():
    clip = generate_clip("neutral", "walk", 30, seed=0, jitter=0.0)
    info = SkeletonInfo.from_clip(clip)
    pos, _ = clip.fk()
    # the synthetic root yaw is about Y; rotate the whole clip by +30 degrees: heading + 30 deg
    from pymotion.rotations import quat_np as quat
    q = quat.from_angle_axis(np.array([np.pi / 6]), np.array([0.0, 1.0, 0.0]))
    turned = clip.copy()
    turned.rotations[:, 0] = quat.mul(q, turned.rotations[:, 0])
    turned.positions[:, 0] = quat.mul_vec(q, turned.positions[:, 0])
    d = heading(turned.fk()[0], info) - heading(pos, info)
    np.testing.assert_allclose(np.angle(np.exp(1j * d)), np.pi / 6, atol=1e-9)
    # and the features (root frame) do not change under a global yaw
    np.testing.assert_allclose(clip_to_features(turned)[0], clip_to_features(clip)[0], atol=2e-4)


def test_contacts_on_a_walk(shared_data):
    clip = load_bvh(shared_data / "motion/bandai-namco-1/data/dataset-1_walk_normal_001.bvh.gz")
    con = clip_to_features(clip)[0][:, -4:]
    assert set(np.unique(con)) <= {0.0, 1.0}
    left, right = con[:, 1], con[:, 3]
    assert 0.2 < left.mean() < 0.9 and 0.2 < right.mean() < 0.9
    assert (left + right).min() >= 0 and ((left == 1) | (right == 1)).mean() > 0.6


def test_feature_errors():
    clip = generate_clip("neutral", "walk", 10)
    with pytest.raises(DataError, match="frame"):
        clip_to_features(clip.slice(0, 1))
    with pytest.raises(DataError, match="features"):
        features_to_clip(np.zeros((5, 7)), clip)


def test_written_bvh_fk_with_bvhio_reproduces_positions(shared_data, tmp_path):
    bvhio = pytest.importorskip("bvhio")
    clip = load_bvh(shared_data / BANDAI)
    feats, start = clip_to_features(clip)
    path = save_bvh(features_to_clip(feats, clip, start), tmp_path / "from_features.bvh")
    root = bvhio.readAsHierarchy(str(path))
    want = clip.global_positions()
    for frame in (0, clip.n_frames // 3, clip.n_frames - 1):
        root.loadPose(frame)
        got = np.array([list(j.PositionWorld) for j, _, _ in root.layout()])
        np.testing.assert_allclose(got, want[frame], atol=2e-3)     # cm, 6-decimal BVH text
