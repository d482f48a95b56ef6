"""A tiny end-to-end fit on procedural gaits: shapes, style changes output, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.errors import CheckpointError, ConfigError, DataError
from common.training import TrainerConfig
from motion.bvh import load_bvh, save_bvh
from motion.procedural import generate_clip, generate_dataset
from motion.stylizer import Stylizer, StylizerConfig

TRAINER = TrainerConfig(ema_decay=None, enable_progress_bar=False, accelerator="cpu", devices=1)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    clips = generate_dataset(2, n_frames=96, styles=["neutral", "tired", "angry"])
    cfg = StylizerConfig.tiny(ae_steps=40, stylizer_steps=40, batch_size=8, mirror_augment=False)
    ckpt = tmp_path_factory.mktemp("ckpt")
    return Stylizer(cfg).fit(clips, TRAINER, checkpoint_dir=ckpt), ckpt


@pytest.fixture(scope="module")
def content():
    return generate_clip("neutral", "walk", n_frames=80, seed=12345)


def test_stylize_shapes_and_style_matters(fitted, content):
    model, _ = fitted
    tired, angry = model.stylize(content, "tired"), model.stylize(content, "angry")
    assert tired.rotations.shape == content.rotations.shape
    assert tired.names == content.names and tired.n_frames == content.n_frames
    np.testing.assert_allclose(tired.positions[0, 0, [0, 2]], content.positions[0, 0, [0, 2]],
                               atol=1e-6)                       # starts where the content starts
    d = np.abs(tired.global_positions() - angry.global_positions())
    assert np.abs(tired.rotations - angry.rotations).max() > 1e-3 and d.max() > 1e-2
    # a label draw is deterministic for a seed, different across seeds (probabilistic codes)
    a = model.stylize(content, "tired", n_samples=4, seed=3)
    b = model.stylize(content, "tired", n_samples=4, seed=3)
    assert len(a) == 4 and np.array_equal(a[0].rotations, b[0].rotations)
    assert any(not np.allclose(a[0].rotations, o.rotations) for o in a[1:])


def test_reconstruct_is_the_autoencoder_round_trip(fitted, content):
    """``reconstruct`` = decode(encode(x)) on the content's skeleton (the stylizer's ceiling)."""
    model, _ = fitted
    rec = model.reconstruct(content)
    assert rec.names == content.names and rec.n_frames == content.n_frames
    assert rec.meta["style"] == content.meta.get("style")
    from motion.features import clip_to_features, features_to_clip

    f, start = clip_to_features(content, model.info)
    x = torch.as_tensor(model._normalise(f).T[None], dtype=torch.float32)
    with torch.no_grad():
        y = model.nets["ae"].decode(model.nets["ae"].encode(model._pad(x)))[0, :, :len(f)]
    y = y.numpy().T * model.std + model.mean
    y[:, -4:] = y[:, -4:] > 0.5
    direct = features_to_clip(y.astype(np.float32), content, start)
    # the local pose is the decoder's (the root path follows the content's turning and the
    # global-motion predictor's speed, as in stylize)
    np.testing.assert_allclose(rec.rotations[:, 1:], direct.rotations[:, 1:], atol=1e-5)
    assert np.abs(rec.rotations[:, 1:] - content.rotations[:, 1:]).max() > 1e-3


def test_label_codes_are_training_codes(fitted):
    """Regression (issue 7): per-label Gaussian draws of the style code left the generator's
    training distribution (the code carries motion-specific information), which broke label
    stylization at longer budgets. Label codes must be posterior codes of training windows."""
    model, _ = fitted
    for label in ("tired", "angry"):
        bank = torch.as_tensor(model.style_bank[label])
        codes = torch.cat([model.style_code(label), model.style_code(label, 3, seed=0)])
        dist = torch.cdist(codes, bank).min(1).values
        assert float(dist.max()) < 1e-6
        # with the content's own code, the nearest exemplar of the label is chosen
        for j in (0, len(bank) - 1):
            near = model._label_codes(label, 1, None, near=bank[j])
            assert torch.equal(near[0], bank[j])


def test_reference_and_prior_styles(fitted, content, tmp_path):
    model, _ = fitted
    ref = generate_clip("angry", "run", n_frames=80, seed=777)
    path = save_bvh(ref, tmp_path / "ref.bvh")
    from_path = model.stylize(content, str(path))      # a file has no label: "unknown" style id
    ref.meta.pop("style")
    from_clip = model.stylize(content, ref)
    np.testing.assert_allclose(from_clip.global_positions(), from_path.global_positions(),
                               atol=1e-2)
    prior = model.stylize(content, None, n_samples=3, seed=0)
    assert len(prior) == 3 and not np.allclose(prior[0].rotations, prior[2].rotations)


def test_save_load_round_trip(fitted, content, tmp_path):
    model, _ = fitted
    path = model.save(tmp_path / "m.pt")
    again = Stylizer.load(path)
    assert again.styles == model.styles
    np.testing.assert_array_equal(again.stylize(content, "angry", seed=1).rotations,
                                  model.stylize(content, "angry", seed=1).rotations)
    written = save_bvh(again.stylize(content, "tired"), tmp_path / "out.bvh")
    assert load_bvh(written).n_frames == content.n_frames


def test_resume_skips_finished_stages(fitted, tmp_path):
    _, ckpt = fitted
    assert (ckpt / "ae" / "last.ckpt").exists() and (ckpt / "stylizer" / "last.ckpt").exists()


def test_bad_inputs(fitted, content, tmp_path):
    model, _ = fitted
    with pytest.raises(DataError, match="unknown style label 'sleepy'"):
        model.stylize(content, "sleepy")
    with pytest.raises(DataError, match="shorter than one content window"):
        model.stylize(content.slice(0, 20))
    other = content.copy()
    other.names = [f"mixamorig:{n}" for n in content.names]
    path = save_bvh(other, tmp_path / "other_rig.bvh")
    with pytest.raises(DataError, match="not the one the model was trained on") as err:
        model.stylize(str(path), "tired")
    assert "other_rig.bvh" in str(err.value)
    with pytest.raises(CheckpointError):
        Stylizer().stylize(content, "tired")
    with pytest.raises(ConfigError, match="label_code='nearest'; valid: near, bank, encode"):
        Stylizer(label_code="nearest")
    with pytest.raises(ConfigError, match="style_prior='vae'"):
        Stylizer(style_prior="vae")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        Stylizer.load(bad)
    unlabelled = generate_dataset(1, n_frames=96, styles=["neutral"])
    for c in unlabelled:
        c.meta.pop("style")
    with pytest.raises(DataError, match="no style label"):
        Stylizer(StylizerConfig.tiny()).fit(unlabelled, TRAINER)


def test_unsupervised_variant_with_diffusion_prior(content, tmp_path):
    clips = generate_dataset(1, n_frames=80, styles=["neutral", "angry"])
    cfg = StylizerConfig.tiny(ae_steps=10, stylizer_steps=10, batch_size=8, supervised=False,
                              mirror_augment=False, style_prior="diffusion", prior_steps=20)
    model = Stylizer(cfg).fit(clips, TRAINER)
    assert model.nets["style"].label is None            # the style encoder never sees a label
    ref = model.stylize(content, generate_clip("angry", "walk", 80, seed=5))
    lab = model.stylize(content, "angry")                # label: the diffusion prior's draw
    assert ref.rotations.shape == lab.rotations.shape == content.rotations.shape
    path = model.save(tmp_path / "u.pt")
    again = Stylizer.load(path)
    torch.testing.assert_close(again.style_code(None, 2, seed=4), model.style_code(None, 2, seed=4))


def test_posterior_prior_matches_the_training_codes(fitted, tmp_path):
    """``style_prior="posterior"``: prior draws follow the Gaussian of the training codes."""
    import dataclasses

    model, _ = fitted
    model = Stylizer.load(model.save(tmp_path / "p.pt"))       # the fit survives save/load
    model.config = dataclasses.replace(model.config, style_prior="posterior")
    bank = np.concatenate(list(model.style_bank.values())).astype(np.float64)
    draws = model.style_code(None, 4000, seed=7).double().numpy()
    se = bank.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - bank.mean(0)) < 5 * se + 1e-6)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), np.cov(bank, rowvar=False),
                               atol=0.15 * bank.var(0).max())
    # the paper's prior stays N(0, I)
    model.config = dataclasses.replace(model.config, style_prior="gaussian")
    std_normal = model.style_code(None, 4000, seed=7).double().numpy()
    assert abs(std_normal.std(0).mean() - 1) < 0.05


def test_checkpoint_without_injection_loads_the_genmostyle_generator(tmp_path):
    """Checkpoints written before the ``injection`` option (round 4) or round 6's terms load."""
    from common.io import load_checkpoint, save_checkpoint
    from motion.procedural import skeleton_template
    from motion.skeleton import SkeletonInfo
    from motion.stylizer import KIND

    st = Stylizer(StylizerConfig.tiny(injection="blocks"))
    st.template = skeleton_template()
    st.info, st.styles = SkeletonInfo.from_clip(st.template), ["a", "b"]
    st._build()
    dim = st.nets["ae"].decoder[-1].out_channels
    st.mean, st.std = np.zeros(dim, np.float32), np.ones(dim, np.float32)
    obj = load_checkpoint(st.save(tmp_path / "new.pt"), KIND)
    obj = {k: v for k, v in obj.items() if k not in ("genpipes_format", "kind")}
    for key in ("injection", "w_style_adv", "w_out_cls", "w_fk", "w_rot_stats", "stats_align",
                "align_in_loop"):
        del obj["config"][key]
    del obj["feature_stats"]
    again = Stylizer.load(save_checkpoint(tmp_path / "old.pt", KIND, obj))
    assert again.config.injection == "blocks"
    assert again.config.stats_align == 0.0 and again.feature_stats == {}
    # round-5 checkpoints were trained without round 6's terms (w_out_cls now defaults on)
    assert StylizerConfig().w_out_cls > 0
    assert again.config.w_out_cls == again.config.w_style_adv == again.config.w_fk == 0.0
    assert StylizerConfig().align_in_loop > 0 and again.config.align_in_loop == 0.0   # round 8
    with pytest.raises(ConfigError, match="injection"):
        Stylizer(StylizerConfig.tiny(injection="everywhere"))


def test_statistics_alignment_recolours_only_the_rotation_channels(fitted, content, tmp_path):
    """``stats_align``: the label's statistics are statistics transfer's (mirror copies
    excluded); 0 leaves the output alone; the stats survive save/load; old models skip it."""
    import dataclasses

    from motion.baselines import StatisticsTransfer, align_statistics

    model, _ = fitted
    clips = generate_dataset(2, n_frames=96, styles=["neutral", "tired", "angry"])
    ref = StatisticsTransfer(model.info).fit(clips).stats
    for name, (mu, sd) in model.feature_stats.items():
        np.testing.assert_allclose(mu, ref[name][0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sd, ref[name][1], rtol=1e-5, atol=1e-5)
    rng = np.random.default_rng(0)
    f = rng.normal(size=(50, 6)) * 3 + 1
    mu, sd = np.arange(6.0), np.full(6, 0.5)
    out = align_statistics(f, mu, sd, slice(2, 5))
    np.testing.assert_allclose(out[:, 2:5].mean(0), mu[2:5], atol=1e-9)
    np.testing.assert_allclose(out[:, 2:5].std(0), sd[2:5], atol=1e-9)
    np.testing.assert_array_equal(out[:, [0, 1, 5]], f[:, [0, 1, 5]])
    half = align_statistics(f, mu, sd, slice(2, 5), alpha=0.5)
    np.testing.assert_allclose(half, 0.5 * (f + out), atol=1e-12)
    aligned = model.stylize(content, "angry", seed=1)
    model_off = Stylizer.load(model.save(tmp_path / "m.pt"))
    assert model_off.feature_stats.keys() == model.feature_stats.keys()
    model_off.config = dataclasses.replace(model_off.config, stats_align=0.0)
    plain = model_off.stylize(content, "angry", seed=1)
    assert model.config.stats_align == 1.0
    assert np.abs(aligned.rotations - plain.rotations).max() > 1e-3
    model_off.feature_stats = {}                            # a pre-round-7 checkpoint
    model_off.config = dataclasses.replace(model_off.config, stats_align=1.0)
    np.testing.assert_array_equal(model_off.stylize(content, "angry", seed=1).rotations,
                                  plain.rotations)
    codes = model.style_code(None, 2, seed=0)
    no_prior = dataclasses.replace(model.config, prior_stats_align=0.0)
    model_off.config = no_prior
    assert model_off._target_statistics(None, codes) is None


def test_prior_samples_align_to_the_statistics_predicted_from_their_codes(fitted, content,
                                                                         tmp_path):
    """Round 8b: the statistics head is fitted with the style bank (training windows' codes ->
    their rotation statistics), survives save/load, gives each prior draw its own target; a
    checkpoint without it loads and leaves prior draws unaligned; ``stats_source="predicted"``
    makes labels use it too."""
    import dataclasses

    from common.io import load_checkpoint, save_checkpoint
    from motion.stats_head import StatsHead, window_statistics
    from motion.stylizer import KIND

    model, _ = fitted
    assert model.stats_head is not None and model.config.prior_stats_align == 1.0
    # the head is the ridge fit of the bank's codes on their labels' rotation statistics
    # (stats_target="label"), or on the windows' own (stats_target="window")
    assert model.config.stats_target == "label" and model.config.style_prior == "diffusion"
    rot = model._rot_slice()
    names = list(model.style_bank)
    codes = np.concatenate([model.style_bank[k] for k in names])
    mean = np.concatenate([np.repeat(model.feature_stats[k][0][rot][None],
                                     len(model.style_bank[k]), 0) for k in names])
    std = np.concatenate([np.repeat(model.feature_stats[k][1][rot][None],
                                    len(model.style_bank[k]), 0) for k in names])
    ref = StatsHead(model.config.stats_ridge).fit(codes, mean, std)
    np.testing.assert_allclose(model.stats_head.weight, ref.weight, rtol=1e-4, atol=1e-5)
    clips = generate_dataset(2, n_frames=96, styles=["neutral", "tired", "angry"])
    from motion.features import clip_to_features

    feats = {c.meta["style"]: [] for c in clips}
    for c in clips:
        feats[c.meta["style"]].append(clip_to_features(c, model.info)[0])
    stats = [window_statistics(f, model.config.window, rot) for k in names for f in feats[k]]
    per_window = StatsHead(model.config.stats_ridge).fit(
        codes, np.concatenate([s[0] for s in stats]), np.concatenate([s[1] for s in stats]))
    win = Stylizer.load(model.save(tmp_path / "w.pt"))
    win.config = dataclasses.replace(win.config, stats_target="window")
    np.testing.assert_allclose(win.fit_statistics_head(clips).weight, per_window.weight,
                               rtol=1e-4, atol=1e-5)
    codes = model.style_code(None, 3, seed=0)
    targets = model._target_statistics(None, codes)
    pm, ps = model.stats_head.predict(codes)
    for k, ((mu, sd), weight) in enumerate(targets):
        assert weight == 1.0
        np.testing.assert_allclose(mu[rot], pm[k], rtol=1e-5)
        np.testing.assert_allclose(sd[rot], ps[k], rtol=1e-5)
    assert not np.allclose(targets[0][0][0][rot], targets[2][0][0][rot])
    # checkpoint round trip keeps the head; without it (pre-8b) prior draws are not aligned
    again = Stylizer.load(model.save(tmp_path / "m.pt"))
    for a, b in zip(again.stats_head.predict(codes), (pm, ps)):
        np.testing.assert_array_equal(a, b)
    aligned = model.stylize(content, None, n_samples=2, seed=0)
    np.testing.assert_array_equal(again.stylize(content, None, n_samples=2, seed=0)[1].rotations,
                                  aligned[1].rotations)
    obj = load_checkpoint(tmp_path / "m.pt", KIND)
    obj = {k: v for k, v in obj.items() if k not in ("genpipes_format", "kind", "stats_head")}
    old = Stylizer.load(save_checkpoint(tmp_path / "old.pt", KIND, obj))
    assert old.stats_head is None
    again.config = dataclasses.replace(again.config, prior_stats_align=0.0)
    plain = again.stylize(content, None, n_samples=2, seed=0)
    np.testing.assert_array_equal(old.stylize(content, None, n_samples=2, seed=0)[1].rotations,
                                  plain[1].rotations)
    assert np.abs(plain[1].rotations - aligned[1].rotations).max() > 1e-3
    # labels: predicted statistics from the chosen code instead of the borrowed ones
    again.config = dataclasses.replace(again.config, stats_source="predicted")
    code = again.style_code("angry", 1, seed=1)
    (mu, sd), _ = again._target_statistics("angry", code)[0]
    np.testing.assert_allclose(mu[rot], again.stats_head.predict(code)[0][0], rtol=1e-5)
    with pytest.raises(ConfigError, match="stats_source"):
        Stylizer(StylizerConfig.tiny(stats_source="guess"))
