"""Networks of the WaLa latent model (Sivaram et al. 2024, Sec. 3.2-3.3), scaled for CPU.

* ``WaveletAutoencoder``: dense wavelet part [8, C^3] -> latent grid [c, L^3] -> back (a
  convolutional autoencoder; WaLa maps the 46^3 tree to a 12^3 x 4 latent).
* ``PointNetEncoder``: PointNet (Qi et al. 2017, Fig. 2 without the T-nets): shared MLP + max
  pool over N surface points, the point-cloud condition.
* ``LatentUNet3D``: a 3-D U-Net denoiser backbone F(c_in x, c_noise, cond) with FiLM time and
  condition embeddings and classifier-free condition dropout (Ho & Salimans 2022, Alg. 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class ResBlock3d(nn.Module):
    """GroupNorm-SiLU-Conv x2 with a residual path and optional FiLM from an embedding."""

    def __init__(self, cin: int, cout: int, emb_dim: int | None = None) -> None:
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(_groups(cin), cin), nn.Conv3d(cin, cout, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(_groups(cout), cout), nn.Conv3d(cout, cout, 3, padding=1)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()
        self.film = nn.Linear(emb_dim, 2 * cout) if emb_dim else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = self.n2(h)
        if self.film is not None and emb is not None:
            scale, shift = self.film(emb)[:, :, None, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.c2(F.silu(h))


class WaveletAutoencoder(nn.Module):
    """Conv autoencoder between the standardised dense wavelet part and a latent grid.

    The dense part [8, C^3] is edge-padded to ``L p`` with ``p = ceil(C / L)`` and patch-embedded
    by a stride-``p`` convolution (as in WaLa's strided encoder), refined by residual blocks at
    the latent resolution, and projected to ``latent_channels``; the decoder mirrors it with a
    stride-``p`` transposed convolution, then crops (all full-resolution work is per patch, which
    keeps it cheap on a CPU).
    Channels are standardised with ``mean``/``std`` buffers (``set_normalization``).
    ``loss`` is the per-sample MSE in standardised units plus, when ``synthesis`` matrices are
    given (``wavelet.synthesis_matrices``), ``sdf_weight`` times the MSE of the decoded TSDF
    against the input's TSDF (in units of ``sdf_scale``, the truncation), weighted up by
    ``1 + surface_boost`` within ``surface_band`` of the surface, plus ``occupancy_weight``
    times a logistic (BCE) loss on the sign of the decoded TSDF (the quantity IoU measures).
    The wavelet-space MSE alone spreads its error evenly, and an SDF error of a few percent of
    the coarse band's scale already erases thin parts (chair legs, shelf boards): held-out IoU
    0.27 without against 0.41 with the SDF term at the same budget (32^3 synthetic furniture).
    With ``kl_weight > 0`` the encoder is variational (Kingma & Welling 2014, Eq. 10; the light
    KL of latent diffusion's autoencoder, Rombach et al. 2022 Sec. 3.1): it outputs a mean and a
    log-variance per latent entry, training decodes a reparameterised sample and adds
    ``kl_weight`` times the per-entry KL to N(0, 1); ``encode`` returns the mean. The KL keeps
    the latent near unit scale and the noise makes the decoder tolerant of small latent errors,
    which is what a diffusion model's samples have.
    With ``grid_rows = K`` smaller than the grid, each step decodes the TSDF terms only on a
    random tensor-product sub-grid of K nodes per axis (``sample_rows``; the same nodes for the
    prediction and the target): the mean over those nodes is an unbiased estimate of the
    full-grid mean (every node is drawn with probability (K/R)^3), at ``O(C K^3)`` instead of
    ``O(C R^3)`` per step, which makes 128^3 and 256^3 trainable on a CPU. ``None`` (or K >= R)
    is the full grid.
    """

    def __init__(self, in_channels: int = 8, dense_size: int = 22, latent_channels: int = 4,
                 latent_size: int = 6, width: int = 32, blocks: int = 2,
                 synthesis: tuple[torch.Tensor, torch.Tensor] | None = None,
                 sdf_weight: float = 0.0, sdf_scale: float = 0.1, surface_band: float = 0.05,
                 surface_boost: float = 10.0, occupancy_weight: float = 0.0,
                 kl_weight: float = 0.0, grid_rows: int | None = None) -> None:
        super().__init__()
        self.grid_rows = None if grid_rows is None else int(grid_rows)
        self.kl_weight = float(kl_weight)
        self.latent_channels = int(latent_channels)
        moments = 2 * latent_channels if self.kl_weight > 0 else latent_channels
        self.occupancy_weight = float(occupancy_weight)
        self.sdf_weight, self.sdf_scale = float(sdf_weight), float(sdf_scale)
        self.surface_band, self.surface_boost = float(surface_band), float(surface_boost)
        if synthesis is not None:  # deterministic from the config: not saved in state_dict
            self.register_buffer("synth_lo", synthesis[0].float(), persistent=False)
            self.register_buffer("synth_hi", synthesis[1].float(), persistent=False)
        else:
            self.synth_lo = self.synth_hi = None
        self.dense_size, self.latent_size = int(dense_size), int(latent_size)
        self.patch = max(1, math.ceil(dense_size / latent_size))
        self.padded = self.patch * self.latent_size
        self.register_buffer("mean", torch.zeros(in_channels))
        self.register_buffer("std", torch.ones(in_channels))
        self.embed = nn.Conv3d(in_channels, width, self.patch, stride=self.patch)
        self.enc_blocks = nn.ModuleList(ResBlock3d(width, width) for _ in range(blocks))
        self.to_latent = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(),
                                       nn.Conv3d(width, moments, 1))
        self.from_latent = nn.Conv3d(latent_channels, width, 3, padding=1)
        self.dec_blocks = nn.ModuleList(ResBlock3d(width, width) for _ in range(blocks))
        self.unpatch = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(),
                                     nn.ConvTranspose3d(width, in_channels, self.patch,
                                                        stride=self.patch))

    @torch.no_grad()
    def set_normalization(self, dense: torch.Tensor) -> None:
        """Per-channel means and ONE scale (the coarse band's std) from dense parts [B, 8, C^3].

        A shared scale keeps the detail bands at their natural (small) size relative to the
        coarse band, so the reconstruction loss is dominated by the coarse shape, as it should.
        """
        self.mean.copy_(dense.mean(dim=(0, 2, 3, 4)))
        self.std.fill_(float(dense[:, 0].std().clamp_min(1e-6)))

    def standardize(self, dense: torch.Tensor) -> torch.Tensor:
        return (dense - self.mean[:, None, None, None]) / self.std[:, None, None, None]

    def unstandardize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std[:, None, None, None] + self.mean[:, None, None, None]

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Standardised dense part -> (latent mean, log-variance or None if deterministic)."""
        lo = (self.padded - self.dense_size) // 2
        hi = self.padded - self.dense_size - lo
        h = self.embed(F.pad(x, (lo, hi) * 3, mode="replicate"))
        for block in self.enc_blocks:
            h = block(h)
        h = self.to_latent(h)
        if self.kl_weight <= 0:
            return h, None
        mean, logvar = h.split(self.latent_channels, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised dense part [B, 8, C^3] -> latent [B, c, L^3] (the posterior mean)."""
        return self.moments(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent [B, c, L^3] -> standardised dense part [B, 8, C^3]."""
        h = self.from_latent(z)
        for block in self.dec_blocks:
            h = block(h)
        lo = (self.padded - self.dense_size) // 2
        sl = slice(lo, lo + self.dense_size)
        return self.unpatch(h)[:, :, sl, sl, sl]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training reconstruction: (decoded posterior sample, per-sample mean KL to N(0, 1)).

        Deterministic (``kl_weight == 0``): the decoded encoding and a zero KL.
        """
        mean, logvar = self.moments(x)
        if logvar is None:
            return self.decode(mean), mean.new_zeros(len(mean))
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * noise
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar)
        return self.decode(z), kl.flatten(1).mean(1)

    def sample_rows(self, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Sorted random node indices per axis (K = ``grid_rows`` of R, without replacement) for
        the sub-grid TSDF terms; None when the full grid is used."""
        r = self.synth_lo.shape[0]
        if self.grid_rows is None or self.grid_rows >= r:
            return None
        dev = self.synth_lo.device
        return tuple(torch.randperm(r, generator=generator, device=dev)[: self.grid_rows].sort()
                     .values for _ in range(3))

    def loss(self, x0: torch.Tensor, cond: Any = None, mask: torch.Tensor | None = None,
             generator: Any = None) -> torch.Tensor:
        """Per-sample MSE of the standardised dense part (``x0`` standardised) + the TSDF term
        (+ the KL term when variational)."""
        out, kl = self.reconstruct(x0, generator)
        loss = ((out - x0) ** 2).flatten(1).mean(1) + self.kl_weight * kl
        if self.sdf_weight > 0 and self.synth_lo is not None:
            from .wavelet import dense_to_grid

            gen = generator if isinstance(generator, torch.Generator) else None
            rows = self.sample_rows(gen)
            pred = dense_to_grid(self.unstandardize(out), self.synth_lo, self.synth_hi, rows)
            with torch.no_grad():
                target = dense_to_grid(self.unstandardize(x0), self.synth_lo, self.synth_hi,
                                       rows)
                w = 1 + self.surface_boost * (target.abs() < self.surface_band).float()
            sdf = (w * (pred - target) ** 2).flatten(1).mean(1) / self.sdf_scale ** 2
            loss = loss + self.sdf_weight * sdf
            if self.occupancy_weight > 0:  # logistic loss on inside/outside, width ~ half a voxel
                logits = -pred / (0.5 * self.surface_band / 1.5)
                occ = F.binary_cross_entropy_with_logits(logits, (target < 0).float(),
                                                         reduction="none")
                loss = loss + self.occupancy_weight * occ.flatten(1).mean(1)
        return loss


class PointNetEncoder(nn.Module):
    """PointNet global feature (Qi et al. 2017): shared MLP 3-64-128-256, max pool, linear."""

    def __init__(self, out_dim: int = 128, width: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv1d(3, width, 1), nn.SiLU(),
                                 nn.Conv1d(width, 2 * width, 1), nn.SiLU(),
                                 nn.Conv1d(2 * width, 4 * width, 1))
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(4 * width, out_dim))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """[B, N, 3] points -> [B, out_dim], invariant to the order of the points."""
        return self.head(self.mlp(points.transpose(1, 2)).amax(dim=2))


def fourier_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of a scalar per sample (Vaswani et al. 2017, as in DDPM/EDM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * 100 * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class LatentUNet3D(nn.Module):
    """A two-level 3-D U-Net over the latent grid, conditioned on noise level and a point cloud.

    ``cond`` is None (unconditional), a [B, N, 3] tensor, or a dict with ``points`` and an
    optional boolean ``drop`` [B]. In training mode each sample's condition is replaced by the
    learned null embedding with probability ``cond_drop`` (classifier-free guidance training).
    With ``point_grid = (origin, cell)`` the points also enter as an extra input channel, their
    occupancy of the latent cells (``point_occupancy``; all zeros when the condition is dropped).
    """

    def __init__(self, channels: int = 4, width: int = 64, emb_dim: int = 128,
                 condition: str = "none", cond_drop: float = 0.1,
                 point_grid: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.point_grid = None if condition == "none" or point_grid is None else \
            (float(point_grid[0]), float(point_grid[1]))
        if condition not in ("none", "points"):
            raise ValueError(f"condition must be 'none' or 'points', got {condition!r}")
        self.condition, self.cond_drop, self.emb_dim = condition, float(cond_drop), emb_dim
        self.time = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(),
                                  nn.Linear(emb_dim, emb_dim))
        if condition == "points":
            self.cond_encoder = PointNetEncoder(emb_dim)
            self.null = nn.Parameter(torch.zeros(emb_dim))
        self.inp = nn.Conv3d(channels + (self.point_grid is not None), width, 3, padding=1)
        self.d1 = ResBlock3d(width, width, emb_dim)
        self.down = nn.Conv3d(width, 2 * width, 3, stride=2, padding=1)
        self.m1 = ResBlock3d(2 * width, 2 * width, emb_dim)
        self.m2 = ResBlock3d(2 * width, 2 * width, emb_dim)
        self.u1 = ResBlock3d(3 * width, width, emb_dim)
        self.u2 = ResBlock3d(width, width, emb_dim)
        self.out = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(),
                                 nn.Conv3d(width, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def _cond_embedding(self, cond: Any, batch: int, device: torch.device
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(embedding, points, keep mask) of a condition; None parts where there is none."""
        if self.condition == "none":
            return None, None, None
        null = self.null[None].expand(batch, -1)
        if cond is None:
            return null, None, None
        points, drop = (cond.get("points"), cond.get("drop")) if isinstance(cond, dict) \
            else (cond, None)
        if points is None:
            return null, None, None
        points = points.to(device)
        emb = self.cond_encoder(points)
        if drop is None and self.training and self.cond_drop > 0:
            drop = torch.rand(batch, device=device) < self.cond_drop
        keep = None
        if drop is not None:
            emb = torch.where(drop.to(device)[:, None], null, emb)
            keep = ~drop.to(device)
        return emb, points, keep

    def point_occupancy(self, points: torch.Tensor, size: int) -> torch.Tensor:
        """[B, N, 3] unit-cube points -> [B, 1, size^3] grid: 1 where a latent cell holds a point.

        Latent cell k spans ``origin + cell * [k, k + 1)`` on every axis (``point_grid``), so the
        condition is spatially aligned with the latent (as in grid-based point encoders, e.g.
        Peng et al. 2020, ConvONet), which a CPU budget learns far faster than a global code.
        """
        origin, cell = self.point_grid
        idx = ((points.float() - origin) / cell).floor().long().clamp(0, size - 1)
        flat = (idx[..., 0] * size + idx[..., 1]) * size + idx[..., 2]
        grid = torch.zeros(points.shape[0], size ** 3, device=points.device)
        grid.scatter_(1, flat, 1.0)
        return grid.view(-1, 1, size, size, size)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Any = None) -> torch.Tensor:
        dtype = self.inp.weight.dtype  # a sampler may hand over a float64 state
        x, c_noise = x.to(dtype), c_noise.to(dtype)
        emb = self.time(fourier_embedding(c_noise, self.emb_dim))
        c, points, keep = self._cond_embedding(cond, x.shape[0], x.device)
        if c is not None:
            emb = emb + c
        if self.point_grid is not None:
            size = x.shape[-1]
            if points is None:
                grid = x.new_zeros(x.shape[0], 1, size, size, size)
            else:
                grid = self.point_occupancy(points, size).to(dtype)
                if keep is not None:
                    grid = grid * keep.to(dtype)[:, None, None, None, None]
            x = torch.cat([x, grid], dim=1)
        h0 = self.d1(self.inp(x), emb)
        h = self.m2(self.m1(self.down(h0), emb), emb)
        h = F.interpolate(h, size=h0.shape[2:], mode="trilinear", align_corners=False)
        h = self.u2(self.u1(torch.cat([h, h0], dim=1), emb), emb)
        return self.out(h)


__all__ = ["ResBlock3d", "WaveletAutoencoder", "PointNetEncoder", "LatentUNet3D",
           "fourier_embedding"]
