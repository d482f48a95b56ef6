"""Known answers of the metrics, the IK clean-up, the statistics baseline and the data loaders."""

from __future__ import annotations

import numpy as np
import pytest
from pymotion.rotations import quat_np as quat

from common.errors import DataError
from motion.baselines import StatisticsTransfer
from motion.bvh import save_bvh
from motion.data import load_bandai_namco, load_clips, parse_bandai_name, read_label_csv
from motion.features import clip_to_features
from motion.ik import remove_foot_skating, two_bone_ik
from motion.metrics import diversity, foot_skating, frechet_distance, geodesic_distance
from motion.procedural import generate_clip
from motion.skeleton import SkeletonInfo


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = rng.standard_normal((20000, 3)) * 2.0 + 1.0
    # |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) = 3 + 3 (1 + 4 - 4) = 6
    assert abs(frechet_distance(a, b) - 6.0) < 0.15
    assert abs(frechet_distance(a, a)) < 1e-6


def test_geodesic_distance_of_a_known_rotation():
    clip = generate_clip("neutral", "walk", 20, seed=1)
    other = clip.copy()
    j = clip.names.index("LowerArm_L")
    turn = quat.from_angle_axis(np.array([0.3]), np.array([0.0, 0.0, 1.0]))
    other.rotations[:, j] = quat.mul(other.rotations[:, j], turn)
    assert abs(geodesic_distance(clip, other) - 0.3 / (clip.n_joints - 1)) < 1e-5
    assert geodesic_distance(clip, clip) < 1e-6


def test_foot_skating_static_and_sliding():
    clip = generate_clip("neutral", "walk", 30, seed=2)
    info = SkeletonInfo.from_clip(clip)
    still = clip.copy()
    still.rotations[:] = still.rotations[:1]
    still.positions[:] = still.positions[:1]
    assert foot_skating(still, info) < 1e-9
    slide = still.copy()
    slide.positions[:, 0, 0] += np.arange(30) * 2.0            # 2 cm per frame along x
    assert abs(foot_skating(slide, info) - 2.0 * clip.fps) < 1e-6


def test_diversity():
    assert diversity(np.zeros((1, 4))) == 0.0
    pts = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert diversity(pts) == 5.0


def test_two_bone_ik_reaches_reachable_targets():
    clip = generate_clip("tired", "walk", 40, seed=4)
    info = SkeletonInfo.from_clip(clip)
    ankle = info.feet[0]
    knee, hip = int(clip.parents[ankle]), int(clip.parents[clip.parents[ankle]])
    target = clip.global_positions()[:, ankle] + np.array([2.0, 3.0, -4.0])
    on = np.zeros(40, bool)
    on[10:30] = True
    out = two_bone_ik(clip, hip, knee, ankle, target, on)
    pos = out.global_positions()
    np.testing.assert_allclose(pos[on, ankle], target[on], atol=1e-4)
    np.testing.assert_allclose(pos[~on], clip.global_positions()[~on], atol=1e-9)
    # bone lengths are untouched (rotations only)
    np.testing.assert_allclose(np.linalg.norm(pos[:, knee] - pos[:, hip], axis=-1),
                               np.linalg.norm(clip.offsets[knee]), rtol=1e-6)


def test_foot_cleanup_pins_contact_runs():
    clip = generate_clip("tired", "walk", 90, seed=5)
    info = SkeletonInfo.from_clip(clip)
    con = np.zeros((90, 4))
    con[20:24, 0] = 1.0                      # a short run: the pinned ankle stays within reach
    out = remove_foot_skating(clip, con, info)
    ankle = out.global_positions()[20:24, info.feet[0]][:, [0, 2]]
    assert np.abs(ankle - ankle[:1]).max() < 1e-4


def test_statistics_transfer_matches_target_moments():
    train = [generate_clip(s, "walk", 90, seed=k) for s in ("tired", "angry") for k in range(2)]
    info = SkeletonInfo.from_clip(train[0])
    base = StatisticsTransfer(info).fit(train)
    out = base.stylize(generate_clip("neutral", "walk", 90, seed=9), "tired")
    f = clip_to_features(out, info)[0]
    mu, _ = base.stats["tired"]
    lay = slice(4, 64)                                          # root-relative positions
    assert np.abs(f[:, lay].mean(0) - mu[lay]).max() < 0.05 * np.abs(mu[lay]).max()


def test_label_csv_folder(tmp_path):
    clips = [generate_clip("proud", "walk", 40, seed=k) for k in range(2)]
    for c in clips:
        save_bvh(c, tmp_path / f"{c.name}.bvh")
    (tmp_path / "labels.csv").write_text(
        "file,style,content\n" + "".join(f"{c.name}.bvh,proud,walk\n" for c in clips))
    loaded = load_clips(tmp_path)
    assert [c.meta["style"] for c in loaded] == ["proud", "proud"]
    (tmp_path / "bad.csv").write_text("name,label\na.bvh,x\n")
    with pytest.raises(DataError, match="bad.csv.*'file'"):
        read_label_csv(tmp_path / "bad.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .bvh"):
        load_clips(tmp_path / "empty")


def test_bandai_names_and_loader(shared_data):
    assert parse_bandai_name("dataset-1_walk-back_not-confident_001.bvh.gz") == {
        "content": "walk-back", "style": "not-confident", "take": "001"}
    clips = load_bandai_namco(shared_data / "motion/bandai-namco-1", contents=["bow"])
    assert len(clips) == 15 and {c.meta["content"] for c in clips} == {"bow"}
    assert all(c.n_joints == 21 and c.names[0] == "Hips" for c in clips)


def test_channel_style_fid_reads_only_its_channel_groups():
    """A rotation-only classifier ignores a raised root; a position one does not; real clips
    scored against themselves have FID 0."""
    from motion.metrics import POSITION_GROUPS, ROTATION_GROUPS, ChannelStyleFID

    clips = [generate_clip(s, "walk", 40, seed=k) for s in ("neutral", "angry") for k in range(3)]
    info = SkeletonInfo.from_clip(clips[0])
    styles = [c.meta["style"] for c in clips]
    rot = ChannelStyleFID(info, ROTATION_GROUPS, window=16, steps=3).fit(clips)
    pos = ChannelStyleFID(info, POSITION_GROUPS, window=16, steps=3).fit(clips)
    assert rot.clf.mean.shape == (6 * clips[0].n_joints,)
    assert pos.clf.mean.shape == (4 + 3 * (clips[0].n_joints - 1) + 3 * clips[0].n_joints,)
    raised = []
    for c in clips:
        r = c.copy()
        r.positions = r.positions.copy()
        r.positions[:, 0, 1] += 5.0 * np.linspace(0, 1, r.n_frames)
        raised.append(r)
    assert abs(rot.scores(clips, styles)["style_fid"]) < 1e-6
    assert abs(rot.scores(raised, styles)["style_fid"]) < 1e-6
    assert pos.scores(raised, styles)["style_fid"] > 1e-3


def test_bandai_download_path_with_a_served_copy(shared_data, tmp_path, monkeypatch):
    """The download code path (offline here): the name list matches the dataset, served files
    land in the cache and load as the local copy does; a non-BVH payload is never cached."""
    import contextlib
    import gzip
    import io

    import motion.data as data_mod

    local = shared_data / "motion/bandai-namco-1/data"
    staged = {p.name.removesuffix(".gz") for p in local.glob("dataset-1_*.bvh.gz")}
    names = set(data_mod.bandai_namco_names())
    assert len(names) == 175 and staged <= names
    assert names - staged == {"dataset-1_dance-long_normal_001.bvh"}     # not staged (README)
    served = []

    def fake_urlopen(url, timeout=None):
        name = url.rsplit("/", 1)[-1]
        assert url == data_mod.BANDAI_URL.format(name=name)
        served.append(name)
        body = b"<html>404</html>" if "kick" in name else gzip.decompress(
            (local / f"{name}.gz").read_bytes())
        return contextlib.closing(io.BytesIO(body))

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", fake_urlopen)
    want = ["dataset-1_bow_angry_001.bvh", "dataset-1_bow_sad_001.bvh"]
    root = data_mod.download_bandai_namco(want, cache=tmp_path)
    clips = load_bandai_namco(root, contents=["bow"])
    ref = load_bandai_namco(local.parent, contents=["bow"])
    ref = [c for c in ref if c.meta["style"] in ("angry", "sad")]
    assert [c.meta["style"] for c in clips] == ["angry", "sad"]
    for a, b in zip(clips, ref):
        np.testing.assert_array_equal(a.rotations, b.rotations)
    data_mod.download_bandai_namco(want, cache=tmp_path)                 # cached: no refetch
    assert served == want
    with pytest.raises(DataError, match="not a BVH"):
        data_mod.download_bandai_namco(["dataset-1_kick_normal_001.bvh"], cache=tmp_path)
    assert not (tmp_path / "data/dataset-1_kick_normal_001.bvh").exists()
