"""`genpipes materials run` end to end on the embedded set with a tiny budget (slow: minutes)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_materials_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    sets = ["trainer.max_steps=4", "trainer.ema_decay=null", "data.max_per_prototype=1",
            "model.channels=8", "model.emb_dim=32", "model.batch_size=8",
            "sample.num_samples=2", "sample.compositions=[SrTiO3]", "sample.per_composition=1",
            "sample.steps=3", "sample.repulsion=0",  # 4 steps: repulsion can break the lattice
            "evaluate.relax_steps=5", "evaluate.screen=ionic", "trainer.enable_progress_bar=false"]
    cmd = [sys.executable, "-m", "pipelines.cli", "materials", "run", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader((out / "candidates.csv").open()))
    assert len(rows) == 3
    assert {"formula", "spacegroup", "valid", "energy_per_atom_chgnet", "proxy_e_hull_self",
            "unique", "novel"} <= set(rows[0])
    csp = [r for r in rows if r["mode"] == "csp"]
    assert csp and csp[0]["formula"] == "SrTiO3"
    assert csp[0]["passes_screen"] == "True"  # Sr2+ Ti4+ O2-
    for r in rows:  # evaluate.screen=ionic: a failing composition is never relaxed
        assert r["passes_screen"] == "True" or r["relax_steps"] == "0", r
    metrics = json.loads((out / "metrics.json").read_text())
    assert "proxy_e_hull_self" in metrics["evaluate"]
    assert (out / "plots" / "proxy_e_hull_hist.png").is_file()
    assert list((out / "samples" / "cif").glob("*.cif"))


def _rocksalt(a: float, cation: str = "Na", anion: str = "Cl"):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_evaluate_and_export_stages_on_given_candidates(tmp_path):
    """The evaluate/export stages (pipelines/materials_evaluate.py, materials_export.py) read
    what sample leaves and write one CSV row per candidate, CIFs and the report; no relaxation.

    Known answers: a training structure is valid but not novel; two copies of a new rock salt are
    novel and only the first is unique; an undecoded draw is a row with decoded=False; a
    structure with two atoms 0.2 A apart is structurally invalid; SrTiO3 passes the ionic screen.
    """
    from dataclasses import asdict

    from pymatgen.core import Lattice, Structure

    from common.io import atomic_write_json
    from pipelines.materials import EvaluateConfig, MaterialsConfig, evaluate, export
    from pipelines.rundir import RunDir

    train = [_rocksalt(5.64), _rocksalt(6.0, "K")]
    new = _rocksalt(4.2, "Mg", "O")
    clash = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]])
    cands = [("unconditional", "", train[0]), ("unconditional", "", new),
             ("unconditional", "", new.copy()), ("unconditional", "", None),
             ("unconditional", "", clash), ("csp", "NaCl", train[0])]
    cfg = MaterialsConfig(evaluate=EvaluateConfig(relax=False, screen="ionic"))
    run = RunDir(tmp_path / "run", asdict(cfg))
    atomic_write_json(run.path / "data" / "train.json", [s.as_dict() for s in train])
    atomic_write_json(run.samples / "candidates.json",
                      [{"mode": m, "target": t, "structure": None if s is None else s.as_dict()}
                       for m, t, s in cands])
    evaluate(cfg, run)
    rows = list(csv.DictReader((run.path / "candidates.csv").open()))
    assert [r["formula"] for r in rows] == ["NaCl", "MgO", "MgO", "", "NaCl", "NaCl"]
    assert [r["decoded"] for r in rows] == ["True"] * 3 + ["False"] + ["True"] * 2
    assert [r["struct_valid"] for r in rows] == ["True"] * 3 + ["False"] * 2 + ["True"]
    assert [r["novel"] for r in rows[:3]] == ["False", "True", "True"]
    assert [r["unique"] for r in rows[1:3]] == ["True", "False"]
    assert all(r["relax_steps"] == "0" and r["energy_per_atom_chgnet"] == "nan" for r in rows)
    assert rows[1]["spacegroup"].startswith("Fm-3m")
    ev = json.loads((run.path / "metrics.json").read_text())["evaluate"]
    assert ev["n_candidates"] == 6 and ev["relaxations"] == 0
    assert ev["unconditional"]["n"] == 5 and ev["unconditional"]["decoded"] == 4 / 5
    assert ev["csp_composition_match"] == 1.0
    export(cfg, run)
    cifs = sorted(p.name for p in (run.samples / "cif").glob("*.cif"))
    assert len(cifs) == 5 and cifs[0] == "0000_unconditional_NaCl.cif"
    assert (run.plots / "unit_cells.png").is_file()
    assert "candidates: 6" in (run.path / "report.md").read_text()


def test_sample_stage_composition_conditioned_mode(tmp_path):
    """``sample.substitution=3``: rows of mode substitution_csp whose targets are Hautier
    substitutions of the training structures (new formulas, trained elements only) and whose
    decoded structures have exactly that composition (CSP fixes the occupied slots). Within
    {Na, K, Mg, Ca, Cl, Br, O} and 2-atom cells only NaBr and KCl are new charge-balanced
    swaps (CaO/MgO are known, A+ O2- is unbalanced), so the proposals run out at 2 rows."""
    from dataclasses import asdict

    from pymatgen.core import Composition, Structure

    from common.io import atomic_write_json
    from common.training import TrainerConfig
    from materials.generator import CrystalGenerator
    from pipelines.materials import EvaluateConfig, MaterialsConfig, evaluate, sample
    from pipelines.materials_config import SampleConfig
    from pipelines.rundir import RunDir

    train = [_rocksalt(a, c, x).get_primitive_structure() for a, c, x in
             [(5.64, "Na", "Cl"), (6.6, "K", "Br"), (4.21, "Mg", "O"), (4.8, "Ca", "O")]]
    cfg = MaterialsConfig(sample=SampleConfig(num_samples=1, compositions=[], substitution=3,
                                              steps=3, repulsion=0.0),
                          evaluate=EvaluateConfig(relax=False))
    run = RunDir(tmp_path / "run", asdict(cfg))
    atomic_write_json(run.path / "data" / "train.json", [s.as_dict() for s in train])
    gen = CrystalGenerator(trainer=TrainerConfig(max_steps=4, ema_decay=None, accelerator="cpu",
                                                 enable_progress_bar=False),
                           channels=8, emb_dim=32, batch_size=4, min_batches_per_epoch=2)
    gen.fit(train).save(run.checkpoints / "generator.pt")
    sample(cfg, run)
    rows = json.loads((run.samples / "candidates.json").read_text())
    sub = [r for r in rows if r["mode"] == "substitution_csp"]
    assert sorted(Composition(r["target"]).reduced_formula for r in sub) == ["KCl", "NaBr"]
    assert len(rows) == 3
    known = {s.composition.reduced_formula for s in train}
    trained = {e.symbol for s in train for e in s.composition.elements}
    for r in sub:
        target = Composition(r["target"])
        assert target.reduced_formula not in known
        assert {e.symbol for e in target.elements} <= trained
        assert r["structure"] is not None
        assert Structure.from_dict(r["structure"]).composition == Composition(r["target"])
    evaluate(cfg, run)
    ev = json.loads((run.path / "metrics.json").read_text())["evaluate"]
    assert ev["substitution_csp"]["n"] == 2 and ev["substitution_csp"]["novel"] == 1.0
