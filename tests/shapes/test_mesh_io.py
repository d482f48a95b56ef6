"""Mesh loading: real shared meshes load; each kind of bad input is a DataError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from common.errors import DataError
from shapes.mesh_io import load_mesh, load_mesh_dir, normalize_to_unit_cube, validate_mesh


def test_real_formats_load(shared_data):
    root = shared_data / "shapes"
    for rel in ("common-3d-test-models/cow.obj", "trimesh-models/bunny.ply",
                "trimesh-models/round.stl", "trimesh-models/ballA.off", "trimesh-models/Duck.glb"):
        mesh = load_mesh(root / rel)
        assert len(mesh.faces) > 0 and np.isfinite(mesh.vertices).all()


def test_scene_with_parts_is_concatenated_and_said_so(tmp_path):
    scene = trimesh.Scene([trimesh.creation.box(), trimesh.creation.icosphere(1)])
    path = tmp_path / "two.glb"
    path.write_bytes(scene.export(file_type="glb"))
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12 + 80
    assert any("2 parts" in r for r in mesh.metadata["genpipes_repairs"])


def test_unreadable_file(tmp_path):
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nend_header\n\x00")
    with pytest.raises(DataError, match="broken.ply"):
        load_mesh(bad)


def test_no_faces(tmp_path):
    path = tmp_path / "points.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(DataError, match="points.obj"):
        load_mesh(path)


def test_nan_vertices(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 nan\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(DataError, match="NaN") as err:
        load_mesh(path)
    assert "nan.obj" in str(err.value)


def test_flat_mesh_refused_unless_allowed(shared_data):
    plane = shared_data / "shapes" / "trimesh-models" / "plane.ply"
    with pytest.raises(DataError, match="flat"):
        load_mesh(plane)
    assert len(load_mesh(plane, allow_flat=True).faces) == 2


def test_huge_mesh_decimated_with_note():
    sphere = trimesh.creation.icosphere(5)  # 20480 faces
    mesh = validate_mesh(sphere, "big", max_faces=2000)
    assert len(mesh.faces) <= 2000
    assert "decimated" in mesh.metadata["genpipes_repairs"][-1]


def test_dir_keeps_going_and_reports(tmp_path):
    trimesh.creation.box().export(tmp_path / "good.stl")
    (tmp_path / "bad.obj").write_text("v 0 0 0\n")
    meshes, errors = load_mesh_dir(tmp_path)
    assert list(meshes) == ["good.stl"] and list(errors) == ["bad.obj"]
    assert "bad.obj" in errors["bad.obj"]


def test_normalize_to_unit_cube_round_trip():
    box = trimesh.creation.box((2.0, 1.0, 0.5))
    box.apply_translation([3, -1, 7])
    out, center, scale = normalize_to_unit_cube(box, padding=0.1)
    np.testing.assert_allclose(out.extents, [0.8, 0.4, 0.2], atol=1e-12)
    np.testing.assert_allclose(out.bounds.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(out.vertices / scale + center, box.vertices, atol=1e-12)


def test_modelnet_extraction_from_cached_zip(tmp_path):
    import hashlib
    import zipfile

    from shapes.datasets import modelnet

    off = "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
    zpath = tmp_path / "modelnet10.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for cls in ("chair", "table"):
            for split in ("train", "test"):
                for i in range(3):
                    zf.writestr(f"ModelNet10/{cls}/{split}/{cls}_{i:04d}.off", off)
    digest = hashlib.sha256(zpath.read_bytes()).hexdigest()
    (tmp_path / "modelnet10.zip.sha256").write_text(digest + "\n")
    folder = modelnet("modelnet10", ["chair"], "test", cache_dir=tmp_path, limit=2)
    meshes, errors = load_mesh_dir(folder)
    assert sorted(meshes) == ["chair/chair_0000.off", "chair/chair_0001.off"] and not errors
    assert all(len(m.faces) == 4 for m in meshes.values())
    with pytest.raises(DataError, match="sofa"):
        modelnet("modelnet10", ["sofa"], cache_dir=tmp_path)
    zpath.write_bytes(zpath.read_bytes() + b"x")  # a corrupted cache is refused
    with pytest.raises(DataError, match="SHA-256"):
        modelnet("modelnet10", cache_dir=tmp_path)


def test_huge_mesh_file_refused_above_the_hard_limit(tmp_path, monkeypatch):
    """Above ``REFUSE_FACES`` a file is refused by name (decimating it would cost gigabytes)."""
    import shapes.mesh_io as mio

    path = tmp_path / "huge.ply"
    trimesh.creation.icosphere(3).export(path)  # 1280 faces
    monkeypatch.setattr(mio, "REFUSE_FACES", 1000)
    with pytest.raises(DataError, match="1,280 faces") as err:
        load_mesh(path)
    assert "huge.ply" in str(err.value) and "decimate" in str(err.value)
    monkeypatch.setattr(mio, "REFUSE_FACES", 10**9)
    mesh = load_mesh(path, max_faces=300)  # below the hard limit: decimated and said so
    assert len(mesh.faces) <= 300 and "1,280 to" in mesh.metadata["genpipes_repairs"][-1]


def test_degenerate_meshes_are_refused_by_name(tmp_path):
    path = tmp_path / "zero_area.obj"  # three collinear vertices: a face with no area
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    with pytest.raises(DataError, match="zero_area.obj"):
        load_mesh(path)
    path = tmp_path / "same_point.obj"
    path.write_text("v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")
    with pytest.raises(DataError, match="same_point.obj"):
        load_mesh(path)
    path = tmp_path / "bad_index.obj"
    with pytest.raises(DataError, match="bad_index"):
        validate_mesh(trimesh.Trimesh(np.eye(3), [[0, 1, 5]], process=False), path)


def test_every_shared_real_mesh_loads_or_is_rejected_by_name(shared_data):
    """The whole shared folder (soups, open garments, a 2216-part chair, non-manifold parts)."""
    meshes, errors = load_mesh_dir(shared_data / "shapes")
    flat = {"common-3d-test-models/alligator.obj", "common-3d-test-models/woody.obj",
            "trimesh-models/plane.ply"}  # planar 2-D meshes (z extent 0): no inside
    assert set(errors) == flat and all("flat" in e and n in e for n, e in errors.items())
    assert len(meshes) >= 29
    chair = meshes["trimesh-models/chair_model.obj"]  # many open parts, kept as one mesh
    assert len(chair.split(only_watertight=False)) > 100
    soup = meshes["trimesh-models/ico4.obj"]  # every face separate: merged by trimesh
    assert len(soup.vertices) < 3 * len(soup.faces)
    for mesh in meshes.values():
        assert len(mesh.faces) > 0 and np.isfinite(mesh.vertices).all()
