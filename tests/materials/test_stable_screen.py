"""The composition sanity rule (SMACT on ICSD-common oxidation states) on known compositions."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition, Lattice, Structure

from common.errors import ConfigError
from materials.metrics import smact_validity
from materials.stable_screen import (
    composition_summary,
    first_passing,
    has_cation_anion_pair,
    ionic_composition,
    occupancy_summary,
    screen,
)

IONIC = ["NaCl", "SrTiO3", "MgAl2O4", "CdI2", "Li2O", "ZnS", "SeO2", "Cu2O", "CsCl", "BaO"]
# CDVAE's SMACT validity passes all of these (all states, alloys and elements exempt)
NOT_IONIC = ["SeBr2", "BrCl3", "ICl3", "GaF", "ScF", "LiMg", "Na3Li2Be2", "Ca2Pb", "Si"]


def rocksalt(species=("Na", "Cl"), a: float = 5.64) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(species),
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.mark.parametrize("formula", IONIC)
def test_common_ionic_compounds_pass(formula):
    assert ionic_composition(formula)
    assert ionic_composition(Composition(formula) * 2)  # cell multiples reduce first


@pytest.mark.parametrize("formula", NOT_IONIC)
def test_rejects_what_cdvae_validity_lets_through(formula):
    assert smact_validity(Composition(formula))
    assert not ionic_composition(formula)


def test_the_common_state_restriction_is_what_rejects_the_halides():
    # with every reported ICSD state (Se2+, Br3+, Ga+) the same test passes them
    for f in ("SeBr2", "BrCl3", "GaF"):
        assert ionic_composition(f, commonality="low")
    assert not ionic_composition("LiMg", commonality="low")  # no anion at all


def test_cation_anion_pair():
    assert has_cation_anion_pair("NaCl") and has_cation_anion_pair("GeO2")
    assert not has_cation_anion_pair("SeBr2") and not has_cation_anion_pair("LiMg")


def test_screen_and_first_passing_keep_drawn_order():
    pool = [rocksalt(("Li", "Mg")), rocksalt(), None, rocksalt(("Br", "Cl")),
            rocksalt(("Mg", "O"), 4.2), rocksalt(("K", "Br"), 6.6)]
    assert screen(pool, "ionic") == [False, True, False, False, True, True]
    assert screen(pool, "none") == [True, True, False, True, True, True]
    assert first_passing(pool, 2) == [1, 4]
    assert first_passing(pool, 5) == [1, 4, 5]  # shortfall: the pool ran out
    assert composition_summary(pool) == {"n": 6, "decoded": 5, "cation_anion_pair": 3,
                                         "smact_valid": 5, "ionic": 3}


def test_occupancy_summary_counts_atoms_and_elements_per_cell():
    prim = rocksalt().get_primitive_structure()  # 2 atoms, 2 elements
    conv = rocksalt(("Mg", "O"), 4.2)  # conventional cell: 8 atoms
    sto = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                    [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    out = occupancy_summary([prim, None, conv, sto, conv])
    assert out["decoded"] == 4 and out["atoms_hist"] == {2: 1, 5: 1, 8: 2}
    assert out["atoms_mean"] == pytest.approx((2 + 8 + 5 + 8) / 4)
    assert out["atoms_median"] == pytest.approx(6.5)
    assert out["elements_mean"] == pytest.approx((2 + 2 + 3 + 2) / 4)
    assert occupancy_summary([None]) == {"decoded": 0}


def test_unknown_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="ionic"):
        screen([rocksalt()], "charge")
