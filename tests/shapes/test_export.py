"""Export round trips, overwrite protection, CPU previews, the synthetic family."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapes.export import export_mesh, render_preview
from shapes.mesh_io import load_mesh
from shapes.synthetic import CATEGORIES, make_shape


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".glb"])
def test_export_round_trip_keeps_counts(tmp_path, suffix):
    mesh = trimesh.creation.icosphere(2, 0.4)
    path = export_mesh(mesh, tmp_path / f"sphere{suffix}")
    back = load_mesh(path)
    assert (len(back.vertices), len(back.faces)) == (len(mesh.vertices), len(mesh.faces))
    np.testing.assert_allclose(back.volume, mesh.volume, rtol=1e-5)


def test_export_refuses_overwrite_and_unknown_format(tmp_path):
    mesh = trimesh.creation.box()
    path = export_mesh(mesh, tmp_path / "box.obj")
    with pytest.raises(FileExistsError):
        export_mesh(mesh, path)
    export_mesh(mesh, path, overwrite=True)
    with pytest.raises(ValueError, match="unsupported"):
        export_mesh(mesh, tmp_path / "box.fbx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.obj"]  # no temp files left


def test_render_preview_writes_png(tmp_path):
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    path = render_preview([trimesh.creation.box(), empty], tmp_path / "p.png",
                          views=((20, 30), (20, 120)), titles=["box", "empty"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_family_is_watertight_and_varied():
    shapes = [make_shape(c, s) for c in CATEGORIES for s in (0, 1)]
    assert all(m.is_watertight and m.volume > 0 for m in shapes)
    extents = np.array([m.extents for m in shapes])
    assert np.unique(extents.round(3), axis=0).shape[0] == len(shapes)  # no two alike
    with pytest.raises(ValueError, match="unknown category"):
        make_shape("sofa", 0)
