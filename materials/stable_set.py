"""A proxy-stable training set the project builds offline (issue 4, Benchmark section).

Seed prototypes are decorated by data-mined ion substitution (Hautier et al. 2011,
``materials.stable_prototypes``), each candidate is relaxed with CHGNet (FIRE, cell relaxation;
Deng et al. 2023), its formation energy against CHGNet elemental references is placed on the
DFT-anchored MP-20 hull (``materials.stability.DFTHull``), and it is kept when this **proxy**
E_hull is below a threshold (0.1 eV/atom); kept structures are deduplicated with pymatgen's
``StructureMatcher`` (lowest E_hull first). Output is a CDVAE-format CSV (``cif`` column plus
properties). The build is deterministic for a seed and resumable: candidates are scored in chunks
and every chunk is written atomically to ``candidates.csv``; a rerun skips what is there.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pymatgen.core import Structure

from common.errors import ConfigError, DataError
from common.io import atomic_write_json, atomic_write_text

from .baselines import spacegroup_label
from .stability import DFTHull, ElementalReferences, RelaxConfig, relax_many
from .stable_prototypes import PALETTE, SEEDS, Decoration, decorate, plan_candidates

CANDIDATE_COLUMNS = ["id", "key", "prototype", "probability", "formula", "n_atoms",
                     "struct_valid", "relax_steps", "energy_per_atom_chgnet",
                     "formation_energy_per_atom_proxy", "e_above_hull_proxy", "spacegroup",
                     "volume_change", "error", "cif"]


@dataclass
class StableSetConfig:
    """How the set is built (recorded in ``config.json``; a resume must use the same)."""

    n_candidates: int = 400
    threshold: float = 0.1  # keep proxy E_hull < threshold (eV/atom)
    seed: int = 0
    min_probability: float = 3e-4  # Hautier substitution probability cut-off
    prototypes: list = field(default_factory=lambda: list(SEEDS))
    palette: list = field(default_factory=lambda: list(PALETTE))
    fmax: float = 0.1
    relax_steps: int = 200
    element_fmax: float = 0.1
    element_steps: int = 150
    chunk: int = 8

    def relax(self) -> RelaxConfig:
        return RelaxConfig(fmax=self.fmax, steps=self.relax_steps)


def score_structures(structures: list[Structure], hull: DFTHull,
                     relax: RelaxConfig | None = None, executor: Any = None
                     ) -> list[dict[str, Any]]:
    """Relax with CHGNet and place on the DFT-anchored hull: one row per structure.

    Rows hold the relaxed structure, energy per atom, proxy formation energy and proxy E_hull
    (NaN when the relaxation failed or the relaxed cell is not structurally valid).
    """
    from .metrics import structural_validity

    res = relax_many(structures, relax or RelaxConfig(), executor)
    rows = []
    for s0, r in zip(structures, res):
        s, e = r["structure"], r["energy_per_atom"]
        ok = math.isfinite(e) and structural_validity(s)
        ef = hull.refs.formation_energy_per_atom(s.composition, e) if ok else float("nan")
        eh = hull.e_above_hull_from_formation(s.composition, ef) if ok else float("nan")
        rows.append({"structure": s, "struct_valid": ok, "relax_steps": r["steps"],
                     "energy_per_atom_chgnet": e, "formation_energy_per_atom_proxy": ef,
                     "e_above_hull_proxy": eh, "spacegroup": spacegroup_label(s) if ok else "",
                     "volume_change": s.volume / s0.volume - 1, "error": r["error"] or ""})
    return rows


def _check_config(out: Path, cfg: StableSetConfig) -> None:
    f = out / "config.json"
    want = asdict(cfg)
    if f.is_file():
        have = json.loads(f.read_text())
        diff = sorted(k for k in want if k != "chunk" and have.get(k) != want[k])
        if diff:
            raise ConfigError(f"{out} holds a set built with other settings ({', '.join(diff)});"
                              " use another --out or the same settings to resume")
    atomic_write_json(f, want)


def build_stable_set(out: str | Path, hull: DFTHull | str | Path,
                     cfg: StableSetConfig | None = None, executor: Any = None,
                     progress: bool = True) -> pd.DataFrame:
    """Build (or resume) the proxy-stable set in ``out``; returns the kept rows.

    Writes ``out/candidates.csv`` (every candidate scored so far), ``out/stable_set.csv`` (the
    kept, deduplicated structures, CDVAE format) and ``out/summary.json``.

    Args:
        out: output folder (created).
        hull: a ``DFTHull`` or the path of the MP-20 hull parquet / folder.
        cfg: settings; a resume must use the same ones (``ConfigError`` otherwise).
        executor: a ``common.executor`` executor for the relaxations (serial when None).
        progress: show a tqdm bar over candidates.
    """
    from tqdm.auto import tqdm

    cfg = cfg or StableSetConfig()
    out = Path(out)
    _check_config(out, cfg)
    if not isinstance(hull, DFTHull):
        refs = ElementalReferences(relax=RelaxConfig(fmax=cfg.element_fmax,
                                                     steps=cfg.element_steps))
        hull = DFTHull.from_file(hull, refs)
    t0 = time.perf_counter()
    plan = plan_candidates(cfg.n_candidates, cfg.seed, cfg.min_probability,
                           tuple(cfg.prototypes), tuple(cfg.palette))
    done = read_candidates(out / "candidates.csv")
    keys = [d.key for d in plan]
    if len(done) and list(done["key"]) != keys[: len(done)]:
        raise ConfigError(f"{out / 'candidates.csv'} does not match this plan; use another --out")
    rows = done.to_dict("records")
    elements = sorted({el.symbol for d in plan for el in decorate(d).composition})
    for el in tqdm(elements, desc="elemental references", disable=not progress, leave=False):
        hull.refs.get(el)
    bar = tqdm(total=len(plan), initial=len(rows), desc="proxy-stable set", disable=not progress)
    while len(rows) < len(plan):
        todo: list[Decoration] = plan[len(rows): len(rows) + cfg.chunk]
        structs = [decorate(d) for d in todo]
        for d, r in zip(todo, score_structures(structs, hull, cfg.relax(), executor)):
            rows.append(_row(len(rows), d, r))
        _write_candidates(out / "candidates.csv", rows)
        bar.update(len(todo))
    bar.close()
    kept = select_stable(pd.DataFrame(rows, columns=CANDIDATE_COLUMNS), cfg.threshold)
    atomic_write_text(out / "stable_set.csv", kept.to_csv(index=False))
    summary = summarize(pd.DataFrame(rows, columns=CANDIDATE_COLUMNS), kept, cfg)
    summary["seconds_this_call"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "summary.json", summary)
    return kept


def rescore_stable_set(out: str | Path, hull: DFTHull | str | Path) -> pd.DataFrame:
    """Re-place every scored candidate of ``out`` on the hull from its stored CHGNet energy.

    For when the elemental references change (e.g. ``stability.REFS_VERSION``): no relaxation is
    repeated; ``candidates.csv``, ``stable_set.csv`` and ``summary.json`` are rewritten.
    """
    out = Path(out)
    f = out / "config.json"
    if not f.is_file():
        raise DataError("not a stable-set folder", file=f, expected="config.json of a build")
    cfg = StableSetConfig(**json.loads(f.read_text()))
    if not isinstance(hull, DFTHull):
        refs = ElementalReferences(relax=RelaxConfig(fmax=cfg.element_fmax,
                                                     steps=cfg.element_steps))
        hull = DFTHull.from_file(hull, refs)
    cand = read_candidates(out / "candidates.csv")
    ef, eh = [], []
    for formula, e, ok in zip(cand["formula"], cand["energy_per_atom_chgnet"],
                              cand["struct_valid"]):
        e = float(e)
        good = bool(ok) and math.isfinite(e)
        ef.append(hull.refs.formation_energy_per_atom(_comp(formula), e) if good else math.nan)
        eh.append(hull.e_above_hull_from_formation(formula, ef[-1]) if good else math.nan)
    cand["formation_energy_per_atom_proxy"], cand["e_above_hull_proxy"] = ef, eh
    atomic_write_text(out / "candidates.csv", cand.to_csv(index=False))
    kept = select_stable(cand, cfg.threshold)
    atomic_write_text(out / "stable_set.csv", kept.to_csv(index=False))
    atomic_write_json(out / "summary.json", summarize(cand, kept, cfg) | {"rescored": True})
    return kept


def _row(i: int, d: Decoration, r: dict[str, Any]) -> dict[str, Any]:
    from pymatgen.io.cif import CifWriter

    s = r["structure"]
    return {"id": i, "key": d.key, "prototype": d.prototype, "probability": d.probability,
            "formula": s.composition.reduced_formula, "n_atoms": len(s),
            **{k: r[k] for k in ("struct_valid", "relax_steps", "energy_per_atom_chgnet",
                                 "formation_energy_per_atom_proxy", "e_above_hull_proxy",
                                 "spacegroup", "volume_change", "error")},
            "cif": str(CifWriter(s))}


def _write_candidates(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, pd.DataFrame(rows, columns=CANDIDATE_COLUMNS).to_csv(index=False))


def read_candidates(path: str | Path) -> pd.DataFrame:
    """The scored candidates of a (partial) build; empty when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    df = pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN", ""])
    missing = set(CANDIDATE_COLUMNS) - set(df.columns)
    if missing:
        raise DataError("not a candidates file of build_stable_set", file=path,
                        field=", ".join(sorted(missing)), expected=str(CANDIDATE_COLUMNS))
    df["error"] = df["error"].fillna("")
    df["spacegroup"] = df["spacegroup"].fillna("")
    return df[CANDIDATE_COLUMNS]


def select_stable(candidates: pd.DataFrame, threshold: float = 0.1) -> pd.DataFrame:
    """Rows with proxy E_hull < ``threshold``, deduplicated by StructureMatcher (lowest E_hull
    of each group kept), in order of increasing E_hull; ``material_id`` names each kept row."""
    from .metrics import uniqueness

    ok = candidates[candidates["e_above_hull_proxy"].astype(float) < threshold]
    ok = ok.sort_values(["e_above_hull_proxy", "id"], kind="stable").reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structs = [Structure.from_str(c, fmt="cif") for c in ok["cif"]]
    first = uniqueness(structs) if structs else []
    kept = ok[[bool(f) for f in first]].reset_index(drop=True)
    kept.insert(0, "material_id", [f"gp-stable-{int(i)}" for i in kept["id"]])
    return kept.drop(columns=["id"])


def summarize(candidates: pd.DataFrame, kept: pd.DataFrame, cfg: StableSetConfig
              ) -> dict[str, Any]:
    """Counts (with denominators), elements, per-prototype yield and an E_hull histogram."""
    import numpy as np

    e = candidates["e_above_hull_proxy"].astype(float)
    below = int((e < cfg.threshold).sum())
    bins = [-math.inf, -0.1, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf]
    hist = np.histogram(e[np.isfinite(e)], bins=bins)[0].tolist()
    per = {p: f"{int((kept['prototype'] == p).sum())}/{int((candidates['prototype'] == p).sum())}"
           for p in dict.fromkeys(candidates["prototype"])}
    elements = sorted({el.symbol for f in kept["formula"] for el in _comp(f)})
    return {
        "n_candidates": len(candidates), "n_scored": int(np.isfinite(e).sum()),
        "n_below_threshold": f"{below}/{len(candidates)}",
        "n_kept_after_dedup": f"{len(kept)}/{len(candidates)}",
        "threshold_eV_per_atom": cfg.threshold,
        "kept_per_prototype": per, "elements": elements, "n_elements": len(elements),
        "e_hull_histogram": {"bins": [str(b) for b in bins], "counts": hist},
        "median_e_hull_all": float(np.nanmedian(e)) if len(e) else float("nan"),
        "hull": "DFT-anchored MP-20 (proxy: CHGNet formation energy)",
    }


def _comp(formula: str):  # noqa: ANN202 - pymatgen Composition
    from pymatgen.core import Composition

    return Composition(formula)


def stable_set_file(path: str | Path) -> Path:
    """``path/stable_set.csv`` when ``path`` is a built set's folder, else ``path`` unchanged."""
    path = Path(path)
    return path / "stable_set.csv" if (path / "stable_set.csv").is_file() else path


def load_stable_set(path: str | Path) -> list[Structure]:
    """The structures of a built set (``stable_set.csv`` or its folder), via the CDVAE loader."""
    from .data import load_structures

    path = Path(path)
    if path.is_dir():
        path = path / "stable_set.csv"
    return load_structures(path, on_error="raise")[0]
