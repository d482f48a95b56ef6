"""GenMoStyle networks (Guo et al. ICLR 2024, Sec. 3-4): motion AE, content/style encoders, AdaIN G.

All modules are 1-D convolutions over time on channels-first tensors ``[B, C, T]``:

* :class:`MotionAutoencoder` maps features ``[B, D, T]`` to latents ``[B, L, T/4]`` and back
  (two stride-2 convolutions, nearest upsampling in the decoder).
* :class:`ContentEncoder` turns a latent into a deterministic content code ``[B, Cc, T/8]`` with
  instance normalisation (which strips the per-channel statistics that carry style).
* :class:`StyleEncoder` gives a diagonal Gaussian ``q(s | z, label)`` over a global style code
  (labels optional: ``label == n_styles`` means "unknown", used for label dropout).
* :class:`Generator` decodes a content code into a latent, injecting the style code by AdaIN
  ``gamma(s) * (h - mu(h)) / sigma(h) + beta(s)`` (Huang & Belongie 2017, Eq. 8).
* :class:`GlobalMotionPredictor` predicts the root velocity channels from the local motion.
"""

from __future__ import annotations

import torch
from torch import nn


def adain(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
          ) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017, Eq. 8): channel statistics over time set to (beta, gamma)."""
    mu = h.mean(dim=-1, keepdim=True)
    sd = (h.var(dim=-1, keepdim=True, unbiased=False) + eps).sqrt()
    return gamma.unsqueeze(-1) * (h - mu) / sd + beta.unsqueeze(-1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor, mu2: torch.Tensor | None = None,
              logvar2: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(mu2, e^logvar2)) summed over the last dim; N(0, I) by default."""
    if mu2 is None:
        mu2, logvar2 = torch.zeros_like(mu), torch.zeros_like(logvar)
    return 0.5 * (logvar2 - logvar + (logvar.exp() + (mu - mu2) ** 2) / logvar2.exp() - 1).sum(-1)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, stride=stride, padding=(k - stride + 1) // 2,
                     padding_mode="replicate")


class _Res(nn.Module):
    def __init__(self, ch: int, norm: bool) -> None:
        super().__init__()
        self.c1, self.c2 = _conv(ch, ch), _conv(ch, ch)
        self.n1 = nn.InstanceNorm1d(ch) if norm else nn.Identity()
        self.n2 = nn.InstanceNorm1d(ch) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.n2(self.c2(self.act(self.n1(self.c1(x)))))


class MotionAutoencoder(nn.Module):
    """Features [B, D, T] <-> latents [B, L, T/4] (GenMoStyle's 4x temporal compression)."""

    def __init__(self, dim: int, hidden: int = 256, latent: int = 128, depth: int = 1) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            _conv(dim, hidden), act, _conv(hidden, hidden, 4, 2), act,
            *[_Res(hidden, False) for _ in range(depth)], _conv(hidden, hidden, 4, 2), act,
            *[_Res(hidden, False) for _ in range(depth)], _conv(hidden, latent))
        self.decoder = nn.Sequential(
            _conv(latent, hidden), act, *[_Res(hidden, False) for _ in range(depth)],
            nn.Upsample(scale_factor=2), _conv(hidden, hidden), act,
            *[_Res(hidden, False) for _ in range(depth)],
            nn.Upsample(scale_factor=2), _conv(hidden, hidden), act, _conv(hidden, dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class ContentEncoder(nn.Module):
    """Latent [B, L, T/4] -> content code [B, Cc, T/8], instance-normalised (deterministic)."""

    def __init__(self, latent: int, hidden: int = 256, content: int = 128, depth: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _conv(latent, hidden), nn.InstanceNorm1d(hidden), nn.LeakyReLU(0.2),
            _conv(hidden, hidden, 4, 2), nn.InstanceNorm1d(hidden), nn.LeakyReLU(0.2),
            *[_Res(hidden, True) for _ in range(depth)], _conv(hidden, content))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class StyleEncoder(nn.Module):
    """Latent (+ optional label) -> (mu, logvar) of the style code [B, S]."""

    def __init__(self, latent: int, hidden: int = 256, style: int = 64, n_styles: int = 0) -> None:
        super().__init__()
        self.n_styles = n_styles
        self.net = nn.Sequential(
            _conv(latent, hidden), nn.LeakyReLU(0.2), _conv(hidden, hidden, 4, 2),
            nn.LeakyReLU(0.2), _conv(hidden, hidden, 4, 2), nn.LeakyReLU(0.2))
        self.label = nn.Embedding(n_styles + 1, hidden) if n_styles > 0 else None
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, 2 * style))

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(z).mean(-1)
        if self.label is not None:
            if label is None:
                label = torch.full((z.shape[0],), self.n_styles, device=z.device)
            h = h + self.label(label)
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 5)


def _style_affine(style: int, out: int, mlp: bool) -> nn.Module:
    """Style code -> AdaIN (gamma - 1, beta): one linear map (``mlp=False``) or a per-layer
    two-layer MLP (StarGAN v2, Choi et al. 2020, Sec. 2: a style-specific mapping per layer)."""
    if not mlp:
        return nn.Linear(style, out)
    return nn.Sequential(nn.Linear(style, max(style, 64)), nn.LeakyReLU(0.2),
                         nn.Linear(max(style, 64), out))


class _AdaINRes(nn.Module):
    def __init__(self, ch: int, style: int, mlp: bool = False) -> None:
        super().__init__()
        self.c1, self.c2 = _conv(ch, ch), _conv(ch, ch)
        self.affine = _style_affine(style, 4 * ch, mlp)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = self.affine(s).chunk(4, dim=-1)
        h = self.act(adain(self.c1(x), 1 + g1, b1))
        return x + adain(self.c2(h), 1 + g2, b2)


class _AdaINConv(nn.Module):
    """A convolution followed by AdaIN from its own style MLP and a LeakyReLU."""

    def __init__(self, cin: int, cout: int, style: int) -> None:
        super().__init__()
        self.conv, self.affine = _conv(cin, cout), _style_affine(style, 2 * cout, True)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        g, b = self.affine(s).chunk(2, dim=-1)
        return self.act(adain(self.conv(x), 1 + g, b))


class Generator(nn.Module):
    """Content code [B, Cc, T/8] + style code [B, S] -> latent [B, L, T/4] (AdaIN res-blocks).

    ``injection="blocks"`` (GenMoStyle): AdaIN inside the residual blocks, one linear map per
    block; ``"all"``: AdaIN after every hidden convolution (input, residual and upsampling
    ones), each with its own two-layer style MLP, so no layer can ignore the code.
    """

    def __init__(self, content: int, latent: int, hidden: int = 256, style: int = 64,
                 depth: int = 2, injection: str = "blocks") -> None:
        super().__init__()
        if injection not in ("blocks", "all"):
            raise ValueError(f"injection={injection!r}; valid: blocks, all")
        mlp = injection == "all"
        self.inp = _conv(content, hidden)
        self.inp_style = _AdaINConv(hidden, hidden, style) if mlp else None
        self.blocks = nn.ModuleList([_AdaINRes(hidden, style, mlp) for _ in range(depth)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), _conv(hidden, hidden),
                                nn.LeakyReLU(0.2)) if not mlp else nn.Upsample(scale_factor=2)
        self.up_style = _AdaINConv(hidden, hidden, style) if mlp else None
        self.post = _AdaINRes(hidden, style, mlp)
        self.out = _conv(hidden, latent)

    def forward(self, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.inp(c)
        if self.inp_style is not None:
            h = self.inp_style(h, s)
        for blk in self.blocks:
            h = blk(h, s)
        h = self.up(h)
        if self.up_style is not None:
            h = self.up_style(h, s)
        return self.out(self.post(h, s))


class GlobalMotionPredictor(nn.Module):
    """Root angular + linear velocity (3 channels) from the other feature channels [B, D-3, T]."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(_conv(dim - 3, hidden, 5), nn.LeakyReLU(0.2),
                                 _conv(hidden, hidden, 5), nn.LeakyReLU(0.2), _conv(hidden, 3, 5))

    def forward(self, x_local: torch.Tensor) -> torch.Tensor:
        return self.net(x_local)


class LatentStyleClassifier(nn.Module):
    """Style label logits [B, K] from an AE latent [B, L, T/4] (the auxiliary classifier term)."""

    def __init__(self, latent: int, hidden: int, n_styles: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_conv(latent, hidden), nn.LeakyReLU(0.2),
                                 _conv(hidden, hidden, 4, 2), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, n_styles)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(z).mean(-1))


class CodeClassifier(nn.Module):
    """Labels [B, K] from a global code [B, S] (the content adversary on the style code)."""

    def __init__(self, code: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, n_classes))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


def n_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
