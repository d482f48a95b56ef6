"""Multiview observations for G-Shell reconstruction (G-Shell Sec. 5.1): render, save, load, check.

A view set is a :class:`Views` (masks, optional depth / normal / colour maps) plus one
:class:`~shapes.gshell.render.Camera` per view (OpenCV convention, see ``render.py``).

On disk (``save_views`` / ``load_views``) a view folder holds ``cameras.json``::

    {"convention": "opencv",
     "frames": [{"file": "view_000.png", "K": [[...]], "R": [[...]], "t": [...],
                 "width": W, "height": H, "depth": "view_000_depth.npy",
                 "normal": "view_000_normal.npy"}, ...]}

``file`` is an RGBA image whose alpha channel is the mask and whose RGB is the object's colour
(straight, not premultiplied) unless ``"rgb"`` says ``"normals"`` or ``"mask"`` (previews written
by ``save_views`` for uncoloured meshes); ``depth`` (camera z, 0 = empty, ``[H, W]``) and
``normal`` (world space, ``[H, W, 3]``) are optional ``.npy`` files.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import ConfigError, DataError
from common.io import atomic_write_bytes, atomic_write_json

from .render import Camera, Renderer, get_renderer, look_at_camera

CAMERA_FILE = "cameras.json"


@dataclass
class Views:
    """Target observations: ``masks [N, H, W]`` in [0, 1]; optional ``depths [N, H, W]``,
    ``normals [N, H, W, 3]``, ``colors [N, H, W, 3]``; ``names`` for error messages."""

    masks: torch.Tensor
    depths: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    colors: torch.Tensor | None = None
    names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def name(self, i: int) -> str:
        """A printable name of view ``i``."""
        return self.names[i] if self.names else f"view {i}"


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` near-uniform unit directions on the sphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], 1)


def orbit_cameras(n_views: int, resolution: int, distance: float = 2.5, fov_deg: float = 45.0
                  ) -> list[Camera]:
    """Cameras on a sphere of radius ``distance`` looking at the origin (y up)."""
    dirs = fibonacci_directions(n_views)
    return [look_at_camera(distance * d, np.zeros(3), np.array([0.0, 1.0, 0.0]), fov_deg,
                           resolution, resolution) for d in dirs]


def framed_cameras(vertices: np.ndarray, n_views: int, resolution: int, fov_deg: float = 45.0,
                   fill: float = 0.9, extra_directions: np.ndarray | None = None
                   ) -> list[Camera]:
    """Cameras on Fibonacci directions around the centre of the bounding box of ``vertices``,
    each at the smallest distance at which all eight box corners project inside the central
    ``fill`` fraction of the image (so thin or elongated objects fill every view).
    ``extra_directions`` (``[K, 3]``, from the centre towards the camera) adds K cameras, e.g.
    along a sleeve's axis."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    c = 0.5 * (lo + hi)
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T - c
    T = np.tan(np.radians(fov_deg) / 2) * fill
    up = np.array([0.0, 1.0, 0.0])
    cams = []
    dirs = fibonacci_directions(n_views)
    if extra_directions is not None:
        extra = np.asarray(extra_directions, dtype=np.float64).reshape(-1, 3)
        norm = np.linalg.norm(extra, axis=1, keepdims=True)
        if not np.all(norm > 0):
            raise ConfigError(f"extra view directions {extra.tolist()}: expected non-zero "
                              "3-vectors")
        dirs = np.concatenate([dirs, extra / norm])
    for d in dirs:
        R = look_at_camera(c + d, c, up, fov_deg, resolution, resolution).R
        ahead = corners @ d  # how far each corner sticks out towards the camera
        lateral = np.abs(corners @ R[:2].T).max(1)
        s = max(float((ahead + lateral / T).max()), float(ahead.max()) + 1e-2)
        cams.append(look_at_camera(c + s * d, c, up, fov_deg, resolution, resolution))
    return cams


def render_views(mesh, n_views: int = 16, resolution: int = 128, *, distance: float = 2.5,
                 fov_deg: float = 45.0, renderer: Renderer | str = "auto", frame: bool = True,
                 extra_directions: np.ndarray | None = None) -> tuple[Views, list[Camera]]:
    """Render target views (mask, depth, normal; colour for vertex-coloured meshes) of a mesh.

    G-Shell Sec. 5.1 reconstructs from multiview renderings of the target; here each camera is
    framed on the mesh so that it fills the image (thin garments included).

    Args:
        mesh: a ``trimesh.Trimesh`` (ideally normalised to the unit cube, see
            ``shapes.mesh_io.normalize_to_unit_cube``).
        n_views: number of cameras on a Fibonacci sphere around the origin.
        resolution: image width = height in pixels.
        distance: camera distance from the origin when ``frame`` is False.
        fov_deg: vertical field of view.
        renderer: a renderer or its name (``get_renderer``).
        frame: frame every view on the mesh's bounding box (:func:`framed_cameras`) instead of
            orbiting the origin at ``distance``.
        extra_directions: ``[K, 3]`` directions (centre -> camera) of K framed views added to
            the ``n_views``, e.g. ``[[1, 0, 0], [-1, 0, 0]]`` to look along a garment's sleeves.

    Returns:
        ``(views, cameras)``.
    """
    if len(mesh.faces) == 0:
        raise DataError("mesh has no faces", field="faces", expected="a triangle mesh")
    r = get_renderer(renderer) if isinstance(renderer, str) else renderer
    if frame:
        cams = framed_cameras(np.asarray(mesh.vertices), n_views, resolution, fov_deg,
                              extra_directions=extra_directions)
    else:
        if extra_directions is not None:
            raise ConfigError("extra_directions needs frame=True")
        cams = orbit_cameras(n_views, resolution, distance, fov_deg)
    v = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long)
    vc = None
    if getattr(mesh.visual, "kind", None) == "vertex":
        vc = torch.as_tensor(np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0)
    masks, depths, normals, colors = [], [], [], []
    with torch.no_grad():
        for cam in cams:
            out = r.render(v, f, cam, vertex_colors=vc)
            masks.append(out["mask"].cpu().float())
            depths.append(out["depth"].cpu().float())
            normals.append(out["normal"].cpu().float())
            if vc is not None:  # premultiplied by coverage -> straight colour
                a = out["mask"].cpu().float()[..., None]
                colors.append(torch.where(a > 1e-6, out["color"].cpu().float() / a.clamp_min(
                    1e-6), torch.zeros_like(a)).clamp(0, 1))
    views = Views(torch.stack(masks), torch.stack(depths), torch.stack(normals),
                  torch.stack(colors) if colors else None,
                  names=[f"view_{i:03d}" for i in range(len(cams))])
    return views, cams


def check_views(views: Views, cameras: list[Camera], source: str | Path = "<views>",
                bound: float = 0.5) -> None:
    """Raise :class:`DataError` when views and cameras cannot be used together.

    Checks: one camera per view; image sizes match the cameras; every mask has some foreground;
    every camera sees the reconstruction volume ``[-bound, bound]^3`` in front of it.
    """
    n = len(views)
    if len(cameras) != n:
        raise DataError(f"{n} views but {len(cameras)} cameras", file=source, field="frames",
                        expected="one camera per view")
    H, W = views.masks.shape[1:]
    for name, arr in (("depth", views.depths), ("normal", views.normals), ("color", views.colors)):
        if arr is not None and tuple(arr.shape[:3]) != (n, H, W):
            raise DataError(f"{name} maps have shape {tuple(arr.shape[:3])}", file=source,
                            field=name, expected=f"{(n, H, W)} like the masks")
    lin = np.linspace(-bound, bound, 9)
    probe = np.array(np.meshgrid(lin, lin, lin, indexing="ij")).reshape(3, -1).T
    for i, cam in enumerate(cameras):
        if (cam.height, cam.width) != (H, W):
            raise DataError(f"camera is {cam.width}x{cam.height} but the image is {W}x{H}",
                            file=source, field=f"frames[{i}].width/height",
                            expected="the image size")
        if float(views.masks[i].max()) < 0.5:
            raise DataError(f"{views.name(i)}: the mask is empty, this camera sees nothing",
                            file=source, field=f"frames[{i}]",
                            expected="a view with the object in it (alpha > 0.5 somewhere)")
        xc = probe @ cam.R.T + cam.t
        front = xc[:, 2] > 1e-6
        uv = xc[front, :2] / xc[front, 2:] @ cam.K[:2, :2].T + cam.K[:2, 2]
        seen = (uv[:, 0] >= -0.5) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] >= -0.5) & (
            uv[:, 1] <= H - 0.5)
        if not seen.any():
            raise DataError(f"{views.name(i)}: camera does not see the volume [-{bound}, "
                            f"{bound}]^3", file=source, field=f"frames[{i}].R/t",
                            expected="a camera looking at the object")


def save_views(views: Views, cameras: list[Camera], folder: str | Path) -> Path:
    """Write RGBA PNGs (alpha = mask; RGB = colour or shaded normals), depth/normal ``.npy`` and
    ``cameras.json`` (atomic writes)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, cam in enumerate(cameras):
        name = f"view_{i:03d}"
        if views.colors is not None:
            rgb, kind = views.colors[i].numpy(), "color"
        elif views.normals is not None:
            rgb, kind = 0.5 + 0.5 * views.normals[i].numpy(), "normals"
        else:
            rgb, kind = np.repeat(views.masks[i].numpy()[..., None], 3, -1), "mask"
        rgba = np.concatenate([rgb, views.masks[i].numpy()[..., None]], -1)
        buf = io.BytesIO()
        Image.fromarray((np.clip(rgba, 0, 1) * 255).round().astype(np.uint8), "RGBA").save(
            buf, format="PNG")
        atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
        frame = {"file": f"{name}.png", "rgb": kind, **cam.to_dict()}
        for key, arr in (("depth", views.depths), ("normal", views.normals)):
            if arr is not None:
                b = io.BytesIO()
                np.save(b, arr[i].numpy().astype(np.float32))
                atomic_write_bytes(folder / f"{name}_{key}.npy", b.getvalue())
                frame[key] = f"{name}_{key}.npy"
        frames.append(frame)
    atomic_write_json(folder / CAMERA_FILE, {"convention": "opencv", "frames": frames})
    return folder


def _camera_from_frame(frame: dict, i: int, src: Path) -> Camera:
    for key in ("file", "K", "R", "t", "width", "height"):
        if key not in frame:
            raise DataError(f"frame {i} has no {key!r}", file=src, field=f"frames[{i}].{key}",
                            expected="file, K (3x3), R (3x3), t (3), width, height")
    try:
        cam = Camera.from_dict(frame)
    except (TypeError, ValueError) as exc:
        raise DataError(f"frame {i}: unreadable camera ({exc})", file=src,
                        field=f"frames[{i}]", expected="numeric K (3x3), R (3x3), t (3)") from None
    if cam.K.shape != (3, 3) or cam.R.shape != (3, 3) or cam.t.shape != (3,):
        raise DataError(f"frame {i}: K {cam.K.shape}, R {cam.R.shape}, t {cam.t.shape}",
                        file=src, field=f"frames[{i}]", expected="K 3x3, R 3x3, t 3")
    if not np.allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-4):
        raise DataError(f"frame {i}: R is not a rotation", file=src, field=f"frames[{i}].R",
                        expected="an orthonormal world-to-camera rotation (OpenCV)")
    return cam


def _load_npy(path: Path, shape: tuple[int, ...], src: Path, field: str) -> torch.Tensor:
    if not path.is_file():
        raise DataError(f"{path.name} not found", file=src, field=field, expected="an .npy file")
    arr = np.load(path, allow_pickle=False)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise DataError(f"{path.name} has shape {arr.shape} (or non-finite values)", file=path,
                        field=field, expected=f"finite values of shape {shape}")
    return torch.as_tensor(arr, dtype=torch.float32)


def load_views(folder: str | Path, bound: float = 0.5) -> tuple[Views, list[Camera]]:
    """Load a view folder written by :func:`save_views` or by a user (format in module docs).

    Raises:
        DataError: missing/broken ``cameras.json``, images without alpha, size or count
            mismatches, empty masks, cameras that do not see the volume.
    """
    from PIL import Image

    folder = Path(folder)
    src = folder / CAMERA_FILE
    if not src.is_file():
        raise DataError("no camera file", file=src, expected=f"{CAMERA_FILE} in the view folder")
    try:
        meta = json.loads(src.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc})", file=src) from None
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise DataError("no frames", file=src, field="frames", expected="a non-empty list")
    if meta.get("convention", "opencv") != "opencv":
        raise DataError(f"camera convention {meta.get('convention')!r}", file=src,
                        field="convention", expected="'opencv'")
    cams = [_camera_from_frame(fr, i, src) for i, fr in enumerate(frames)]
    masks, colors, depths, normals, names = [], [], [], [], []
    for i, fr in enumerate(frames):
        path = folder / fr["file"]
        if not path.is_file():
            raise DataError(f"image {fr['file']!r} not found", file=src,
                            field=f"frames[{i}].file", expected="an existing RGBA image")
        img = Image.open(path)
        if "A" not in img.getbands():
            raise DataError(f"image mode {img.mode} has no alpha channel", file=path,
                            field="alpha", expected="an RGBA image whose alpha is the mask")
        arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        masks.append(torch.as_tensor(arr[..., 3]))
        if fr.get("rgb", "color") == "color":  # save_views marks RGB that is not a colour
            colors.append(torch.as_tensor(arr[..., :3]))
        names.append(fr["file"])
        hw = arr.shape[:2]
        if hw != (cams[i].height, cams[i].width):
            raise DataError(f"camera is {cams[i].width}x{cams[i].height} but the image is "
                            f"{hw[1]}x{hw[0]}", file=path, field=f"frames[{i}].width/height",
                            expected="the image size")
        if "depth" in fr:
            depths.append(_load_npy(folder / fr["depth"], hw, path, "depth"))
        if "normal" in fr:
            normals.append(_load_npy(folder / fr["normal"], (*hw, 3), path, "normal"))
    if len({tuple(m.shape) for m in masks}) > 1:
        raise DataError("images differ in size", file=folder, field="file",
                        expected="all views of one size")
    for key, lst in (("depth", depths), ("normal", normals), ("rgb", colors)):
        if lst and len(lst) != len(frames):
            raise DataError(f"only {len(lst)} of {len(frames)} frames have a {key} map",
                            file=src, field=key, expected="all frames or none")
    views = Views(torch.stack(masks), torch.stack(depths) if depths else None,
                  torch.stack(normals) if normals else None,
                  torch.stack(colors) if colors else None, names)
    check_views(views, cams, src, bound)
    return views, cams
