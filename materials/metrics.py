"""Generation metrics as CDVAE/DiffCSP define them (Xie et al. 2022, Sec. 5; Jiao et al. 2023).

Validity (structural: all interatomic distances > 0.5 A and volume > 0.1 A^3; compositional:
SMACT charge neutrality with the Pauling electronegativity test), uniqueness and novelty by
StructureMatcher, coverage COV-R/COV-P on CrystalNN and Magpie fingerprints, property Wasserstein
distances, and the CSP match rate / normalised RMSE at k candidates.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure
from scipy.stats import wasserstein_distance

# Oxidation-state assignments smact_validity enumerates at most (CDVAE enumerates all: with 10+
# elements that product explodes and never returns); compositions beyond it count as invalid.
MAX_OX_COMBINATIONS = 200_000

# CDVAE's per-dataset coverage thresholds (cdvae/scripts/compute_metrics.py: COV_Cutoffs).
COV_CUTOFFS = {"mp20": {"struc": 0.4, "comp": 10.0}, "carbon": {"struc": 0.2, "comp": 4.0},
               "perovskite": {"struc": 0.2, "comp": 4.0}}


def structural_validity(structure: Structure, cutoff: float = 0.5, min_volume: float = 0.1
                        ) -> bool:
    """CDVAE's structural validity: every interatomic distance > ``cutoff`` A, volume > 0.1 A^3."""
    if structure.volume <= min_volume:
        return False
    if len(structure) == 1:
        # one atom: its shortest distance is to its own periodic image
        return min(structure.lattice.abc) > cutoff
    dist = structure.distance_matrix + np.eye(len(structure)) * 1e6
    return bool(dist.min() > cutoff)


@lru_cache(maxsize=100_000)
def _smact_valid_cached(symbols: tuple[str, ...], counts: tuple[int, ...],
                        use_pauling_test: bool, include_alloys: bool) -> bool:
    import smact
    from smact.screening import pauling_test

    if len(set(symbols)) == 1:
        return True
    if include_alloys and all(s in smact.metals for s in symbols):
        return True
    try:
        space = smact.element_dictionary(symbols)
    except Exception:  # SMACT has no data for some elements (e.g. Rf): not assessable -> invalid
        return False
    elems = [space[s] for s in symbols]
    eneg = [e.pauling_eneg for e in elems]
    # SMACT lists no oxidation state for some heavy elements (e.g. Rf): not assessable -> invalid
    ox_sets = [getattr(e, "oxidation_states_smact14", None) or e.oxidation_states or []
               for e in elems]
    if math.prod(len(o) for o in ox_sets) > MAX_OX_COMBINATIONS:
        return False  # e.g. 14 elements with 5 states each: not enumerable, not a real candidate
    threshold = max(counts)
    stoichs = [(c,) for c in counts]
    for ox in itertools.product(*ox_sets):
        if not smact.neutral_ratios(ox, stoichs=stoichs, threshold=threshold):
            continue
        if not use_pauling_test:
            return True
        try:
            if pauling_test(ox, eneg):
                return True
        except TypeError:  # missing electronegativity: CDVAE counts it as passing
            return True
    return False


def smact_validity(composition: Composition | Structure, use_pauling_test: bool = True,
                   include_alloys: bool = True) -> bool:
    """CDVAE's compositional validity (``smact_validity``): some oxidation-state assignment is
    charge neutral at the reduced stoichiometry and passes the Pauling electronegativity test;
    single elements and all-metal alloys count as valid."""
    comp = composition.composition if isinstance(composition, Structure) else composition
    comp = Composition(comp).element_composition.reduced_composition
    items = sorted(comp.items(), key=lambda kv: kv[0].Z)
    symbols = tuple(el.symbol for el, _ in items)
    counts = tuple(int(round(n)) for _, n in items)
    return _smact_valid_cached(symbols, counts, use_pauling_test, include_alloys)


def validity(structures: Sequence[Structure | None]) -> dict[str, list[bool]]:
    """Per-candidate structural, compositional and overall validity (None counts as invalid)."""
    st = [s is not None and structural_validity(s) for s in structures]
    with warnings.catch_warnings():  # pymatgen warns about noble gases' missing electronegativity
        warnings.simplefilter("ignore")
        co = [s is not None and smact_validity(s) for s in structures]
    return {"struct_valid": st, "comp_valid": co, "valid": [a and b for a, b in zip(st, co)]}


def _matcher(**kw: float) -> StructureMatcher:
    return StructureMatcher(**kw)


def uniqueness(structures: Sequence[Structure], matcher: StructureMatcher | None = None
               ) -> list[bool]:
    """True for the first member of every StructureMatcher group (same reduced formula first)."""
    sm = matcher or _matcher()
    flags = [False] * len(structures)
    by_formula: dict[str, list[int]] = {}
    for i, s in enumerate(structures):
        by_formula.setdefault(s.composition.reduced_formula, []).append(i)
    for idx in by_formula.values():
        reps: list[int] = []
        for i in idx:
            if not any(_fit(sm, structures[i], structures[j]) for j in reps):
                reps.append(i)
                flags[i] = True
    return flags


def novelty(structures: Sequence[Structure], reference: Sequence[Structure],
            matcher: StructureMatcher | None = None) -> list[bool]:
    """True where no reference structure of the same reduced formula matches (StructureMatcher)."""
    sm = matcher or _matcher()
    ref: dict[str, list[Structure]] = {}
    for r in reference:
        ref.setdefault(r.composition.reduced_formula, []).append(r)
    return [not any(_fit(sm, s, r) for r in ref.get(s.composition.reduced_formula, []))
            for s in structures]


def _fit(sm: StructureMatcher, a: Structure, b: Structure) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(sm.fit(a, b))
    except Exception:  # pymatgen can fail on degenerate cells; treat as no match
        return False


# --- coverage -----------------------------------------------------------------------------------
def structure_fingerprint(structure: Structure) -> np.ndarray:
    """CDVAE's structure fingerprint: CrystalNN 'ops' site fingerprints averaged over sites."""
    fp = _crystalnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sites = [fp.featurize(structure, i) for i in range(len(structure))]
    return np.array(sites, dtype=np.float64).mean(0)


@lru_cache(maxsize=1)
def _crystalnn():
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops")


@lru_cache(maxsize=1)
def _magpie():
    from matminer.featurizers.composition import ElementProperty

    return ElementProperty.from_preset("magpie", impute_nan=False)


def composition_fingerprint(structure: Structure | Composition) -> np.ndarray:
    """Magpie ``ElementProperty`` features of the composition (132 numbers, CDVAE's choice)."""
    comp = structure.composition if isinstance(structure, Structure) else Composition(structure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(_magpie().featurize(comp), dtype=np.float64)


def load_comp_scaler(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """CDVAE's composition-fingerprint scaler (``cdvae_comp_scaler.json``: means, stds)."""
    d = json.loads(Path(path).read_text())
    means = d.get("CompScalerMeans", d.get("means"))
    stds = d.get("CompScalerStds", d.get("stds"))
    return np.asarray(means, dtype=np.float64), np.asarray(stds, dtype=np.float64)


def coverage(pred: Sequence[Structure], ref: Sequence[Structure], struc_cutoff: float,
             comp_cutoff: float, comp_scaler: tuple[np.ndarray, np.ndarray] | None = None
             ) -> dict[str, float]:
    """COV-R and COV-P as CDVAE's ``compute_cov`` (valid predictions only).

    Recall: fraction of references with some prediction within both cut-offs (the nearest in
    structure and the nearest in composition are taken separately, as CDVAE does); precision: the
    same with the roles swapped.
    """
    from scipy.spatial.distance import cdist

    if not pred or not ref:
        return {"cov_recall": float("nan"), "cov_precision": float("nan")}
    sp = np.stack([structure_fingerprint(s) for s in pred])
    sr = np.stack([structure_fingerprint(s) for s in ref])
    cp = np.stack([composition_fingerprint(s) for s in pred])
    cr = np.stack([composition_fingerprint(s) for s in ref])
    if comp_scaler is not None:
        mean, std = comp_scaler
        cp, cr = (cp - mean) / std, (cr - mean) / std
    sp, sr, cp, cr = (np.nan_to_num(a) for a in (sp, sr, cp, cr))
    s_d, c_d = cdist(sp, sr), cdist(cp, cr)
    recall = np.mean((s_d.min(0) <= struc_cutoff) & (c_d.min(0) <= comp_cutoff))
    precision = np.mean((s_d.min(1) <= struc_cutoff) & (c_d.min(1) <= comp_cutoff))
    return {"cov_recall": float(recall), "cov_precision": float(precision)}


def property_wasserstein(pred: Sequence[float], ref: Sequence[float]) -> float:
    """Earth mover's distance between two 1-D property distributions (CDVAE's wdist)."""
    pred = [p for p in pred if p is not None and math.isfinite(p)]
    ref = [r for r in ref if r is not None and math.isfinite(r)]
    if not pred or not ref:
        return float("nan")
    return float(wasserstein_distance(pred, ref))


def property_distances(pred: Sequence[Structure], ref: Sequence[Structure]) -> dict[str, float]:
    """Wasserstein distances of density (g/cm^3) and number of elements."""
    return {"wdist_density": property_wasserstein([s.density for s in pred],
                                                  [s.density for s in ref]),
            "wdist_num_elements": property_wasserstein(
                [len(s.composition.elements) for s in pred],
                [len(s.composition.elements) for s in ref])}


# --- crystal structure prediction -------------------------------------------------------------
CSP_MATCHER = {"stol": 0.5, "angle_tol": 10.0, "ltol": 0.3}


def csp_match(candidates: Sequence[Sequence[Structure | None]], targets: Sequence[Structure],
              k: int | None = None) -> dict[str, float]:
    """DiffCSP's match rate and RMSE: a target counts as matched when one of its first ``k``
    valid candidates matches (StructureMatcher stol 0.5, ltol 0.3, angle 10); RMSE is pymatgen's
    RMS displacement normalised by (V/n)^(1/3), the best over the matching candidates, averaged
    over matched targets."""
    sm = StructureMatcher(**CSP_MATCHER)
    rms = []
    for cands, target in zip(candidates, targets):
        best = None
        for c in list(cands)[:k]:
            if c is None or not structural_validity(c):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = sm.get_rms_dist(c, target)
            except Exception:
                r = None
            if r is not None and (best is None or r[0] < best):
                best = r[0]
        if best is not None:
            rms.append(best)
    n = max(len(targets), 1)
    return {"match_rate": len(rms) / n, "rmse": float(np.mean(rms)) if rms else float("nan"),
            "n_targets": len(targets), "k": k}
