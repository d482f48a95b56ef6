"""Training: a thin LightningModule around a denoiser with a ``.loss``, an EMA callback, a Trainer.

The backbone stays a plain ``nn.Module``; Lightning brings devices, DDP and checkpointing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn


class DiffusionModule(pl.LightningModule):
    """Minimise ``model.loss(x0, cond, mask)`` (per-sample, averaged) with AdamW.

    A batch is a tensor ``x0`` or a dict with ``x`` and optional ``cond``, ``mask``, ``weight``.
    """

    def __init__(self, model: nn.Module, lr: float = 2e-4, weight_decay: float = 0.0,
                 warmup_steps: int = 0, grad_clip: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.grad_clip = grad_clip

    @staticmethod
    def unpack(batch: Any) -> tuple[torch.Tensor, Any, torch.Tensor | None, torch.Tensor | None]:
        if isinstance(batch, torch.Tensor):
            return batch, None, None, None
        if isinstance(batch, (list, tuple)):
            return batch[0], None, None, None
        return batch["x"], batch.get("cond"), batch.get("mask"), batch.get("weight")

    def _loss(self, batch: Any) -> torch.Tensor:
        x0, cond, mask, weight = self.unpack(batch)
        per_sample = self.model.loss(x0, cond, mask)
        if weight is not None:
            return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)
        return per_sample.mean()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=self.unpack(batch)[0].shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=self.unpack(batch)[0].shape[0],
                 sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.warmup_steps <= 0:
            return opt
        warm = self.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        clip = self.grad_clip if gradient_clip_val is None else gradient_clip_val
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")


class EMA(pl.Callback):
    """Exponential moving average of the weights (Polyak averaging), saved in checkpoints.

    ``decay`` may warm up as min(decay, (1 + n) / (10 + n)). At the end of training the EMA
    weights are copied into the model when ``apply_at_end`` (the usual choice for sampling).
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, apply_at_end: bool = True
                 ) -> None:
        self.decay, self.warmup, self.apply_at_end = decay, warmup, apply_at_end
        self.shadow: dict[str, torch.Tensor] | None = None
        self.num_updates = 0

    def _params(self, module: pl.LightningModule) -> dict[str, torch.Tensor]:
        return {k: v for k, v in module.state_dict().items() if v.dtype.is_floating_point}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.shadow is None:
            self.shadow = {k: v.detach().clone() for k, v in self._params(pl_module).items()}
        else:
            self.shadow = {k: v.to(pl_module.device) for k, v in self.shadow.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
                           ) -> None:
        self.num_updates += 1
        d = self.decay
        if self.warmup:
            d = min(d, (1 + self.num_updates) / (10 + self.num_updates))
        for k, v in self._params(pl_module).items():
            self.shadow[k].lerp_(v.detach(), 1 - d)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.apply_at_end and self.shadow is not None:
            self.copy_to(pl_module)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Load the averaged weights into ``module`` (same keys as the LightningModule)."""
        state = module.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow, "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow = state["shadow"]
        self.num_updates = state["num_updates"]


@dataclass
class TrainerConfig:
    """Lightning Trainer settings that a user may override (``--trainer.devices 2`` ...)."""

    max_steps: int = 1000
    max_epochs: int = -1
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    seed: int = 0
    ema_decay: float | None = 0.999
    checkpoint_every_n_steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_trainer(cfg: TrainerConfig, checkpoint_dir: str | Path | None = None,
                 callbacks: list[pl.Callback] | None = None, logger: Any = False,
                 default_root_dir: str | Path | None = None) -> pl.Trainer:
    """A ``lightning.pytorch.Trainer`` from a ``TrainerConfig``; saves ``last.ckpt`` to resume."""
    cbs = list(callbacks or [])
    if checkpoint_dir is not None and cfg.checkpoint_every_n_steps:
        # before EMA: EMA.on_train_end copies the averaged weights into the model, and last.ckpt
        # must hold the raw ones (a resumed run continues from them; EMA state rides along)
        cbs.append(_SaveLastAtEnd(Path(checkpoint_dir) / "last.ckpt"))
    if cfg.ema_decay:
        cbs.append(EMA(cfg.ema_decay))
    if checkpoint_dir is not None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        every = cfg.checkpoint_every_n_steps or None
        cbs.append(ModelCheckpoint(dirpath=str(checkpoint_dir), filename="step{step:08d}",
                                   auto_insert_metric_name=False, save_last=True, save_top_k=1,
                                   every_n_train_steps=every,
                                   save_on_train_epoch_end=every is None,
                                   # a moved/copied run must keep writing last.ckpt, the file
                                   # resume reads, not last-v1.ckpt beside a stale one
                                   enable_version_counter=False))
    return pl.Trainer(
        max_steps=cfg.max_steps, max_epochs=cfg.max_epochs, accelerator=cfg.accelerator,
        devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        precision=cfg.precision, gradient_clip_val=cfg.gradient_clip_val,
        log_every_n_steps=cfg.log_every_n_steps, enable_progress_bar=cfg.enable_progress_bar,
        callbacks=cbs, logger=logger, enable_checkpointing=checkpoint_dir is not None,
        default_root_dir=None if default_root_dir is None else str(default_root_dir),
        enable_model_summary=False, **cfg.extra,
    )


class _SaveLastAtEnd(pl.Callback):
    """With step-interval checkpoints, also write ``last.ckpt`` when training ends mid-interval."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(str(self.path))


def load_ema_weights(module: nn.Module, checkpoint: str | Path | dict[str, Any]) -> bool:
    """Load the EMA weights that :class:`EMA` saved in a Lightning checkpoint into ``module``.

    ``last.ckpt`` holds the raw weights in ``state_dict`` (it is written before training ends)
    and the averaged ones in its EMA callback state; sampling in a separate process should use
    the latter. ``module`` is the ``DiffusionModule`` (same keys). Returns False (and leaves
    ``module`` alone) when the checkpoint has no EMA state.
    """
    if not isinstance(checkpoint, dict):
        from .errors import CheckpointError

        try:
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{checkpoint}: not a readable Lightning checkpoint "
                                  f"({type(exc).__name__})") from exc
    ema_state = (checkpoint.get("callbacks") or {}).get("EMA")
    if not ema_state or ema_state.get("shadow") is None:
        return False
    state = module.state_dict()
    with torch.no_grad():
        for k, v in ema_state["shadow"].items():
            state[k].copy_(v)
    return True


def copy_module(module: nn.Module) -> nn.Module:
    """A detached deep copy (for EMA models or frozen encoders)."""
    return copy.deepcopy(module).requires_grad_(False)
