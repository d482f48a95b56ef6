"""The proxy filter with real CHGNet and the MP-20 hull: MgO passes, a swapped perovskite not."""

from __future__ import annotations

import pytest

from materials.stability import DFTHull, ElementalReferences, RelaxConfig
from materials.stable_prototypes import Decoration, decorate
from materials.stable_set import score_structures


@pytest.fixture(scope="module")
def hull(shared_data, tmp_path_factory):
    path = shared_data / "materials" / "mp20_hull"
    if not (path / "ensemble_above_hull_dataset.parquet").is_file():
        pytest.skip(f"{path} missing")
    pytest.importorskip("chgnet")
    refs = ElementalReferences(tmp_path_factory.mktemp("refs") / "mu.json",
                               RelaxConfig(fmax=0.1, steps=60))
    return DFTHull.from_file(path, refs)


@pytest.mark.slow  # ~1 CPU-minute (CHGNet references of Mg, O, Sr, Ti); 3 min wall when loaded
def test_rocksalt_mgo_passes_and_site_swapped_srtio3_is_rejected(hull):
    mgo = Decoration("rocksalt", (("Cl-", "O2-"), ("Na+", "Mg2+")), 0.1)
    swapped = Decoration("perovskite", (("O2-", "O2-"), ("Sr2+", "Ti4+"), ("Ti4+", "Sr2+")), 0.0)
    good, bad = score_structures([decorate(mgo), decorate(swapped)], hull,
                                 RelaxConfig(fmax=0.1, steps=100))
    assert good["structure"].composition.reduced_formula == "MgO"
    # MgO is on the MP DFT hull; the CHGNet proxy must put it within the set's threshold
    assert good["struct_valid"] and abs(good["e_above_hull_proxy"]) < 0.1
    assert bad["structure"].composition.reduced_formula == "SrTiO3"
    # Ti on the 12-fold A site and Sr on the octahedral B site: far above the hull
    assert bad["e_above_hull_proxy"] > 0.5
