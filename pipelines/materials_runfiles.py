"""What the materials stages leave in a run directory and read back (JSON of pymatgen dicts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import DataError

from .rundir import RunDir


def read_structures(path: Path) -> list[Any]:
    """Structures (or None) stored as a JSON list of ``Structure.as_dict()``; DataError if none."""
    from pymatgen.core import Structure

    if not path.is_file():
        raise DataError("missing; run the earlier stage first", file=path)
    return [None if d is None else Structure.from_dict(d) for d in json.loads(path.read_text())]


def load_candidates(run: RunDir) -> list[dict[str, Any]]:
    """The sample stage's rows (mode, target, structure or None): samples/candidates.json."""
    from pymatgen.core import Structure

    f = run.samples / "candidates.json"
    if not f.is_file():
        raise DataError("missing; run `genpipes materials sample` first", file=f)
    rows = json.loads(f.read_text())
    for r in rows:
        r["structure"] = None if r["structure"] is None else Structure.from_dict(r["structure"])
    return rows
