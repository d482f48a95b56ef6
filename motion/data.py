"""Loading style-labelled clips: BVH files, folders with a label CSV, the Bandai-Namco layout.

A label CSV has a header with ``file`` (or ``path``) and ``style``, optionally ``content`` and
``take``; paths are relative to the CSV. Bandai-Namco dataset 1 (Kobayashi et al. 2023,
CC BY-NC 4.0) names its files ``dataset-1_{content}_{style}_{take}.bvh``; :func:`load_bandai_namco`
reads that layout from a local copy, and :func:`download_bandai_namco` fetches the public
repository's files into ``~/.cache/genpipes/motion`` for users who are online.
"""

from __future__ import annotations

import csv
import re
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from common.errors import DataError

from .bvh import Clip, load_bvh

BANDAI_URL = ("https://raw.githubusercontent.com/BandaiNamcoResearchInc/"
              "Bandai-Namco-Research-Motiondataset/master/dataset/"
              "Bandai-Namco-Research-Motiondataset-1/data/{name}")
BANDAI_STYLES = ("active", "angry", "childish", "chimpira", "feminine", "giant", "happy",
                 "masculinity", "musical", "normal", "not-confident", "old", "proud", "sad",
                 "tired")
BANDAI_CONTENTS = ("walk", "run", "dash", "walk-back", "walk-left", "walk-right", "bow", "bye",
                   "byebye", "guide")
_BANDAI_RE = re.compile(r"dataset-1_(?P<content>[a-z-]+?)_(?P<style>[a-z-]+)_(?P<take>\d+)\.bvh")


def read_label_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a label CSV with the file path resolved; ``DataError`` naming bad rows."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError("label file not found", file=path) from None
    if not rows:
        raise DataError("no rows", file=path, expected="a header and one row per clip")
    key = "file" if "file" in rows[0] else "path" if "path" in rows[0] else None
    if key is None or "style" not in rows[0]:
        raise DataError(f"columns {list(rows[0])}", file=path, field="header",
                        expected="'file' (or 'path') and 'style'")
    out = []
    for i, row in enumerate(rows, start=2):
        if not row.get(key) or not row.get("style"):
            raise DataError(f"line {i}: empty file or style", file=path, field=key)
        out.append({**row, "file": str((path.parent / row[key]).resolve())})
    return out


def load_clips(source: str | Path | Iterable[str | Path], labels: str | Path | None = None,
               fps: float | None = 30.0) -> list[Clip]:
    """Clips from a BVH file, a list of files, or a folder (with ``labels.csv`` if present)."""
    if isinstance(source, (str, Path)):
        src = Path(source)
        if src.is_dir():
            labels = labels or next((p for p in (src / "labels.csv",) if p.exists()), None)
            if labels is not None:
                rows = read_label_csv(labels)
                return [load_bvh(r["file"], fps=fps, meta={k: v for k, v in r.items()
                                                            if k not in ("file", "path")})
                        for r in rows]
            files = sorted([*src.glob("*.bvh"), *src.glob("*.bvh.gz")])
            if not files:
                raise DataError("no .bvh or .bvh.gz files", file=src)
            return [load_bvh(f, fps=fps) for f in files]
        return [load_bvh(src, fps=fps)]
    return [load_bvh(p, fps=fps) for p in source]


def parse_bandai_name(name: str) -> dict[str, str] | None:
    """``{"content", "style", "take"}`` from a Bandai-Namco file name, or None."""
    m = _BANDAI_RE.search(name)
    return m.groupdict() if m else None


def load_bandai_namco(root: str | Path, contents: Iterable[str] | None = BANDAI_CONTENTS,
                      fps: float = 30.0) -> list[Clip]:
    """Bandai-Namco dataset 1 clips from ``root`` (the folder holding ``data/``), labelled."""
    root = Path(root)
    folder = root / "data" if (root / "data").is_dir() else root
    files = sorted([*folder.glob("dataset-1_*.bvh"), *folder.glob("dataset-1_*.bvh.gz")])
    if not files:
        raise DataError("no dataset-1_*.bvh[.gz] files", file=folder,
                        expected="Bandai-Namco-Research-Motiondataset-1/data")
    keep = None if contents is None else set(contents)
    clips = []
    for f in files:
        lab = parse_bandai_name(f.name)
        if lab is None or (keep is not None and lab["content"] not in keep):
            continue
        clips.append(load_bvh(f, fps=fps, meta=lab))
    return clips


def download_bandai_namco(names: Iterable[str], cache: str | Path | None = None) -> Path:
    """Fetch Bandai-Namco dataset 1 BVH files by name into the cache (needs network access)."""
    cache = Path(cache or Path.home() / ".cache" / "genpipes" / "motion" / "bandai-namco-1")
    (cache / "data").mkdir(parents=True, exist_ok=True)
    for name in names:
        dest = cache / "data" / name
        if not dest.exists():
            from common.io import atomic_write_bytes

            with urllib.request.urlopen(BANDAI_URL.format(name=name), timeout=60) as resp:
                atomic_write_bytes(dest, resp.read())
    return cache
