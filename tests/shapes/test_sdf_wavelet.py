"""SDF grids against analytic SDFs; the wavelet-tree codec round trip on a real mesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from shapes.mesh_io import load_mesh
from shapes.metrics import chamfer_distance, volumetric_iou
from shapes.sdf import (
    SDFConfig,
    cached_mesh_to_sdf,
    grid_points,
    mesh_to_sdf,
    sdf_to_mesh,
    signed_distance,
)
from shapes.wavelet import WaveletConfig, decode, dense_shape, encode, tree_from_dense


def test_sphere_sdf_matches_analytic():
    sphere = trimesh.creation.icosphere(5, radius=0.3)  # chord error <= ~1e-3 of the radius
    sdf, info = mesh_to_sdf(sphere, SDFConfig(resolution=24, truncation=None), normalized=True)
    exact = np.linalg.norm(grid_points(24), axis=1).reshape(sdf.shape) - 0.3
    assert np.abs(sdf - exact).max() < 2e-3
    assert not info["made_watertight"]


def test_box_sdf_matches_analytic_and_truncates():
    half = np.array([0.3, 0.2, 0.1])
    box = trimesh.creation.box(2 * half)
    sdf, _ = mesh_to_sdf(box, SDFConfig(resolution=20, truncation=0.08), normalized=True)
    q = np.abs(grid_points(20)) - half
    exact = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
    np.testing.assert_allclose(sdf.ravel(), np.clip(exact, -0.08, 0.08), atol=1e-4)


def test_open_mesh_is_made_watertight_and_said_so(shared_data, tmp_path):
    mesh = load_mesh(shared_data / "shapes" / "common-3d-test-models" / "suzanne.obj")
    cfg = SDFConfig(resolution=16, manifold_resolution=3000)
    sdf, info = cached_mesh_to_sdf(mesh, cfg, tmp_path)
    assert info["made_watertight"] and "Manifold" in info["repairs"][-1]
    assert sdf.min() < 0 < sdf.max()
    again, _ = cached_mesh_to_sdf(mesh, cfg, tmp_path)  # from the cache file
    np.testing.assert_array_equal(sdf, again)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_marching_cubes_volume_of_a_box():
    box = trimesh.creation.box((0.5, 0.4, 0.3))
    sdf, _ = mesh_to_sdf(box, SDFConfig(resolution=32, truncation=None), normalized=True)
    mesh = sdf_to_mesh(sdf)
    assert mesh.is_watertight
    assert abs(mesh.volume - 0.06) < 0.06 * 0.03  # outward normals, volume within 3 %


def test_codec_full_tree_round_trip_on_real_mesh(shared_data):
    mesh = load_mesh(shared_data / "shapes" / "common-3d-test-models" / "cow.obj")
    sdf, _ = mesh_to_sdf(mesh, SDFConfig(resolution=64))
    tree = encode(sdf, WaveletConfig(top_k=None))
    assert tree.dense.shape == (8, 22, 22, 22) == dense_shape(64, WaveletConfig())
    rec = decode(tree)
    assert volumetric_iou(sdf < 0, rec < 0) > 0.9999
    np.testing.assert_allclose(rec, sdf, atol=1e-5)
    # dropping detail coefficients loses accuracy monotonically and shrinks storage
    ious, sizes = [], []
    for k in (20000, 2000, 0):
        t = encode(sdf, WaveletConfig(top_k=k))
        ious.append(volumetric_iou(sdf < 0, decode(t) < 0))
        sizes.append(t.nbytes())
    assert ious[0] > ious[1] > ious[2] > 0.8 and sizes[0] > sizes[1] > sizes[2]
    coarse = decode(tree_from_dense(tree.dense, 64))
    np.testing.assert_allclose(coarse, decode(encode(sdf, WaveletConfig(top_k=0))), atol=1e-6)
    a, b = sdf_to_mesh(sdf), sdf_to_mesh(rec)
    assert chamfer_distance(a.sample(3000, seed=0), b.sample(3000, seed=1)) < 0.02


def test_wala_reference_coarse_size():
    assert dense_shape(256, WaveletConfig()) == (8, 46, 46, 46)  # WaLa's 46^3 at 256^3


def test_dense_synthesis_matrices_equal_the_inverse_dwt():
    """The separable torch synthesis (finer details zero) equals PyWavelets' ``waverecn``."""
    import torch

    from shapes.wavelet import dense_to_grid, synthesis_matrices

    rng = np.random.default_rng(3)
    for res, levels in ((32, 2), (24, 3)):
        cfg = WaveletConfig("bior6.8", levels, "symmetric", top_k=0)
        grid = rng.normal(size=(res, res, res)).astype(np.float32)
        tree = encode(grid, cfg)
        lo, hi = (torch.from_numpy(m) for m in synthesis_matrices(res, cfg))
        assert lo.shape == hi.shape == (res, dense_shape(res, cfg)[1])
        ours = dense_to_grid(torch.from_numpy(tree.dense)[None].double(), lo, hi)[0].numpy()
        np.testing.assert_allclose(ours, decode(tree), atol=1e-5 * np.abs(decode(tree)).max())


def test_narrow_band_sdf_equals_the_dense_truncated_grid(shared_data):
    """Skipping nodes by the 1-Lipschitz bound changes no value (real watertight meshes)."""
    from shapes.mesh_io import normalize_to_unit_cube
    from shapes.sdf import narrow_band_sdf, signed_distance

    for rel in ("common-3d-test-models/cow.obj", "common-3d-test-models/fandisk.obj"):
        mesh = normalize_to_unit_cube(load_mesh(shared_data / "shapes" / rel), 0.05)[0]
        assert mesh.is_watertight
        dense = np.clip(signed_distance(mesh, grid_points(36)), -0.06, 0.06).reshape((36,) * 3)
        band = np.clip(narrow_band_sdf(mesh, 36, 0.06, coarse=9), -0.06, 0.06)
        np.testing.assert_array_equal(band, dense)
        assert (np.abs(band) < 0.06).mean() < 0.5  # most nodes lie beyond the truncation
    # mesh_to_sdf takes the band path above NARROW_BAND_MIN_RES and gives the analytic box SDF
    from shapes.sdf import NARROW_BAND_MIN_RES

    half, r = np.array([0.3, 0.2, 0.1]), NARROW_BAND_MIN_RES + 1
    sdf, _ = mesh_to_sdf(trimesh.creation.box(2 * half), SDFConfig(resolution=r, truncation=0.05),
                         normalized=True)
    q = np.abs(grid_points(r)) - half
    exact = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
    np.testing.assert_allclose(sdf.ravel(), np.clip(exact, -0.05, 0.05), atol=1e-4)


def test_marching_cubes_with_decimation_keeps_the_shape():
    sphere = trimesh.creation.icosphere(4, radius=0.35)
    sdf, _ = mesh_to_sdf(sphere, SDFConfig(resolution=40, truncation=0.1), normalized=True)
    full, small = sdf_to_mesh(sdf), sdf_to_mesh(sdf, decimate_to=500)
    assert len(full.faces) > 2000 and 0 < len(small.faces) <= 500 and small.is_watertight
    off = np.abs(np.linalg.norm(small.vertices, axis=1) - 0.35)  # vertices stay on the sphere
    assert off.max() < 0.25 / 39  # a quarter of a grid cell
    assert abs(small.volume - full.volume) < 0.05 * full.volume


def _cylinder_tsdf(res: int) -> np.ndarray:
    """A capped cylinder's TSDF (an upper bound on the distance; exact away from the rims)."""
    g = np.linspace(-0.5, 0.5, res)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    d = np.maximum(np.abs(x) - 0.3, np.sqrt(y**2 + z**2) - 0.2)
    return np.clip(d, -0.1, 0.1).astype(np.float32)


@pytest.mark.parametrize("res, dense", [(128, 30), pytest.param(256, 46, marks=pytest.mark.slow)])
def test_codec_round_trip_and_top_k_at_128_and_256(res, dense):
    sdf = _cylinder_tsdf(res)
    full = encode(sdf, WaveletConfig(top_k=None))
    assert full.dense.shape == (8, dense, dense, dense) == dense_shape(res, WaveletConfig())
    np.testing.assert_allclose(decode(full), sdf, atol=1e-5)
    errs, sizes = [], []
    for k in (20000, 0):  # sparse finer details, then the dense part alone
        tree = encode(sdf, WaveletConfig(top_k=k))
        errs.append(float(np.abs(decode(tree) - sdf).mean()))
        sizes.append(tree.nbytes())
    assert 0 < errs[0] < errs[1] and sizes[0] > sizes[1] == 4 * 8 * dense**3
    assert volumetric_iou(sdf < 0, decode(encode(sdf, WaveletConfig(top_k=0))) < 0) > 0.98


def test_winding_number_sign_for_a_soup_and_an_open_box():
    box = trimesh.creation.box((0.5, 0.4, 0.3))
    soup = trimesh.Trimesh(box.vertices[box.faces].reshape(-1, 3),
                           np.arange(3 * len(box.faces)).reshape(-1, 3), process=False)
    assert not soup.is_watertight  # every face separate, as in a triangle soup
    cfg = SDFConfig(resolution=16, truncation=None, watertight="never")
    ref, _ = mesh_to_sdf(box, cfg, normalized=True)
    got, _ = mesh_to_sdf(soup, cfg, normalized=True)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    open_box = trimesh.Trimesh(box.vertices, box.faces[2:], process=False)  # one side missing
    pts = np.array([[0.0, 0.0, 0.0], [0.1, 0.05, 0.0], [0.4, 0.0, 0.0]])
    d = signed_distance(open_box, pts)
    assert d[0] < 0 and d[1] < 0 and d[2] > 0  # the generalized winding number keeps the inside
