"""The S4D layer's FFT convolution equals the explicit state-space recurrences; the fast
channels-first backbone equals a plain channels-last reference written with stock torch ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from timeseries.module import TSDiffBackbone
from timeseries.s4 import ChannelNorm, GatedTanh, S4DConv, s4d_recurrence


def test_fft_convolution_matches_recurrence(seed: int) -> None:
    conv = S4DConv(channels=3, state=6)
    u = torch.randn(2, 3, 40)
    with torch.no_grad():
        fft, rec = conv(u.transpose(0, 1)).transpose(0, 1), s4d_recurrence(conv.kernel, conv.D, u)
    assert torch.allclose(fft, rec, atol=1e-4 * rec.abs().max().item())


def test_kernel_chunking_is_exact_for_any_length(seed: int) -> None:
    conv = S4DConv(channels=2, state=4)
    k = conv.kernel.kernels(37, chunk=8)
    direct = conv.kernel.kernels(37, chunk=37)
    assert k.shape == (2, 2, 37)
    assert torch.allclose(k, direct, atol=1e-5)


def test_bidirectional_layer_sees_the_future(seed: int) -> None:
    conv = S4DConv(channels=1, state=4)
    u = torch.zeros(1, 1, 20)  # [H, B, L]
    u[0, 0, 15] = 1.0
    with torch.no_grad():
        y = conv(u)[0, 0] - conv.D * u[0, 0]
    assert y[:15].abs().max() > 1e-4  # anticausal kernel reaches back from t = 15
    assert y[15:].abs().max() > 1e-4


def test_cached_kernel_follows_parameter_updates(seed: int) -> None:
    conv = S4DConv(channels=2, state=4).requires_grad_(False)
    u = torch.randn(2, 1, 16)
    with torch.no_grad():
        a = conv(u)
        conv.kernel.C.add_(1.0)
        b = conv(u)
    assert not torch.allclose(a, b)


def test_backbone_shapes_and_step_dependence(seed: int) -> None:
    net = TSDiffBackbone(channels=3, hidden=16, blocks=2)
    x = torch.randn(4, 3, 30)
    out1 = net(x, torch.full((4,), 5.0))
    out2 = net(x, torch.full((4,), 80.0))
    assert out1.shape == x.shape
    assert not torch.allclose(out1, out2)


def test_fft_size_is_fast_and_wrap_free() -> None:
    from timeseries.s4 import fft_size

    for length in (1, 5, 24, 40, 312, 360, 384, 390, 1000):
        n = fft_size(length)
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert n >= 2 * length and n % 2 == 0 and m == 1
        assert n & (n - 1) == 0 or n % 16 == 0
        assert n <= 1 << (2 * length - 1).bit_length()  # never above the power of two
    assert fft_size(360) == 720 and fft_size(390) == 800 and fft_size(1) == 2


@pytest.mark.parametrize("length", [48, 390])
def test_layer_output_does_not_depend_on_the_fft_size(seed: int, length: int,
                                                      monkeypatch) -> None:
    """Any wrap-free FFT size gives the same bidirectional convolution (forward and gradients)."""
    import timeseries.s4 as s4

    torch.manual_seed(seed)
    layer = s4.S4DConv(8, 4)
    u = torch.randn(8, 3, length, requires_grad=True)
    outs = []
    for size in (s4.fft_size(length), 1 << (2 * length - 1).bit_length(), 4 * length):
        monkeypatch.setattr(s4, "fft_size", lambda n, size=size: size)
        y = layer(u)
        grads = torch.autograd.grad((y * torch.cos(y)).sum(), [u, *layer.parameters()])
        outs.append((y.detach(), grads))
    for y, grads in outs[1:]:
        assert torch.allclose(y, outs[0][0], atol=1e-5)
        for g, g0 in zip(grads, outs[0][1]):
            assert torch.allclose(g, g0, atol=1e-4, rtol=1e-4)


def test_fft_conv_gradients_match_autograd(seed: int) -> None:
    from timeseries.s4 import FFTConv, fft_size

    length = 13
    n = fft_size(length)  # 32, not 2L: the adjoints must use the spectrum's own size
    u = torch.randn(2, 3, length, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, n, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, length, dtype=torch.float64)
    spec = torch.fft.rfft(k, n=n)
    (FFTConv.apply(u, spec) * g).sum().backward()
    gu, gk = u.grad.clone(), k.grad.clone()
    u.grad, k.grad = None, None
    ref = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
    (ref * g).sum().backward()
    assert torch.allclose(gu, u.grad, atol=1e-10) and torch.allclose(gk, k.grad, atol=1e-10)


def _toeplitz_s4d(conv: S4DConv, u: torch.Tensor) -> torch.Tensor:
    """S4D map of u [B, L, H] (channels last) as an explicit Toeplitz product of its kernels."""
    length = u.shape[1]
    k = conv.kernel.kernels(length, chunk=length)  # [2, H, L]: causal, anticausal (from t + 1)
    lag = torch.arange(length)[:, None] - torch.arange(length)[None, :]  # t - s
    causal = k[0][:, lag.clamp(min=0)] * (lag >= 0)
    anti = k[1][:, (-lag - 1).clamp(min=0)] * (lag < 0)
    return torch.einsum("hts,bsh->bth", causal + anti, u) + u * conv.D


def _reference_backbone(net: TSDiffBackbone, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Round 2's channels-last forward ([B, L, H], F.linear, F.layer_norm, torch.tanh)."""
    h = torch.relu(F.linear(x.transpose(1, 2), net.input[0].weight, net.input[0].bias))
    emb = net.step_mlp(net.embed(t))
    skips = 0.0
    for blk in net.blocks:
        z = h + F.linear(emb, blk.step.weight, blk.step.bias)[:, None]
        lay = blk.s4
        u = F.layer_norm(z, z.shape[-1:], lay.norm.weight, lay.norm.bias, lay.norm.eps)
        z = z + F.linear(F.gelu(_toeplitz_s4d(lay.ssm, u)), lay.out.weight, lay.out.bias)
        gated = torch.tanh(z) * torch.sigmoid(z)
        res, skip = F.linear(gated, blk.out.weight, blk.out.bias).chunk(2, dim=-1)
        h, skips = h + res, skips + skip
    o1, o2 = net.output[0], net.output[2]
    out = F.linear(torch.relu(F.linear(skips, o1.weight, o1.bias)), o2.weight, o2.bias)
    return out.transpose(1, 2) + (x if net.init_skip else 0.0)


@pytest.mark.parametrize("init_skip", [False, True])
def test_fast_backbone_equals_channels_last_reference(seed: int, init_skip: bool) -> None:
    net = TSDiffBackbone(channels=3, hidden=8, blocks=2, step_emb=16, state=4,
                         init_skip=init_skip).double()
    with torch.no_grad():  # non-trivial norms and biases
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(3, 3, 29, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 41.5, 99.0], dtype=torch.float64)
    g = torch.randn(3, 3, 29, dtype=torch.float64)
    fast, ref = net(x, t), _reference_backbone(net, x, t)
    assert torch.allclose(fast, ref, rtol=1e-10, atol=1e-10)
    grads_fast = torch.autograd.grad((fast * g).sum(), [x, *net.parameters()])
    grads_ref = torch.autograd.grad((ref * g).sum(), [x, *net.parameters()])
    for a, b in zip(grads_fast, grads_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10)


def test_fused_norm_and_gate_pass_gradcheck(seed: int) -> None:
    x = torch.randn(5, 2, 7, dtype=torch.float64, requires_grad=True)  # [H, B, L]
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: ChannelNorm.apply(*a, 1e-5), (x, w, b))
    assert torch.autograd.gradcheck(GatedTanh.apply, (3 * x,))
    ln = F.layer_norm(x.permute(1, 2, 0), (5,), w, b, 1e-5).permute(2, 0, 1)
    assert torch.allclose(ChannelNorm.apply(x, w, b, 1e-5), ln, atol=1e-12)
    assert torch.allclose(GatedTanh.apply(x), torch.tanh(x) * torch.sigmoid(x), atol=1e-12)
