"""Atomic file writes and safe checkpoint I/O (temp file + rename; ``weights_only=True`` loads)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write JSON (indented, keys in insertion order)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def save_checkpoint(path: str | Path, kind: str, state: dict[str, Any]) -> Path:
    """Atomically save ``state`` tagged with ``kind`` (e.g. ``"timeseries/tsdiff"``)."""
    buf = io.BytesIO()
    torch.save({"genpipes_format": CHECKPOINT_FORMAT, "kind": kind, **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a genpipes checkpoint with ``weights_only=True``; clear errors if corrupt or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/unsafe files
        raise CheckpointError(
            f"{path}: not a readable genpipes checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc
    if not isinstance(obj, dict) or "genpipes_format" not in obj:
        raise CheckpointError(f"{path}: not a genpipes checkpoint (no 'genpipes_format' key)")
    if obj["genpipes_format"] > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {obj['genpipes_format']} is newer than this genpipes "
            f"({CHECKPOINT_FORMAT}); upgrade genpipes"
        )
    if kind is not None and obj.get("kind") != kind:
        raise CheckpointError(
            f"{path}: checkpoint holds a {obj.get('kind')!r} model, expected {kind!r}")
    return obj
