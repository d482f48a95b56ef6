"""Seed prototypes and their decoration by data-mined ion substitution (Hautier et al. 2011).

Eleven textbook ionic prototypes, each built with its real seed compound's space group, Wyckoff
positions and experimental lattice (``Structure.from_spacegroup``) and oxidation-state decorated:
rock salt NaCl, CsCl, zinc blende ZnS, wurtzite ZnO, fluorite CaF2, anti-fluorite Li2O, rutile
TiO2, cubic perovskite SrTiO3, spinel MgAl2O4, corundum Al2O3 and CdI2. New decorations come
from pymatgen's ``SubstitutionPredictor`` (Hautier, Fischer, Ehrlacher, Jain, Ceder, Inorg. Chem.
50, 656 (2011): the probability that a whole set of ions substitutes for another), kept when the
new ions are charge balanced on the seed's sites and their elements are in a palette; the cell
volume is scaled by the Shannon ionic volumes before CHGNet relaxes it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from pymatgen.core import Lattice, Species, Structure

# Elements a decoration may use: common s/p-block, early and late transition metals, anions
# (a bounded palette keeps the number of elemental CHGNet references small).
PALETTE = ("Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca", "Sr", "Ba", "Zn", "Cd", "Al", "Ga",
           "In", "Sc", "Y", "La", "Ti", "Zr", "Hf", "Si", "Ge", "Sn", "Pb", "Nb", "Ta", "Mn",
           "Ni", "Cu", "Ag", "O", "S", "Se", "Te", "F", "Cl", "Br", "I", "N")


def _rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na+", "Cl-"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def _cscl() -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(4.12), ["Cs+", "Cl-"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def _zincblende() -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(5.41), ["Zn2+", "S2-"],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]])


def _wurtzite() -> Structure:
    return Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn2+", "O2-"],
                                     [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]])


def _fluorite() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.46), ["Ca2+", "F-"],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]])


def _antifluorite() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["O2-", "Li+"],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]])


def _rutile() -> Structure:
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.59, 2.96),
                                     ["Ti4+", "O2-"], [[0, 0, 0], [0.305, 0.305, 0]])


def _perovskite() -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.905), ["Sr2+", "Ti4+", "O2-"],
                                     [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0]])


def _spinel() -> Structure:  # Fd-3m origin choice 1: Mg 8a, Al 16d, O 32e (x = 0.388)
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(8.08), ["Mg2+", "Al3+", "O2-"],
                                     [[0, 0, 0], [0.625, 0.625, 0.625], [0.388, 0.388, 0.388]])


def _corundum() -> Structure:
    return Structure.from_spacegroup("R-3c", Lattice.hexagonal(4.76, 12.99), ["Al3+", "O2-"],
                                     [[0, 0, 0.352], [0.306, 0, 0.25]])


def _cdi2() -> Structure:
    return Structure.from_spacegroup("P-3m1", Lattice.hexagonal(4.24, 6.84), ["Cd2+", "I-"],
                                     [[0, 0, 0], [1 / 3, 2 / 3, 0.25]])


SEEDS: dict[str, Callable[[], Structure]] = {
    "rocksalt": _rocksalt, "cscl": _cscl, "zincblende": _zincblende, "wurtzite": _wurtzite,
    "fluorite": _fluorite, "antifluorite": _antifluorite, "rutile": _rutile,
    "perovskite": _perovskite, "spinel": _spinel, "corundum": _corundum, "cdi2": _cdi2,
}


@cache
def seed_structure(name: str) -> Structure:
    """The primitive cell of the named seed prototype, species with oxidation states."""
    if name not in SEEDS:
        raise KeyError(f"unknown prototype {name!r}; known: {', '.join(SEEDS)}")
    return SEEDS[name]().get_primitive_structure()


@dataclass(frozen=True)
class Decoration:
    """A proposed crystal: a prototype, an ion mapping (seed ion -> new ion), its probability."""

    prototype: str
    mapping: tuple[tuple[str, str], ...]  # sorted (seed species, new species) pairs
    probability: float

    @property
    def key(self) -> str:
        """A stable identifier, e.g. ``rocksalt|Cl-=Br-|Na+=K+`` (seed ion = new ion)."""
        return "|".join([self.prototype] + [f"{a}={b}" for a, b in self.mapping])


def _ionic_radius(sp: Species) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = sp.ionic_radius
        except (ValueError, KeyError):
            r = None
        if not r:
            r = sp.element.atomic_radius or 1.5
    return float(r)


def charge_balanced(structure: Structure, mapping: dict[str, str]) -> bool:
    """True when the new ions' oxidation states sum to zero over the seed's sites."""
    total = 0.0
    for site in structure:
        total += Species.from_str(mapping[str(site.specie)]).oxi_state
    return abs(total) < 1e-8


def decorate(decoration: Decoration) -> Structure:
    """The seed cell with its ions replaced, volume scaled by the sum of Shannon ionic volumes.

    Oxidation states are removed (CHGNet and the CIF column take neutral elements).
    """
    seed = seed_structure(decoration.prototype)
    mapping = dict(decoration.mapping)
    old = sum(_ionic_radius(site.specie) ** 3 for site in seed)
    new = sum(_ionic_radius(Species.from_str(mapping[str(site.specie)])) ** 3 for site in seed)
    s = seed.copy()
    s.replace_species({Species.from_str(a): Species.from_str(b) for a, b in mapping.items()})
    s.scale_lattice(seed.volume * new / old)
    s.remove_oxidation_states()
    return s


def propose_decorations(prototype: str, min_probability: float = 1e-3,
                        palette: tuple[str, ...] = PALETTE) -> list[Decoration]:
    """Charge-balanced ion substitutions of a seed with Hautier probability >= ``min_probability``.

    Every seed ion must map to a distinct new ion (no two sites collapse into one species), all
    new elements must be in ``palette``; the seed itself is included with probability 1.
    Sorted by probability (highest first), then by key, so the order is deterministic.
    """
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionPredictor,
    )

    seed = seed_structure(prototype)
    ions = sorted({str(site.specie) for site in seed})
    pred = _predictor(min_probability)
    out = {tuple((a, a) for a in ions): 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proposals = pred.list_prediction(ions) if isinstance(pred, SubstitutionPredictor) else []
    for p in proposals:
        mapping = {str(old): str(new) for new, old in p["substitutions"].items()}
        if sorted(mapping) != ions or len(set(mapping.values())) != len(ions):
            continue
        if any(Species.from_str(v).symbol not in palette for v in mapping.values()):
            continue
        if not charge_balanced(seed, mapping):
            continue
        key = tuple(sorted(mapping.items()))
        out[key] = max(out.get(key, 0.0), float(p["probability"]))
    decos = [Decoration(prototype, k, v) for k, v in out.items()]
    return sorted(decos, key=lambda d: (-d.probability, d.key))


@lru_cache(maxsize=4)
def _predictor(threshold: float):  # noqa: ANN202 - pymatgen type
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionPredictor,
    )

    return SubstitutionPredictor(threshold=threshold)


def plan_candidates(n: int, seed: int = 0, min_probability: float = 1e-3,
                    prototypes: tuple[str, ...] | None = None,
                    palette: tuple[str, ...] = PALETTE) -> list[Decoration]:
    """``n`` decorations spread evenly over the prototypes, drawn without replacement with weights
    proportional to their substitution probability (Gumbel top-k, deterministic for ``seed``).

    Each prototype's seed compound is always included. Round-robin over the prototypes so any
    prefix of the plan covers them all.
    """
    import numpy as np

    names = list(prototypes or SEEDS)
    rng = np.random.default_rng(seed)
    per: list[list[Decoration]] = []
    for name in names:
        decos = propose_decorations(name, min_probability, palette)
        g = rng.gumbel(size=len(decos))
        score = [math.log(max(d.probability, 1e-300)) + gi for d, gi in zip(decos, g)]
        order = sorted(range(len(decos)), key=lambda i: (decos[i].probability < 1.0, -score[i]))
        per.append([decos[i] for i in order])
    plan: list[Decoration] = []
    depth = 0
    while len(plan) < n and any(depth < len(p) for p in per):
        plan += [p[depth] for p in per if depth < len(p)]
        depth += 1
    return plan[:n]
