"""The S4D layer's FFT convolution equals the explicit state-space recurrences."""

from __future__ import annotations

import torch

from timeseries.module import TSDiffBackbone
from timeseries.s4 import S4DConv, s4d_recurrence


def test_fft_convolution_matches_recurrence(seed: int) -> None:
    conv = S4DConv(channels=3, state=6)
    u = torch.randn(2, 40, 3)
    with torch.no_grad():
        fft, rec = conv(u), s4d_recurrence(conv.kernel, conv.D, u)
    assert torch.allclose(fft, rec, atol=1e-4 * rec.abs().max().item())


def test_kernel_chunking_is_exact_for_any_length(seed: int) -> None:
    conv = S4DConv(channels=2, state=4)
    k = conv.kernel.kernels(37, chunk=8)
    direct = conv.kernel.kernels(37, chunk=37)
    assert k.shape == (2, 2, 37)
    assert torch.allclose(k, direct, atol=1e-5)


def test_bidirectional_layer_sees_the_future(seed: int) -> None:
    conv = S4DConv(channels=1, state=4)
    u = torch.zeros(1, 20, 1)
    u[0, 15, 0] = 1.0
    with torch.no_grad():
        y = conv(u)[0, :, 0] - conv.D * u[0, :, 0]
    assert y[:15].abs().max() > 1e-4  # anticausal kernel reaches back from t = 15
    assert y[15:].abs().max() > 1e-4


def test_cached_kernel_follows_parameter_updates(seed: int) -> None:
    conv = S4DConv(channels=2, state=4).requires_grad_(False)
    u = torch.randn(1, 16, 2)
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

    for length in (1, 5, 24, 40, 360, 384, 390):
        n = fft_size(length)
        m = n
        while m % 2 == 0:
            m //= 2
        assert n >= 2 * length and n % 2 == 0 and m in (1, 3)
        assert n < 4 * length  # the smallest such size is below 4L (2^a or 3 2^a)
    assert fft_size(360) == 768


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
