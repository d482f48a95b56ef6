"""G-Shell rendering (analytic sphere), tiny reconstructions and bad view/camera input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("deodr")

from common.errors import DataError  # noqa: E402
from shapes.gshell.reconstruct import carving_maps, observe, reconstruct, udf_baseline  # noqa: E402
from shapes.gshell.render import DeodrRenderer, look_at_camera  # noqa: E402
from shapes.gshell.views import (  # noqa: E402
    check_views,
    framed_cameras,
    load_views,
    render_views,
    save_views,
)
from shapes.metrics import chamfer_distance, sample_surface  # noqa: E402


def _boundary_edges(mesh) -> int:
    e = np.sort(mesh.edges, axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return int((counts == 1).sum())


@pytest.fixture(scope="module")
def hemisphere():
    s = trimesh.creation.icosphere(4, radius=0.4)
    m = trimesh.Trimesh(s.vertices, s.faces[s.triangles_center[:, 1] > 0.0])
    m.remove_unreferenced_vertices()
    return m


@pytest.fixture(scope="module")
def hemi_views(hemisphere):
    return render_views(hemisphere, n_views=8, resolution=64, renderer="deodr")


def test_cpu_renderer_sphere_matches_projection():
    a, d = 0.5, 3.0
    s = trimesh.creation.icosphere(5, radius=a)
    cam = look_at_camera([0, 0, -d], [0, 0, 0], [0, 1, 0], 30, 128, 128)
    v = torch.tensor(s.vertices, requires_grad=True)
    out = DeodrRenderer().render(v, torch.tensor(s.faces), cam)
    # a sphere projects to a disc of radius f a / sqrt(d^2 - a^2); DEODR's antialiasing ramp
    # adds about half a pixel around the silhouette
    rad = cam.K[0, 0] * a / math.sqrt(d * d - a * a)
    assert float(out["mask"].detach().sum()) == pytest.approx(math.pi * (rad + 0.5) ** 2, rel=0.02)
    assert float((out["mask"] > 0.5).sum()) == pytest.approx(math.pi * rad**2, rel=0.05)
    c = 64
    assert float(out["depth"].detach()[c, c]) == pytest.approx(d - a, abs=2e-3)
    # the normal faces the camera
    assert float(out["normal"].detach()[c, c, 2]) == pytest.approx(-1.0, abs=1e-2)
    # the mask area grows with the radius: its gradient along the outward normals is positive
    out["mask"].sum().backward()
    radial = (v.grad * v.detach() / a).sum()
    assert float(radial) > 0


def test_cpu_renderer_depth_is_perspective_correct():
    """A big tilted quad: DEODR's depth equals the ray-plane intersection at every pixel centre
    inside it (DEODR interpolates affinely in the image; the renderer interpolates 1 / z)."""
    cam = look_at_camera([0.4, 0.3, -1.5], [0, 0, 0], [0, 1, 0], 60, 64, 48)
    quad = np.array([[-1.0, -0.8, -0.6], [1.0, -0.8, 0.9], [1.0, 0.8, 0.9], [-1.0, 0.8, -0.6]])
    out = DeodrRenderer().render(torch.tensor(quad), torch.tensor([[0, 1, 2], [0, 2, 3]]), cam)
    n = np.cross(quad[1] - quad[0], quad[3] - quad[0])
    v, u = np.nonzero(out["mask"].detach().numpy() > 1 - 1e-9)
    assert len(v) > 500
    rays = np.stack([(u - cam.K[0, 2]) / cam.K[0, 0], (v - cam.K[1, 2]) / cam.K[1, 1],
                     np.ones(len(u))], 1)  # camera-space direction with z = 1
    n_cam = cam.R @ n
    z = (n_cam @ (cam.R @ quad[0] + cam.t)) / (rays @ n_cam)
    np.testing.assert_allclose(out["depth"].detach().numpy()[v, u], z, rtol=1e-6)


def test_tiny_reconstruction_of_open_hemisphere(hemisphere, hemi_views):
    views, cams = hemi_views
    gt = sample_surface(hemisphere, 4000)[0]
    kw = dict(resolution=16, iterations=40, views_per_step=2, progress=False, renderer="deodr")
    open_mesh = reconstruct(views, cams, mode="gshell", **kw)
    closed = reconstruct(views, cams, mode="watertight", **kw)
    cd_open = chamfer_distance(sample_surface(open_mesh, 4000)[0], gt)
    cd_closed = chamfer_distance(sample_surface(closed, 4000)[0], gt)
    assert _boundary_edges(open_mesh) > 0
    assert _boundary_edges(closed) == 0
    assert cd_open < 0.07  # the grid cell is 0.075 at this resolution
    assert cd_open < cd_closed
    udf = udf_baseline(views, cams, resolution=16)
    assert _boundary_edges(udf) == 0  # a double layer, closed


def test_closed_sphere_stays_closed_where_the_hemisphere_opens(hemi_views):
    """The "close" term keeps every observed template vertex: same budget as the hemisphere."""
    sphere = trimesh.creation.icosphere(4, radius=0.4)
    views, cams = render_views(sphere, n_views=8, resolution=64, renderer="deodr")
    kw = dict(resolution=16, iterations=40, views_per_step=2, progress=False, renderer="deodr")
    out = reconstruct(views, cams, mode="gshell", **kw)
    assert _boundary_edges(out) == 0
    gt = sample_surface(sphere, 4000)[0]
    assert chamfer_distance(sample_surface(out, 4000)[0], gt) < 0.07


def test_observation_labels_of_a_hemisphere(hemisphere, hemi_views):
    """Points on the observed dome are observed; points on the missing cap's disc are seen
    through (the dome's inside lies 0.3+ behind them along their normal) and unsupported; a
    point outside every silhouette is unsupported; a point 0.07 off the dome (between the
    on-surface margin 0.05 and the see-through margin 0.1) gets neither label."""
    views, cams = hemi_views
    rng = np.random.default_rng(0)
    dome = sample_surface(hemisphere, 200)[0]
    dome = dome[dome[:, 1] > 0.1]
    r = 0.25 * np.sqrt(rng.uniform(0, 1, 200))
    a = rng.uniform(0, 2 * np.pi, 200)
    cap = np.stack([r * np.cos(a), np.zeros(200), r * np.sin(a)], 1)
    far = np.array([[0.55, -0.55, 0.55]])
    off = dome[:20] * (1 + 0.07 / 0.4)
    pts = torch.as_tensor(np.concatenate([dome, cap, far, off]))
    normals = torch.as_tensor(np.concatenate([dome / 0.4, np.tile([0.0, -1.0, 0.0], (201, 1)),
                                              off / np.linalg.norm(off, axis=1, keepdims=True)]))
    seen, unsupported = observe(pts, views, cams, margin=0.05, see_margin=0.1,
                                maps=carving_maps(views, 2), normals=normals)
    n = len(dome)
    assert bool(seen[:n].all()) and not bool(unsupported[:n].any())
    assert bool(unsupported[n:n + 200].all()) and not bool(seen[n:n + 200].any())
    assert bool(unsupported[n + 200]) and not bool(seen[n + 200])
    assert not bool(unsupported[n + 201:].any()) and not bool(seen[n + 201:].any())
    # without the silhouette rule only the see-through evidence opens: the cap still does,
    # the point outside every silhouette is left to the mask loss
    seen2, unsupported2 = observe(pts, views, cams, margin=0.05, see_margin=0.1,
                                  maps=carving_maps(views, 2), normals=normals,
                                  outside_opens=False)
    assert torch.equal(seen2, seen)
    assert bool(unsupported2[n:n + 200].all()) and not bool(unsupported2[n + 200])


def test_framed_cameras_fit_a_thin_object():
    """Every corner of the bounding box projects inside the image, and some touches the
    ``fill`` border (the object fills the view), for a flat, off-centre box."""
    box = trimesh.creation.box([1.0, 0.6, 0.04])
    box.apply_translation([0.1, -0.05, 0.0])
    cams = framed_cameras(box.vertices, 10, 64, fov_deg=45, fill=0.9)
    for cam in cams:
        xc = box.vertices @ cam.R.T + cam.t
        assert np.all(xc[:, 2] > 0)
        uv = xc[:, :2] / xc[:, 2:] @ cam.K[:2, :2].T + cam.K[:2, 2]
        off = np.abs(uv - (np.array([cam.width, cam.height]) - 1) / 2).max()
        assert off <= 0.9 * cam.K[0, 0] * math.tan(math.radians(22.5)) + 1e-6
        assert off >= 0.9 * cam.K[0, 0] * math.tan(math.radians(22.5)) - 1e-6
    views, _ = render_views(box, n_views=6, resolution=48, renderer="deodr")
    orbit, _ = render_views(box, n_views=6, resolution=48, renderer="deodr", frame=False)
    assert float(views.masks.mean()) > 2 * float(orbit.masks.mean())


def test_views_round_trip(tmp_path, hemi_views):
    views, cams = hemi_views
    save_views(views, cams, tmp_path)
    back, cams2 = load_views(tmp_path)
    assert len(back) == len(views) and len(cams2) == len(cams)
    assert torch.allclose(back.masks, views.masks, atol=1 / 255)
    assert torch.allclose(back.depths, views.depths)
    np.testing.assert_allclose(cams2[3].K, cams[3].K)


def test_bad_views_raise_clear_errors(tmp_path, hemi_views):
    views, cams = hemi_views
    with pytest.raises(DataError, match="8 views but 7 cameras"):
        check_views(views, cams[:7])
    small = look_at_camera([0, 0, -2.5], [0, 0, 0], [0, 1, 0], 45, 32, 32)
    with pytest.raises(DataError, match="camera is 32x32 but the image is 64x64"):
        check_views(views, [small] + cams[1:])
    away = look_at_camera([0, 0, -2.5], [0, 0, -5], [0, 1, 0], 45, 64, 64)
    with pytest.raises(DataError, match="does not see the volume"):
        check_views(views, cams[:2] + [away] + cams[3:])
    aside = look_at_camera([0, 0, -2.5], [5, 0, -2.5], [0, 1, 0], 45, 64, 64)
    with pytest.raises(DataError, match="does not see the volume"):
        check_views(views, cams[:2] + [aside] + cams[3:])
    empty = type(views)(views.masks.clone(), views.depths, views.normals)
    empty.masks[4] = 0
    with pytest.raises(DataError, match="sees nothing"):
        check_views(empty, cams)
    # an image without alpha where the mask is needed
    from PIL import Image

    save_views(views, cams, tmp_path)
    Image.open(tmp_path / "view_002.png").convert("RGB").save(tmp_path / "view_002.png")
    with pytest.raises(DataError, match="no alpha channel") as err:
        load_views(tmp_path)
    assert "view_002.png" in str(err.value)
    # a camera file that disagrees with the images
    save_views(views, cams, tmp_path)
    meta = json.loads((tmp_path / "cameras.json").read_text())
    meta["frames"][1]["width"] = 80
    (tmp_path / "cameras.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="frames\\[1\\].width/height"):
        load_views(tmp_path)
    del meta["frames"][1]["K"]
    (tmp_path / "cameras.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="frame 1 has no 'K'"):
        load_views(tmp_path)
    with pytest.raises(DataError, match="no camera file"):
        load_views(tmp_path / "missing")


def test_colour_is_reconstructed_per_vertex(tmp_path):
    s = trimesh.creation.icosphere(3, radius=0.35)
    top = s.vertices[:, 1] > 0
    rgb = np.where(top[:, None], [230, 40, 40], [40, 40, 230]).astype(np.uint8)
    s.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)
    views, cams = render_views(s, n_views=6, resolution=48, renderer="deodr")
    assert views.colors is not None
    save_views(views, cams, tmp_path)
    back, _ = load_views(tmp_path)
    assert back.colors is not None and torch.allclose(back.colors, views.colors, atol=1 / 255)
    out = reconstruct(views, cams, mode="watertight", resolution=12, iterations=30,
                      views_per_step=3, progress=False, renderer="deodr")
    col = np.asarray(out.visual.vertex_colors)[:, :3].astype(float)
    y = np.asarray(out.vertices)[:, 1]
    up, down = col[y > 0.15].mean(0), col[y < -0.15].mean(0)
    assert up[0] > up[2] + 50 and down[2] > down[0] + 50


def test_opencv_to_clip_matches_the_pinhole_projection():
    """The nvdiffrast path's camera math, checked on the CPU against the OpenCV projection."""
    from shapes.gshell.render import opencv_to_clip

    cam = look_at_camera([0.3, 1.0, -2.5], [0, 0.1, 0], [0, 1, 0], 40, 96, 64)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (50, 3))
    clip = np.c_[pts, np.ones(50)] @ opencv_to_clip(cam, 0.01, 100.0).T
    ndc = clip[:, :3] / clip[:, 3:]
    xc = pts @ cam.R.T + cam.t
    uv = xc[:, :2] / xc[:, 2:] @ cam.K[:2, :2].T + cam.K[:2, 2]
    np.testing.assert_allclose((ndc[:, 0] + 1) * cam.width / 2 - 0.5, uv[:, 0], atol=1e-9)
    np.testing.assert_allclose((ndc[:, 1] + 1) * cam.height / 2 - 0.5, uv[:, 1], atol=1e-9)
    np.testing.assert_allclose(clip[:, 3], xc[:, 2], atol=1e-12)
    assert np.all(np.abs(ndc[:, 2]) < 1)
    order = np.argsort(xc[:, 2])
    assert np.all(np.diff(ndc[order, 2]) > 0)  # depth test keeps the nearest surface


def test_boundary_stats_of_an_open_cylinder():
    """An uncapped cylinder has two rims of length 2 pi r each; a sphere has none."""
    from shapes.gshell.evaluate import boundary_stats

    c = trimesh.creation.cylinder(0.3, 1.0, sections=64)
    tube = trimesh.Trimesh(c.vertices, c.faces[np.abs(c.face_normals[:, 2]) < 0.5])
    loops, length = boundary_stats(tube)
    assert loops == 2
    assert length == pytest.approx(2 * 64 * 2 * 0.3 * math.sin(math.pi / 64), rel=1e-9)
    assert boundary_stats(trimesh.creation.icosphere(2)) == (0, 0.0)


def test_cropped_view_does_not_carve_beyond_its_image():
    """A mask touching the image border means the view is cropped: points outside stay."""
    from shapes.gshell.reconstruct import outside_some_mask
    from shapes.gshell.render import Camera

    K = np.array([[10.0, 0, 4.5], [0, 10.0, 4.5], [0, 0, 1]])
    cam = Camera(K=K, R=np.eye(3), t=np.array([0, 0, 2.0]), width=10, height=10)
    far_right = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)  # projects to column 14.5
    whole = torch.zeros(1, 10, 10)
    whole[0, 3:7, 3:7] = 1
    cropped = whole.clone()
    cropped[0, 3:7, 3:10] = 1  # the object runs off the right edge
    assert bool(outside_some_mask(far_right, whole, [cam])[0])
    assert not bool(outside_some_mask(far_right, cropped, [cam])[0])


class _NanGradRenderer:
    """DEODR whose mask carries a NaN gradient (sqrt at 0) but a finite value."""

    name = "deodr-nan"

    def __init__(self) -> None:
        self.inner = DeodrRenderer()

    def render(self, vertices, faces, camera, vertex_colors=None):
        out = self.inner.render(vertices, faces, camera, vertex_colors)
        out["mask"] = out["mask"] + torch.sqrt(vertices.sum() * 0)
        return out


def test_non_finite_gradients_do_not_poison_the_fields(hemi_views):
    from shapes.gshell.reconstruct import ReconstructConfig, optimise

    views, cams = hemi_views
    cfg = ReconstructConfig(resolution=12, iterations=3, views_per_step=1, progress=False)
    rec = optimise(views, cams, cfg, _NanGradRenderer())
    assert all(bool(torch.isfinite(t).all()) for t in (rec.sdf, rec.msdf, rec.deform))
    assert len(rec.mesh().faces) > 0


def test_coarse_to_fine_ends_on_the_fine_grid(hemi_views):
    """coarse_resolution: the fields are resampled once onto the final grid and keep fitting."""
    from shapes.gshell.reconstruct import ReconstructConfig, optimise

    views, cams = hemi_views
    cfg = ReconstructConfig(resolution=14, coarse_resolution=10, coarse_fraction=0.5,
                            iterations=6, views_per_step=1, progress=False, renderer="deodr")
    rec = optimise(views, cams, cfg)
    assert rec.grid.resolution == 14
    assert rec.sdf.shape == rec.msdf.shape == (15**3,) and rec.deform.shape == (15**3, 3)
    assert float(rec.deform.abs().max()) < 0.45 * rec.grid.cell_size
    assert len(rec.history) == 6 and all(np.isfinite(rec.history))
    assert len(rec.mesh().faces) > 0


def test_view_folder_with_mixed_sizes_or_partial_maps(tmp_path, hemi_views):
    """A view folder whose images differ in size, or where only some frames carry depth."""
    from PIL import Image

    views, cams = hemi_views
    save_views(views, cams, tmp_path)
    meta = json.loads((tmp_path / "cameras.json").read_text())
    partial = json.loads(json.dumps(meta))
    del partial["frames"][3]["depth"]
    (tmp_path / "cameras.json").write_text(json.dumps(partial))
    with pytest.raises(DataError, match="only 7 of 8 frames have a depth map"):
        load_views(tmp_path)
    # view 0 at half size, with a camera that matches it: consistent per view, mixed overall
    small = tmp_path / "small"
    save_views(views, cams, small)
    meta = json.loads((small / "cameras.json").read_text())
    fr = meta["frames"][0]
    Image.open(small / fr["file"]).resize((32, 32)).save(small / fr["file"])
    fr.pop("depth", None), fr.pop("normal", None)
    for other in meta["frames"][1:]:
        other.pop("depth", None), other.pop("normal", None)
    fr["width"] = fr["height"] = 32
    fr["K"] = (np.asarray(fr["K"]) * [[0.5], [0.5], [1]]).tolist()
    (small / "cameras.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="images differ in size"):
        load_views(small)


def test_framed_cameras_extra_directions_look_along_them():
    """An extra direction adds one framed camera on that axis through the box centre, looking
    back along it, with the whole box in view; a zero direction is a ConfigError."""
    from common.errors import ConfigError

    box = trimesh.creation.box([1.0, 0.3, 0.2])
    box.apply_translation([0.1, -0.05, 0.0])
    cams = framed_cameras(box.vertices, 6, 48, extra_directions=[[2.0, 0, 0], [0, -1, 0]])
    assert len(cams) == 8
    c = 0.5 * (box.vertices.min(0) + box.vertices.max(0))
    for cam, d in zip(cams[6:], ([1.0, 0, 0], [0, -1.0, 0])):
        centre = -cam.R.T @ cam.t
        off = centre - c
        np.testing.assert_allclose(off / np.linalg.norm(off), d, atol=1e-9)
        np.testing.assert_allclose(cam.R[2], -np.asarray(d), atol=1e-9)
        xc = box.vertices @ cam.R.T + cam.t
        uv = xc[:, :2] / xc[:, 2:] @ cam.K[:2, :2].T + cam.K[:2, 2]
        assert np.all(xc[:, 2] > 0) and np.all((uv >= 0) & (uv <= 47))
    with pytest.raises(ConfigError, match="non-zero"):
        framed_cameras(box.vertices, 6, 48, extra_directions=[[0, 0, 0]])
    views, vc = render_views(box, n_views=4, resolution=32, renderer="deodr",
                             extra_directions=[[1, 0, 0]])
    assert len(views) == len(vc) == 5 and views.names[-1] == "view_004"


def test_views_without_depth_warn_that_openings_need_it(hemi_views):
    """Masks only (a user's RGBA images without depth .npy): the fit runs and says why open
    surfaces will stay closed."""
    from shapes.gshell.views import Views

    views, cams = hemi_views
    with pytest.warns(RuntimeWarning, match="no depth maps"):
        out = reconstruct(Views(views.masks), cams, resolution=8, iterations=2,
                          progress=False, renderer="deodr")
    assert len(out.faces) > 0
