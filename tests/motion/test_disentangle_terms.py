"""Round-6 stylizer terms: content adversary on the style code, frozen output style classifier,
forward-kinematics consistency of decoded rotations and positions (known answers, routing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motion.features import FeatureLayout, clip_to_features
from motion.fk_consistency import fk_consistency, ric_from_rot6d, skeleton_tensors
from motion.metrics import ClipClassifier, MotionClassifier
from motion.model import ContentEncoder, Generator, MotionAutoencoder, StyleEncoder
from motion.procedural import generate_clip
from motion.training import StylizerModule, WindowPairs


class _IdentityAE(MotionAutoencoder):
    """An autoencoder that is the identity, so a latent is read as features."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


def _batch(dim: int, n: int = 4, t: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"x1": torch.randn(n, dim, t, generator=g), "x2": torch.randn(n, dim, t, generator=g),
            "xs": torch.randn(n, dim, t, generator=g), "xn": torch.randn(n, dim, t, generator=g),
            "label": torch.tensor([0, 1, 2, 1]), "label_n": torch.tensor([1, 0, 0, 2]),
            "content": torch.tensor([0, 1, 1, 0])}


def _module(dim: int = 6, lat: int = 8, ae: MotionAutoencoder | None = None, **kw
            ) -> StylizerModule:
    torch.manual_seed(0)
    return StylizerModule(ae or MotionAutoencoder(dim, 16, lat), ContentEncoder(lat, 16, 8, 1),
                          StyleEncoder(lat, 16, 4, n_styles=3), Generator(8, lat, 16, 4, 1),
                          n_styles=3, label_dropout=0.0, **kw)


def test_style_adversary_trains_critic_and_encoder_separately():
    module = _module(w_style_adv=0.5, n_contents=2)
    parts = module.losses(_batch(6))
    crit, enc = list(module.style_critic.parameters()), list(module.style.parameters())
    g_adv = torch.autograd.grad(parts["style_adv"], crit + enc, allow_unused=True)
    assert all(g is None for g in g_adv[:len(crit)])                 # critic frozen in the term
    assert any(g is not None and g.abs().sum() > 0 for g in g_adv[len(crit):])
    g_crit = torch.autograd.grad(parts["style_critic"], crit + enc, allow_unused=True)
    assert all(g is None for g in g_crit[len(crit):])                # codes detached
    assert any(g is not None for g in g_crit[:len(crit)])
    assert float(parts["style_adv"].detach()) >= np.log(2) - 1e-5     # CE to uniform
    # off (or no content labels in the batch): no critic, no terms
    assert _module().style_critic is None
    batch = {k: v for k, v in _batch(6).items() if k != "content"}
    assert not {"style_adv", "style_critic"} & set(module.losses(batch))


def _out_classifier(dim: int, n: int = 3) -> ClipClassifier:
    torch.manual_seed(3)
    mean, std = np.linspace(-1, 1, dim).astype(np.float32), np.linspace(1, 2, dim, dtype=np.float32)
    return ClipClassifier(MotionClassifier(dim, n, 16), [f"{k:04d}" for k in range(n)], mean, std,
                          16)


def test_output_classifier_term_known_answer_and_frozen():
    dim = 6
    clf = _out_classifier(dim)
    module = _module(dim, dim, ae=_IdentityAE(dim, 16, dim), w_out_cls=1.0, out_classifier=clf)
    fakes = torch.randn(4, dim, 16, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 1])
    term = module._out_cls_term(fakes, labels)
    mean, std = torch.as_tensor(clf.mean), torch.as_tensor(clf.std)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(
            clf.model.eval()((fakes - mean[:, None]) / std[:, None]), labels)
    assert float(term) == pytest.approx(float(expected), abs=1e-6)
    cls_params = list(module.out_cls.parameters())
    assert all(not p.requires_grad for p in cls_params)
    assert float(torch.autograd.grad(term, fakes)[0].abs().sum()) > 0
    opt_params = {id(p) for g in module.configure_optimizers().param_groups for p in g["params"]}
    assert not opt_params & {id(p) for p in cls_params}
    # dropout stays off even when Lightning puts the module in training mode
    module.train()
    assert float(module._out_cls_term(fakes, labels)) == pytest.approx(float(term), abs=1e-6)
    parts = module.losses(_batch(dim))
    parts["out_cls"].backward()
    assert module.generator.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="out_classifier"):
        _module(w_out_cls=1.0)
    assert "out_cls" not in _module().losses(_batch(6))


def _features():
    clip = generate_clip("angry", "walk", n_frames=40, seed=2)
    feats = clip_to_features(clip)[0].astype(np.float64)
    return clip, feats, FeatureLayout(clip.n_joints)


def test_fk_of_feature_rotations_gives_the_feature_positions():
    """Known answer: for real (here procedural) motion ``ric`` = FK(``rot6d``) exactly."""
    clip, feats, lay = _features()
    r6 = torch.as_tensor(feats[:, lay.slice("rot6d")]).reshape(len(feats), -1, 3, 2)
    ric = ric_from_rot6d(r6, torch.as_tensor(clip.offsets), torch.as_tensor(clip.parents))
    assert ric.reshape(len(feats), -1).numpy() == pytest.approx(feats[:, lay.slice("ric")],
                                                                abs=1e-4)


def test_fk_consistency_term_known_answer():
    """0 on real features; shifting every ``ric`` channel by ``a`` of its std gives ``a``."""
    clip, feats, lay = _features()
    mean, std = feats.mean(0), np.maximum(feats.std(0), 1e-3)
    norm = torch.as_tensor(np.stack([mean, std]), dtype=torch.float32)
    sk = skeleton_tensors(clip.offsets, clip.parents)
    bounds = {"rot6d": (lay.slice("rot6d").start, lay.slice("rot6d").stop),
              "ric": (lay.slice("ric").start, lay.slice("ric").stop)}
    y = torch.as_tensor(((feats - mean) / std).T[None], dtype=torch.float32)

    def term(z: torch.Tensor) -> float:
        return float(fk_consistency(z, bounds["rot6d"], bounds["ric"], norm, sk["offsets"],
                                    sk["parents"]))

    assert term(y) == pytest.approx(0.0, abs=1e-3)
    shifted = y.clone()
    shifted[:, lay.slice("ric")] += 0.25
    assert term(shifted) == pytest.approx(0.25, abs=1e-3)
    # the term reaches the rotation channels too
    y_req = y.clone().requires_grad_(True)
    shifted_req = y_req + torch.zeros_like(y_req).index_fill(1, torch.arange(*bounds["ric"]), 0.25)
    fk_consistency(shifted_req, bounds["rot6d"], bounds["ric"], norm, sk["offsets"],
                   sk["parents"]).backward()
    assert float(y_req.grad[:, lay.slice("rot6d")].abs().sum()) > 0
    with pytest.raises(ValueError, match="w_fk"):
        _module(w_fk=1.0)


def test_window_pairs_carry_content_labels():
    feats = [np.full((30, 3), float(k), np.float32) for k in range(6)]
    data = WindowPairs(feats, [0, 1, 2] * 2, window=8, size=20, seed=0,
                       contents=[0, 0, 0, 1, 1, 1])
    for i in range(len(data)):
        b = data[i]
        assert int(b["content"]) == b["clip"] // 3
    assert "content" not in WindowPairs(feats, [0, 1, 2] * 2, window=8, size=2)[0]


def test_fit_builds_the_terms_with_ordered_classifier_classes(monkeypatch):
    """``Stylizer.fit`` passes content labels and a classifier whose class k is style index k
    (also beyond 10 labels, where plain string sorting would misorder them)."""
    import motion.fitting as fitting_mod
    import motion.stylizer as stylizer_mod
    from common.training import TrainerConfig
    from motion.procedural import generate_dataset

    seen = {}

    class Recording(StylizerModule):
        def __init__(self, *args, **kw):
            seen.update(kw)
            super().__init__(*args, **kw)

    monkeypatch.setattr(fitting_mod, "StylizerModule", Recording)
    clips = generate_dataset(1, n_frames=72, styles=["neutral", "angry"])
    cfg = stylizer_mod.StylizerConfig.tiny(ae_steps=1, stylizer_steps=1, batch_size=4,
                                           w_style_adv=0.5, w_out_cls=0.5, out_cls_steps=2,
                                           w_fk=1.0)
    model = stylizer_mod.Stylizer(cfg).fit(
        clips, TrainerConfig(ema_decay=None, enable_progress_bar=False, accelerator="cpu",
                             devices=1))
    assert seen["n_contents"] == 3
    assert seen["fk"]["parents"].tolist() == list(model.template.parents)
    assert seen["out_classifier"].classes == ["0000", "0001"]
    labels = list(range(12)) * 2
    feats = [np.random.default_rng(k).normal(size=(72, 5)).astype(np.float32) for k in labels]
    model.config = stylizer_mod.StylizerConfig.tiny(w_out_cls=0.5, out_cls_steps=1)
    clf = model._output_classifier(feats, labels)
    assert clf.classes == [f"{k:04d}" for k in range(12)]


def test_rotation_statistics_term_reads_only_the_rotation_channels():
    """``w_rot_stats``: the feature-statistics L1 on the rotation channel bounds only."""
    dim = 10
    stats = torch.zeros(2, 2, dim)
    stats[:, 1] = 1.0
    stats[1, 0, 2:5] = 2.0                                 # label 1 differs on channels 2..4
    torch.manual_seed(0)
    module = StylizerModule(_IdentityAE(dim, 16, dim), ContentEncoder(dim, 16, 8, 1),
                            StyleEncoder(dim, 16, 4, n_styles=2), Generator(8, dim, 16, 4, 1),
                            label_dropout=0.0, n_styles=2, style_stats=stats, w_feat_stats=0.0,
                            w_rot_stats=1.0, rot6d=(5, 9))
    y = torch.tensor([1.0, -1.0]).repeat(8).expand(2, dim, 16).clone()   # mean 0, std 1
    lab = torch.tensor([0, 1])
    assert float(module._stats_term(y, lab, (5, 9))) == pytest.approx(0.0, abs=1e-4)
    assert float(module._stats_term(y, lab)) == pytest.approx(2.0 * 3 / 6 / 2, abs=1e-4)
    y[:, 5:9] += 1.0                                     # both labels off by 1 on those
    assert float(module._stats_term(y, lab, (5, 9))) == pytest.approx(1.0, abs=1e-4)
    batch = {**_batch(dim), "label": torch.tensor([0, 1, 0, 1]),
             "label_n": torch.tensor([1, 0, 1, 1])}
    parts = module.losses(batch)
    assert "rot_stats" in parts and "feat_stats" not in parts
    with pytest.raises(ValueError, match="rot6d"):
        StylizerModule(_IdentityAE(dim, 16, dim), ContentEncoder(dim, 16, 8, 1),
                       StyleEncoder(dim, 16, 4, n_styles=2), Generator(8, dim, 16, 4, 1),
                       n_styles=2, style_stats=stats, w_rot_stats=1.0)


def test_align_in_loop_recolours_rotation_channels_before_the_output_terms():
    """``align_in_loop``: AdaIN of the decoded rotation channels to the label statistics (the
    inference-time ``stats_align``) before the decoded-output terms; 1 = exact statistics."""
    dim, rot = 10, (5, 9)
    g = torch.Generator().manual_seed(4)
    stats = torch.stack([torch.randn(3, dim, generator=g),
                         torch.rand(3, dim, generator=g) + 0.5], 1)          # [K, 2, D]
    kw = dict(style_stats=stats, w_feat_stats=0.0, w_rot_stats=1.0, rot6d=rot)
    y = torch.randn(4, dim, 32, generator=g) * 3 + 1
    lab = torch.tensor([0, 2, 1, 2])
    full = _module(dim, dim, ae=_IdentityAE(dim, 16, dim), align_in_loop=1.0, **kw)
    out = full._align(y, lab)
    f = out[:, 5:9].double()
    assert torch.allclose(f.mean(-1), stats[lab][:, 0, 5:9].double(), atol=1e-5)
    assert torch.allclose(f.std(-1, unbiased=False), stats[lab][:, 1, 5:9].double(), atol=1e-3)
    assert torch.equal(out[:, :5], y[:, :5]) and torch.equal(out[:, 9:], y[:, 9:])
    half = _module(dim, dim, ae=_IdentityAE(dim, 16, dim), align_in_loop=0.5, **kw)
    assert torch.allclose(half._align(y, lab), 0.5 * (y + out), atol=1e-5)
    # in the loss: the rotation-statistics term reads aligned outputs, so it is ~0 at weight 1
    batch = {**_batch(dim), "label": torch.tensor([0, 1, 2, 1])}
    assert float(full.losses(batch)["rot_stats"]) == pytest.approx(0.0, abs=1e-3)
    off = _module(dim, dim, ae=_IdentityAE(dim, 16, dim), **kw)
    assert float(off.losses(batch)["rot_stats"]) > 0.1
    with pytest.raises(ValueError, match="align_in_loop"):
        _module(dim, dim, align_in_loop=1.0)                     # no statistics
