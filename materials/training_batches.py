"""Training batches of ``CrystalGenerator``: slot permutation, condition dropout, loss weights.

UniMat (Yang et al., ICLR 2024) trains one network for free generation and crystal structure
prediction by dropping the composition condition (classifier-free guidance, Ho & Salimans 2022);
the per-entry and per-row loss weights below decide how the two tasks share the EDM loss (Eq. 8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from common.errors import ConfigError

from .representation import UniMatEncoder, permute_slots

if TYPE_CHECKING:
    from .generator import GeneratorConfig


class TensorSet(Dataset):
    """The encoded set, repeated ``repeats`` times so that tiny sets still give long epochs."""

    def __init__(self, x: np.ndarray, occ: np.ndarray, repeats: int = 1) -> None:
        self.x, self.occ, self.repeats = x, occ, repeats

    def __len__(self) -> int:
        return len(self.x) * self.repeats

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        i = i % len(self.x)
        return self.x[i], self.occ[i]


class TrainingCollate:
    """Batch -> {x, cond, mask}: slot permutation, condition dropout, loss shares as weights."""

    def __init__(self, enc: UniMatEncoder, cfg: GeneratorConfig, seed: int,
                 cell_freq: np.ndarray | None = None) -> None:
        self.enc, self.cfg = enc, cfg
        self.rng = np.random.default_rng(seed)
        self.cell_w = None
        if cfg.cell_weight_power and cell_freq is not None:
            self.cell_w = cell_weights(cell_freq, enc.grid_shape, cfg.cell_weight_power)

    def __call__(self, items: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
        x = np.stack([a for a, _ in items])
        occ = np.stack([o for _, o in items])[:, None]  # [B, 1, 9, 18, L]
        x, occ = permute_slots(x, self.enc.grid_shape, self.rng, occ)
        b = len(x)
        keep = (self.rng.random(b) >= self.cfg.p_uncond).astype(np.float64)
        cond = np.concatenate([occ * keep[:, None, None, None, None],
                               np.broadcast_to(keep[:, None, None, None, None], occ.shape)], 1)
        mask = loss_weights(occ[:, 0], self.enc.grid_shape, self.cfg, keep, self.cell_w)
        return {"x": torch.as_tensor(x, dtype=torch.float32),
                "cond": torch.as_tensor(cond, dtype=torch.float32),
                "mask": torch.as_tensor(mask, dtype=torch.float32),
                "weight": torch.as_tensor(row_weights(keep, self.cfg), dtype=torch.float32)}


def row_weights(keep: np.ndarray, cfg: GeneratorConfig) -> np.ndarray:
    """Per-row loss weights: unconditional rows (``keep`` = 0) carry ``cfg.uncond_share``.

    With dropout probability p the unconditional rows are a fraction p of a batch; weighting
    them by k = s (1 - p) / (p (1 - s)) gives them an expected share s of the batch loss. The
    weight is a function of the dropout draw alone (independent of x0), so the minimiser of each
    task's loss is unchanged (``DiffusionModule`` averages rows by these weights).
    """
    keep = np.asarray(keep, dtype=np.float64)
    share, p = cfg.uncond_share, cfg.p_uncond
    if share is None or not 0 < p < 1:
        return np.ones_like(keep)
    if not 0 < share < 1:
        raise ConfigError(f"uncond_share={share!r}; expected a number in (0, 1) or None")
    k = share * (1 - p) / (p * (1 - share))
    return np.where(keep > 0.5, 1.0, k)


def cell_frequency(occ: np.ndarray) -> np.ndarray:
    """[9, 18] share of the training crystals with at least one atom in each element cell."""
    return (np.asarray(occ).sum(-1) > 0.5).mean(0)


def cell_weights(freq: np.ndarray, grid_shape: tuple[int, ...], power: float,
                 floor: float = 0.01) -> np.ndarray:
    """[D_grid] per-entry weights f_cell^-power (mean 1) for the unconditional rows.

    A cell's weight depends on the cell index alone (training-set statistics), never on x0,
    so a weighted MSE is still minimised entry by entry by the posterior mean E[x0 | x_t]:
    the weights only decide where a finite network spends its capacity. Cells never occupied
    in training count as f = 1 (the lowest weight).
    """
    f = np.where(freq > 0, np.clip(freq, floor, 1.0), 1.0)
    w = np.broadcast_to((f ** -float(power))[None, :, :, None], grid_shape).reshape(-1)
    return w / w.mean()


def loss_weights(occ: np.ndarray, grid_shape: tuple[int, ...], cfg: GeneratorConfig,
                  keep: np.ndarray | None = None, cell_w: np.ndarray | None = None
                  ) -> np.ndarray:
    """Per-entry loss weights (EDM Eq. 8's per-entry mean, reweighted; normalised to mean 1).

    Rows whose composition is given (``keep`` = 1) give occupied slots, empty slots and lattice
    their configured shares: the weights are then a function of the condition, so the optimal
    denoiser is still the conditional posterior mean. Rows trained unconditionally (``keep`` = 0)
    get weights that do not depend on x0 (``cfg.uncond_loss="uniform"``: lattice share, the rest
    spread evenly), because a weighted MSE with weights w(x0) is minimised by the tilted mean
    E[w x0 | x_t] / E[w | x_t], not by E[x0 | x_t].
    """
    b = occ.shape[0]
    keep = np.ones(b) if keep is None else np.asarray(keep, dtype=np.float64)
    per = np.broadcast_to(occ[:, None], (b, *grid_shape)).reshape(b, -1)
    n_occ = per.sum(1, keepdims=True).clip(1)
    n_emp = (1 - per).sum(1, keepdims=True).clip(1)
    empty_share = 1 - cfg.lattice_share - cfg.occupied_share
    w = per * cfg.occupied_share / n_occ + (1 - per) * empty_share / n_emp
    if cfg.uncond_loss in ("uniform", "channel"):
        flat = np.full((1, w.shape[1]), (1 - cfg.lattice_share) / w.shape[1])
        if cfg.uncond_loss == "channel":
            chan = np.zeros(grid_shape)
            chan[-1] = cfg.occupancy_loss_share / chan[-1].size
            chan[:-1] = (1 - cfg.occupancy_loss_share) / chan[:-1].size
            flat = (1 - cfg.lattice_share) * chan.reshape(1, -1)
        if cell_w is not None:  # x0-independent per-cell weights (same total)
            flat = flat * cell_w[None] / (flat * cell_w[None]).sum() * flat.sum()
        w = np.where(keep[:, None] > 0.5, w, flat)
    elif cfg.uncond_loss != "shares":
        raise ConfigError(f"uncond_loss={cfg.uncond_loss!r}; expected 'uniform', 'channel' or "
                          "'shares'")
    lat = np.full((b, 6), cfg.lattice_share / 6)
    return np.concatenate([w, lat], 1) * w.shape[1]
