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
