"""DFT-proxy stability: CHGNet relaxation (Deng et al. 2023) and energy above a convex hull.

Two hulls, always labelled "proxy":
(a) DFT-anchored: the MP-20 DFT formation energies (composition level, MP2020-corrected as served
    by MP) form the hull; a candidate's formation energy is E_CHGNet(candidate) - sum_i n_i mu_i,
    with mu_i the CHGNet energy per atom of the lowest of several elemental crystals (fcc, bcc,
    hcp, diamond, simple cubic; a dimer in a box for H, N, O, F, Cl, Br, I; the S8 crown for S)
    relaxed with the same potential. No MP2020 corrections are applied on top: CHGNet was fitted
    to MP energies that already carry them (``proxy_calibration`` checks this on known
    compounds; benchmarks/results/materials_stability.md).
(b) self-consistent: CHGNet energies of reference structures a user supplies (plus the same
    elemental references) form the hull.
Energy above hull = E_form - E_hull(composition) (pymatgen ``PhaseDiagram``, Bartel 2022 review),
negative when a candidate lies below the reference hull.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element, Lattice, Structure

from common.errors import DataError
from common.io import atomic_write_json

DIMERS = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99, "Br": 2.28, "I": 2.67}
# crown-shaped 8-rings in a box (bond length, bond angle): alpha-sulfur's S8 molecule. Without it
# the lowest of the simple prototypes leaves mu_S ~0.3 eV too high and sulfides ~0.16 eV/atom too
# stable on the MP-20 hull (benchmarks/results/materials_stability.md, calibration by anion).
RINGS8 = {"S": (2.05, 108.0)}
REFS_VERSION = 2  # bump when the prototypes change: cached mu of RINGS8 elements are recomputed
BOX = 10.0


@dataclass
class RelaxConfig:
    """CHGNet relaxation settings (FIRE, cell relaxation, force threshold eV/A, step cap)."""

    fmax: float = 0.1
    steps: int = 200
    relax_cell: bool = True
    optimizer: str = "FIRE"


@lru_cache(maxsize=1)
def _chgnet() -> Any:
    from chgnet.model import CHGNet

    return CHGNet.load(verbose=False)


@lru_cache(maxsize=4)
def _optimizer(name: str) -> Any:
    from chgnet.model import StructOptimizer

    return StructOptimizer(model=_chgnet(), optimizer_class=name)


def relax_structure(structure: Structure, cfg: RelaxConfig | None = None) -> dict[str, Any]:
    """Relax one structure with CHGNet; energy per atom (eV, MP-compatible) and the final cell."""
    cfg = cfg or RelaxConfig()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = _optimizer(cfg.optimizer)
        try:
            res = opt.relax(structure, fmax=cfg.fmax, steps=cfg.steps,
                            relax_cell=cfg.relax_cell, verbose=False)
        except Exception as exc:  # CHGNet fails on e.g. isolated atoms without neighbours
            return {"structure": structure, "energy_per_atom": float("nan"), "steps": 0,
                    "error": f"{type(exc).__name__}: {exc}"}
    traj = res["trajectory"]
    e = float(traj.energies[-1]) / len(structure)
    return {"structure": res["final_structure"], "energy_per_atom": e,
            "steps": len(traj.energies), "error": None}


def _relax_item(item: tuple[dict, dict]) -> dict[str, Any]:
    """Executor task: (structure dict, relax config dict) -> picklable result."""
    s, cfg = item
    out = relax_structure(Structure.from_dict(s), RelaxConfig(**cfg))
    out["structure"] = out["structure"].as_dict()
    return out


def relax_many(structures: list[Structure], cfg: RelaxConfig | None = None,
               executor: Any = None) -> list[dict[str, Any]]:
    """Relax many structures through a ``common.executor`` executor (serial when None)."""
    from common.executor import get_executor

    cfg = cfg or RelaxConfig()
    items = [(s.as_dict(), asdict(cfg)) for s in structures]
    own = executor is None
    ex = executor or get_executor("local", n_workers=1)
    try:
        out = ex.map(_relax_item, items, desc="CHGNet relaxations")
    finally:
        if own:
            ex.close()
    for r in out:
        r["structure"] = Structure.from_dict(r["structure"])
    return out


# --- elemental references ---------------------------------------------------------------------
def elemental_prototypes(symbol: str) -> list[Structure]:
    """Candidate ground states of an element: fcc, bcc, hcp, diamond, sc (and a dimer in a box)."""
    el = Element(symbol)
    r = el.atomic_radius or el.atomic_radius_calculated or 1.5
    d = 2 * float(r)
    out = [
        Structure(Lattice.cubic(d * math.sqrt(2)), [el] * 4,
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
                  ).get_primitive_structure(),
        Structure(Lattice.cubic(2 * d / math.sqrt(3)), [el] * 2, [[0, 0, 0], [0.5, 0.5, 0.5]]
                  ).get_primitive_structure(),
        Structure(Lattice.hexagonal(d, 1.633 * d), [el] * 2, [[1 / 3, 2 / 3, 0.25],
                                                              [2 / 3, 1 / 3, 0.75]]),
        Structure(Lattice.cubic(4 * d / math.sqrt(3)), [el] * 8,
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25],
                   [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]
                  ).get_primitive_structure(),
        Structure(Lattice.cubic(d), [el], [[0, 0, 0]]),
    ]
    if symbol in DIMERS:
        out.append(Structure(Lattice.cubic(BOX), [el, el],
                             [[0, 0, 0], [DIMERS[symbol] / BOX, 0, 0]]))
    if symbol in RINGS8:
        out.append(ring8_in_box(symbol, *RINGS8[symbol]))
    return out


def ring8_in_box(symbol: str, bond: float, angle_deg: float, box: float = BOX) -> Structure:
    """A D4d crown 8-ring (S8) in a cubic box: atoms alternate +-h on a circle of radius R."""
    d2 = 2 * bond * math.sin(math.radians(angle_deg) / 2)  # 1-3 distance, same height
    r = d2 / math.sqrt(2)
    h = math.sqrt(bond**2 - 2 * r**2 * (1 - math.cos(math.pi / 4))) / 2
    pts = [[box / 2 + r * math.cos(k * math.pi / 4), box / 2 + r * math.sin(k * math.pi / 4),
            box / 2 + h * (-1) ** k] for k in range(8)]
    return Structure(Lattice.cubic(box), [symbol] * 8, pts, coords_are_cartesian=True)


def _molecular(proto: Structure) -> bool:
    """A molecule in a box (dimer or ring): relaxed at fixed cell."""
    return proto.lattice.a == BOX and proto.composition.num_atoms in (2, 8)


class ElementalReferences:
    """CHGNet chemical potentials mu_i (eV/atom), relaxed once and cached on disk."""

    def __init__(self, cache_file: str | Path | None = None, relax: RelaxConfig | None = None
                 ) -> None:
        from .data import default_cache_dir

        self.relax = relax or RelaxConfig(fmax=0.05, steps=300)
        name = f"chgnet_elemental_refs_fmax{self.relax.fmax:g}_steps{self.relax.steps}.json"
        self.cache_file = Path(cache_file or default_cache_dir() / name)
        self.mu: dict[str, float] = {}
        if self.cache_file.is_file():
            try:
                data = json.loads(self.cache_file.read_text())
                self.mu = data["mu"]
            except (ValueError, KeyError):
                self.mu, data = {}, {}
            if data.get("version", 1) < REFS_VERSION:  # computed without the 8-ring molecules
                self.mu = {k: v for k, v in self.mu.items() if k not in RINGS8}

    def get(self, symbol: str) -> float:
        if symbol not in self.mu:
            best = math.inf
            for proto in elemental_prototypes(symbol):
                cfg = self.relax
                if _molecular(proto):
                    cfg = RelaxConfig(cfg.fmax, cfg.steps, relax_cell=False)
                e = relax_structure(proto, cfg)["energy_per_atom"]
                if math.isfinite(e):
                    best = min(best, e)
            self.mu[symbol] = best
            atomic_write_json(self.cache_file, {"potential": "CHGNet", "mu": self.mu,
                                                "version": REFS_VERSION})
        return self.mu[symbol]

    def formation_energy_per_atom(self, composition: Composition, energy_per_atom: float
                                  ) -> float:
        comp = Composition(composition).element_composition
        ref = sum(n * self.get(el.symbol) for el, n in comp.items()) / comp.num_atoms
        return energy_per_atom - ref


# --- hulls -------------------------------------------------------------------------------------
class _HullBase:
    def __init__(self) -> None:
        self._pd: dict[tuple[str, ...], PhaseDiagram] = {}

    def _entries(self, elements: frozenset[str]) -> list[PDEntry]:
        raise NotImplementedError

    def phase_diagram(self, elements: frozenset[str]) -> PhaseDiagram:
        key = tuple(sorted(elements))
        if key not in self._pd:
            self._pd[key] = PhaseDiagram(self._entries(frozenset(key)))
        return self._pd[key]

    def _e_above(self, composition: Composition, energy_per_atom: float) -> float:
        comp = Composition(composition).element_composition
        pd_ = self.phase_diagram(frozenset(el.symbol for el in comp))
        entry = PDEntry(comp, energy_per_atom * comp.num_atoms)
        return float(pd_.get_e_above_hull(entry, allow_negative=True))


class DFTHull(_HullBase):
    """(a) The DFT-anchored hull from MP-20 formation energies (``ensemble_above_hull_dataset``)."""

    def __init__(self, table: pd.DataFrame, refs: ElementalReferences | None = None) -> None:
        super().__init__()
        need = {"species_at_sites", "formation_energy_per_atom"}
        if not need <= set(table.columns):
            raise DataError("hull table lacks columns", field=", ".join(sorted(need)),
                            expected="the MP-20 hull parquet of the shared data")
        self.comps = [Composition(Counter(s)) for s in table["species_at_sites"]]
        self.e_form = table["formation_energy_per_atom"].to_numpy(dtype=float)
        self.e_hull_dft = (table["e_above_hull"].to_numpy(dtype=float)
                           if "e_above_hull" in table else None)
        self.formulas = [c.reduced_formula for c in self.comps]
        self.elsets = [frozenset(el.symbol for el in c) for c in self.comps]
        self.refs = refs or ElementalReferences()

    @classmethod
    def from_file(cls, path: str | Path, refs: ElementalReferences | None = None) -> DFTHull:
        path = Path(path)
        if path.is_dir():
            path = path / "ensemble_above_hull_dataset.parquet"
        if not path.is_file():
            raise DataError("hull table not found", file=path,
                            expected="mp20_hull/ensemble_above_hull_dataset.parquet")
        return cls(pd.read_parquet(path), refs)

    def _entries(self, elements: frozenset[str]) -> list[PDEntry]:
        entries = [PDEntry(Composition(e), 0.0) for e in elements]
        for c, ef, es in zip(self.comps, self.e_form, self.elsets):
            if es <= elements and np.isfinite(ef):
                entries.append(PDEntry(c, ef * c.num_atoms))
        return entries

    def e_above_hull_from_formation(self, composition: Composition | str,
                                    e_form_per_atom: float) -> float:
        """Energy above the DFT hull for a given formation energy (eV/atom)."""
        return self._e_above(Composition(composition), e_form_per_atom)

    def e_above_hull(self, composition: Composition | str, chgnet_energy_per_atom: float
                     ) -> float:
        """Proxy E_hull (eV/atom) of a CHGNet energy per atom, via the elemental references."""
        if not math.isfinite(chgnet_energy_per_atom):
            return float("nan")
        ef = self.refs.formation_energy_per_atom(Composition(composition),
                                                 chgnet_energy_per_atom)
        return self.e_above_hull_from_formation(composition, ef)


class SelfConsistentHull(_HullBase):
    """(b) A hull of CHGNet energies of user-supplied reference structures (+ elements)."""

    def __init__(self, references: list[tuple[Composition, float]],
                 refs: ElementalReferences | None = None) -> None:
        super().__init__()
        self.references = [(Composition(c).element_composition, float(e)) for c, e in references
                           if math.isfinite(e)]
        self.refs = refs or ElementalReferences()

    @classmethod
    def from_structures(cls, structures: list[Structure], relax: RelaxConfig | None = None,
                        executor: Any = None, refs: ElementalReferences | None = None
                        ) -> SelfConsistentHull:
        res = relax_many(structures, relax, executor)
        return cls([(s.composition, r["energy_per_atom"]) for s, r in zip(structures, res)], refs)

    def _entries(self, elements: frozenset[str]) -> list[PDEntry]:
        entries = [PDEntry(Composition(e), self.refs.get(e)) for e in elements]
        for c, e in self.references:
            if {el.symbol for el in c} <= elements:
                entries.append(PDEntry(c, e * c.num_atoms))
        return entries

    def e_above_hull(self, composition: Composition | str, chgnet_energy_per_atom: float
                     ) -> float:
        """Proxy E_hull (eV/atom) of a CHGNet energy against the CHGNet reference hull."""
        if not math.isfinite(chgnet_energy_per_atom):
            return float("nan")
        return self._e_above(Composition(composition), chgnet_energy_per_atom)


def stability_summary(e_hull: list[float], unique: list[bool], novel: list[bool],
                      valid: list[bool], label: str) -> dict[str, Any]:
    """Stable (<= 0), metastable (<= 0.1 eV/atom) fractions and S.U.N., denominators written out."""
    n = len(e_hull)
    finite = [e for e in e_hull if math.isfinite(e)]
    stable = [math.isfinite(e) and e <= 0 for e in e_hull]
    meta = [math.isfinite(e) and e <= 0.1 for e in e_hull]
    sun = [s and u and v and ok for s, u, v, ok in zip(stable, unique, novel, valid)]
    msun = [s and u and v and ok for s, u, v, ok in zip(meta, unique, novel, valid)]
    return {
        "hull": label, "n_candidates": n, "n_scored": len(finite),
        "median_e_hull": float(np.median(finite)) if finite else float("nan"),
        "stable": f"{sum(stable)}/{n}", "stable_rate": sum(stable) / max(n, 1),
        "metastable": f"{sum(meta)}/{n}", "metastable_rate": sum(meta) / max(n, 1),
        "sun": f"{sum(sun)}/{n} (valid, unique, novel and E_hull <= 0 over all candidates)",
        "sun_rate": sum(sun) / max(n, 1),
        "msun": f"{sum(msun)}/{n} (valid, unique, novel, E_hull <= 0.1)",
        "msun_rate": sum(msun) / max(n, 1),
    }


def proxy_calibration(formulas: list[str], proxy_e_hull: list[float], hull: DFTHull,
                      threshold: float = 0.1) -> dict[str, Any]:
    """Proxy E_hull against the MP-20 DFT e_above_hull for compositions in the table.

    Per reduced formula the lowest proxy E_hull over the given structures (the best polymorph the
    project built) is compared with the lowest DFT e_above_hull of that formula in the table (the
    table has no structures, so polymorphs cannot be matched one to one). Returns the MAE, the
    mean signed error (proxy - DFT), the agreement on "E_hull <= threshold" and on the sign
    ("E_hull <= 0"), with the number of formulas and the per-formula pairs.
    """
    known: dict[str, float] = {}
    for f, e in zip(hull.formulas, hull.e_hull_dft if hull.e_hull_dft is not None else []):
        if math.isfinite(e):
            known[f] = min(known.get(f, math.inf), float(e))
    best: dict[str, float] = {}
    for f, e in zip(formulas, proxy_e_hull):
        f = Composition(f).reduced_formula
        if f in known and math.isfinite(e):
            best[f] = min(best.get(f, math.inf), float(e))
    pairs = [(f, best[f], known[f]) for f in sorted(best)]
    if not pairs:
        return {"n_formulas": 0, "mae": float("nan"), "bias": float("nan"),
                "agreement_threshold": float("nan"), "agreement_sign": float("nan"),
                "pairs": []}
    err = np.array([p - d for _, p, d in pairs])
    return {
        "n_formulas": len(pairs), "mae": float(np.abs(err).mean()), "bias": float(err.mean()),
        "agreement_threshold": float(np.mean([(p <= threshold) == (d <= threshold)
                                              for _, p, d in pairs])),
        "agreement_sign": float(np.mean([(p <= 1e-9) == (d <= 1e-9) for _, p, d in pairs])),
        "threshold": threshold, "pairs": pairs,
    }
