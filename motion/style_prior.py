"""Optional diffusion prior over style codes (EDM, Karras et al. 2022, Eq. 7-8) on the shared core.

An MLP backbone ``F(c_in s, c_noise, label)`` wrapped by :class:`common.denoiser.Preconditioned`
is trained with :class:`common.training.DiffusionModule` on the style encoder's posterior means
of the training windows; labels are dropped with probability ``p_uncond`` so one network gives
both the label-conditional and the unconditional prior. Sampling uses the core's
:func:`common.samplers.sample_heun` (EDM Alg. 2, deterministic) from per-sample seeds.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from common.denoiser import Preconditioned
from common.noise import sigmas_karras
from common.samplers import sample_heun
from common.seeds import randn, sample_generators
from common.training import DiffusionModule, TrainerConfig, make_trainer


class StyleCodeMLP(nn.Module):
    """Backbone: code [B, S] + Fourier features of ``c_noise`` + label embedding -> [B, S]."""

    def __init__(self, dim: int, n_styles: int, hidden: int = 256, freqs: int = 8,
                 p_uncond: float = 0.2) -> None:
        super().__init__()
        self.n_styles, self.p_uncond = n_styles, p_uncond
        self.register_buffer("freqs", 2.0 ** torch.arange(freqs) * math.pi, persistent=False)
        self.label = nn.Embedding(n_styles + 1, hidden)
        self.inp = nn.Linear(dim + 2 * freqs, hidden)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Any = None) -> torch.Tensor:
        if cond is None:
            cond = torch.full((x.shape[0],), self.n_styles, device=x.device)
        elif self.training and self.p_uncond > 0:
            drop = torch.rand(cond.shape, device=cond.device) < self.p_uncond
            cond = torch.where(drop, torch.full_like(cond, self.n_styles), cond)
        ang = c_noise[:, None] * self.freqs
        h = self.inp(torch.cat([x, ang.sin(), ang.cos()], -1)) + self.label(cond)
        return self.net(h)


class DiffusionStylePrior(nn.Module):
    """``fit(codes, labels)``; ``sample(n, label=None, seed=0)`` -> style codes [n, S]."""

    def __init__(self, dim: int, n_styles: int, hidden: int = 256) -> None:
        super().__init__()
        self.dim, self.n_styles = dim, n_styles
        self.denoiser = Preconditioned(StyleCodeMLP(dim, n_styles, hidden), sigma_data=1.0)
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def fit(self, codes: torch.Tensor, labels: torch.Tensor, steps: int = 500,
            batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> DiffusionStylePrior:
        self.shift.copy_(codes.mean(0))
        self.scale.copy_(codes.std(0).clamp_min(1e-3))
        x = (codes - self.shift) / self.scale
        data = [{"x": x[i], "cond": labels[i]} for i in range(len(x))]
        loader = torch.utils.data.DataLoader(data, batch_size=min(batch_size, len(data)),
                                             shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        module = DiffusionModule(self.denoiser, lr=lr)
        cfg = TrainerConfig(max_steps=steps, ema_decay=None, enable_progress_bar=False,
                            seed=seed, accelerator="cpu", devices=1)
        make_trainer(cfg).fit(module, loader)
        self.eval().requires_grad_(False)
        return self

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None, seeds: list[int] | None = None,
               steps: int = 24) -> torch.Tensor:
        """Heun (EDM Alg. 2) from sigma 80 to 0.002; per-sample generators from ``seeds``."""
        gens = sample_generators(seeds or list(range(n)))
        sigmas = sigmas_karras(steps, 0.002, 80.0)
        x = randn((n, self.dim), gens) * sigmas[0].float()
        cond = None if label is None else torch.full((n,), int(label))
        x = sample_heun(self.denoiser, x, sigmas, cond=cond)
        return x * self.scale + self.shift
