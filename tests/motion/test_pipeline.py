"""``genpipes motion run`` and ``genpipes motion stylize`` end to end on a tiny synthetic budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from motion.bvh import load_bvh
from pipelines.cli import main

TINY = ["data.n_takes=2", "data.n_frames=96", "model.window=32", "model.hidden=32",
        "model.latent=16", "model.content=16", "model.style=8", "model.depth=1",
        "model.batch_size=8", "model.lr=1e-3", "model.ae_steps=12", "model.stylizer_steps=12",
        "model.steps_per_epoch=6", "sample.n_content=1", "sample.n_prior=2",
        "eval.classifier_steps=10", "eval.classifier_window=24",
        "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "motion"
    args = ["motion", "run", "--out", str(out)]
    for kv in TINY:
        args += ["--set", kv]
    assert main(args) == 0
    return out


def test_run_writes_outputs(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for section in ("real_test", "autoencoder_only", "ours", "baseline_stats_transfer",
                    "baseline_identity"):
        assert {"style_acc", "content_acc"} <= set(metrics[section])
    assert {"style_fid", "geodesic", "foot_skating"} <= set(metrics["ours"])
    assert {"diversity", "geodesic", "foot_skating"} <= set(metrics["ours_prior"])
    assert metrics["ours_prior"]["diversity"] > 0           # distinct prior draws
    assert all(0 <= metrics[s]["style_acc"] <= 1 for s in ("ours", "real_test"))
    assert metrics["baseline_identity"]["geodesic"] < 1e-2   # the content clip vs itself
    bvhs = sorted((run_dir / "samples").glob("*.bvh"))
    assert len(bvhs) == 5 + 2                                 # 5 styles + 2 prior samples
    assert list((run_dir / "plots").glob("*.png")) and (run_dir / "report.md").exists()
    assert "SYNTHETIC" in (run_dir / "report.md").read_text()


def test_rerun_is_a_no_op_and_stylize_command(run_dir, tmp_path, capsys):
    args = ["motion", "run", "--out", str(run_dir)]
    for kv in TINY:
        args += ["--set", kv]
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().err
    content = next((run_dir / "data" / "clips").glob("*walk*.bvh"))
    out = tmp_path / "styl"
    cmd = ["motion", "stylize", "--content", str(content), "--style", "tired", "--samples", "2",
           "--model", str(run_dir), "--out", str(out)]
    assert main(cmd) == 0
    assert len(list(out.glob("*.bvh"))) == 2 and list(out.glob("*.png"))
    assert main(cmd) == 2                                      # no silent overwrite
    assert "exists" in capsys.readouterr().err
    ref = next(p for p in (run_dir / "data" / "clips").glob("*.bvh") if p != content)
    for style, sub in ((str(ref), "ref"), (None, "prior")):    # a reference clip; the prior
        cmd = ["motion", "stylize", "--content", str(content), "--samples", "2",
               "--model", str(run_dir), "--out", str(tmp_path / sub)]
        assert main(cmd + (["--style", style] if style else [])) == 0
        outs = sorted((tmp_path / sub).glob("*.bvh"))
        assert len(outs) == 2 and list((tmp_path / sub).glob("*_preview.png"))
        a, b = (load_bvh(p) for p in outs)
        assert a.n_frames == b.n_frames and a.names == b.names
        if style is None:                                       # prior draws differ
            assert np.abs(a.rotations - b.rotations).max() > 1e-4
    bad = ["motion", "stylize", "--content", str(content), "--style", "sleepy",
           "--model", str(run_dir), "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "unknown style label 'sleepy'" in err and "tired" in err


def test_default_config_is_the_paper_setting():
    """The non-demo default is GenMoStyle's: 160-frame windows at 30 fps, ~19 M parameters."""
    from motion.procedural import STYLES, skeleton_template
    from motion.stylizer import Stylizer
    from pipelines.motion import VERTICAL, MotionConfig, _stylizer_config

    cfg = _stylizer_config(MotionConfig())
    assert (cfg.window, cfg.fps) == (160, 30.0) and MotionConfig().data.n_frames >= cfg.window
    model = Stylizer(cfg)
    model.template, model.styles = skeleton_template(), list(STYLES)
    model._build()
    assert 15e6 < model.n_parameters < 24e6              # GenMoStyle reports ~19 M
    assert VERTICAL.demo_overrides["model.window"] < cfg.window   # the demo stays small
