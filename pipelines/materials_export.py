"""The materials export stage: CIF files, unit-cell pictures, the proxy E_hull histogram, report."""

from __future__ import annotations

import csv
import json
import math
from typing import Any

from common.io import atomic_write_text

from .materials_config import MaterialsConfig
from .materials_runfiles import load_candidates
from .rundir import RunDir


def export(cfg: MaterialsConfig, run: RunDir) -> None:
    """CIFs of every decoded (and relaxed) candidate, unit-cell pictures, histogram, report."""
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifWriter

    from materials.plots import plot_ehull_histogram, plot_unit_cells

    rows = load_candidates(run)
    relaxed_f = run.samples / "relaxed.json"
    relaxed = json.loads(relaxed_f.read_text()) if relaxed_f.is_file() else {}
    cif_dir = run.samples / "cif"
    for i, r in enumerate(rows):
        if r["structure"] is None:
            continue
        tag = f"{i:04d}_{r['mode']}_{r['structure'].composition.reduced_formula[:40]}"
        atomic_write_text(cif_dir / f"{tag}.cif", str(CifWriter(r["structure"])))
        if str(i) in relaxed:
            atomic_write_text(cif_dir / f"{tag}_relaxed.cif",
                              str(CifWriter(Structure.from_dict(relaxed[str(i)]))))
    table = list(csv.DictReader((run.path / "candidates.csv").open()))
    shown = [int(t["id"]) for t in table if t["valid"] == "True"][:8]
    shown = shown or [i for i, r in enumerate(rows) if r["structure"] is not None][:8]
    images = []
    if shown:
        images.append(plot_unit_cells([rows[i]["structure"] for i in shown],
                                      run.plots / "unit_cells.png",
                                      [f"#{i} {rows[i]['structure'].composition.reduced_formula}"
                                       f" ({rows[i]['mode']})" for i in shown]))
    series = {"self-consistent hull": [_f(t["proxy_e_hull_self"]) for t in table]}
    if any(math.isfinite(_f(t["proxy_e_hull_mp20"])) for t in table):
        series["MP-20 DFT-anchored hull"] = [_f(t["proxy_e_hull_mp20"]) for t in table]
    images.append(plot_ehull_histogram(series, run.plots / "proxy_e_hull_hist.png"))
    ev = run.metrics().get("evaluate", {})
    lines = ["UniMat diffusion over the periodic-table tensor; energies are CHGNet **proxy** "
             "energies, not DFT.", "",
             f"- candidates: {ev.get('n_candidates')}; CIFs in `samples/cif/`; one row per "
             "candidate in `candidates.csv`",
             f"- unconditional: {json.dumps(ev.get('unconditional'))}",
             f"- CSP: {json.dumps(ev.get('csp'))}"]
    for key in ("proxy_e_hull_self", "proxy_e_hull_mp20"):
        if key in ev:
            e = ev[key]
            lines.append(f"- {key} ({e['hull']}): median {e['median_e_hull']:.3f} eV/atom; "
                         f"stable {e['stable']}, metastable {e['metastable']}, S.U.N. {e['sun']}")
    run.add_report("Materials: generated crystals", "\n".join(lines), images)


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
