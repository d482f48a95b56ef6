"""DiffusionModule batch handling: tensor, list and dict batches; per-sample weights and masks."""

from __future__ import annotations

import torch
from torch import nn

from common.training import DiffusionModule


class Recorder(nn.Module):
    """A 'denoiser' whose per-sample loss is the row sum of x0 (times the mask if given)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.seen = None

    def loss(self, x0, cond=None, mask=None):
        self.seen = cond
        return (x0 if mask is None else x0 * mask).sum(1) + self.p


def test_batches_weights_and_masks():
    module = DiffusionModule(Recorder())
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.allclose(module._loss(x), torch.tensor(5.0))
    assert torch.allclose(module._loss([x]), torch.tensor(5.0))
    w = torch.tensor([3.0, 1.0])
    assert torch.allclose(module._loss({"x": x, "weight": w}), torch.tensor((3 * 3 + 7) / 4))
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert torch.allclose(module._loss({"x": x, "mask": mask, "cond": "c"}), torch.tensor(2.0))
    assert module.model.seen == "c"


class Quadratic(nn.Module):
    """A 'denoiser' with one weight and loss (w - mean(x0))^2, to train in a few steps."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def loss(self, x0, cond=None, mask=None):
        return (self.w - x0.mean(1)) ** 2


def test_step_interval_checkpoints_and_last_at_end(tmp_path):
    from common.training import TrainerConfig, make_trainer

    cfg = TrainerConfig(max_steps=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        ema_decay=None, checkpoint_every_n_steps=3)
    loader = torch.utils.data.DataLoader(torch.ones(64, 2), batch_size=2)  # 32 steps per epoch
    trainer = make_trainer(cfg, checkpoint_dir=tmp_path)
    trainer.fit(DiffusionModule(Quadratic(), lr=0.1), loader)
    steps = sorted(p.name for p in tmp_path.glob("step*.ckpt"))
    assert steps == ["step00000006.ckpt"]  # save_top_k=1 keeps the newest interval checkpoint
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 7  # written at the end although 7 is not a multiple of 3


def test_resuming_a_moved_checkpoint_folder_updates_last_ckpt(tmp_path):
    """A copied/moved run resumes into ``last.ckpt`` itself, never a ``last-v1.ckpt`` beside it."""
    import shutil

    from common.training import TrainerConfig, make_trainer

    loader = torch.utils.data.DataLoader(torch.ones(8, 2), batch_size=2)  # 4 steps per epoch
    first, moved = tmp_path / "first", tmp_path / "moved"
    for steps, folder in ((4, first), (8, moved)):
        if steps == 8:
            shutil.copytree(first, moved)
        cfg = TrainerConfig(max_steps=steps, accelerator="cpu", devices=1,
                            enable_progress_bar=False, ema_decay=None)
        trainer = make_trainer(cfg, checkpoint_dir=folder)
        last = folder / "last.ckpt"
        trainer.fit(DiffusionModule(Quadratic(), lr=0.1), loader,
                    ckpt_path=str(last) if last.exists() else None)
    assert sorted(p.name for p in moved.glob("last*.ckpt")) == ["last.ckpt"]
    assert torch.load(moved / "last.ckpt", map_location="cpu", weights_only=True)[
        "global_step"] == 8


def test_last_checkpoint_at_end_holds_raw_weights_not_ema(tmp_path):
    """Step-interval checkpoints with EMA: ``last.ckpt`` keeps the raw weights to resume from."""
    import lightning.pytorch as pl

    from common.training import TrainerConfig, make_trainer

    class RecordRaw(pl.Callback):
        def __init__(self) -> None:
            self.raw = []

        def on_train_batch_end(self, trainer, pl_module, *args) -> None:
            self.raw.append(pl_module.model.w.item())

    record = RecordRaw()
    cfg = TrainerConfig(max_steps=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        ema_decay=0.9, checkpoint_every_n_steps=3)
    loader = torch.utils.data.DataLoader(torch.ones(64, 2), batch_size=2)
    module = DiffusionModule(Quadratic(), lr=0.1)
    make_trainer(cfg, checkpoint_dir=tmp_path, callbacks=[record]).fit(module, loader)
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    shadow = last["callbacks"]["EMA"]["shadow"]["model.w"].item()
    assert last["state_dict"]["model.w"].item() == record.raw[-1]
    assert abs(shadow - record.raw[-1]) > 1e-3  # EMA lags the raw weights after 7 steps
    assert module.model.w.item() == shadow  # the in-memory model gets the EMA weights at the end
