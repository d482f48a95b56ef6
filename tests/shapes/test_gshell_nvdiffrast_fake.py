"""The nvdiffrast backend's tensor preparation, checked on the CPU with a fake ``nvdiffrast.torch``.

nvdiffrast needs CUDA, so these tests install a small pure-torch stand-in for
``nvdiffrast.torch`` that enforces what nvdiffrast's C++ side checks (``torch_rasterize.cpp``,
``torch_interpolate.cpp``, ``torch_antialias.cpp``: float32 ``pos``/``attr``/``color``, int32
contiguous ``tri``, instance-mode shapes, same device) and reproduces its documented output
conventions (nvdiffrast ``docs/index.html``, "Rasterization" and "Coordinate systems"):

* pixel ``(px, py)`` is sampled at clip-space ``x/w = 2 (px + 0.5) / W - 1``,
  ``y/w = 2 (py + 0.5) / H - 1`` (``p.xs``/``p.xo`` in ``torch_rasterize.cpp``); memory row 0 is
  ``y/w = -1`` (OpenGL's bottom-up order);
* ``rast = (u, v, z/w, triangle_id + 1)``, perspective-correct barycentrics with the first
  vertex at ``(u, v) = (1, 0)``, the second at ``(0, 1)``; 0 everywhere on background;
* the depth test keeps the smallest ``z/w`` (larger ``z/w`` is farther from the viewer).

Point sampling at pixel centres is what nvdiffrast does; antialiasing is the identity here (it
only moves silhouette pixels). The renderer built on the fake must give the same images as DEODR
for the same OpenCV camera, so a y-flip, a transposed resolution, a half-pixel shift or a wrong
depth convention fails here without a GPU.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("deodr")

from shapes.gshell.render import (  # noqa: E402
    DeodrRenderer,
    NvdiffrastRenderer,
    look_at_camera,
)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise RuntimeError(f"fake nvdiffrast: {msg}")  # nvdiffrast raises RuntimeError too


class _Ctx:
    def __init__(self, device=None) -> None:
        self.device = device


def _rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
    _check(isinstance(glctx, _Ctx), "glctx must be a RasterizeCudaContext")
    _check(grad_db is True or grad_db is False, "grad_db must be a bool")
    _check(pos.dtype == torch.float32 and tri.dtype == torch.int32, "pos f32, tri i32")
    _check(pos.is_contiguous() and tri.is_contiguous(), "pos/tri must be contiguous")
    _check(pos.device == tri.device, "pos/tri on one device")
    _check(ranges is None, "range mode not used by genpipes")
    _check(pos.dim() == 3 and pos.shape[0] > 0 and pos.shape[1] > 0 and pos.shape[2] == 4,
           "instance mode - pos must have shape [>0, >0, 4]")
    _check(tri.dim() == 2 and tri.shape[0] > 0 and tri.shape[1] == 3, "tri must be [>0, 3]")
    H, W = tuple(resolution)
    _check(isinstance(H, int) and isinstance(W, int) and H > 0 and W > 0, "resolution (H, W)")
    p = pos[0].detach().double()
    t = tri.long()
    fx = 2 * (torch.arange(W, dtype=torch.float64) + 0.5) / W - 1
    fy = 2 * (torch.arange(H, dtype=torch.float64) + 0.5) / H - 1
    py, px = torch.meshgrid(fy, fx, indexing="ij")  # memory row i <-> y/w = fy[i]
    q = torch.stack([px.reshape(-1), py.reshape(-1)], 1)
    best = torch.full((H * W,), np.inf, dtype=torch.float64)
    out = torch.zeros(H * W, 4, dtype=torch.float64)
    for s in range(0, t.shape[0], 256):
        ft = t[s:s + 256]
        w = p[ft][..., 3]                                  # [T, 3]
        xy = p[ft][..., :2] / w[..., None]                 # [T, 3, 2] screen (ndc)
        zw = p[ft][..., 2] / w                             # [T, 3]
        a, b, c = xy[:, 0, None], xy[:, 1, None], xy[:, 2, None]  # [T, 1, 2]

        def cross(o, u, v):
            return (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (
                u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0])

        area = cross(a, b, c)                              # [T, 1]
        qq = q[None]
        l0 = cross(qq, b, c) / area                        # screen barycentrics [T, P]
        l1 = cross(qq, c, a) / area
        l2 = 1 - l0 - l1
        z = l0 * zw[:, :1] + l1 * zw[:, 1:2] + l2 * zw[:, 2:]
        ok = ((l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (area.abs() > 1e-14) & (w > 0).all(1, True)
              & (z >= -1) & (z <= 1))
        z = torch.where(ok, z, torch.full_like(z, np.inf))
        zmin, k = z.min(0)
        win = zmin < best
        if not bool(win.any()):
            continue
        best = torch.where(win, zmin, best)
        pix = torch.nonzero(win).reshape(-1)
        kk = k[pix]
        g0, g1, g2 = (lam[kk, pix] / w[kk, j] for j, lam in enumerate((l0, l1, l2)))
        den = g0 + g1 + g2                                 # perspective-correct barycentrics
        out[pix] = torch.stack([g0 / den, g1 / den, zmin[pix], (s + kk + 1).double()], 1)
    rast = out.reshape(1, H, W, 4).float().to(pos.device)
    return rast, torch.zeros_like(rast)


def _interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
    _check(attr.dtype == torch.float32 and rast.dtype == torch.float32, "attr/rast f32")
    _check(tri.dtype == torch.int32 and tri.is_contiguous(), "tri i32 contiguous")
    _check(attr.is_contiguous() and rast.is_contiguous(), "attr/rast contiguous")
    _check(attr.dim() in (2, 3) and rast.dim() == 4 and rast.shape[3] == 4, "attr/rast shapes")
    _check(attr.dim() == 2 or attr.shape[0] in (1, rast.shape[0]), "attr minibatch")
    _check(diff_attrs is None, "no pixel differentials used")
    a = attr if attr.dim() == 2 else attr[0]
    t = tri.long()
    tid = rast[0, ..., 3].round().long()
    f = torch.clamp(tid - 1, min=0)
    u, v = rast[0, ..., 0:1], rast[0, ..., 1:2]
    val = u * a[t[f, 0]] + v * a[t[f, 1]] + (1 - u - v) * a[t[f, 2]]
    val = torch.where(tid[..., None] > 0, val, torch.zeros_like(val))
    return val[None], torch.zeros(*rast.shape[:3], 0, device=rast.device)


def _antialias(color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
    _check(color.dtype == torch.float32 and pos.dtype == torch.float32, "color/pos f32")
    _check(tri.dtype == torch.int32, "tri i32")
    _check(all(x.is_contiguous() for x in (color, rast, pos, tri)), "inputs contiguous")
    _check(color.dim() == 4 and color.shape[1:3] == rast.shape[1:3], "color/rast same H, W")
    _check(pos.dim() == 3 and pos.shape[0] == color.shape[0], "pos minibatch")
    return color + 0 * pos.sum()


@pytest.fixture
def fake_nvdiffrast(monkeypatch):
    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapped

    torch_mod = types.ModuleType("nvdiffrast.torch")
    torch_mod.RasterizeCudaContext = _Ctx
    torch_mod.rasterize = spy("rasterize", _rasterize)
    torch_mod.interpolate = spy("interpolate", _interpolate)
    torch_mod.antialias = spy("antialias", _antialias)
    pkg = types.ModuleType("nvdiffrast")
    pkg.torch = torch_mod
    monkeypatch.setitem(sys.modules, "nvdiffrast", pkg)
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", torch_mod)
    return calls


def _scene():
    """An asymmetric scene: a sphere right-below and a box left-above the origin."""
    s = trimesh.creation.icosphere(3, radius=0.3)
    s.apply_translation([0.25, -0.15, 0.0])
    b = trimesh.creation.box([0.25, 0.2, 0.3])
    b.apply_translation([-0.3, 0.3, 0.1])
    return trimesh.util.concatenate([s, b])


CAMERAS = [((0.3, 0.4, -2.2), (0, 1, 0), 48, 64), ((2.0, -0.5, 0.6), (0, 1, 0), 64, 40),
           ((-0.4, 2.1, -0.3), (0, 0, 1), 56, 56)]


@pytest.mark.parametrize("eye, up, width, height", CAMERAS)
def test_fake_nvdiffrast_images_equal_deodr(fake_nvdiffrast, eye, up, width, height):
    mesh = _scene()
    cam = look_at_camera(eye, [0, 0, 0], up, 40, width, height)
    v = torch.tensor(mesh.vertices, dtype=torch.float32)
    f = torch.tensor(mesh.faces)
    gpu = NvdiffrastRenderer(device="cpu")
    a = gpu.render(v, f, cam)
    assert fake_nvdiffrast == ["rasterize", "interpolate", "antialias"]
    b = DeodrRenderer().render(v.double(), f, cam)
    for k in ("mask", "depth", "normal"):
        assert a[k].shape == b[k].shape  # [H, W] / [H, W, 3], rows top-down like OpenCV
    # nvdiffrast point-samples coverage at pixel centres (its antialias only blends the
    # silhouette band); DEODR is 1 exactly where a pixel centre is covered and ramps from 1 to 0
    # over the pixel *outside* each silhouette edge, so its > 0.5 mask is half a pixel wider
    ma, mb = a["mask"] > 0.5, b["mask"].detach() > 1 - 1e-3
    iou = float((ma & mb).sum() / (ma | mb).sum())
    assert iou > 0.98
    assert not bool((ma & ~(b["mask"].detach() > 0.5)).any())  # a wider band, never a shift
    # orientation: both draw the sphere's centre at its OpenCV projection
    c = np.array([0.25, -0.15, 0.0]) @ cam.R.T + cam.t
    u, vv = (cam.K @ (c / c[2]))[:2].round().astype(int)
    assert bool(ma[vv, u]) and bool(mb[vv, u])
    # attributes on pixels well inside both silhouettes: same depth (camera z) and normals
    inner = torch.nn.functional.max_pool2d((~(ma & mb)).float()[None, None], 3, 1, 1)[0, 0] < 0.5
    assert int(inner.sum()) > 50
    dist = float(np.linalg.norm(cam.t))
    dd = (a["depth"] - b["depth"].detach().float())[inner].abs()
    # equal up to float32, except a few pixels on occlusion edges, where DEODR blends the
    # front surface over the one behind it (nvdiffrast's antialias does too, in the real one)
    assert float(torch.quantile(dd, 0.9)) < 1e-4 * dist
    assert float((dd > 1e-3 * dist).float().mean()) < 0.05
    nd = (a["normal"] - b["normal"].detach().float())[inner].norm(dim=-1)
    assert float(torch.quantile(nd, 0.95)) < 1e-3


def test_fake_nvdiffrast_depth_test_keeps_the_nearest_surface(fake_nvdiffrast):
    """Two parallel squares: the nearer one is drawn whatever the face order (z/w test)."""
    sq = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    near = np.c_[sq, np.full(4, -0.2)]
    far = np.c_[sq * 1.5, np.full(4, 0.3)]
    v = torch.tensor(np.r_[far, near], dtype=torch.float32)
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    cam = look_at_camera([0, 0, -2], [0, 0, 0], [0, 1, 0], 50, 32, 32)
    for faces in (f, f.flip(0)):
        out = NvdiffrastRenderer(device="cpu").render(v, faces, cam)
        assert float(out["depth"][16, 16]) == pytest.approx(1.8, abs=1e-4)
        assert float(out["depth"][5, 16]) == pytest.approx(2.3, abs=1e-4)  # only the far square


def test_fake_nvdiffrast_gradients_and_empty_mesh(fake_nvdiffrast):
    mesh = _scene()
    cam = look_at_camera((0.3, 0.4, -2.2), [0, 0, 0], (0, 1, 0), 40, 48, 48)
    v = torch.tensor(mesh.vertices, dtype=torch.float64, requires_grad=True)
    out = NvdiffrastRenderer(device="cpu").render(v, torch.tensor(mesh.faces), cam)
    assert out["depth"].dtype == torch.float64  # returned in the caller's dtype
    out["depth"].sum().backward()  # depth reaches the vertices through interpolate
    assert v.grad is not None and bool(torch.isfinite(v.grad).all())
    assert float(v.grad.abs().sum()) > 0
    empty = NvdiffrastRenderer(device="cpu").render(v, torch.zeros(0, 3, dtype=torch.long), cam)
    assert float(empty["mask"].detach().abs().sum()) == 0 and empty["mask"].shape == (48, 48)


def test_reconstruct_runs_on_the_nvdiffrast_backend(fake_nvdiffrast):
    """The whole optimisation loop with the nvdiffrast backend (device from the renderer)."""
    from shapes.gshell.reconstruct import reconstruct
    from shapes.gshell.views import render_views

    s = trimesh.creation.icosphere(2, radius=0.35)
    views, cams = render_views(s, n_views=4, resolution=32, renderer="deodr")
    out = reconstruct(views, cams, resolution=8, iterations=3, views_per_step=2,
                      progress=False, renderer=NvdiffrastRenderer(device="cpu"))
    assert len(out.faces) > 0 and "rasterize" in fake_nvdiffrast


def test_gpu_check_script_runs_on_the_fake_backend(fake_nvdiffrast):
    """``benchmarks/gshell_gpu_check.py``'s parity, timing and paper-preset steps run end to end
    against the current code (tiny sizes, CPU, fake nvdiffrast: its zero antialias gradient
    makes the gradient check fail here, so only the image columns are checked)."""
    import importlib.util
    from pathlib import Path

    from shapes.gshell.views import orbit_cameras

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gshell_gpu_check.py"
    spec = importlib.util.spec_from_file_location("gshell_gpu_check", path)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    gpu, cpu = NvdiffrastRenderer(device="cpu"), DeodrRenderer()
    rows, _ = check.parity(gpu, cpu, orbit_cameras(2, 48), device="cpu", garment=False)
    cells = rows[0].split("|")
    assert cells[1].strip() == "icosphere r=0.4"
    means = [float(c.split("/")[1]) for c in cells[2:5]]  # mask, depth, normal
    assert all(m < t for m, t in zip(means, (0.02, 0.01, 0.02)))
    timing = check.timing(gpu, cpu, resolution=8, iterations=3, image_size=32)
    assert [r.split("|")[1].strip() for r in timing] == ["nvdiffrast", "deodr"]
    paper = check.paper_timing(gpu, cpu, resolution=8, iterations=3, image_size=32,
                               device="cpu")
    assert "failed" not in paper[0] and paper[0].startswith("| paper preset, 8^3")
