"""Pairing logic of the stylizer's training windows (GenMoStyle Sec. 3.3) and its swap term."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motion.model import ContentEncoder, Generator, MotionAutoencoder, StyleEncoder
from motion.training import StylizerModule, WindowPairs


def _clips(n_styles: int = 3, per_style: int = 4, frames: int = 30, dim: int = 3):
    """Clip k is the constant k (every channel, every frame): a window names its clip."""
    feats = [np.full((frames, dim), float(k), np.float32) for k in range(n_styles * per_style)]
    labels = [k % n_styles for k in range(len(feats))]
    return feats, labels


def test_supervised_swap_partners_differ_in_clip_and_share_the_label():
    feats, labels = _clips()
    mirror = feats + [f + 100 for f in feats]             # mirror copies share the content
    groups = list(range(len(feats))) * 2
    data = WindowPairs(mirror, labels * 2, window=8, size=300, seed=1, groups=groups)
    for i in range(len(data)):
        b = data[i]
        k, p, n = b["clip"], b["partner"], b["other"]
        assert groups[p] != groups[k] and labels[p % 12] == labels[k % 12]
        assert groups[n] != groups[k]
        assert int(b["label_n"]) == (labels * 2)[n]
        # the windows really come from those clips
        assert float(b["x1"][0, 0]) == float(b["x2"][0, 0]) == float(mirror[k][0, 0])
        assert float(b["xs"][0, 0]) == float(mirror[p][0, 0])
        assert float(b["xn"][0, 0]) == float(mirror[n][0, 0])
    # every other same-label clip is used as a partner at some point
    seen = {(data[i]["clip"], data[i]["partner"]) for i in range(len(data))}
    assert {p for k, p in seen if k == 0} == {j for j in range(24)
                                              if labels[j % 12] == 0 and j % 12 != 0}


def test_unsupervised_swap_stays_within_the_clip():
    feats, labels = _clips()
    data = WindowPairs(feats, labels, window=8, size=50, seed=0, pair_by_label=False)
    for i in range(len(data)):
        b = data[i]
        assert b["partner"] == b["clip"] and torch.equal(b["xs"], b["x2"])
        assert b["other"] != b["clip"]
    # a label with a single clip falls back to the same clip
    lonely = WindowPairs(feats[:2], [0, 1], window=8, size=10, seed=0)
    assert all(lonely[i]["partner"] == lonely[i]["clip"] for i in range(10))


def test_swap_term_reads_the_cross_clip_partner():
    torch.manual_seed(0)
    dim, lat = 6, 8
    module = StylizerModule(MotionAutoencoder(dim, 16, lat), ContentEncoder(lat, 16, 8, 1),
                            StyleEncoder(lat, 16, 4, n_styles=2), Generator(8, lat, 16, 4, 1),
                            label_dropout=0.0, w_kl_label=0.1)
    seen: list[torch.Tensor] = []
    module.style.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    x = torch.randn(4, dim, 32)
    batch = {"x1": x, "x2": x + 0.1, "xs": torch.randn(4, dim, 32), "xn": torch.randn(4, dim, 32),
             "label": torch.tensor([0, 1, 0, 1]), "label_n": torch.tensor([1, 0, 1, 0])}
    parts = module.losses(batch)
    with torch.no_grad():
        zs, zn = module.ae.encode(batch["xs"]), module.ae.encode(batch["xn"])
    assert any(torch.equal(z, zs) for z in seen) and any(torch.equal(z, zn) for z in seen)
    assert {"rec", "swap", "cycle", "kl", "kl_pair", "kl_label"} <= set(parts)
    # without a separate partner the swap partner is the second window of the same clip
    seen.clear()
    parts = module.losses({k: v for k, v in batch.items() if k != "xs"})
    assert "kl_label" not in parts and not any(torch.equal(z, zs) for z in seen)


@pytest.mark.parametrize("bad", [dict(groups=[0]), dict(labels=[0])])
def test_pairs_reject_mismatched_lengths(bad):
    feats, labels = _clips(1, 2)
    with pytest.raises(ValueError, match="one entry per clip"):
        WindowPairs(feats, bad.get("labels", labels), 8, 4, groups=bad.get("groups"))


def test_critic_terms_train_critics_and_networks_separately():
    torch.manual_seed(0)
    dim, lat = 6, 8
    module = StylizerModule(MotionAutoencoder(dim, 16, lat), ContentEncoder(lat, 16, 8, 1),
                            StyleEncoder(lat, 16, 4, n_styles=3), Generator(8, lat, 16, 4, 1),
                            w_style_cls=0.5, w_content_adv=0.5, n_styles=3)
    batch = {"x1": torch.randn(4, dim, 32), "x2": torch.randn(4, dim, 32),
             "xs": torch.randn(4, dim, 32), "xn": torch.randn(4, dim, 32),
             "label": torch.tensor([0, 1, 2, 1]), "label_n": torch.tensor([1, 0, 0, 2])}
    parts = module.losses(batch)
    critic = list(module.critic.parameters())
    gen = list(module.generator.parameters())
    g_fake = torch.autograd.grad(parts["style_cls"], critic + gen, allow_unused=True)
    assert all(g is None for g in g_fake[:len(critic)])          # critic frozen on fakes
    assert any(g is not None and g.abs().sum() > 0 for g in g_fake[len(critic):])
    g_real = torch.autograd.grad(parts["critic"], critic + gen, allow_unused=True)
    assert all(g is None for g in g_real[len(critic):])          # real term: critic only
    # style-adversarial content code: the critic learns from detached codes, the content
    # encoder (not the critic) follows the adversarial term, which is minimal at uniform
    cc, enc = list(module.content_critic.parameters()), list(module.content.parameters())
    g_adv = torch.autograd.grad(parts["content_adv"], cc + enc, allow_unused=True)
    assert all(g is None for g in g_adv[:len(cc)]) and any(g is not None for g in g_adv[len(cc):])
    g_cc = torch.autograd.grad(parts["content_critic"], cc + enc, allow_unused=True)
    assert all(g is None for g in g_cc[len(cc):])
    assert float(parts["content_adv"]) >= np.log(3) - 1e-5
    # unsupervised: no critic
    plain = StylizerModule(MotionAutoencoder(dim, 16, lat), ContentEncoder(lat, 16, 8, 1),
                           StyleEncoder(lat, 16, 4), Generator(8, lat, 16, 4, 1),
                           supervised=False, w_style_cls=0.5, n_styles=3)
    assert plain.critic is None and plain.content_critic is None
    assert not {"style_cls", "content_adv"} & set(plain.losses(batch))


def test_fit_pairs_mirror_copies_as_one_content(monkeypatch):
    """``Stylizer.fit`` marks a clip and its mirror image as one group (never swap partners)."""
    import motion.fitting as fitting_mod
    import motion.stylizer as stylizer_mod
    from common.training import TrainerConfig
    from motion.procedural import generate_dataset

    seen = {}

    class Recording(WindowPairs):
        def __init__(self, feats, labels, *args, **kw):
            seen.update(kw, n=len(feats), labels=list(labels))
            super().__init__(feats, labels, *args, **kw)

    monkeypatch.setattr(fitting_mod, "WindowPairs", Recording)
    clips = generate_dataset(1, n_frames=72, styles=["neutral", "angry"])
    cfg = stylizer_mod.StylizerConfig.tiny(ae_steps=1, stylizer_steps=1, batch_size=4)
    stylizer_mod.Stylizer(cfg).fit(clips, TrainerConfig(ema_decay=None, enable_progress_bar=False,
                                                        accelerator="cpu", devices=1))
    n = len(clips)
    assert seen["n"] == 2 * n and seen["groups"] == list(range(n)) * 2
    assert seen["pair_by_label"] is True and seen["labels"][:n] == seen["labels"][n:]


class _IdentityAE(MotionAutoencoder):
    """An autoencoder that is the identity, so a latent is read as features."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


def _stats_module(dim: int = 10, w: float = 1.0, supervised: bool = True):
    torch.manual_seed(0)
    stats = torch.zeros(2, 2, dim)
    stats[0, 1], stats[1, 0], stats[1, 1] = 1.0, 2.0, 3.0      # label 0: N(0, 1); 1: mean 2, sd 3
    return StylizerModule(_IdentityAE(dim, 16, dim), ContentEncoder(dim, 16, 8, 1),
                          StyleEncoder(dim, 16, 4, n_styles=2), Generator(8, dim, 16, 4, 1),
                          supervised=supervised, label_dropout=0.0, w_feat_stats=w,
                          n_styles=2, style_stats=stats)


def test_feature_statistics_term_known_answer():
    """L1 between the output's channel mean/std over time and the label's (contacts excluded)."""
    module, dim = _stats_module(), 10
    sign = torch.tensor([1.0, -1.0]).repeat(8)                       # mean 0, population std 1
    y = sign.expand(2, dim, 16).clone()
    lab = torch.tensor([0, 1])
    # label 0 matches exactly; label 1 is off by 2 in the mean and 2 in the std on every channel
    expected = (0.0 + 2.0) / 2 + (0.0 + 2.0) / 2
    assert float(module._stats_term(y, lab)) == pytest.approx(expected, abs=1e-4)
    y2 = y.clone()
    y2[1] = 2.0 + 3.0 * y2[1]
    assert float(module._stats_term(y2, lab)) == pytest.approx(0.0, abs=1e-4)
    y2[:, -4:] = 100.0                                              # foot contacts are ignored
    assert float(module._stats_term(y2, lab)) == pytest.approx(0.0, abs=1e-4)


def test_feature_statistics_term_trains_the_generator_only():
    module, dim = _stats_module(), 10
    x = torch.randn(4, dim, 32)
    batch = {"x1": x, "x2": x, "xs": torch.randn(4, dim, 32), "xn": torch.randn(4, dim, 32),
             "label": torch.tensor([0, 1, 0, 1]), "label_n": torch.tensor([1, 0, 1, 0])}
    parts = module.losses(batch)
    assert parts["feat_stats"] > 0
    parts["feat_stats"].backward()
    assert module.generator.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.ae.parameters())
    # off by default (the paper's objective), and needs the statistics when on
    assert "feat_stats" not in _stats_module(w=0.0).losses(batch)
    assert "feat_stats" not in _stats_module(supervised=False).losses(batch)
    with pytest.raises(ValueError, match="style_stats"):
        StylizerModule(MotionAutoencoder(dim, 16, dim), ContentEncoder(dim, 16, 8, 1),
                       StyleEncoder(dim, 16, 4, n_styles=2), Generator(8, dim, 16, 4, 1),
                       w_feat_stats=1.0, n_styles=2)


def test_style_reconstruction_term_known_answer_and_routing():
    """StarGAN v2's style reconstruction: |E(output) - injected code|, label withheld; the
    encoder is frozen in the term and the target detached, so only the output side learns."""
    torch.manual_seed(0)
    dim, lat = 6, 8
    module = StylizerModule(MotionAutoencoder(dim, 16, lat), ContentEncoder(lat, 16, 8, 1),
                            StyleEncoder(lat, 16, 4, n_styles=2), Generator(8, lat, 16, 4, 1),
                            w_style_rec=1.0, n_styles=2)
    fakes = torch.randn(3, lat, 16, requires_grad=True)
    with torch.no_grad():
        mu = module.style(fakes, None)[0]
    codes = (mu + torch.tensor([0.5, -0.5, 0.25, 0.0])).requires_grad_(True)
    term = module._style_rec_term(fakes, codes)
    assert float(term.detach()) == pytest.approx((0.5 + 0.5 + 0.25 + 0.0) / 4, abs=1e-6)
    assert float(module._style_rec_term(fakes, mu)) == pytest.approx(0.0, abs=1e-7)
    enc = list(module.style.parameters())
    grads = torch.autograd.grad(term, enc + [fakes, codes], allow_unused=True)
    assert all(g is None for g in grads[:len(enc)])
    assert grads[-2] is not None and grads[-2].abs().sum() > 0 and grads[-1] is None
    batch = {"x1": torch.randn(4, dim, 32), "x2": torch.randn(4, dim, 32),
             "xs": torch.randn(4, dim, 32), "xn": torch.randn(4, dim, 32),
             "label": torch.tensor([0, 1, 0, 1]), "label_n": torch.tensor([1, 0, 1, 0])}
    parts = module.losses(batch)
    parts["style_rec"].backward()
    assert module.generator.out.weight.grad.abs().sum() > 0
    module.w["style_rec"] = 0.0
    assert "style_rec" not in module.losses(batch)


def test_rotation_validity_term_known_answer():
    """0 on exact rotations; | |a| - 1 | + | |b| - 1 | + |a . b| per joint and frame otherwise."""
    j, t = 2, 8
    dim = 6 * j
    mean, std = torch.full((dim,), 0.5), torch.full((dim,), 2.0)
    module = StylizerModule(_IdentityAE(dim, 16, dim), ContentEncoder(dim, 16, 8, 1),
                            StyleEncoder(dim, 16, 4), Generator(8, dim, 16, 4, 1),
                            supervised=False, w_rot6d=1.0, rot6d=(0, dim),
                            rot6d_norm=torch.stack([mean, std]))

    def normalised(rot6: torch.Tensor) -> torch.Tensor:        # [J, 3, 2] -> [1, D, T]
        return ((rot6.reshape(-1) - mean) / std)[None, :, None].expand(1, dim, t)

    eye = torch.eye(3)[:, :2]
    exact = torch.stack([eye, torch.tensor([[0.0, -1.0], [1.0, 0.0], [0.0, 0.0]])])
    assert float(module._rot6d_term(normalised(exact))) == pytest.approx(0.0, abs=1e-6)
    bad = exact.clone()
    bad[0, :, 0] *= 2.0                                        # joint 0: |a| = 2
    bad[1, :, 1] = torch.tensor([0.6, 0.8, 0.0])               # joint 1: a . b = 0.8, |b| = 1
    assert float(module._rot6d_term(normalised(bad))) == pytest.approx((1.0 + 0.8) / 2, abs=1e-5)
    with pytest.raises(ValueError, match="rot6d"):
        StylizerModule(_IdentityAE(dim, 16, dim), ContentEncoder(dim, 16, 8, 1),
                       StyleEncoder(dim, 16, 4), Generator(8, dim, 16, 4, 1), w_rot6d=1.0)
