"""The materials evaluate stage: CDVAE validity / uniqueness / novelty and the CHGNet proxy.

Validity as CDVAE (Xie et al., ICLR 2022): structural (distances > 0.5 A, volume > 0.1 A^3) and
SMACT compositional; valid candidates (that pass ``evaluate.screen``) are relaxed with CHGNet
(FIRE, cell relaxation) and placed on the self-consistent hull of the training set and, when
``evaluate.mp20_hull`` is given, on the DFT-anchored MP-20 hull; one CSV row per candidate.
"""

from __future__ import annotations

import csv
import io
import math
import time
from typing import Any

from common.io import atomic_write_json, atomic_write_text

from .materials_config import MaterialsConfig
from .materials_runfiles import load_candidates, read_structures
from .rundir import RunDir


def evaluate(cfg: MaterialsConfig, run: RunDir) -> None:
    """Validity, uniqueness, novelty, CHGNet relaxation and proxy E_hull; candidates.csv."""
    from common.executor import get_executor
    from materials import metrics as M
    from materials.baselines import spacegroup_label
    from materials.stability import (
        DFTHull,
        ElementalReferences,
        RelaxConfig,
        SelfConsistentHull,
        _chgnet,
        relax_many,
        stability_summary,
    )
    from materials.stable_screen import screen

    train_set = read_structures(run.path / "data" / "train.json")
    rows = load_candidates(run)
    structs = [r["structure"] for r in rows]
    val = M.validity(structs)
    passes = screen(structs, cfg.evaluate.screen)
    idx = [i for i, s in enumerate(structs) if s is not None]
    decoded = [structs[i] for i in idx]
    uniq = dict(zip(idx, M.uniqueness(decoded)))
    nov = dict(zip(idx, M.novelty(decoded, train_set)))
    relax_cfg = RelaxConfig(fmax=cfg.evaluate.fmax, steps=cfg.evaluate.relax_steps)
    to_relax = [i for i in idx if val["valid"][i] and passes[i]] if cfg.evaluate.relax else []
    if cfg.evaluate.max_relax is not None:
        to_relax = to_relax[: cfg.evaluate.max_relax]
    t0 = time.perf_counter()
    with get_executor(cfg.evaluate.executor, n_workers=cfg.evaluate.workers) as ex:
        relaxed = dict(zip(to_relax, relax_many([structs[i] for i in to_relax], relax_cfg, ex)))
    relax_seconds = time.perf_counter() - t0
    refs = ElementalReferences(relax=RelaxConfig(fmax=0.1, steps=cfg.evaluate.element_steps))
    if cfg.evaluate.reference_energies == "relax":
        self_hull = SelfConsistentHull.from_structures(train_set, relax_cfg, refs=refs)
    else:  # single-point CHGNet energies of the training structures
        preds = _chgnet().predict_structure(train_set, task="e", batch_size=16)
        self_hull = SelfConsistentHull([(s.composition, float(p["e"]))
                                        for s, p in zip(train_set, preds)], refs)
    dft_hull = DFTHull.from_file(cfg.evaluate.mp20_hull, refs) if cfg.evaluate.mp20_hull else None
    table = []
    for i, r in enumerate(rows):
        s = r["structure"]
        rel = relaxed.get(i)
        e = rel["energy_per_atom"] if rel else float("nan")
        final = rel["structure"] if rel else s
        e_self = self_hull.e_above_hull(final.composition, e) if rel else float("nan")
        e_dft = dft_hull.e_above_hull(final.composition, e) if rel and dft_hull else float("nan")
        table.append({
            "id": i, "mode": r["mode"], "target": r["target"],
            "formula": "" if s is None else s.composition.reduced_formula,
            "spacegroup": "" if final is None else spacegroup_label(final),
            "n_atoms": 0 if s is None else len(s), "decoded": s is not None,
            "struct_valid": val["struct_valid"][i], "comp_valid": val["comp_valid"][i],
            "valid": val["valid"][i], "unique": uniq.get(i, False), "novel": nov.get(i, False),
            "passes_screen": passes[i], "energy_per_atom_chgnet": e, "proxy_e_hull_self": e_self,
            "proxy_e_hull_mp20": e_dft, "relax_steps": rel["steps"] if rel else 0,
        })
        if rel:
            rows[i]["relaxed"] = final
    _write_csv(run, table)
    atomic_write_json(run.samples / "relaxed.json", {str(i): rows[i]["relaxed"].as_dict()
                                                     for i in relaxed})
    n = len(rows)
    uncond = [t for t in table if t["mode"] == "unconditional"]
    csp = [t for t in table if t["mode"] == "csp"]
    sub = [t for t in table if t["mode"] == "substitution_csp"]
    metrics: dict[str, Any] = {
        "n_candidates": n,
        "unconditional": _rates(uncond), "csp": _rates(csp),
        **({"substitution_csp": _rates(sub)} if sub else {}),
        "csp_composition_match": sum(bool(t["formula"]) and _same_formula(t["formula"], t["target"])
                                     for t in csp) / max(len(csp), 1),
        "relaxations": len(to_relax), "relax_seconds": round(relax_seconds, 2),
        f"valid_screened_out (evaluate.screen={cfg.evaluate.screen})": sum(
            v and not p for v, p in zip(val["valid"], passes)),
        "valid_not_relaxed (evaluate.max_relax)": sum(val["valid"]) - len(to_relax)
        if cfg.evaluate.relax else 0,
        "relaxations_per_minute": round(60 * len(to_relax) / max(relax_seconds, 1e-9), 2),
        "property_distances_vs_train (valid candidates)": M.property_distances(
            [structs[i] for i in idx if val["valid"][i]], train_set),
    }
    for key, label in (("proxy_e_hull_self", "self-consistent CHGNet hull of the training set"),
                       ("proxy_e_hull_mp20", "DFT-anchored MP-20 hull (CHGNet formation energy)")):
        if key == "proxy_e_hull_mp20" and dft_hull is None:
            continue
        metrics[key] = stability_summary([t[key] for t in table], [t["unique"] for t in table],
                                         [t["novel"] for t in table],
                                         [t["valid"] for t in table], label)
    run.write_metrics(metrics, section="evaluate")


def _same_formula(a: str, b: str) -> bool:
    from pymatgen.core import Composition

    return Composition(a).reduced_formula == Composition(b).reduced_formula


def _rates(table: list[dict[str, Any]]) -> dict[str, Any]:
    n = max(len(table), 1)
    return {k: sum(bool(t[k]) for t in table) / n
            for k in ("decoded", "struct_valid", "comp_valid", "valid", "unique", "novel")} | {
        "n": len(table)}


def _write_csv(run: RunDir, table: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]) if table else ["id"])
    w.writeheader()
    for t in table:
        w.writerow({k: (round(v, 5) if isinstance(v, float) and math.isfinite(v) else v)
                    for k, v in t.items()})
    atomic_write_text(run.path / "candidates.csv", buf.getvalue())
