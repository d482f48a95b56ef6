"""Mesh loading with per-file validation and repair (trimesh readers; OBJ/PLY/STL/OFF/GLB).

Every problem is a ``DataError`` naming the file. Repairs that change the input are recorded in
``mesh.metadata["genpipes_repairs"]`` (a list of sentences) and logged, never done silently:

* a scene with many parts (GLB/OBJ groups) is concatenated into one mesh;
* a mesh with more than ``max_faces`` faces (default ``MAX_FACES`` = 500,000) is decimated to
  ``max_faces`` by edge collapse (point-cloud-utils); above ``REFUSE_FACES`` (20,000,000) it is
  refused, since even loading it costs gigabytes;
* unreferenced vertices are dropped and duplicate vertices merged (trimesh ``process``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.errors import DataError

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
MAX_FACES = 500_000
REFUSE_FACES = 20_000_000
FLAT_RATIO = 1e-6


def _trimesh():  # noqa: ANN202 - imported lazily: trimesh is the shapes extra
    import trimesh as _tm

    return _tm


def _note(mesh: trimesh.Trimesh, path: str | Path, text: str) -> None:
    mesh.metadata.setdefault("genpipes_repairs", []).append(text)
    log.warning("%s: %s", path, text)


def load_mesh(path: str | Path, *, max_faces: int = MAX_FACES, allow_flat: bool = False
              ) -> trimesh.Trimesh:
    """Load one triangle mesh and validate it (trimesh loaders; see the module docstring).

    Args:
        path: an OBJ, PLY, STL, OFF, GLB or glTF file.
        max_faces: meshes with more faces are decimated to this many (recorded as a repair).
        allow_flat: accept planar meshes (see ``validate_mesh``).

    Returns:
        A ``trimesh.Trimesh`` with ``metadata["genpipes_repairs"]`` listing what was changed and
        ``metadata["source"]`` the path.

    Raises:
        DataError: unreadable or unsupported file, no faces, NaN/inf vertices, a flat (degenerate)
            mesh, or more than ``REFUSE_FACES`` faces.
    """
    trimesh = _trimesh()
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=path, expected="an existing mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise DataError(f"unsupported mesh format {path.suffix!r}", file=path,
                        expected=f"one of {', '.join(MESH_SUFFIXES)}")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as exc:  # trimesh raises many types on corrupt files
        raise DataError(f"cannot be read as a mesh ({type(exc).__name__}: {exc})"[:300],
                        file=path, expected="a valid mesh file") from exc
    repairs: list[str] = []
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        if not geoms:
            raise DataError("scene holds no triangle geometry", file=path, field="faces",
                            expected="at least one triangle")
        if len(geoms) > 1:
            repairs.append(f"scene with {len(geoms)} parts concatenated into one mesh")
        mesh = trimesh.util.concatenate(geoms) if len(geoms) > 1 else geoms[0]
    elif isinstance(loaded, trimesh.Trimesh):
        mesh = loaded
    elif isinstance(loaded, trimesh.PointCloud):
        raise DataError(f"has no faces: a point cloud of {len(loaded.vertices)} vertices",
                        file=path, field="faces",
                        expected="at least one triangle (point clouds are not meshes)")
    else:
        raise DataError(f"holds a {type(loaded).__name__}, not a triangle mesh", file=path,
                        field="faces", expected="triangle faces")
    mesh.metadata = dict(mesh.metadata)
    mesh.metadata["genpipes_repairs"] = []
    mesh.metadata["source"] = str(path)
    for text in repairs:
        _note(mesh, path, text)
    return validate_mesh(mesh, path, max_faces=max_faces, allow_flat=allow_flat)


def validate_mesh(mesh: trimesh.Trimesh, name: str | Path = "<mesh>", *,
                  max_faces: int = MAX_FACES, allow_flat: bool = False) -> trimesh.Trimesh:
    """Check faces, finiteness, size and flatness of ``mesh``; decimate huge meshes.

    Args:
        mesh: a ``trimesh.Trimesh``.
        name: the file or item name used in error messages.
        max_faces: decimation target for meshes above it.
        allow_flat: accept planar meshes (open surfaces such as a single quad); a flat mesh
            has no inside, so SDF-based models refuse it by default.

    Returns:
        The (possibly merged/decimated) mesh.
    """
    trimesh = _trimesh()
    nf = len(mesh.faces)
    if nf == 0:
        raise DataError("mesh has no faces", file=name, field="faces",
                        expected="at least one triangle (point clouds are not meshes)")
    if nf > REFUSE_FACES:
        raise DataError(f"mesh has {nf:,} faces", file=name, field="faces",
                        expected=f"at most {REFUSE_FACES:,} faces (decimate it first)")
    v = np.asarray(mesh.vertices, dtype=np.float64)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} vertices are NaN or infinite (first: index "
                        f"{int(np.flatnonzero(bad)[0])})", file=name, field="vertices",
                        expected="finite coordinates")
    f = np.asarray(mesh.faces)
    if f.min() < 0 or f.max() >= len(v):
        raise DataError("face indices out of range", file=name, field="faces",
                        expected=f"indices in [0, {len(v)})")
    meta = dict(mesh.metadata)
    mesh = trimesh.Trimesh(v, f, process=True, validate=False)
    mesh.metadata.update(meta)
    mesh.metadata.setdefault("genpipes_repairs", [])
    if len(mesh.faces) == 0:
        raise DataError("all faces are degenerate", file=name, field="faces",
                        expected="triangles with non-zero area")
    ext = mesh.extents
    if ext.max() <= 0:
        raise DataError("mesh is degenerate (all vertices coincide)", file=name,
                        field="vertices", expected="a mesh with non-zero size")
    if mesh.area / ext.max() ** 2 < 1e-12:
        raise DataError("mesh is degenerate (zero surface area)", file=name, field="faces",
                        expected="triangles with non-zero area")
    if not allow_flat and ext.min() / ext.max() < FLAT_RATIO:
        raise DataError(f"mesh is flat (extents {np.round(ext, 6).tolist()})", file=name,
                        field="vertices",
                        expected=f"a 3-D shape (smallest/largest extent >= {FLAT_RATIO:g})")
    if len(mesh.faces) > max_faces:
        import point_cloud_utils as pcu

        n0 = len(mesh.faces)
        vd, fd, _, _ = pcu.decimate_triangle_mesh(np.ascontiguousarray(mesh.vertices),
                                                  np.ascontiguousarray(mesh.faces, dtype=np.int32),
                                                  int(max_faces))
        meta = dict(mesh.metadata)
        mesh = trimesh.Trimesh(vd, fd, process=True)
        mesh.metadata.update(meta)
        _note(mesh, name, f"decimated from {n0:,} to {len(mesh.faces):,} faces "
                          f"(limit {max_faces:,})")
    return mesh


def load_mesh_dir(path: str | Path, *, recursive: bool = True, max_faces: int = MAX_FACES,
                  allow_flat: bool = False) -> tuple[dict[str, trimesh.Trimesh], dict[str, str]]:
    """Load every mesh file under ``path``; one bad file never stops the others.

    Args:
        path: a folder of mesh files (``MESH_SUFFIXES``).
        recursive: also look in sub-folders; names are paths relative to ``path``.
        max_faces, allow_flat: see ``load_mesh``.

    Returns:
        ``(meshes, errors)``: name -> mesh for the good files, name -> error message for the bad.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError("not a folder", file=root, expected="a folder of mesh files")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern)
                   if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    meshes: dict[str, object] = {}
    errors: dict[str, str] = {}
    for file in files:
        name = file.relative_to(root).as_posix()
        try:
            meshes[name] = load_mesh(file, max_faces=max_faces, allow_flat=allow_flat)
        except DataError as exc:
            errors[name] = str(exc)
            log.warning("skipped %s", exc)
    if not files:
        raise DataError("folder holds no mesh files", file=root,
                        expected=f"files ending in {', '.join(MESH_SUFFIXES)}")
    return meshes, errors


def normalize_to_unit_cube(mesh: trimesh.Trimesh, padding: float = 0.05
                           ) -> tuple[trimesh.Trimesh, np.ndarray, float]:
    """Centre the bounding box at 0 and scale the longest side to ``1 - 2 padding``.

    The result lies in ``[-0.5 + padding, 0.5 - padding]^3`` (the unit cube, centred). Undo with
    ``original = normalized / scale + center``.

    Args:
        mesh: a ``trimesh.Trimesh``.
        padding: margin left on each side of the unit cube, in [0, 0.5).

    Returns:
        ``(normalized_mesh, center[3], scale)``.
    """
    if not 0 <= padding < 0.5:
        raise ValueError(f"padding must be in [0, 0.5), got {padding}")
    lo, hi = mesh.bounds
    center = (lo + hi) / 2
    scale = (1 - 2 * padding) / float((hi - lo).max())
    out = mesh.copy()
    out.vertices = (np.asarray(mesh.vertices) - center) * scale
    out.metadata = dict(mesh.metadata)
    return out, center, scale


__all__ = ["MESH_SUFFIXES", "MAX_FACES", "REFUSE_FACES", "load_mesh", "load_mesh_dir",
           "normalize_to_unit_cube", "validate_mesh"]
