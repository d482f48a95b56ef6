"""Public mesh corpora fetched from their canonical source into a cache: ModelNet10/40.

ModelNet (Wu et al. 2015, "3D ShapeNets") is distributed by Princeton as one zip of OFF files
per corpus (``<class>/<split>/<class>_<id>.off``). The zip is downloaded once into
``~/.cache/genpipes/shapes`` (or ``cache_dir``), its SHA-256 recorded beside it and checked on
every later use (Princeton publishes no checksum), and the requested classes and split are
extracted. This machine is offline: the parsing of what is extracted is the ordinary
``load_mesh_dir`` path, tested on the shared meshes.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
import zipfile
from pathlib import Path

from common.errors import DataError

MODELNET_URLS = {
    "modelnet10": "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip",
    "modelnet40": "http://modelnet.cs.princeton.edu/ModelNet40.zip",
}


def default_cache() -> Path:
    """``~/.cache/genpipes/shapes``."""
    return Path.home() / ".cache" / "genpipes" / "shapes"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_zip(name: str, cache_dir: str | Path | None = None) -> Path:
    """The corpus zip in the cache, downloaded (atomically) on first use and checksum-verified."""
    if name not in MODELNET_URLS:
        raise DataError(f"unknown corpus {name!r}", field="data.dataset",
                        expected=", ".join(MODELNET_URLS))
    cache = Path(cache_dir) if cache_dir else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    zpath, sums = cache / f"{name}.zip", cache / f"{name}.zip.sha256"
    if zpath.is_file() and sums.is_file():
        if _sha256(zpath) != sums.read_text().strip():
            raise DataError("cached download does not match its recorded SHA-256; delete it "
                            "to download again", file=zpath)
        return zpath
    tmp = zpath.with_suffix(".zip.part")
    try:
        with urllib.request.urlopen(MODELNET_URLS[name], timeout=60) as resp, \
                open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download failed ({exc})", file=MODELNET_URLS[name],
                        expected="network access, or place the zip in the cache") from exc
    if not zipfile.is_zipfile(tmp):
        tmp.unlink(missing_ok=True)
        raise DataError("download is not a zip file", file=MODELNET_URLS[name])
    tmp.replace(zpath)
    sums.write_text(_sha256(zpath) + "\n")
    return zpath


def modelnet(name: str = "modelnet10", classes: list[str] | None = None, split: str = "train",
             cache_dir: str | Path | None = None, limit: int | None = None) -> Path:
    """A folder of ModelNet OFF meshes for ``classes`` and ``split`` (extracted from the cache).

    Args:
        name: "modelnet10" or "modelnet40".
        classes: class names (e.g. ["chair", "table"]); all when None.
        split: "train" or "test".
        cache_dir: download/extraction cache.
        limit: at most this many files per class.

    Returns:
        A folder to pass to ``load_mesh_dir`` / ``ShapeModel.fit``.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}", field="split", expected="train or test")
    zpath = fetch_zip(name, cache_dir)
    out = zpath.parent / f"{name}-{split}"
    with zipfile.ZipFile(zpath) as zf:
        members = [m for m in zf.namelist() if m.endswith(".off") and f"/{split}/" in m]
        have = sorted({m.split("/")[-3] for m in members})
        if classes:
            missing = sorted(set(classes) - set(have))
            if missing:
                raise DataError(f"classes {missing} not in {name}", field="classes",
                                expected=", ".join(have))
            members = [m for m in members if m.split("/")[-3] in classes]
        per_class: dict[str, int] = {}
        for m in sorted(members):
            cls = m.split("/")[-3]
            if limit is not None and per_class.get(cls, 0) >= limit:
                continue
            per_class[cls] = per_class.get(cls, 0) + 1
            target = out / cls / Path(m).name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_suffix(".part")
                part.write_bytes(zf.read(m))
                part.replace(target)
    return out


__all__ = ["MODELNET_URLS", "default_cache", "fetch_zip", "modelnet"]
