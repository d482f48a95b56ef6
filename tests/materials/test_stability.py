"""The DFT-anchored hull: a compound of the MP-20 table sits on (or near) its own hull."""

from __future__ import annotations

import math

import numpy as np
import pytest

from materials.stability import DFTHull, SelfConsistentHull, stability_summary


class _FixedRefs:
    """Elemental chemical potentials that are never relaxed (the hull test needs none)."""

    def get(self, symbol: str) -> float:
        return -1.0

    def formation_energy_per_atom(self, composition, energy_per_atom: float) -> float:
        return energy_per_atom + 1.0


@pytest.fixture(scope="module")
def hull(shared_data):
    path = shared_data / "materials" / "mp20_hull" / "ensemble_above_hull_dataset.parquet"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    pytest.importorskip("pyarrow")
    return DFTHull.from_file(path, refs=_FixedRefs())


@pytest.mark.parametrize("formula", ["SrTiO3", "NaCl", "Al2O3", "MgO"])
def test_known_compound_has_table_e_above_hull(hull, formula):
    rows = [i for i, f in enumerate(hull.formulas) if f == formula]
    assert rows, formula
    i = min(rows, key=lambda j: hull.e_hull_dft[j])
    comp, ef = hull.comps[i], hull.e_form[i]
    e = hull.e_above_hull_from_formation(comp, ef)
    assert e == pytest.approx(hull.e_hull_dft[i], abs=0.02)
    # 50 meV/atom lower is below the hull by 50 meV/atom when the compound is on the hull
    if hull.e_hull_dft[i] == 0:
        assert hull.e_above_hull_from_formation(comp, ef - 0.05) == pytest.approx(-0.05, abs=1e-6)


def test_self_consistent_hull_of_a_binary():
    # A-B with A, B at -1 eV/atom, AB at -2 eV/atom: AB on the hull; A3B above the tie line
    h = SelfConsistentHull([("NaCl", -2.0)], refs=_FixedRefs())
    assert h.e_above_hull("NaCl", -2.0) == pytest.approx(0.0)
    # Na3Cl: tie line between Na (-1) and NaCl (-2) at x_Cl = 0.25 -> -1.5 eV/atom
    assert h.e_above_hull("Na3Cl", -1.4) == pytest.approx(0.1)
    assert math.isnan(h.e_above_hull("NaCl", float("nan")))


def test_stability_summary_denominators():
    s = stability_summary([-0.1, 0.05, 0.3, float("nan")], [True, True, False, True],
                          [True, False, True, True], [True, True, True, False], "test")
    assert s["stable"] == "1/4" and s["metastable"] == "2/4"
    assert s["sun_rate"] == 0.25 and s["median_e_hull"] == pytest.approx(np.median([-0.1, .05, .3]))


def test_self_consistent_hull_from_user_structures(monkeypatch):
    """(b) from structures: their (fake) CHGNet energies form the hull with the elements."""
    from pymatgen.core import Lattice, Structure

    import materials.stability as st

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    energies = iter([-2.0, -1.6])

    def fake_relax(structures, cfg=None, executor=None):
        return [{"structure": s, "energy_per_atom": next(energies), "steps": 1, "error": None}
                for s in structures]

    monkeypatch.setattr(st, "relax_many", fake_relax)
    nabr = nacl.copy()
    nabr.replace_species({"Cl": "Br"})
    h = SelfConsistentHull.from_structures([nacl, nabr], refs=_FixedRefs())
    assert h.e_above_hull("NaCl", -2.0) == pytest.approx(0.0)
    assert h.e_above_hull("NaCl", -1.9) == pytest.approx(0.1)
    assert h.e_above_hull("NaBr", -1.7) == pytest.approx(-0.1)  # below the user's NaBr


def test_relax_many_dask_executor_matches_serial():
    """The cluster path (Dask LocalCluster, in-process workers) gives the serial results."""
    pytest.importorskip("chgnet")
    pytest.importorskip("distributed")
    from pymatgen.core import Lattice, Structure

    from common.executor import get_executor
    from materials.stability import RelaxConfig, relax_many

    rock = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.9), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()
    cscl = Structure(Lattice.cubic(3.3), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cfg = RelaxConfig(fmax=0.05, steps=5)
    serial = relax_many([rock, cscl], cfg)
    with get_executor("dask", n_workers=1, progress=False, processes=False) as ex:
        dask = relax_many([rock, cscl], cfg, ex)
    for a, b in zip(serial, dask):
        assert b["error"] is None and math.isfinite(b["energy_per_atom"])
        assert b["energy_per_atom"] == pytest.approx(a["energy_per_atom"], abs=1e-6)
        assert b["steps"] == a["steps"]
        assert b["structure"].lattice.volume == pytest.approx(a["structure"].lattice.volume,
                                                              rel=1e-6)
    # the expanded rock-salt cell (a = 5.9 A vs ~5.6-5.7 A) shrinks under cell relaxation
    assert serial[0]["structure"].volume < rock.volume
