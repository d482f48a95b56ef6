"""The two training stages of WaLa (Sivaram et al. 2024, Sec. 3.2 then 3.3) through Lightning.

Both stages use ``common.training.DiffusionModule`` (anything with a per-sample ``.loss``) and
``make_trainer`` (EMA, ``last.ckpt`` for resuming). An "epoch" is at least ``MIN_EPOCH_BATCHES``
batches drawn with replacement, so a small corpus does not write a checkpoint every few steps.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from common.training import DiffusionModule, TrainerConfig, make_trainer

if TYPE_CHECKING:
    from .model import ShapeModel

MIN_EPOCH_BATCHES = 25


class CosineModule(DiffusionModule):
    """``DiffusionModule`` with linear warm-up then cosine decay to 0 over ``total_steps``
    (Loshchilov & Hutter 2017, SGDR without restarts): short CPU budgets end at a low rate."""

    def __init__(self, model: torch.nn.Module, lr: float, warmup_steps: int, total_steps: int
                 ) -> None:
        super().__init__(model, lr=lr, warmup_steps=warmup_steps)
        self.total_steps = max(int(total_steps), warmup_steps + 1)

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warm, total = max(1, self.warmup_steps), self.total_steps

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / (total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class LatentPointDataset(Dataset):
    """Latents with a fresh random subset of each shape's surface-point pool as the condition."""

    def __init__(self, latents: torch.Tensor, points: torch.Tensor | None, n_points: int) -> None:
        self.latents, self.points, self.n_points = latents, points, n_points

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.points is None:
            return {"x": self.latents[i]}
        pool = self.points[i]
        idx = torch.randperm(len(pool))[: self.n_points]
        return {"x": self.latents[i], "cond": pool[idx]}


def _loader(dataset: Dataset, batch_size: int) -> DataLoader:
    bs = max(1, min(batch_size, len(dataset)))
    sampler = RandomSampler(dataset, replacement=True,
                            num_samples=max(len(dataset), MIN_EPOCH_BATCHES * bs))
    return DataLoader(dataset, batch_size=bs, sampler=sampler, num_workers=0)


def _fit(module: DiffusionModule, loader: DataLoader, cfg: TrainerConfig,
         ckpt_dir: Path | None) -> None:
    import lightning.pytorch as pl

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer = make_trainer(cfg, ckpt_dir)
    last = None if ckpt_dir is None else ckpt_dir / "last.ckpt"
    trainer.fit(module, loader, ckpt_path=str(last) if last is not None and last.is_file()
                else None)


def train_autoencoder(model: ShapeModel, dense: torch.Tensor, trainer: TrainerConfig,
                      ckpt_dir: Path | None) -> None:
    """Fit the wavelet autoencoder on standardised dense parts; set the latent statistics."""
    ae = model.autoencoder
    ae.set_normalization(dense)
    x = ae.standardize(dense).float()
    cfg = replace(trainer, max_steps=model.config.ae_steps, max_epochs=-1)
    _fit(CosineModule(ae, model.config.ae_lr, 20, cfg.max_steps),
         _loader(TensorDataset(x), model.config.batch_size), cfg, ckpt_dir)
    ae.eval()
    with torch.no_grad():
        z = ae.encode(x)
    model.latent_mean, model.latent_std = float(z.mean()), float(z.std().clamp_min(1e-6))


def train_diffusion(model: ShapeModel, dense: torch.Tensor, points: torch.Tensor,
                    trainer: TrainerConfig, ckpt_dir: Path | None) -> None:
    """Fit the EDM-preconditioned latent denoiser (point-cloud condition when configured)."""
    z = model.latents_from_dense(dense).float()
    pts = points.float() if model.config.condition == "points" else None
    data = LatentPointDataset(z, pts, model.config.n_points)
    total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 10 ** 9
    _fit(CosineModule(model.denoiser, model.config.lr, 50, total),
         _loader(data, model.config.batch_size), trainer, ckpt_dir)
    model.denoiser.eval()
