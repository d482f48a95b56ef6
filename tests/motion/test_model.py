"""Known-answer checks of the model math: AdaIN, Gaussian KL, shapes and 4x compression."""

from __future__ import annotations

import pytest
import torch

from motion.model import (
    ContentEncoder,
    Generator,
    GlobalMotionPredictor,
    MotionAutoencoder,
    StyleEncoder,
    adain,
    kl_normal,
    n_params,
)
from motion.procedural import skeleton_template
from motion.stylizer import Stylizer, StylizerConfig


def test_adain_sets_the_statistics():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 5, 40, generator=g) * 4 + 2
    gamma, beta = torch.rand(3, 5, generator=g) + 0.5, torch.randn(3, 5, generator=g)
    out = adain(h, gamma, beta, eps=0.0)
    torch.testing.assert_close(out.mean(-1), beta, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1, unbiased=False), gamma, atol=1e-5, rtol=0)
    # AdaIN ignores the input's own statistics: an affine change of h does nothing
    torch.testing.assert_close(adain(3 * h - 7, gamma, beta, eps=0.0), out, atol=1e-4, rtol=0)


def test_kl_closed_forms():
    mu, lv = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    assert kl_normal(mu, lv).item() == 0.0
    # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - log s^2) / 2 per dim
    m, s2 = 1.5, 0.25
    got = kl_normal(torch.tensor([[m]]), torch.tensor([[torch.log(torch.tensor(s2))]]))
    assert abs(got.item() - 0.5 * (s2 + m * m - 1 - torch.log(torch.tensor(s2)).item())) < 1e-6
    # between two Gaussians, against torch.distributions
    a = torch.distributions.Normal(torch.tensor([0.3, -1.0]), torch.tensor([0.7, 2.0]))
    b = torch.distributions.Normal(torch.tensor([1.0, 0.5]), torch.tensor([1.3, 0.4]))
    ours = kl_normal(a.loc[None], (2 * a.scale.log())[None], b.loc[None], (2 * b.scale.log())[None])
    ref = torch.distributions.kl_divergence(a, b).sum()
    assert abs(ours.item() - ref.item()) < 1e-5


def test_shapes_and_temporal_compression():
    d, t = 257, 160
    ae = MotionAutoencoder(d, 32, 16)
    x = torch.randn(2, d, t)
    z = ae.encode(x)
    assert z.shape == (2, 16, t // 4) and ae.decode(z).shape == x.shape
    c = ContentEncoder(16, 32, 8)(z)
    assert c.shape == (2, 8, t // 8)
    mu, lv = StyleEncoder(16, 32, 6, n_styles=3)(z, torch.tensor([0, 3]))
    assert mu.shape == lv.shape == (2, 6)
    assert Generator(8, 16, 32, 6)(c, mu).shape == z.shape
    assert GlobalMotionPredictor(d, 16)(x[:, 3:]).shape == (2, 3, t)


def test_content_code_is_instance_normalised():
    enc = ContentEncoder(16, 32, 8, depth=1)
    z = torch.randn(2, 16, 40)
    # a per-channel offset/scale of the latent (a crude "style" change) barely moves the code
    shifted = z * 3.0 + 5.0
    c0, c1 = enc(z), enc(shifted)
    assert (c0 - c1).abs().max() < 0.1 * c0.abs().max()


def test_paper_sized_model_is_about_19m_parameters():
    st = Stylizer(StylizerConfig())
    st.template, st.styles = skeleton_template(), ["a", "b"]
    st._build()
    total = sum(n_params(m) for m in st.nets.values())
    assert 15e6 < total < 24e6            # GenMoStyle reports ~19 M


def test_generator_injection_modes():
    """``blocks`` keeps the GenMoStyle generator's parameter names (old checkpoints load);
    ``all`` puts an AdaIN with its own style MLP after every hidden convolution."""
    legacy = {"inp.weight", "inp.bias", "up.1.weight", "up.1.bias", "out.weight", "out.bias"}
    for blk in ("blocks.0", "post"):
        legacy |= {f"{blk}.{n}.{p}" for n in ("c1", "c2", "affine") for p in ("weight", "bias")}
    assert set(Generator(8, 16, 32, 6, depth=1).state_dict()) == legacy
    gen = Generator(8, 16, 32, 6, depth=2, injection="all")
    affines = [m for n, m in gen.named_modules() if n.endswith("affine")]
    assert len(affines) == 2 + 2 + 1              # input, up-sampling, 2 res-blocks, post
    assert all(isinstance(a, torch.nn.Sequential) for a in affines)     # per-layer MLPs
    c, s = torch.randn(3, 8, 5), torch.randn(3, 6, requires_grad=True)
    out = gen(c, s)
    assert out.shape == (3, 16, 10)
    grads = torch.autograd.grad(out.square().sum(), [a[-1].weight for a in affines])
    assert all(g.abs().sum() > 0 for g in grads)  # every injection point shapes the output
    with pytest.raises(ValueError, match="blocks, all"):
        Generator(8, 16, 32, 6, injection="nowhere")
