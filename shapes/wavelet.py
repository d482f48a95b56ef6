"""The wavelet-tree codec of WaLa (Sivaram et al. 2024, Sec. 3.1; after Hui et al. 2022 Sec. 3).

A TSDF grid is decomposed with a 3-D DWT (PyWavelets ``wavedecn``; bior6.8, 3 levels,
'symmetric' extension, so a 256^3 grid gives the 46^3 coarse band). The *dense* part is the
coarse band C plus the seven coarsest detail sub-bands D_L (8 channels of the same size); the
finer detail levels are kept *sparse*: the ``top_k`` largest-magnitude coefficients of each level
(indices + values), the rest set to zero. ``top_k=None`` keeps the full tree (lossless up to
float32), ``top_k=0`` keeps only the dense part (what the latent model reconstructs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SUBBANDS = ("aad", "ada", "add", "daa", "dad", "dda", "ddd")


@dataclass
class WaveletConfig:
    """Codec settings: wavelet name, decomposition levels, boundary mode, sparse detail budget."""

    wavelet: str = "bior6.8"
    levels: int = 3
    mode: str = "symmetric"
    top_k: int | None = None


@dataclass
class WaveletTree:
    """A 3-D wavelet tree: dense [8, C, C, C] (coarse + coarsest details) and sparse finer levels.

    ``sparse[j]`` holds level ``levels - 1 - j`` (coarser first) as ``{subband: (flat_idx, vals)}``
    with the sub-band shape in ``shapes[j]``; ``grid_shape`` is the original grid's shape.
    """

    dense: np.ndarray
    sparse: list[dict[str, tuple[np.ndarray, np.ndarray]]]
    shapes: list[tuple[int, ...]]
    grid_shape: tuple[int, ...]
    config: WaveletConfig = field(default_factory=WaveletConfig)

    def nbytes(self) -> int:
        """Storage in bytes: float32 dense values; per finer level the cheaper of sparse storage
        (int32 index + float32 value per kept entry) and dense float32 storage."""
        n = self.dense.size * 4
        for level, shape in zip(self.sparse, self.shapes):
            sparse = sum(len(idx) * 8 for idx, _ in level.values())
            n += min(sparse, 4 * len(SUBBANDS) * int(np.prod(shape)))
        return int(n)

    def n_sparse(self) -> int:
        """Number of kept sparse detail coefficients."""
        return int(sum(len(idx) for level in self.sparse for idx, _ in level.values()))


def _wavedecn(grid: np.ndarray, cfg: WaveletConfig) -> list:
    import pywt

    with warnings.catch_warnings():  # small grids: "all coefficients see boundary effects"
        warnings.simplefilter("ignore", UserWarning)
        return pywt.wavedecn(grid, cfg.wavelet, mode=cfg.mode, level=cfg.levels)


def dense_shape(resolution: int, cfg: WaveletConfig) -> tuple[int, int, int, int]:
    """Shape ``(8, C, C, C)`` of the dense part of a ``resolution^3`` grid (``dwt_coeff_len``)."""
    import pywt

    n = int(resolution)
    for _ in range(cfg.levels):
        n = pywt.dwt_coeff_len(n, pywt.Wavelet(cfg.wavelet).dec_len, cfg.mode)
    return (1 + len(SUBBANDS), n, n, n)


def encode(grid: np.ndarray, cfg: WaveletConfig | None = None) -> WaveletTree:
    """Forward 3-D DWT of ``grid`` into a ``WaveletTree`` (dense part + top-k sparse details).

    Args:
        grid: [R, R, R] float array (a TSDF).
        cfg: codec settings; ``cfg.top_k`` is the number of coefficients kept per finer level
            (all seven sub-bands together), None for all.
    """
    cfg = cfg or WaveletConfig()
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 3:
        raise ValueError(f"expected a 3-D grid, got shape {grid.shape}")
    coeffs = _wavedecn(grid, cfg)
    coarse, coarsest = coeffs[0], coeffs[1]
    dense = np.stack([coarse] + [coarsest[k] for k in SUBBANDS]).astype(np.float32)
    sparse, shapes = [], []
    for level in coeffs[2:]:
        shape = level[SUBBANDS[0]].shape
        shapes.append(tuple(shape))
        stacked = np.stack([level[k].ravel() for k in SUBBANDS])  # [7, n]
        flat = stacked.ravel()
        if cfg.top_k is None or cfg.top_k >= flat.size:
            keep = np.flatnonzero(flat)
        elif cfg.top_k <= 0:
            keep = np.zeros(0, dtype=np.int64)
        else:
            keep = np.argpartition(np.abs(flat), flat.size - cfg.top_k)[-cfg.top_k:]
        band, idx = np.divmod(keep, stacked.shape[1])
        sparse.append({k: (idx[band == b].astype(np.int32),
                           flat[keep[band == b]].astype(np.float32))
                       for b, k in enumerate(SUBBANDS)})
    return WaveletTree(dense, sparse, shapes, tuple(grid.shape), cfg)


def decode(tree: WaveletTree) -> np.ndarray:
    """Inverse 3-D DWT of a tree (dropped details are zero), cropped to the original grid."""
    import pywt

    cfg = tree.config
    dense = np.asarray(tree.dense, dtype=np.float32)
    coeffs: list = [dense[0], {k: dense[i + 1] for i, k in enumerate(SUBBANDS)}]
    for level, shape in zip(tree.sparse, tree.shapes):
        bands = {}
        for k in SUBBANDS:
            arr = np.zeros(int(np.prod(shape)), dtype=np.float32)
            idx, vals = level[k]
            arr[idx] = vals
            bands[k] = arr.reshape(shape)
        coeffs.append(bands)
    out = pywt.waverecn(coeffs, cfg.wavelet, mode=cfg.mode)
    return out[tuple(slice(0, s) for s in tree.grid_shape)].astype(np.float32)


def tree_from_dense(dense: np.ndarray, resolution: int, cfg: WaveletConfig | None = None
                    ) -> WaveletTree:
    """A tree with only the dense part (finer details zero), e.g. from the latent decoder."""
    cfg = cfg or WaveletConfig()
    template = encode(np.zeros((resolution,) * 3, dtype=np.float32),
                      WaveletConfig(cfg.wavelet, cfg.levels, cfg.mode, top_k=0))
    return WaveletTree(np.asarray(dense, dtype=np.float32), template.sparse, template.shapes,
                       (resolution,) * 3, cfg)


def synthesis_matrices(resolution: int, cfg: WaveletConfig) -> tuple[np.ndarray, np.ndarray]:
    """1-D matrices ``lo, hi`` [R, C] of the inverse DWT of the dense part (finer details zero).

    The multilevel inverse DWT (Mallat 1989, the synthesis filter bank) is linear and separable,
    so with every finer detail zero each axis maps the coarse (``a``) or coarsest-detail (``d``)
    coefficients to the grid by a fixed matrix; column i is ``pywt.waverec`` of a unit vector
    (same boundary mode and cropping as ``decode``). ``dense_to_grid`` applies them in torch, which
    makes the decoded TSDF differentiable (used by the autoencoder's SDF-space loss).
    """
    import pywt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zeros = [np.zeros_like(c) for c in pywt.wavedec(np.zeros(resolution), cfg.wavelet,
                                                        mode=cfg.mode, level=cfg.levels)]
        n = len(zeros[0])
        lo, hi = np.zeros((resolution, n)), np.zeros((resolution, n))
        for i in range(n):
            for mat, slot in ((lo, 0), (hi, 1)):
                coeffs = [z.copy() for z in zeros]
                coeffs[slot][i] = 1.0
                mat[:, i] = pywt.waverec(coeffs, cfg.wavelet, mode=cfg.mode)[:resolution]
    return lo, hi


def dense_to_grid(dense: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
                  ) -> torch.Tensor:
    """Dense parts [B, 8, C, C, C] -> grids [B, R, R, R] by ``synthesis_matrices`` (torch).

    Equals ``decode(tree_from_dense(...))`` up to float rounding, and is differentiable. The
    eight channels are laid out as the octants of one [2C]^3 tensor (``a`` = the first C
    entries of an axis, ``d`` the last C), so the synthesis is three matrix products with
    ``[lo | hi]`` (separable, as the inverse DWT itself). ``rows = (ix, iy, iz)`` decodes only
    the grid nodes ``ix x iy x iz`` (a tensor-product sub-grid, [B, len(ix), len(iy), len(iz)]):
    the cost falls from ``O(C R^3)`` to ``O(C K^3)`` for K rows per axis.
    """
    import torch

    b, _, c = dense.shape[:3]
    octants = dense.new_zeros(b, 2 * c, 2 * c, 2 * c)
    for i, key in enumerate(("aaa",) + SUBBANDS):
        sx, sy, sz = (slice(0, c) if k == "a" else slice(c, 2 * c) for k in key)
        octants[:, sx, sy, sz] = dense[:, i]
    mat = torch.cat([lo, hi], dim=1).to(dense.dtype)  # [R, 2C]
    mx, my, mz = (mat, mat, mat) if rows is None else (mat[r] for r in rows)
    out = torch.einsum("bijk,zk->bijz", octants, mz)
    out = torch.einsum("bijz,yj->biyz", out, my)
    return torch.einsum("biyz,xi->bxyz", out, mx)


__all__ = ["SUBBANDS", "WaveletConfig", "WaveletTree", "dense_shape", "encode", "decode",
           "tree_from_dense", "synthesis_matrices", "dense_to_grid"]
