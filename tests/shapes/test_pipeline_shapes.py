"""`genpipes shapes run` on a tiny synthetic config: every stage leaves its outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import GenpipesError
from pipelines.cli import main
from pipelines.registry import load_vertical
from shapes.mesh_io import load_mesh

TINY = ["--set", "data.n_shapes=10", "--set", "model.resolution=24", "--set", "model.latent_size=4",
        "--set", "model.ae_width=16", "--set", "model.unet_width=16", "--set", "model.emb_dim=32",
        "--set", "model.n_points=64", "--set", "model.ae_steps=20", "--set", "model.batch_size=4",
        "--set", "model.num_steps=3", "--set", "trainer.max_steps=20",
        "--set", "trainer.enable_progress_bar=false", "--set", "sample.n=3",
        "--set", "evaluate.n_points=256", "--set", "export.previews=2",
        "--set", "export.formats=[obj,ply,stl,glb]"]


def test_vertical_registers_demo_and_reconstruct():
    v = load_vertical("shapes")
    assert set(v.stages) == {"prepare", "train", "sample", "evaluate", "export"}
    assert v.demo_overrides["model.resolution"] <= 64
    try:
        from pipelines.shapes_reconstruct import RECONSTRUCT
    except ImportError:  # G-Shell's optional command is absent: nothing to register
        return
    assert v.commands["reconstruct"] is RECONSTRUCT


def test_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(["shapes", "run", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    gen = metrics["generation"]
    assert gen["n_generated"] == 3
    assert gen["n_empty"] == 3 or 0.5 <= gen["1nna_cd"] <= 1.0
    base = metrics["generation_baselines"]  # training shapes scored against the held-out set
    assert base["n"] == 3 and base["train_mmd_cd"] > 0 and 0.0 <= base["train_1nna_cd"] <= 1.0
    assert (out / "plots" / "training_shapes.png").is_file()
    rec = metrics["point_cloud_reconstruction"]
    assert 0.0 <= rec["iou"] <= 1.0
    assert len(list((out / "samples" / "unconditional").glob("*.ply"))) == 3
    exported = out / "meshes" / "unconditional"
    for suffix in ("obj", "ply", "stl", "glb", "png"):  # every format, and one preview per mesh
        n = len(list(exported.glob(f"*.{suffix}")))
        assert n == 3 - gen["n_empty"]  # every non-empty sample exported (a tiny fit may be empty)
    raw = metrics["generation_raw"]  # the same samples before the small-component clean-up
    assert gen["min_component_fraction"] == 0.01 and raw["n_generated"] == 3
    assert gen["multi_component_fraction"] <= raw["multi_component_fraction"]
    assert len(list((out / "meshes" / "unconditional_raw").glob("*.glb"))) == 3 - gen["n_empty"]
    for path in exported.glob("*.stl"):  # the written files load back with the same geometry
        assert len(load_mesh(path, allow_flat=True).faces) > 0
    assert (out / "plots" / "unconditional.png").is_file()
    assert "WaLa shapes" in (out / "report.md").read_text()
    # a second `run` finds every stage done and changes nothing
    before = (out / "metrics.json").read_text()
    assert main(["shapes", "run", "--out", str(out), *TINY]) == 0
    assert (out / "metrics.json").read_text() == before


def test_bad_folder_is_a_clear_error(tmp_path):
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "bad.obj").write_text("v 0 0 0\n")
    with pytest.raises(GenpipesError, match="usable mesh|bad.obj"):
        from pipelines.config import build_config
        from pipelines.rundir import RunDir
        from pipelines.shapes import ShapesConfig, prepare

        cfg = build_config(ShapesConfig, overrides=[f"data.root={tmp_path / 'meshes'}"])
        prepare(cfg, RunDir(tmp_path / "run", {"x": 1}))


def test_one_bad_file_in_a_folder_is_reported_not_fatal(tmp_path):
    """Unreadable, face-less, NaN and flat files are rejected by name; the good ones go on."""
    import trimesh

    from pipelines.config import build_config
    from pipelines.rundir import RunDir
    from pipelines.shapes import ShapesConfig, prepare

    folder = tmp_path / "meshes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        trimesh.creation.box(rng.uniform(0.3, 1.0, 3)).export(folder / f"box{i}.stl")
    (folder / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (folder / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 nan\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    (folder / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    (folder / "broken.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nend_header\n\x00")
    cfg = build_config(ShapesConfig, overrides=[
        f"data.root={folder}", "data.holdout=0.25", "model.resolution=16", "model.levels=1",
        "model.latent_size=4", "model.n_points=32"])
    run = RunDir(tmp_path / "run", {"x": 1})
    prepare(cfg, run)
    info = json.loads((run.path / "data" / "info.json").read_text())
    assert sorted(info["rejected"]) == ["broken.ply", "flat.obj", "nan.obj", "points.obj"]
    assert "NaN" in info["rejected"]["nan.obj"] and "flat" in info["rejected"]["flat.obj"]
    assert "no faces" in info["rejected"]["points.obj"]
    assert all(name in why for name, why in info["rejected"].items())  # each names its file
    assert info["n_train"] + info["n_holdout"] == 4
    assert json.loads((run.path / "metrics.json").read_text())["data"]["n_rejected"] == 4
