"""The genpipes CLI end to end on the toy vertical (in-process ``main(argv)``, tiny budgets)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from common.io import save_checkpoint
from pipelines.cli import main
from pipelines.demo import format_summary

TINY = ["--set", "data.n_train=256", "--set", "data.n_test=256", "--set", "train.batch_size=64",
        "--set", "model.hidden=16", "--set", "trainer.max_steps=8", "--set", "sample.n=300",
        "--set", "sample.steps=4", "--set", "sample.batch_size=128",
        "--trainer.enable_progress_bar=false"]


def _state(run):
    return json.loads((run / "state.json").read_text())["done"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete tiny toy run, shared read-only by the tests below (copy it to modify)."""
    out = tmp_path_factory.mktemp("toy") / "run"
    assert main(["toy", "run", "--out", str(out), *TINY]) == 0
    return out


def _copy(run, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


def test_run_directory_layout(finished_run):
    run = finished_run
    for name in ("config.yaml", "metrics.json", "report.md", "state.json"):
        assert (run / name).is_file(), name
    for sub in ("checkpoints", "samples", "plots"):
        assert (run / sub).is_dir(), sub
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "checkpoints" / "model.pt").is_file()
    assert _state(run) == ["prepare", "train", "sample", "evaluate", "export"]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["trainer"]["max_steps"] == 8 and cfg["model"]["hidden"] == 16
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["timing"]) == {"prepare", "train", "sample", "evaluate", "export"}
    assert metrics["train"]["global_step"] == 8 and metrics["train"]["start_step"] == 0
    assert metrics["evaluate"]["samples"]["n"] == 300
    assert abs(sum(metrics["evaluate"]["samples"]["weights"]) - 1) < 1e-3
    csv = (run / "samples" / "samples.csv").read_text().splitlines()
    assert csv[0] == "x,y" and len(csv) == 301
    report = (run / "report.md").read_text()
    assert "](plots/samples.png)" in report and (run / "plots" / "samples.png").is_file()
    assert (run / "plots" / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_samples_match_the_sampler_and_seeds(finished_run, tmp_path):
    """Re-running sample with another batch size gives the same samples (per-sample seeds)."""
    run = _copy(finished_run, tmp_path)
    before = np.load(run / "samples" / "samples.npy")
    tiny = [a if a != "sample.batch_size=128" else "sample.batch_size=7" for a in TINY]
    assert main(["toy", "sample", "--out", str(run), "--resume", *tiny]) == 0
    np.testing.assert_allclose(np.load(run / "samples" / "samples.npy"), before, atol=1e-5)
    assert _state(run) == ["prepare", "train", "sample"]  # later stages must be redone


def test_rerun_does_nothing(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    metrics = (run / "metrics.json").read_text()
    assert main(["toy", "run", "--out", str(run), *TINY]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    assert (run / "metrics.json").read_text() == metrics


def test_changed_config_is_refused_then_overwrite_moves_it_aside(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    changed = [*TINY, "--set", "sample.steps=5"]
    assert main(["toy", "run", "--out", str(run), *changed]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sample.steps" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert yaml.safe_load((run / "config.yaml").read_text())["sample"]["steps"] == 4
    assert main(["toy", "prepare", "--out", str(run), "--overwrite", *changed]) == 0
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("copy.old-")]
    assert len(moved) == 1
    assert yaml.safe_load((moved[0] / "config.yaml").read_text())["sample"]["steps"] == 4
    assert (moved[0] / "checkpoints" / "last.ckpt").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["sample"]["steps"] == 5
    assert _state(run) == ["prepare"]


def test_resume_accepts_a_changed_config(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    assert main(["toy", "evaluate", "--out", str(run), "--resume", *TINY,
                 "--set", "sample.steps=5"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["sample"]["steps"] == 5


def test_foreign_directory_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("a user's file")
    assert main(["toy", "run", "--out", str(tmp_path), *TINY]) == 2
    assert "not a genpipes run directory" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "a user's file"


def test_corrupt_last_checkpoint_is_a_clear_error(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])  # a truncated file
    assert main(["toy", "train", "--out", str(run), *TINY]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: ") and str(ckpt) in err and "not a readable checkpoint" in err
    assert "Traceback" not in err


def test_checkpoint_of_another_model_is_a_clear_error(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    assert main(["toy", "train", "--out", str(run), "--resume", *TINY,
                 "--set", "model.hidden=24"]) == 2
    err = capsys.readouterr().err
    assert str(run / "checkpoints" / "last.ckpt") in err and "different model" in err
    model = run / "checkpoints" / "model.pt"
    save_checkpoint(model, "timeseries/tsdiff", {"state_dict": {"w": torch.zeros(2)}})
    assert main(["toy", "sample", "--out", str(run), "--resume", *TINY]) == 2
    err = capsys.readouterr().err
    assert str(model) in err and "'timeseries/tsdiff'" in err and "'toy/mlp'" in err
    model.write_bytes(b"not a checkpoint at all")
    assert main(["toy", "sample", "--out", str(run), "--resume", *TINY]) == 2
    assert str(model) in capsys.readouterr().err


def test_stage_without_its_inputs_names_the_missing_file(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["toy", "prepare", "--out", str(run), *TINY]) == 0
    (run / "data" / "train.npy").write_bytes(b"garbage")
    assert main(["toy", "train", "--out", str(run), *TINY]) == 2
    err = capsys.readouterr().err
    assert str(run / "data" / "train.npy") in err and "expected" in err


def test_config_file_and_dotted_flags(tmp_path, capsys):
    f = tmp_path / "toy.yaml"
    f.write_text("sample:\n  sampler: dpmpp_2m\n  steps: 12\n")
    assert main(["toy", "run", "--config", str(f), "--set", "sample.steps=9",
                 "--trainer.devices", "2", "--trainer.strategy=ddp",
                 "--trainer.num_nodes", "3", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["sample"] == {**cfg["sample"], "sampler": "dpmpp_2m", "steps": 9}
    assert cfg["trainer"]["devices"] == 2 and cfg["trainer"]["num_nodes"] == 3
    assert cfg["trainer"]["strategy"] == "ddp"


@pytest.mark.parametrize("argv, words", [
    (["toy", "run", "--set", "trainer.max_stepz=3"], ["did you mean 'trainer.max_steps'"]),
    (["toy", "run", "--set", "sample.sampler=rk45"], ["unknown sampler 'rk45'", "heun"]),
    (["toy", "run", "--config", "absent.yaml"], ["absent.yaml", "not found"]),
    (["tyo", "run"], ["unknown command or domain 'tyo'", "toy"]),
])
def test_errors_are_one_line_and_exit_2(argv, words, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err
    for w in words:
        assert w in err


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["toy", "run", "--set", "nope=1", "--debug", "--out", str(tmp_path)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_unrecognised_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["toy", "run", "--bogus", "1"])
    assert exit_.value.code == 2 and "--bogus" in capsys.readouterr().err


def test_list_shows_domains(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("toy", "timeseries", "materials", "shapes", "motion"):
        assert name in out
    assert "available" in out


def test_demo_only_toy(tmp_path, capsys):
    assert main(["demo", "--only", "toy", "--out", str(tmp_path),
                 "--set", "trainer.enable_progress_bar=false"]) == 0
    out = capsys.readouterr().out
    assert "genpipes demo summary" in out and "toy" in out and " ok " in out
    run = tmp_path / "toy"
    assert _state(run) == ["prepare", "train", "sample", "evaluate", "export"]
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 300
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == 300
    assert metrics["evaluate"]["samples"]["weight_tv"] < 0.25  # modes found, roughly weighted


def test_demo_reports_failures_and_continues(tmp_path, capsys):
    (tmp_path / "toy").mkdir(parents=True)
    (tmp_path / "toy" / "user.txt").write_text("x")  # not a run directory: toy must fail
    assert main(["demo", "--only", "toy", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "not a genpipes run directory" in out
    table = format_summary([("a", "ok", 1.0, "runs/a"), ("b", "failed", 2.5, "boom")])
    assert "a" in table and "2.5" in table and "failed" in table


@pytest.mark.parametrize("damage", ["file_as_out", "config", "state"])
def test_damaged_run_directory_is_a_clear_error(tmp_path, capsys, damage):
    run = tmp_path / "r"
    if damage == "file_as_out":
        run.write_text("not a folder")
        words = [str(run), "is a file"]
    else:
        assert main(["toy", "prepare", "--out", str(run), *TINY]) == 0
        name = "config.yaml" if damage == "config" else "state.json"
        (run / name).write_text("{ this is: [not valid")
        words = [str(run / name), "unreadable"]
    assert main(["toy", "run", "--out", str(run), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and all(w in err for w in words)
