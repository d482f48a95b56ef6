"""UniMat's 3-D U-Net over the periodic-table tensor (Yang et al., ICLR 2024, Sec. 2.2, App. A).

Interleaved 3-D convolutions and self-attention over a [C, 9, 18, L] grid (slots are the depth
axis); the six lattice numbers enter as a global token (added to the time embedding) and are read
out from pooled features. Conditioning for crystal structure prediction is channel-concatenated:
an occupancy channel (1 where the composition puts an atom) and a flag channel (1 when a condition
is given, 0 for the unconditional model of classifier-free guidance).

Position of the element cells (``cell_position``, round 5): UniMat's grid is a fixed layout, not a
translation-invariant image, but 3-D convolutions are shift-equivariant and self-attention without
a positional encoding is permutation-equivariant, so a plain U-Net can tell one element cell from
another only through zero-padding effects at the grid's edges (it cannot learn per-element
frequencies). ``"learned"`` adds a learned [C, 9, 18] embedding per cell (broadcast over the slots)
at the input of the fine level and a [2C, 5, 9] one at the coarse level, like a ViT's learned
position embedding; ``"properties"`` concatenates fixed per-cell channels (element exists, period,
group, Pauling electronegativity, Z) to the input; ``"both"`` does both; ``"none"`` is the
pre-round-5 architecture (old checkpoints).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .representation import COORD_CHANNELS, GRID_COLS, GRID_ROWS, cell_element

COND_CHANNELS = 2
CELL_POSITIONS = ("none", "learned", "properties", "both")
PROPERTY_CHANNELS = 5


def cell_properties() -> torch.Tensor:
    """Fixed per-cell features [5, 9, 18]: element exists, period/7, group/18, X/4, Z/100.

    Period and group of f-block cells are their element's (La-Lu: period 6, group 3); cells that
    hold no element, and elements without a Pauling electronegativity, get 0.
    """
    out = torch.zeros(PROPERTY_CHANNELS, GRID_ROWS, GRID_COLS)
    for r in range(GRID_ROWS):
        for c in range(GRID_COLS):
            el = cell_element(r, c)
            if el is None:
                continue
            with warnings.catch_warnings():  # noble gases, superheavies: no Pauling X
                warnings.simplefilter("ignore")
                x = el.X
            out[:, r, c] = torch.tensor([1.0, el.row / 7, (el.group or 3) / 18,
                                         0.0 if x != x else x / 4, el.Z / 100])
    return out


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class FourierEmbedding(nn.Module):
    """Random Fourier features of the noise level c_noise (EDM's NCSN++ embedding)."""

    def __init__(self, dim: int, scale: float = 4.0) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        x = t[:, None] * self.freqs[None] * 2 * math.pi
        return torch.cat([x.cos(), x.sin()], dim=1)


class ResBlock3d(nn.Module):
    """GroupNorm-SiLU-Conv3d twice with an embedding bias (DDPM residual block, 3-D)."""

    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.GroupNorm(_groups(c_in), c_in), nn.GroupNorm(_groups(c_out), c_out)
        self.c1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.c2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.emb(emb)[:, :, None, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class Attention3d(nn.Module):
    """Multi-head self-attention over all voxels of the grid (element cells x slots)."""

    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *sp = x.shape
        heads = self.attn.num_heads
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B, N, C]
        # nn.MultiheadAttention's weights, explicit matmul-softmax: with head widths of 4-16 this
        # is ~5x faster on CPU than its fused scaled_dot_product_attention kernel (same result)
        q, k, v = F.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, -1, heads, c // heads).transpose(1, 2) for t in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // heads), dim=-1)
        h = (w @ v).transpose(1, 2).reshape(b, -1, c)
        h = self.attn.out_proj(h)
        return x + h.transpose(1, 2).reshape(b, c, *sp)


class UniMatUNet(nn.Module):
    """Backbone ``F(x_flat, c_noise, cond) -> same shape`` for ``common.denoiser.Preconditioned``.

    Args:
        slots: L, slots per element cell.
        slot_channels: numbers per slot (6 coordinates, + 1 occupancy channel by default).
        channels: base width; the second level has twice as many.
        emb_dim: width of the noise/lattice embedding.
        full_res_attention: also attend over the full-resolution grid (the coarse level always
            has attention).
        cell_position: how a voxel knows its element cell: "learned" (per-cell embeddings at both
            levels), "properties" (fixed element-property channels), "both", or "none" (the
            shift-equivariant pre-round-5 net).
    """

    def __init__(self, slots: int, channels: int = 32, emb_dim: int = 128, heads: int = 4,
                 full_res_attention: bool = False, slot_channels: int = COORD_CHANNELS + 1,
                 cell_position: str = "none") -> None:
        super().__init__()
        if cell_position not in CELL_POSITIONS:
            raise ValueError(f"cell_position={cell_position!r}; expected one of {CELL_POSITIONS}")
        self.cell_position = cell_position
        self.slots = slots
        self.grid_shape = (slot_channels, GRID_ROWS, GRID_COLS, slots)
        ch, ch2 = channels, 2 * channels
        self.t_embed = nn.Sequential(FourierEmbedding(emb_dim), nn.Linear(emb_dim, emb_dim),
                                     nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.lat_embed = nn.Sequential(nn.Linear(6, emb_dim), nn.SiLU(),
                                       nn.Linear(emb_dim, emb_dim))
        n_props = PROPERTY_CHANNELS if cell_position in ("properties", "both") else 0
        if n_props:
            self.register_buffer("props", cell_properties(), persistent=False)
        self.inp = nn.Conv3d(slot_channels + COND_CHANNELS + n_props, ch, 3, padding=1)
        self.down1 = ResBlock3d(ch, ch, emb_dim)
        self.pool = nn.Conv3d(ch, ch2, (3, 3, 1), stride=(2, 2, 1), padding=(1, 1, 0))
        if cell_position in ("learned", "both"):
            coarse = ((GRID_ROWS + 1) // 2, (GRID_COLS + 1) // 2)
            self.cell_emb = nn.Parameter(torch.zeros(ch, GRID_ROWS, GRID_COLS))
            self.cell_emb2 = nn.Parameter(torch.zeros(ch2, *coarse))
        self.down2 = ResBlock3d(ch2, ch2, emb_dim)
        self.attn_d = Attention3d(ch2, heads)
        self.mid = ResBlock3d(ch2, ch2, emb_dim)
        self.attn_m = Attention3d(ch2, heads)
        self.up2 = ResBlock3d(2 * ch2, ch2, emb_dim)
        self.attn_u = Attention3d(ch2, heads)
        self.unpool = nn.Conv3d(ch2, ch, 3, padding=1)
        self.up1 = ResBlock3d(2 * ch, ch, emb_dim)
        # attention over all 162 L voxels costs about 2/3 of a step on CPU: optional
        self.attn_1 = Attention3d(ch, heads) if full_res_attention else nn.Identity()
        self.out_norm = nn.GroupNorm(_groups(ch), ch)
        self.out = nn.Conv3d(ch, slot_channels, 3, padding=1)
        self.lat_out = nn.Sequential(nn.Linear(ch2 + emb_dim, emb_dim), nn.SiLU(),
                                     nn.Linear(emb_dim, 6))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Any = None) -> torch.Tensor:
        b, in_dtype = x.shape[0], x.dtype
        x = x.to(self.inp.weight.dtype)  # samplers may carry float64 state
        grid = x[:, :-6].reshape(b, *self.grid_shape)
        lat = x[:, -6:]
        if cond is None:
            cond = grid.new_zeros(b, COND_CHANNELS, *self.grid_shape[1:])
        cond = cond.to(grid.dtype).expand(b, *cond.shape[1:])
        emb = self.t_embed(c_noise.to(grid.dtype)) + self.lat_embed(lat)
        feats = [grid, cond]
        if hasattr(self, "props"):
            feats.append(self.props[None, :, :, :, None].to(grid.dtype).expand(
                b, -1, -1, -1, self.slots))
        h0 = self.inp(torch.cat(feats, dim=1))
        if hasattr(self, "cell_emb"):
            h0 = h0 + self.cell_emb[None, :, :, :, None]
        h1 = self.down1(h0, emb)
        p1 = self.pool(h1)
        if hasattr(self, "cell_emb2"):
            p1 = p1 + self.cell_emb2[None, :, :, :, None]
        h2 = self.attn_d(self.down2(p1, emb))
        m = self.attn_m(self.mid(h2, emb))
        u2 = self.attn_u(self.up2(torch.cat([m, h2], 1), emb))
        u1 = F.interpolate(u2, size=h1.shape[2:], mode="nearest")
        u1 = self.attn_1(self.up1(torch.cat([self.unpool(u1), h1], 1), emb))
        out_grid = self.out(F.silu(self.out_norm(u1)))
        pooled = torch.cat([m.mean(dim=(2, 3, 4)), emb], dim=1)
        return torch.cat([out_grid.reshape(b, -1), self.lat_out(pooled)], dim=1).to(in_dtype)
