"""Composition sanity rule applied before relaxation (SMACT screening, Davies et al. 2019).

Generators' users screen drawn compositions before paying for a relaxation: SMACT charge
neutrality with the Pauling electronegativity order (every cation less electronegative than
every anion; Davies et al., Chem 2016 / JOSS 2019, ``smact.screening.smact_validity``). CDVAE's
compositional validity (``materials.metrics.smact_validity``) runs that test on ALL of SMACT's
oxidation states and counts all-metal alloys and single elements as valid, so interhalogens
(BrCl3 as Br3+ Cl-), Se2+ halides, Ga+ fluoride or intermetallics all pass it. The ``"ionic"``
rule here is the same SMACT test, restricted to the oxidation states that account for at least
10 % of an element's occurrences in the ICSD (SMACT 4's ICSD-24 table, ``commonality="medium"``,
>= 3 literature reports), without the alloy / single-element exemptions: a candidate must be an
ionic compound with at least one cation and one anion in common oxidation states.

Cost on the proxy-stable set (its 294 structures): 20 fail, all real oxides with a less common
state (Ti3+ in Ti2O3, Nb4+ in NbO2, Pb4+ in PbO2, Ni4+ ...); see
``benchmarks/results/materials_stability.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

from pymatgen.core import Composition, Element, Structure

from common.errors import ConfigError

SCREENS = ("none", "ionic")

# Anion-forming elements of the proxy-stable set's chemistry (for the cation-anion-pair count).
ANIONS = frozenset({"N", "O", "S", "Se", "Te", "F", "Cl", "Br", "I"})


@lru_cache(maxsize=100_000)
def _ionic_cached(formula: str, commonality: str, consensus: int) -> bool:
    from smact.screening import ICSD24FilterConfig, smact_validity

    with warnings.catch_warnings():  # noble gases have no Pauling electronegativity
        warnings.simplefilter("ignore")
        try:
            return bool(smact_validity(
                formula, use_pauling_test=True, include_alloys=False, oxidation_states_set=None,
                icsd_filter=ICSD24FilterConfig(commonality=commonality, consensus=consensus)))
        except Exception:  # elements SMACT has no data for (e.g. Rf): not assessable -> fail
            return False


def _composition(x: Composition | Structure | str) -> Composition:
    if isinstance(x, Structure):
        return x.composition
    return Composition(x)


def ionic_composition(composition: Composition | Structure | str, commonality: str = "medium",
                      consensus: int = 3) -> bool:
    """SMACT charge neutrality + Pauling order on ICSD-common oxidation states (Davies 2019).

    Args:
        composition: a composition, a structure or a formula.
        commonality: SMACT's ICSD-24 filter: ``"low"`` (every reported state), ``"medium"``
            (>= 10 % of the element's ICSD occurrences, default), ``"high"`` (>= 50 %) or
            ``"main"`` (the most common state only).
        consensus: minimum number of literature reports of a state.

    Returns:
        True when the composition has at least two elements and some charge-neutral assignment
        of those states in which every cation is less electronegative than every anion.
    """
    comp = _composition(composition).element_composition.reduced_composition
    if len(comp) < 2:
        return False
    return _ionic_cached(comp.formula.replace(" ", ""), commonality, consensus)


def has_cation_anion_pair(composition: Composition | Structure | str) -> bool:
    """True when the composition holds a metal or metalloid (pymatgen) and an anion former."""
    els = _composition(composition).elements
    return any(e.symbol in ANIONS for e in els) and any(
        Element(e.symbol).is_metal or Element(e.symbol).is_metalloid for e in els)


def screen(candidates: Sequence[Structure | Composition | None], rule: str = "ionic"
           ) -> list[bool]:
    """Per-candidate pass/fail of a composition ``rule`` (``"none"`` passes everything but None).

    Raises:
        ConfigError: ``rule`` is not one of ``SCREENS``.
    """
    if rule not in SCREENS:
        raise ConfigError(f"composition screen {rule!r}: expected one of {SCREENS}")
    if rule == "none":
        return [c is not None for c in candidates]
    return [c is not None and ionic_composition(c) for c in candidates]


def first_passing(candidates: Sequence[Structure | None], n: int, rule: str = "ionic"
                  ) -> list[int]:
    """Indices of the first ``n`` candidates (in drawn order) that pass ``rule``.

    Fewer than ``n`` when the pool runs out: the caller counts the shortfall as failures.
    """
    ok = screen(candidates, rule)
    return [i for i, good in enumerate(ok) if good][:n]


def composition_summary(candidates: Sequence[Structure | None]) -> dict[str, int]:
    """Counts over drawn candidates: cation-anion pair, CDVAE SMACT-valid, ionic rule."""
    from materials.metrics import smact_validity

    comps = [c for c in candidates if c is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"n": len(candidates), "decoded": len(comps),
                "cation_anion_pair": sum(has_cation_anion_pair(c) for c in comps),
                "smact_valid": sum(smact_validity(c) for c in comps),
                "ionic": sum(ionic_composition(c) for c in comps)}


def occupancy_summary(candidates: Sequence[Structure | None]) -> dict[str, object]:
    """Cell sizes of decoded candidates: atoms (= occupied UniMat slots) and elements per cell.

    Returns mean / median atoms per cell, mean distinct elements per cell and the histogram
    ``{atoms: count}`` (sorted), over the decoded (non-None) candidates.
    """
    import numpy as np

    comps = [c.composition for c in candidates if c is not None]
    atoms = np.array([int(round(c.num_atoms)) for c in comps], dtype=float)
    if not len(atoms):
        return {"decoded": 0}
    hist: dict[int, int] = {}
    for a in atoms.astype(int):
        hist[int(a)] = hist.get(int(a), 0) + 1
    return {"decoded": len(comps), "atoms_mean": float(atoms.mean()),
            "atoms_median": float(np.median(atoms)),
            "elements_mean": float(np.mean([len(c) for c in comps])),
            "atoms_hist": dict(sorted(hist.items()))}
