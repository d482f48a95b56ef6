"""PyXtal random-crystal baseline and the space-group label used in candidates.csv."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

from materials.baselines import random_symmetric_crystals, spacegroup_label


def test_random_symmetric_crystals_keep_the_composition_and_count() -> None:
    comp = Composition("SrTiO3")
    out = random_symmetric_crystals(comp, 3, np.random.default_rng(0))
    assert len(out) == 3
    made = [s for s in out if s is not None]
    assert made, "PyXtal made no SrTiO3 crystal in 120 draws"
    for s in made:
        assert s.composition == comp


def test_random_symmetric_crystals_pad_with_none_when_infeasible() -> None:
    # no draws allowed: nothing can be made, and the list still has n entries
    out = random_symmetric_crystals(Composition("Na1Cl1"), 2, np.random.default_rng(0),
                                    tries_per_crystal=0)
    assert out == [None, None]


def test_spacegroup_label_of_cubic_perovskite() -> None:
    s = Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"],
                                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
    assert spacegroup_label(s) == "Pm-3m (221)"
