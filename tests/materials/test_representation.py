"""UniMat tensor round trip on the real Perov-5 splits, slot permutation, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Element, Lattice, Structure

from common.errors import DataError
from materials.data import load_structures
from materials.representation import (
    CELL_ELEMENT,
    UniMatEncoder,
    element_cell,
    permute_slots,
)


@pytest.fixture(scope="module")
def perov(shared_data):
    out = []
    for split in ("val", "test"):
        path = shared_data / "materials" / "perov_5" / f"{split}.csv.gz"
        if not path.is_file():
            pytest.skip(f"{path} missing")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures, report = load_structures(path)
        assert not report.skipped
        out += structures
    return out


def test_grid_holds_every_element_once():
    cells = [element_cell(Element.from_Z(z)) for z in range(1, 119)]
    assert len(set(cells)) == 118
    assert all(0 <= r < 9 and 0 <= c < 18 for r, c in cells)
    assert CELL_ELEMENT[element_cell("Fe")] == Element("Fe")
    assert element_cell("H") == (0, 0) and element_cell("He") == (0, 17)


def _same_sites(a: Structure, b: Structure, tol: float = 2e-6) -> bool:
    """Every site of ``a`` has a site of ``b`` with the same element within ``tol`` (periodic)."""
    if len(a) != len(b):
        return False
    for site in a:
        diff = b.frac_coords - site.frac_coords
        diff -= np.round(diff)
        same = [t.specie == site.specie for t in b]
        if not np.any((np.abs(diff).max(1) < tol) & np.array(same)):
            return False
    return True


def test_exact_round_trip_on_every_perov5_structure(perov):
    enc = UniMatEncoder.fit(perov)
    assert enc.slots == 3  # Perov-5: at most 3 atoms of one element
    sm = StructureMatcher()
    for i, s in enumerate(perov):
        d = enc.decode(enc.encode(s))
        assert d is not None, i
        assert d.composition == s.composition, i
        np.testing.assert_allclose(d.lattice.parameters, s.lattice.parameters, atol=1e-5)
        # same sites, coordinate by coordinate (stronger than StructureMatcher)
        assert _same_sites(s, d) and _same_sites(d, s), i
        if i % 25 == 0:  # StructureMatcher on every 25th (all of them: the slow test below)
            assert sm.fit(s, d), i


@pytest.mark.slow
def test_structure_matcher_round_trip_all_perov5(perov):
    enc = UniMatEncoder.fit(perov)
    sm = StructureMatcher()
    assert all(sm.fit(s, enc.decode(enc.encode(s))) for s in perov)


def test_slot_permutation_preserves_decoded_structure():
    s = Structure(Lattice.from_parameters(4.1, 4.3, 5.0, 88, 95, 100), ["Sr", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.1, 0.52, 0.47]])
    enc = UniMatEncoder.fit([s], slots=4)
    x = np.stack([enc.encode(s)] * 3)
    occ = np.stack([enc.occupancy(s.composition)] * 3)[:, None]
    px, pocc = permute_slots(x, enc.grid_shape, np.random.default_rng(0), occ)
    assert not np.allclose(px, x)  # the slots did move
    sm = StructureMatcher()
    for row, o in zip(px, pocc):
        for d in (enc.decode(row), enc.decode(row, occupancy=o[0])):
            assert d.composition == s.composition and sm.fit(s, d)


def test_periodic_coordinates_near_one_and_zero_are_neighbours():
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0.999999, 0, 0], [0.5, 0.5, 0.5]])
    enc = UniMatEncoder.fit([s])
    t = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0.000001, 0, 0], [0.5, 0.5, 0.5]])
    assert np.abs(enc.encode(s) - enc.encode(t)).max() < 1e-4


def test_too_many_atoms_and_bad_species_raise_data_error():
    s = Structure(Lattice.cubic(6.0), ["Na"] * 4 + ["Cl"],
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0.5]])
    enc = UniMatEncoder.fit([s], slots=3)
    with pytest.raises(DataError, match="4 atoms of Na.*L=3"):
        enc.encode(s, item="my.cif")
    disordered = Structure(Lattice.cubic(4.0), [{"Na": 0.5, "K": 0.5}], [[0, 0, 0]])
    with pytest.raises(DataError, match="disordered"):
        enc.encode(disordered)
    with pytest.raises(DataError, match="not a chemical element"):
        enc.encode(Structure(Lattice.cubic(4.0), ["X0+"], [[0, 0, 0]]))


def test_invalid_lattice_decodes_to_none():
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    enc = UniMatEncoder.fit([s])
    x = enc.encode(s)
    x[-3:] = (150.0 - 90.0) / 5.0  # three 150 degree angles: no real cell
    assert enc.decode(x) is None
