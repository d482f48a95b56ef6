"""Mesh export (trimesh writers, atomic) and CPU preview renders (matplotlib, Lambert shading).

Previews are flat-shaded with a head light: face colour = albedo * (ambient + diffuse |n . l|),
painter's-algorithm ordering by ``mpl_toolkits.mplot3d`` (no GPU, no display, Agg backend).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.io import atomic_write_bytes

if TYPE_CHECKING:
    import trimesh

EXPORT_FORMATS = {".obj": "obj", ".ply": "ply", ".stl": "stl", ".glb": "glb"}
DEFAULT_VIEWS = ((25.0, 35.0), (25.0, 125.0), (25.0, 215.0), (80.0, 0.0))


def export_mesh(mesh: trimesh.Trimesh, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``mesh`` atomically in the format of the suffix (.obj, .ply, .stl, .glb).

    Args:
        mesh: a ``trimesh.Trimesh``.
        path: target file; its suffix picks the format.
        overwrite: replace an existing file (otherwise ``FileExistsError``).

    Returns:
        The written path.
    """
    path = Path(path)
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported export format {path.suffix!r}; "
                         f"use one of {', '.join(EXPORT_FORMATS)}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    data = mesh.export(file_type=fmt)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return atomic_write_bytes(path, data)


def _render_faces(mesh: trimesh.Trimesh, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangles [F, 3, 3] (a random subset above ``max_faces``) and their unit normals."""
    faces = np.asarray(mesh.faces)
    if len(faces) > max_faces:
        keep = np.random.default_rng(0).choice(len(faces), max_faces, replace=False)
        faces = faces[np.sort(keep)]
    tris = np.asarray(mesh.vertices)[faces]
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)
    return tris, n


def render_preview(meshes: trimesh.Trimesh | Sequence[trimesh.Trimesh], path: str | Path,
                   views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
                   titles: Sequence[str] | None = None, max_faces: int = 20000,
                   size: float = 2.2, up: str = "y", overwrite: bool = True) -> Path:
    """Render a PNG grid (one row per mesh, one column per (elevation, azimuth) view) on the CPU.

    Args:
        meshes: one mesh or a list of meshes.
        path: the PNG to write (atomically).
        views: (elevation, azimuth) pairs in degrees.
        titles: optional row labels.
        max_faces: meshes with more faces are drawn from a fixed random subset of faces.
        size: inches per panel.
        up: the vertical axis ("y" as in OBJ/glTF, or "z").
        overwrite: replace an existing file.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not isinstance(meshes, (list, tuple)):
        meshes = [meshes]
    rows, cols = max(len(meshes), 1), len(views)
    fig = plt.figure(figsize=(size * cols, size * rows))
    albedo = np.array([0.55, 0.65, 0.8])
    for r, mesh in enumerate(meshes):
        empty = mesh is None or len(mesh.faces) == 0
        if not empty:
            tris, normals = _render_faces(mesh, max_faces)
            lo, hi = tris.reshape(-1, 3).min(0), tris.reshape(-1, 3).max(0)
            c, half = (lo + hi) / 2, (hi - lo).max() / 2 * 1.05
        for k, (elev, azim) in enumerate(views):
            ax = fig.add_subplot(rows, cols, r * cols + k + 1, projection="3d")
            ax.set_axis_off()
            if k == 0 and titles is not None:
                ax.set_title(str(titles[r]), fontsize=8)
            if empty:
                ax.text2D(0.3, 0.5, "empty mesh", transform=ax.transAxes)
                continue
            e, a = np.radians(elev), np.radians(azim)
            light = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
            if up == "y":
                light = light[[1, 2, 0]]
            shade = 0.25 + 0.75 * np.abs(normals @ light)
            coll = Poly3DCollection(tris, facecolors=np.clip(shade[:, None] * albedo, 0, 1),
                                    edgecolors="none", linewidths=0)
            ax.add_collection3d(coll)
            ax.set_xlim(c[0] - half, c[0] + half)
            ax.set_ylim(c[1] - half, c[1] + half)
            ax.set_zlim(c[2] - half, c[2] + half)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=elev, azim=azim, vertical_axis=up)
    fig.subplots_adjust(0, 0, 1, 0.97, 0, 0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


__all__ = ["EXPORT_FORMATS", "export_mesh", "render_preview"]
