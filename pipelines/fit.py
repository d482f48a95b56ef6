"""Resumable Lightning training for a stage: checkpoint validation, resume, and audit callbacks.

``fit_resumable`` resumes from ``<run>/checkpoints/last.ckpt`` when it exists (Lightning's
``ckpt_path``), after checking that the file is a readable Lightning checkpoint of the same model
(``weights_only=True``), so a corrupt or foreign file gives a ``CheckpointError`` naming it rather
than a traceback from deep inside torch.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from common.errors import CheckpointError
from common.io import atomic_write_json

from .runner import TrainingInterrupted

LAST = "last.ckpt"


def validate_lightning_checkpoint(path: str | Path, module: torch.nn.Module | None = None
                                  ) -> dict[str, Any]:
    """Load a Lightning checkpoint safely and check it belongs to ``module``.

    Args:
        path: the ``.ckpt`` file.
        module: when given, the checkpoint's ``state_dict`` must have the same keys and shapes.

    Returns:
        The loaded checkpoint dict.

    Raises:
        CheckpointError: the file is unreadable, not a Lightning checkpoint, or another model's.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for truncated or unsafe files
        first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else "no detail"
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {first[:200]}); "
            "delete it to restart training, or pass --overwrite"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise CheckpointError(
            f"{path}: not a Lightning training checkpoint (expected the keys 'state_dict' and "
            "'global_step')"
        )
    if module is not None:
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        have = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()
                if isinstance(v, torch.Tensor)}
        missing = sorted(set(want) - set(have))
        unexpected = sorted(set(have) - set(want))
        shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        if missing or unexpected or shapes:
            detail = "; ".join(
                f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("shape differs", shapes)) if keys)
            raise CheckpointError(f"{path}: checkpoint holds a different model ({detail})")
    return ckpt


def resume_path(checkpoint_dir: str | Path, module: torch.nn.Module | None = None) -> Path | None:
    """``checkpoint_dir/last.ckpt`` if it exists (validated), else None."""
    path = Path(checkpoint_dir) / LAST
    if not path.exists():
        return None
    validate_lightning_checkpoint(path, module)
    return path


class StepRecorder(pl.Callback):
    """Remembers the global step a fit started from (0 for a fresh run, >0 when resumed)."""

    def __init__(self) -> None:
        self.start_step: int | None = None
        self.last_loss: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_step = int(trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.last_loss = float(loss.detach())


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every floating-point tensor of ``module.state_dict()`` (name, shape, bytes)."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
            h.update(name.encode())
            h.update(str(tuple(value.shape)).encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class ShardAudit(pl.Callback):
    """Records, per rank, the sample indices it trained on and a digest of its final weights.

    The batch must be a dict with an ``index`` tensor. Writes ``<out_dir>/rank<r>.json`` with
    ``rank``, ``world_size``, ``indices`` (epoch -> list) and ``digest``; used to check that DDP
    ranks see disjoint shards and end with identical weights.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.indices: dict[int, list[int]] = defaultdict(list)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if isinstance(batch, dict) and "index" in batch:
            self.indices[int(trainer.current_epoch)] += batch["index"].tolist()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        atomic_write_json(self.out_dir / f"rank{trainer.global_rank}.json", {
            "rank": trainer.global_rank, "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "indices": {str(k): v for k, v in self.indices.items()},
            "digest": parameter_digest(pl_module),
        })


class DeferredInterrupt(pl.Callback):
    """Ctrl-C stops training at the next batch boundary instead of wherever the signal lands.

    A KeyboardInterrupt raised inside a finaliser or callback that swallows it would let training
    run on; raising it from ``on_train_batch_end`` always reaches Lightning's graceful shutdown.
    A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Route SIGINT to this callback while training (main thread, default handler only)."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return

        def request(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def fit_resumable(trainer: pl.Trainer, module: pl.LightningModule, loader: Any,
                  checkpoint_dir: str | Path) -> dict[str, Any]:
    """``trainer.fit`` resuming from ``checkpoint_dir/last.ckpt`` when present.

    Returns:
        ``{"start_step", "global_step", "resumed_from", "last_loss"}`` (start_step from a
        ``StepRecorder`` among the trainer's callbacks, if any).

    Raises:
        CheckpointError: ``last.ckpt`` is corrupt or belongs to another model.
        TrainingInterrupted: training was interrupted (Ctrl-C); rerunning resumes it.
    """
    ckpt = resume_path(checkpoint_dir, module)
    interrupt = DeferredInterrupt()
    trainer.callbacks.append(interrupt)
    try:
        with interrupt.installed():
            trainer.fit(module, loader, ckpt_path=None if ckpt is None else str(ckpt))
    except SystemExit:  # Lightning calls sys.exit(1) after a graceful Ctrl-C shutdown
        if not trainer.interrupted:
            raise
    if trainer.interrupted:
        raise TrainingInterrupted(
            f"training interrupted at step {trainer.global_step}; rerun the same command to "
            f"resume from {Path(checkpoint_dir) / LAST} (the last finished epoch)"
        )
    recorder = next((c for c in trainer.callbacks if isinstance(c, StepRecorder)), None)
    return {
        "start_step": None if recorder is None else recorder.start_step,
        "global_step": int(trainer.global_step),
        "resumed_from": None if ckpt is None else str(ckpt),
        "last_loss": None if recorder is None else recorder.last_loss,
    }


__all__ = ["validate_lightning_checkpoint", "resume_path", "fit_resumable", "DeferredInterrupt",
           "StepRecorder",
           "ShardAudit", "parameter_digest", "LAST"]
