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


# clips outside the paired grid (normal style only), with their takes
BANDAI_EXTRAS = (("call", 2), ("punch", 2), ("slash", 2), ("kick", 1), ("respond", 1),
                 ("dance-short", 1), ("dance-long", 1))


def bandai_namco_names() -> list[str]:
    """The 175 file names of Bandai-Namco dataset 1 (Kobayashi et al. 2023, its README): every
    style x {the ten paired contents, take 001; walk, take 002}, plus the normal-only clips."""
    names = [f"dataset-1_{c}_{s}_001.bvh" for c in BANDAI_CONTENTS for s in BANDAI_STYLES]
    names += [f"dataset-1_walk_{s}_002.bvh" for s in BANDAI_STYLES]
    names += [f"dataset-1_{c}_normal_{t:03d}.bvh" for c, n in BANDAI_EXTRAS
              for t in range(1, n + 1)]
    return sorted(names)


def download_bandai_namco(names: Iterable[str] | None = None,
                          cache: str | Path | None = None) -> Path:
    """Fetch Bandai-Namco dataset 1 BVH files (default: all of :func:`bandai_namco_names`) from
    the public repository into the cache and return the folder for :func:`load_bandai_namco`.

    Files already in the cache are kept. Each download must parse as a BVH before it is moved
    into place (atomically), so an error page or a truncated transfer is a ``DataError`` naming
    the URL, never a cached file. Needs network access.
    """
    from common.io import atomic_write_bytes

    from .bvh import validate_bvh_text

    cache = Path(cache or Path.home() / ".cache" / "genpipes" / "motion" / "bandai-namco-1")
    (cache / "data").mkdir(parents=True, exist_ok=True)
    for name in bandai_namco_names() if names is None else names:
        dest = cache / "data" / name
        if dest.exists():
            continue
        url = BANDAI_URL.format(name=name)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                payload = resp.read()
        except OSError as exc:
            raise DataError(f"download failed ({exc})", file=url,
                            expected="network access to raw.githubusercontent.com") from None
        try:
            validate_bvh_text(payload.decode("utf-8", errors="replace"), url)
        except DataError as exc:
            raise DataError(f"the downloaded file is not a BVH ({exc})", file=url) from None
        atomic_write_bytes(dest, payload)
    return cache
