"""Run-directory helpers of `genpipes shapes`: atomic .npz arrays, PLY meshes, marching
cubes (Lorensen & Cline 1987), surface samples and the small-component clean-up."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import DataError
from common.io import atomic_write_bytes

if TYPE_CHECKING:
    from .shapes_config import ShapesConfig


def save_npz(path: Path, **arrays: Any) -> None:
    """Write compressed arrays atomically (no half-written file)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: Path, stage: str) -> dict[str, np.ndarray]:
    """Arrays an earlier ``stage`` left; a ``DataError`` naming the stage if it did not run."""
    if not path.is_file():
        raise DataError(f"missing; run `genpipes shapes {stage}` first", file=path)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_meshes(meshes: list, folder: Path, names: list[str]) -> None:
    """``folder/<name>.ply`` for each mesh (overwrites: a stage re-run replaces its own output)."""
    from shapes.export import export_mesh

    folder.mkdir(parents=True, exist_ok=True)
    for name, mesh in zip(names, meshes):
        export_mesh(mesh, folder / f"{name}.ply", overwrite=True)


def load_ply(path: Path) -> Any:
    """A PLY written by ``sample`` as a Trimesh (an empty sample loads as an empty mesh)."""
    import trimesh

    mesh = trimesh.load(path, process=False)
    if not isinstance(mesh, trimesh.Trimesh):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    return mesh


def marching_cubes(grid: np.ndarray, cfg: ShapesConfig) -> Any:
    """The zero level set of a TSDF grid as a mesh (optionally decimated, ``model.decimate_to``)."""
    from shapes.sdf import sdf_to_mesh

    return sdf_to_mesh(grid, decimate_to=cfg.model.decimate_to)


def surface_points(mesh: Any, n: int, seed: int) -> np.ndarray | None:
    """``n`` area-uniform surface points, or None for an empty mesh."""
    from shapes.metrics import sample_surface

    return None if len(mesh.faces) == 0 else sample_surface(mesh, n, seed)[0]


def clean(mesh: Any, frac: float) -> Any:
    """``mesh`` without components below ``frac`` of its surface area (0: unchanged)."""
    from shapes.cleanup import remove_small_components

    return mesh if frac <= 0 or len(mesh.faces) == 0 else remove_small_components(mesh, frac)[0]
