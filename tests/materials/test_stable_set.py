"""The proxy-stable set builder: decoration, plan determinism, dedup, resume (no CHGNet here)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pymatgen.core import Lattice, Species, Structure

from common.errors import ConfigError, DataError
from materials import stable_set as S
from materials.stability import DFTHull, proxy_calibration
from materials.stable_prototypes import (
    Decoration,
    charge_balanced,
    decorate,
    plan_candidates,
    propose_decorations,
    seed_structure,
)

PROTOS = ["rocksalt", "cscl"]


def test_seed_prototypes_have_their_textbook_formula_and_space_group():
    want = {"rocksalt": ("NaCl", 225), "cscl": ("CsCl", 221), "zincblende": ("ZnS", 216),
            "wurtzite": ("ZnO", 186), "fluorite": ("CaF2", 225), "antifluorite": ("Li2O", 225),
            "rutile": ("TiO2", 136), "perovskite": ("SrTiO3", 221),
            "spinel": ("MgAl2O4", 227), "corundum": ("Al2O3", 167), "cdi2": ("CdI2", 164)}
    for name, (formula, sg) in want.items():
        s = seed_structure(name)
        assert s.composition.reduced_formula == formula, name
        assert s.get_space_group_info()[1] == sg, name
        assert charge_balanced(s, {str(x.specie): str(x.specie) for x in s})


def test_decorate_replaces_ions_and_scales_by_ionic_volume():
    d = Decoration("rocksalt", (("Cl-", "Br-"), ("Na+", "K+")), 0.5)
    s = decorate(d)
    seed = seed_structure("rocksalt")
    assert s.composition.reduced_formula == "KBr"
    r = {k: Species.from_str(k).ionic_radius for k in ("Na+", "Cl-", "K+", "Br-")}
    ratio = (r["K+"] ** 3 + r["Br-"] ** 3) / (r["Na+"] ** 3 + r["Cl-"] ** 3)
    assert s.volume == pytest.approx(seed.volume * ratio, rel=1e-9)
    assert all(not hasattr(site.specie, "oxi_state") or site.specie.oxi_state in (None, 0)
               for site in s)
    # fractional coordinates are the seed's
    assert (s.frac_coords == seed.frac_coords).all()


def test_charge_balance_rejects_unbalanced_mapping():
    seed = seed_structure("rocksalt")
    assert charge_balanced(seed, {"Na+": "K+", "Cl-": "F-"})
    assert not charge_balanced(seed, {"Na+": "Mg2+", "Cl-": "F-"})


def test_proposals_are_balanced_distinct_and_sorted():
    decos = propose_decorations("rocksalt", 1e-2)
    assert decos[0].probability == 1.0 and decos[0].key == "rocksalt|Cl-=Cl-|Na+=Na+"
    probs = [d.probability for d in decos]
    assert probs == sorted(probs, reverse=True)
    seed = seed_structure("rocksalt")
    for d in decos:
        m = dict(d.mapping)
        assert charge_balanced(seed, m) and len(set(m.values())) == len(m)


def test_plan_is_deterministic_round_robin_and_starts_with_seeds():
    a = plan_candidates(6, 0, 1e-2, tuple(PROTOS))
    assert [d.key for d in a] == [d.key for d in plan_candidates(6, 0, 1e-2, tuple(PROTOS))]
    assert [d.prototype for d in a] == PROTOS * 3
    assert a[0].probability == 1.0 and a[1].probability == 1.0
    b = plan_candidates(40, 1, 1e-2, tuple(PROTOS))
    c = plan_candidates(40, 0, 1e-2, tuple(PROTOS))
    assert {d.key for d in b} == {d.key for d in c}  # all of them, other order
    assert [d.key for d in b] != [d.key for d in c]


def _rocksalt(a: float, x: str = "Cl") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", x],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()


def _cif(s: Structure) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(s))


def test_select_stable_thresholds_and_deduplicates_lowest_first():
    rows = [
        {"id": 0, "formula": "NaCl", "e_above_hull_proxy": 0.05, "cif": _cif(_rocksalt(5.6)),
         "prototype": "rocksalt"},
        {"id": 1, "formula": "NaCl", "e_above_hull_proxy": -0.02, "cif": _cif(_rocksalt(5.65)),
         "prototype": "cscl"},  # same structure after relaxation, lower E_hull: kept
        {"id": 2, "formula": "NaBr", "e_above_hull_proxy": 0.08, "cif": _cif(_rocksalt(5.9, "Br")),
         "prototype": "rocksalt"},
        {"id": 3, "formula": "NaF", "e_above_hull_proxy": 0.2, "cif": _cif(_rocksalt(4.6, "F")),
         "prototype": "rocksalt"},
        {"id": 4, "formula": "NaF", "e_above_hull_proxy": float("nan"),
         "cif": _cif(_rocksalt(4.6, "F")), "prototype": "rocksalt"},
    ]
    kept = S.select_stable(pd.DataFrame(rows), 0.1)
    assert list(kept["material_id"]) == ["gp-stable-1", "gp-stable-2"]
    assert list(kept["formula"]) == ["NaCl", "NaBr"]


class _Refs:
    """mu = -1 eV/atom for every element: formation energy = E + 1."""

    def get(self, symbol: str) -> float:
        return -1.0

    def formation_energy_per_atom(self, composition, energy_per_atom: float) -> float:
        return energy_per_atom + 1.0


def _hull() -> DFTHull:
    table = pd.DataFrame({"species_at_sites": [["Na", "Cl"], ["K", "Cl"], ["Na", "Br"]],
                          "formation_energy_per_atom": [-2.0, -2.2, -1.8],
                          "e_above_hull": [0.0, 0.0, 0.0]})
    return DFTHull(table, refs=_Refs())


class _FakeRelax:
    """Stands in for CHGNet: E/atom = -3 + 0.1 * (position in the plan); can fail after k."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, structures, cfg=None, executor=None):
        out = []
        for s in structures:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise KeyboardInterrupt
            out.append({"structure": s, "energy_per_atom": -3.0 + 0.1 * self.calls,
                        "steps": 1, "error": None})
            self.calls += 1
        return out


def _cfg(**kw) -> S.StableSetConfig:
    return S.StableSetConfig(**{"n_candidates": 6, "prototypes": PROTOS, "min_probability": 1e-2,
                                "chunk": 2, **kw})


def test_build_scores_on_the_hull_and_keeps_below_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "relax_many", _FakeRelax())
    kept = S.build_stable_set(tmp_path, _hull(), _cfg(), progress=False)
    cand = S.read_candidates(tmp_path / "candidates.csv")
    assert len(cand) == 6
    # NaCl seed: E = -3.0 -> E_form -2.0 = the table's NaCl -> on the hull
    assert cand.loc[0, "formula"] == "NaCl"
    assert cand.loc[0, "e_above_hull_proxy"] == pytest.approx(0.0, abs=1e-9)
    # CsCl: no Cs-Cl compound in the table; E = -2.9 -> E_form -1.9 below the elements
    assert cand.loc[1, "e_above_hull_proxy"] == pytest.approx(-1.9, abs=1e-9)
    want = cand[cand["e_above_hull_proxy"] < 0.1]
    assert set(kept["formula"]) <= set(want["formula"]) and len(kept) >= 1
    from_csv = S.load_stable_set(tmp_path)
    assert [s.composition.reduced_formula for s in from_csv] == list(kept["formula"])
    summary = (tmp_path / "summary.json").read_text()
    assert '"n_candidates": 6' in summary and "/6" in summary


def test_build_resumes_after_interruption_with_identical_result(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "relax_many", _FakeRelax())
    full = S.build_stable_set(tmp_path / "full", _hull(), _cfg(), progress=False)
    monkeypatch.setattr(S, "relax_many", _FakeRelax(fail_after=3))
    with pytest.raises(KeyboardInterrupt):
        S.build_stable_set(tmp_path / "part", _hull(), _cfg(), progress=False)
    assert len(S.read_candidates(tmp_path / "part" / "candidates.csv")) == 2  # one chunk
    fake = _FakeRelax()
    fake.calls = 2  # the energies continue where the interrupted run stopped
    monkeypatch.setattr(S, "relax_many", fake)
    resumed = S.build_stable_set(tmp_path / "part", _hull(), _cfg(), progress=False)
    assert fake.calls == 6  # only the 4 missing candidates were relaxed
    pd.testing.assert_frame_equal(full, resumed)


def test_build_refuses_a_folder_built_with_other_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "relax_many", _FakeRelax())
    S.build_stable_set(tmp_path, _hull(), _cfg(), progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        S.build_stable_set(tmp_path, _hull(), _cfg(seed=1), progress=False)


def test_read_candidates_names_the_missing_columns(tmp_path):
    f = tmp_path / "candidates.csv"
    f.write_text("id,formula\n0,NaCl\n")
    with pytest.raises(DataError, match="e_above_hull_proxy"):
        S.read_candidates(f)


def test_proxy_calibration_compares_best_polymorph_per_formula():
    cal = proxy_calibration(["NaCl", "NaCl", "KCl", "CsI"], [0.05, 0.3, -0.02, 0.0], _hull())
    assert cal["n_formulas"] == 2  # CsI is not in the table
    assert cal["pairs"] == [("KCl", -0.02, 0.0), ("NaCl", 0.05, 0.0)]
    assert cal["mae"] == pytest.approx(0.035) and cal["bias"] == pytest.approx(0.015)
    assert cal["agreement_threshold"] == 1.0 and cal["agreement_sign"] == 0.5
    assert math.isnan(proxy_calibration([], [], _hull())["mae"])


def test_cli_builds_a_set_and_names_a_missing_hull(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    table = pd.DataFrame({"species_at_sites": [["Na", "Cl"]], "formation_energy_per_atom": [-2.0],
                          "e_above_hull": [0.0]})
    pytest.importorskip("pyarrow")
    table.to_parquet(tmp_path / "hull.parquet")
    monkeypatch.setattr(S, "relax_many", _FakeRelax())
    monkeypatch.setattr(S, "ElementalReferences", lambda **kw: _Refs())
    out = tmp_path / "set"
    argv = ["materials", "build-stable-set", "--out", str(out), "--hull",
            str(tmp_path / "hull.parquet"), "--n", "3", "--min-probability", "0.05"]
    assert main(argv) == 0
    assert "kept" in capsys.readouterr().out
    assert len(S.read_candidates(out / "candidates.csv")) == 3
    assert (out / "stable_set.csv").is_file() and (out / "summary.json").is_file()
    missing = tmp_path / "nowhere"
    assert main(argv[:2] + ["--out", str(tmp_path / "b"), "--hull", str(missing)]) != 0
    assert "hull table not found" in capsys.readouterr().err


def test_rescore_uses_new_references_without_relaxing(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "relax_many", _FakeRelax())
    S.build_stable_set(tmp_path, _hull(), _cfg(), progress=False)
    before = S.read_candidates(tmp_path / "candidates.csv")
    monkeypatch.setattr(S, "relax_many", None)  # any relaxation would fail

    class _Lower(_Refs):  # every mu 0.1 eV lower: formation energies 0.1 eV/atom higher
        def formation_energy_per_atom(self, composition, energy_per_atom):
            return energy_per_atom + 1.1

    hull = _hull()
    hull.refs = _Lower()
    S.rescore_stable_set(tmp_path, hull)
    after = S.read_candidates(tmp_path / "candidates.csv")
    nacl = before.index[before["formula"] == "NaCl"][0]
    assert after.loc[nacl, "e_above_hull_proxy"] == pytest.approx(
        before.loc[nacl, "e_above_hull_proxy"] + 0.1, abs=1e-9)
    assert '"rescored": true' in (tmp_path / "summary.json").read_text()
    with pytest.raises(DataError, match="not a stable-set folder"):
        S.rescore_stable_set(tmp_path / "empty", hull)


def test_sulfur_reference_includes_the_s8_crown():
    from materials.stability import elemental_prototypes

    ring = [p for p in elemental_prototypes("S") if len(p) == 8][0]
    d = ring.distance_matrix
    import numpy as np

    nn = np.sort(d, axis=1)[:, 1:3]  # each atom: two bonded neighbours at 2.05 A
    assert np.allclose(nn, 2.05, atol=1e-6)
    assert np.sort(d, axis=1)[:, 3].min() > 3.0  # next neighbours (1-3) far beyond a bond


def test_pipeline_prepare_reads_a_stable_set_folder(tmp_path):
    import json
    from dataclasses import asdict

    from pipelines.materials import DataConfig, MaterialsConfig, prepare
    from pipelines.rundir import RunDir

    folder = tmp_path / "set"
    folder.mkdir()
    pd.DataFrame({"material_id": ["a", "b"], "formula": ["NaCl", "NaBr"],
                  "cif": [_cif(_rocksalt(5.6)), _cif(_rocksalt(5.9, "Br"))]}
                 ).to_csv(folder / "stable_set.csv", index=False)
    cfg = MaterialsConfig(data=DataConfig(root=str(folder)))
    run = RunDir(tmp_path / "run", asdict(cfg))
    prepare(cfg, run)
    train = json.loads((tmp_path / "run" / "data" / "train.json").read_text())
    assert len(train) == 2 and run.metrics()["data"]["n_structures"] == 2
