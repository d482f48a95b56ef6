"""Composition-conditioned generation: Hautier ion-substitution compositions, structures by CSP.

Hautier et al., Inorg. Chem. 50, 656 (2011): a data-mined probability that ion A replaces ion B
in a known compound. ``ion_substitution`` applies it to whole training structures (the baseline a
materials scientist would pick: same frame, new ions, cell scaled by Shannon ionic volumes);
``substitution_compositions`` keeps only the proposed compositions (cell atom counts), and
``generate_for_compositions`` asks a ``CrystalGenerator`` for a structure of each one by crystal
structure prediction (UniMat's composition-conditioned mode: the composition fixes the occupied
slots, the model denoises coordinates and lattice).

This is a DIFFERENT generation mode from UniMat's unconditional one (``sample(n)``: the model
draws the composition too, p(x) = p(comp) p(x | comp) with both factors learned). Here
p(comp) is the substitution proposal distribution over novel, charge-balanced compositions and
only p(x | comp) is learned, so chemistry comes from the substitution model and the frame from
the diffusion model; results must be reported as such (``benchmarks/materials_stability.py``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymatgen.core import Composition, Species, Structure
from tqdm.auto import tqdm

from common.errors import DataError

log = logging.getLogger(__name__)


def _proposals(s: Structure, pred: Any, palette: Sequence[str] | None) -> list[dict[str, str]]:
    """Charge-balanced whole-ion-set substitutions of ``s`` (with oxidation states), best first."""
    from .stable_prototypes import charge_balanced

    ions = sorted({str(x.specie) for x in s})
    try:  # a mixed-valence guess (e.g. Cu1.5+) is outside the Hautier model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            props = pred.list_prediction(ions)
    except ValueError:
        return []
    out = []
    for p in sorted(props, key=lambda p: -p["probability"]):
        m = {str(old): str(new) for new, old in p["substitutions"].items()}
        if sorted(m) != ions or len(set(m.values())) != len(m) or all(
                a == b for a, b in m.items()):
            continue
        if palette is not None and any(Species.from_str(v).symbol not in palette
                                       for v in m.values()):
            continue
        if charge_balanced(s, m):
            out.append(m)
    return out


def ion_substitution(train: Sequence[Structure], n: int, seed: int = 0,
                     palette: Sequence[str] | None = None, min_probability: float = 1e-3
                     ) -> list[Structure | None]:
    """``n`` ion substitutions of training structures (Hautier et al. 2011 probabilities).

    Training structures are visited round-robin in a seeded order; each gives its next most
    probable charge-balanced substitution (into ``palette`` when given) that is not the identity
    and whose reduced formula no training structure (nor an earlier proposal) has; the cell is
    scaled by the Shannon ionic volumes. Structures whose oxidation states cannot be guessed are
    skipped. The list is padded with None when the proposals run out.
    """
    from .stable_prototypes import _ionic_radius, _predictor

    pred = _predictor(min_probability)
    rng = np.random.default_rng(seed)
    known = {s.composition.reduced_formula for s in train}
    queues: dict[int, list] = {}
    out: list[Structure | None] = []
    order = list(rng.permutation(len(train)))
    while len(out) < n and order:
        for i in list(order):
            if len(out) >= n:
                break
            if i not in queues:
                s = train[i].copy()
                try:
                    s.add_oxidation_state_by_guess()
                except Exception:  # noqa: BLE001 - pymatgen raises several kinds here
                    s = None
                queues[i] = [] if s is None else [(s, m) for m in _proposals(s, pred, palette)]
            made = None
            while queues[i] and made is None:
                s, m = queues[i].pop(0)
                t = s.copy()
                t.replace_species({Species.from_str(a): Species.from_str(b) for a, b in m.items()})
                old = sum(_ionic_radius(x.specie) ** 3 for x in s)
                new = sum(_ionic_radius(x.specie) ** 3 for x in t)
                t.scale_lattice(s.volume * new / old)
                t.remove_oxidation_states()
                if t.composition.reduced_formula not in known:
                    known.add(t.composition.reduced_formula)
                    made = t
            if made is None:
                order.remove(i)
            else:
                out.append(made)
    return out + [None] * (n - len(out))


def substitution_compositions(train: Sequence[Structure], n: int, seed: int = 0,
                              palette: Sequence[str] | None = None,
                              min_probability: float = 1e-3) -> list[Composition | None]:
    """The cell compositions of ``ion_substitution`` (Hautier et al. 2011), structures dropped.

    Same proposals, same order: the composition stage of composition-conditioned generation.
    """
    return [None if s is None else s.composition
            for s in ion_substitution(train, n, seed, palette, min_probability)]


def generate_for_compositions(generator: Any, compositions: Sequence[Composition | str | None],
                              seed: int = 0, progress: bool = True) -> list[Structure | None]:
    """One CSP structure per composition from a fitted ``CrystalGenerator`` (UniMat CSP mode).

    Composition ``i`` is sampled with seed ``seed + i`` (independent of the other compositions).
    A composition the generator cannot encode (an element it was not trained on, more atoms of
    one element than its L slots) or whose lattice decodes invalid gives None; the number of
    compositions skipped for the first reason is logged.

    Args:
        generator: a fitted ``materials.generator.CrystalGenerator``.
        compositions: cell compositions (atom counts, not reduced formulas); None entries stay
            None.
        seed: base seed.
        progress: show a tqdm bar.

    Returns:
        A list as long as ``compositions``.
    """
    out: list[Structure | None] = []
    skipped = 0
    for i, comp in enumerate(tqdm(compositions, desc="CSP structures", disable=not progress)):
        if comp is None:
            out.append(None)
            continue
        try:
            s = generator.sample(1, composition=comp, seed=seed + i, return_invalid=True,
                                 progress=False, check_composition=False)[0]
        except DataError as exc:
            skipped += 1
            log.debug("composition %d (%s) skipped: %s", i, comp, exc)
            s = None
        out.append(s)
    if skipped:
        log.warning("%d of %d compositions could not be encoded by the generator (skipped)",
                    skipped, len(compositions))
    return out


__all__ = ["ion_substitution", "substitution_compositions", "generate_for_compositions"]
