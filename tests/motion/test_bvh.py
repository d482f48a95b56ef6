"""BVH I/O: exact round trip, FK against bvhio, dummy root, mirroring, resampling, bad files."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from common.errors import DataError
from motion.bvh import is_dummy_root, load_bvh, mirror_map, resample, save_bvh, validate_bvh_text
from motion.procedural import generate_clip
from motion.skeleton import SkeletonInfo, mirror

BANDAI = "motion/bandai-namco-1/data/dataset-1_walk_happy_001.bvh.gz"
CMU21 = "motion/semi-mst-m21/style/ZOMBIE.bvh.gz"


def test_round_trip_exact_on_shared_file(shared_data, tmp_path):
    src = shared_data / BANDAI
    raw = load_bvh(src, drop_dummy_root=False)
    assert raw.names[0] == "joint_Root" and raw.n_joints == 22
    text1 = save_bvh(raw, tmp_path / "a.bvh").read_text()
    again = load_bvh(tmp_path / "a.bvh", drop_dummy_root=False)
    text2 = save_bvh(again, tmp_path / "b.bvh").read_text()
    assert text1 == text2                       # write(read(write(x))) is byte-identical
    with gzip.open(src, "rt") as fh:            # and the channel values match the source file
        rows = fh.read().split("Frame Time:")[1].splitlines()[1:]
    first = np.array(rows[0].split(), dtype=float).reshape(22, 6)
    ours = np.array(text1.split("Frame Time:")[1].splitlines()[1].split(), float).reshape(22, 6)
    np.testing.assert_allclose(ours[:, :3], first[:, :3], atol=1e-5)
    # an Euler triple may come back as another triple for the same rotation: compare rotations
    np.testing.assert_allclose(again.rotations[0] * np.sign(again.rotations[0, :, :1]),
                               raw.rotations[0] * np.sign(raw.rotations[0, :, :1]), atol=1e-5)


def test_fk_matches_bvhio(shared_data, tmp_path):
    bvhio = pytest.importorskip("bvhio")
    for rel in (BANDAI, CMU21):
        clip = load_bvh(shared_data / rel, drop_dummy_root=False)
        path = tmp_path / "plain.bvh"
        with gzip.open(shared_data / rel, "rb") as fi, open(path, "wb") as fo:
            shutil.copyfileobj(fi, fo)
        root = bvhio.readAsHierarchy(str(path))
        ours = clip.global_positions()
        for frame in (0, clip.n_frames // 2):
            root.loadPose(frame)
            theirs = np.array([list(j.PositionWorld) for j, _, _ in root.layout()])
            np.testing.assert_allclose(ours[frame], theirs, atol=1e-3)


def test_dummy_root_detected_and_dropped(shared_data):
    clip = load_bvh(shared_data / BANDAI)
    raw = load_bvh(shared_data / BANDAI, drop_dummy_root=False)
    assert clip.meta["dropped_root"] and clip.names[0] == "Hips" and clip.n_joints == 21
    assert is_dummy_root(raw) and not is_dummy_root(clip)
    assert not is_dummy_root(load_bvh(shared_data / CMU21))
    np.testing.assert_allclose(clip.global_positions(), raw.global_positions()[:, 1:], atol=1e-6)


def test_mirror_twice_is_identity_and_equivariant(shared_data):
    for clip in (load_bvh(shared_data / BANDAI), generate_clip("angry", "walk", 60)):
        once, twice = mirror(clip), mirror(mirror(clip))
        p = clip.global_positions()
        np.testing.assert_allclose(twice.global_positions(), p, atol=1e-4)
        m = mirror_map(clip.names)
        expected = p[:, m] * np.array([-1.0, 1.0, 1.0])
        scale = np.abs(p).max()
        assert np.abs(once.global_positions() - expected).max() < 1e-4 * scale


def test_mirror_keeps_centre_joints_on_their_rotation_branch(shared_data):
    """A mirrored centre joint (spine, chest, neck) keeps its rotation angle: the Bandai-Namco
    chest used to come out twisted by 180 degrees about the spine (positions still exact)."""
    import pymotion.rotations.quat_np as quat

    clip = load_bvh(shared_data / BANDAI)
    once = mirror(clip)
    m = mirror_map(clip.names)

    def angle(q: np.ndarray) -> np.ndarray:
        return 2 * np.arccos(np.clip(np.abs(q[..., 0]), 0.0, 1.0))

    for j in [j for j in range(1, clip.n_joints) if m[j] == j]:
        diff = np.median(np.abs(angle(once.rotations[:, j]) - angle(clip.rotations[:, j])))
        assert diff < 0.5, (clip.names[j], diff)
    rel = quat.mul(quat.inverse(clip.rotations[:, 2]), once.rotations[:, 2])
    assert np.median(angle(rel)) < 0.5                 # the chest (joint 2), about the same pose


def test_mirror_map_and_roles(shared_data):
    clip = load_bvh(shared_data / BANDAI)
    m = mirror_map(clip.names)
    assert clip.names[m[clip.names.index("Hand_L")]] == "Hand_R"
    assert np.all(m[m] == np.arange(len(m)))
    info = SkeletonInfo.from_clip(clip)
    assert [clip.names[j] for j in info.feet] == ["Foot_L", "Toes_L", "Foot_R", "Toes_R"]
    cmu = load_bvh(shared_data / CMU21)
    info = SkeletonInfo.from_clip(cmu)
    assert [cmu.names[j] for j in info.hips] == ["LeftUpLeg", "RightUpLeg"]


def test_resample_to_30fps(shared_data):
    clip = load_bvh(shared_data / CMU21)                     # 60 fps
    half = resample(clip, 30.0)
    assert half.fps == 30.0 and half.n_frames == (clip.n_frames + 1) // 2
    np.testing.assert_allclose(half.global_positions(), clip.global_positions()[::2], atol=1e-6)
    odd = resample(clip, 24.0)
    assert abs(odd.n_frames - round(clip.n_frames * 24 / 60)) <= 1


GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Leg
  {
    OFFSET 0 -1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 1 0 0 0 0 0 0 0
0 1 1 0 0 0 10 0 0
"""


@pytest.mark.parametrize("bad, words", [
    (GOOD.replace("  }\n}\nMOTION", "  }\nMOTION"), "braces"),
    (GOOD.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 3 Zrotation Xrotation"),
     "declares 3 channels"),
    (GOOD.replace("0 1 1 0 0 0 10 0 0", "0 1 1 0 0 0 10 0"), "has 8 values"),
    (GOOD.replace("Frames: 2", "Frames: 3"), "declares 3 frames"),
    (GOOD.replace("HIERARCHY", "HIERARCHX"), "HIERARCHY"),
])
def test_bad_bvh_names_file_and_problem(tmp_path, bad, words):
    path = tmp_path / "broken.bvh"
    path.write_text(bad)
    with pytest.raises(DataError) as err:
        load_bvh(path)
    assert "broken.bvh" in str(err.value) and words in str(err.value)
    assert validate_bvh_text(GOOD)["frames"] == 2


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_bvh(tmp_path / "nope.bvh")
