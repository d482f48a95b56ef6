"""``genpipes shapes reconstruct`` handler: --mesh and --views end to end (tiny), bad input."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("trimesh")
pytest.importorskip("deodr")

from common.errors import ConfigError, DataError  # noqa: E402
from pipelines.shapes_reconstruct import RECONSTRUCT  # noqa: E402


def _run(*argv: str) -> int:
    p = argparse.ArgumentParser()
    RECONSTRUCT.add_arguments(p)
    return RECONSTRUCT.handler(p.parse_args(list(argv)))


TINY = ("--resolution", "12", "--iterations", "4", "--n-views", "4", "--image-size", "48",
        "--views-per-step", "2", "--renderer", "deodr")


def test_reconstruct_mesh_then_views(tmp_path, shared_data):
    mesh = shared_data / "shapes" / "trimesh-models" / "wallhole.obj"
    if not mesh.is_file():
        pytest.skip(f"{mesh} not in the shared data")
    out = tmp_path / "a"
    assert _run("--mesh", str(mesh), "--out", str(out), *TINY) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("chamfer", "normal_consistency", "f_score", "boundary_edges", "seconds"):
        assert key in metrics
    for name in ("reconstruction.obj", "reconstruction.ply", "reconstruction.glb", "preview.png",
                 "views/cameras.json"):
        assert (out / name).is_file()
    with pytest.raises(ConfigError, match="not empty"):
        _run("--mesh", str(mesh), "--out", str(out), *TINY)
    # the rendered views are a valid --views input
    out2 = tmp_path / "b"
    assert _run("--views", str(out / "views"), "--out", str(out2), "--formats", "ply",
                "--coarse-resolution", "8", "--open-start", "0.5", "--open-share", "0.2",
                *TINY) == 0
    assert (out2 / "reconstruction.ply").is_file()
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert "chamfer" not in m2 and m2["coarse_resolution"] == 8 and m2["open_start"] == 0.5
    assert m2["open_share"] == 0.2
    # the authors' preset: its values unless given (here the tiny budget of TINY)
    out3 = tmp_path / "c"
    assert _run("--views", str(out / "views"), "--out", str(out3), "--formats", "ply",
                "--preset", "paper", "--resolution", "12", "--iterations", "4",
                "--renderer", "deodr") == 0
    m3 = json.loads((out3 / "metrics.json").read_text())
    assert (m3["preset"], m3["resolution"], m3["iterations"]) == ("paper", 12, 4)
    assert (m3["views_per_step"], m3["lr"]) == (2, 0.03)


def test_reconstruct_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="no camera file"):
        _run("--views", str(tmp_path), "--out", str(tmp_path / "o"), *TINY)
    (tmp_path / "broken.obj").write_text("v 0 0 0\n")
    with pytest.raises(DataError):
        _run("--mesh", str(tmp_path / "broken.obj"), "--out", str(tmp_path / "o2"), *TINY)
    with pytest.raises(ConfigError, match="formats"):
        _run("--views", str(tmp_path), "--out", str(tmp_path / "o3"), "--formats", "fbx")
