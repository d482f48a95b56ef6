"""TSDiff's denoising backbone (Kollovieh et al. 2023, Sec. 3 and App. B): an SSSD-style residual
network of bidirectional S4 blocks with a sinusoidal diffusion-step embedding (Alcaraz & Strodthoff
2022), predicting the noise eps of a window [B, C, L] (channel 0 the target, then its lags).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from common.denoiser import EpsDenoiser
from common.noise import DiscreteSchedule, linear_betas

from .s4 import GatedTanh, S4DLayer, dense


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal embedding of a (possibly fractional) diffusion step (Vaswani et al. Eq. 5)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.float()[:, None] * self.freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """S4 block: step embedding added, S4 layer, gated tanh * sigmoid, residual + skip outputs.

    Activations are channels-outermost [H, B, L]; the parameters are ``nn.Linear``s applied by
    ``dense`` (the same state dict as the channels-last layout of earlier rounds).
    """

    def __init__(self, hidden: int, state: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.step = nn.Linear(hidden, hidden)
        self.s4 = S4DLayer(hidden, state, dropout)
        self.out = nn.Linear(hidden, 2 * hidden)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = GatedTanh.apply(self.s4(x + self.step(emb).t()[:, :, None]))
        res, skip = dense(self.out, h).chunk(2, dim=0)
        return x + res, skip


class TSDiffBackbone(nn.Module):
    """eps_theta(x_t, t) for windows x_t of shape [B, C, L] (SSSD/TSDiff backbone).

    Args:
        channels: input channels C (1 + number of lags).
        hidden: width of the residual stream (TSDiff: 64).
        blocks: number of residual S4 blocks (TSDiff: 3).
        step_emb: size of the sinusoidal step embedding.
        state: complex S4D modes per channel and direction.
        init_skip: add the input to the output (TSDiff's ``init_skip``).
        dropout: dropout inside the S4 layers.
    """

    def __init__(self, channels: int = 1, hidden: int = 64, blocks: int = 3, step_emb: int = 128,
                 state: int = 32, init_skip: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.input = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU())
        self.embed = SinusoidalEmbedding(step_emb)
        self.step_mlp = nn.Sequential(nn.Linear(step_emb, hidden), nn.SiLU(),
                                      nn.Linear(hidden, hidden), nn.SiLU())
        self.blocks = nn.ModuleList(ResidualBlock(hidden, state, dropout) for _ in range(blocks))
        self.output = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, channels))
        self.init_skip = init_skip

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        h = torch.relu(dense(self.input[0], x.transpose(0, 1)))  # [H, B, L] throughout
        emb = self.step_mlp(self.embed(t))
        skips = 0.0
        for block in self.blocks:
            h, s = block(h, emb)
            skips = skips + s
        out = dense(self.output[2], torch.relu(dense(self.output[0], skips))).transpose(0, 1)
        return out + x if self.init_skip else out


def tsdiff_denoiser(channels: int = 1, hidden: int = 64, blocks: int = 3, steps: int = 100,
                    beta_start: float = 1e-4, beta_end: float = 0.1, **kwargs: Any) -> EpsDenoiser:
    """TSDiff's diffusion: eps-prediction DDPM, linear betas 1e-4..0.1 over 100 steps (App. B.2)."""
    backbone = TSDiffBackbone(channels, hidden, blocks, **kwargs)
    return EpsDenoiser(backbone, DiscreteSchedule(linear_betas(steps, beta_start, beta_end)))


def compile_backbone(backbone: nn.Module, **options: Any) -> nn.Module:
    """Replace ``backbone.forward`` by ``torch.compile(forward)`` (inductor), falling back to eager.

    Only the bound method is swapped, so the state dict (and checkpoints) stay unchanged. If the
    first compiled call fails (no C++ compiler, an unsupported op), a warning is issued and the
    eager forward is used from then on. On a 1-thread CPU the compiled backbone is ~7% faster
    after ~90 s of compilation (benchmarks/results/timeseries.md): worth it for long training.
    """
    eager = backbone.forward
    compiled = torch.compile(eager, **options)

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        try:
            return compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any compiler failure means: run eagerly
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager "
                          "TSDiff backbone", RuntimeWarning, stacklevel=2)
            backbone.forward = eager
            return eager(*args, **kwargs)

    backbone.forward = forward
    return backbone
