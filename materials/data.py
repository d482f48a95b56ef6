"""Crystal datasets: CDVAE-format CSVs, CIF directories, Structure lists, public split downloads.

CDVAE (Xie et al., ICLR 2022) stores each split as a CSV with a ``cif`` column (a P1 CIF string)
plus properties; its loader builds structures from the CIF with ``niggli=True`` and
``primitive=False`` (``cdvae/common/data_utils.py: build_crystal``), which is what we do too.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.request
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pymatgen.core import Structure

from common.errors import DataError

from .representation import check_structure

log = logging.getLogger(__name__)

# CDVAE repository at a pinned commit; values are git blob sha1s where known.
CDVAE_COMMIT = "f857f598d6f6cca5dc1ea0582d228f12dcc2c2ea"
CDVAE_URL = "https://raw.githubusercontent.com/txie-93/cdvae/{commit}/data/{name}/{split}.csv"
PUBLIC_SPLITS: dict[str, dict[str, str | None]] = {
    "perov_5": {"train": "0769074b5d51d293b765c4371b8f55c468c9c9f2",
                "val": "4a2c8dde98347dd0e01fa83dcf3982c2abe98f9f",
                "test": "d3c5d5af4b27a2a139149f2bb73c8a3dba9d8ac1"},
    "mp_20": {"train": "b1c9d498565ac2fd8d075a51ff2ef5e51ba6c21f",
              "val": "7efe4d7ebeb4f460ceaad35e5326c42111d9c9a1",
              "test": "5dc643041df53f5ce4970a79930ad262b4f07acd"},
    "carbon_24": {"train": None, "val": None, "test": None},
}


@dataclass
class LoadReport:
    """What a loader kept and what it skipped (with the reason per item)."""

    kept: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"kept {self.kept}, skipped {len(self.skipped)}"


def default_cache_dir() -> Path:
    """``~/.cache/genpipes/materials``."""
    return Path.home() / ".cache" / "genpipes" / "materials"


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (how GitHub names file contents)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def download_split(name: str, split: str, cache_dir: str | Path | None = None) -> Path:
    """Download a CDVAE split (perov_5, carbon_24, mp_20; train/val/test) into the cache.

    The file is fetched from the CDVAE repository at a pinned commit and checked against its git
    blob sha1 when known. Needs network access; an existing cached file is reused.
    """
    if name not in PUBLIC_SPLITS or split not in PUBLIC_SPLITS[name]:
        raise DataError(f"unknown split {name}/{split}", field="dataset",
                        expected=f"one of {sorted(PUBLIC_SPLITS)} x train/val/test")
    target = Path(cache_dir or default_cache_dir()) / name / f"{split}.csv"
    if target.is_file():
        return target
    url = CDVAE_URL.format(commit=CDVAE_COMMIT, name=name, split=split)
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - fixed https URL
        data = resp.read()
    expected = PUBLIC_SPLITS[name][split]
    if expected is not None and git_blob_sha1(data) != expected:
        raise DataError(f"checksum mismatch for {url}", field="sha1", expected=expected)
    from common.io import atomic_write_bytes

    atomic_write_bytes(target, data)
    return target


def parse_cif(text: str, item: str, niggli: bool = True) -> Structure:
    """One Structure from CIF text; DataError naming ``item`` if unparsable or disordered."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_str(text, fmt="cif", primitive=False)
    except Exception as exc:  # pymatgen raises ValueError/KeyError/IndexError for broken CIFs
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"CIF does not parse ({msg})", file=item, field="cif",
                        expected="a valid CIF") from None
    if len(s) == 0:
        raise DataError("CIF has no atoms", file=item, field="cif", expected="at least one site")
    check_structure(s, item)
    if niggli:
        s = s.get_reduced_structure()
    return s


def _iter_source(source: str | Path | Iterable[Structure], niggli: bool
                 ) -> Iterable[tuple[str, object]]:
    """(item name, Structure or a thunk that parses) for every entry of ``source``."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif")
            if not files:
                raise DataError("directory holds no .cif files", file=path,
                                expected="CIF files or a CDVAE CSV")
            for f in files:
                yield str(f), (lambda f=f: parse_cif(f.read_text(errors="replace"), str(f), niggli))
            return
        if not path.is_file():
            raise DataError("no such file or directory", file=path,
                            expected="a CDVAE CSV (.csv/.csv.gz) or a directory of CIFs")
        if path.suffix.lower() == ".cif":
            yield str(path), (lambda: parse_cif(path.read_text(errors="replace"), str(path),
                                                niggli))
            return
        try:
            df = pd.read_csv(path)
        except Exception as exc:
            raise DataError(f"not a readable CSV ({exc})", file=path,
                            expected="a CDVAE CSV with a 'cif' column") from None
        if "cif" not in df.columns:
            raise DataError("no 'cif' column", file=path, field="cif",
                            expected=f"a CDVAE CSV (columns found: {list(df.columns)[:8]})")
        for i, text in enumerate(df["cif"]):
            item = f"{path} row {i}"
            yield item, (lambda t=text, it=item: parse_cif(str(t), it, niggli))
        return
    for i, s in enumerate(source):
        if not isinstance(s, Structure):
            raise DataError(f"item {i} is a {type(s).__name__}", field="structures",
                            expected="pymatgen Structure objects")
        yield f"structure {i}", s


def load_structures(source: str | Path | Iterable[Structure], *, niggli: bool = True,
                    on_error: str = "raise", limit: int | None = None
                    ) -> tuple[list[Structure], LoadReport]:
    """Structures from a CDVAE CSV, a CIF directory/file or a list of Structures.

    Args:
        source: path or iterable of ``Structure``.
        niggli: Niggli-reduce parsed CIFs (CDVAE's convention).
        on_error: ``"raise"`` (DataError naming file, row and field) or ``"skip"`` (counted in the
            report, with the reason per item).
        limit: keep at most this many structures.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    out: list[Structure] = []
    report = LoadReport()
    for item, entry in _iter_source(source, niggli):
        if limit is not None and len(out) >= limit:
            break
        try:
            s = entry() if callable(entry) else entry
            if not callable(entry):
                check_structure(s, item)
        except DataError as exc:
            if on_error == "raise":
                raise
            report.skipped.append((item, str(exc)))
            continue
        out.append(s)
    report.kept = len(out)
    if report.skipped:
        log.warning("load_structures: %s (first: %s)", report.summary(), report.skipped[0][1])
    return out, report
