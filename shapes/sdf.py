"""Mesh -> truncated SDF grid and back (WaLa Sec. 3.1 data: a TSDF on a regular grid).

Signed distances come from point-cloud-utils (libigl's AABB tree for the distance, fast
generalized winding numbers (Barill et al. 2018) for the sign, so triangle soups and open
meshes get a consistent inside). Non-watertight meshes are first made watertight with the
Manifold algorithm (Huang et al. 2018, ``pcu.make_mesh_watertight``), as WaLa/mesh2sdf do, and
the repair is recorded. Grids are sampled at the nodes of ``linspace(-0.5, 0.5, res)^3`` after
``normalize_to_unit_cube``; negative is inside. Grids are cached on disk (atomic ``.npz``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.io import atomic_write_bytes

from .mesh_io import normalize_to_unit_cube

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)
CACHE_VERSION = 1
NARROW_BAND_MIN_RES = 64  # above this, a truncated SDF of a watertight mesh is
# evaluated in a narrow band only (``narrow_band_sdf``; exact, ~2-4x fewer distance queries)


@dataclass
class SDFConfig:
    """How a mesh becomes a grid.

    Attributes:
        resolution: grid nodes per side.
        padding: margin inside the unit cube (see ``normalize_to_unit_cube``).
        truncation: |SDF| clipped to this (unit-cube units); None keeps the full field.
        watertight: "auto" repairs non-watertight meshes with Manifold, "never" relies on the
            winding-number sign alone, "always" repairs every mesh.
        manifold_resolution: Manifold octree leaves (more = finer repair, slower).
    """

    resolution: int = 64
    padding: float = 0.05
    truncation: float | None = 0.1
    watertight: str = "auto"
    manifold_resolution: int = 20000


def grid_points(resolution: int) -> np.ndarray:
    """The ``resolution^3`` grid nodes of ``[-0.5, 0.5]^3`` in C (x, y, z) order, [R^3, 3]."""
    g = np.linspace(-0.5, 0.5, int(resolution))
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def make_watertight(mesh: trimesh.Trimesh, resolution: int = 20000, seed: int = 0
                    ) -> trimesh.Trimesh:
    """A watertight manifold wrap of ``mesh`` (Manifold, Huang et al. 2018; point-cloud-utils)."""
    import point_cloud_utils as pcu
    import trimesh as tm

    v, f = pcu.make_mesh_watertight(np.ascontiguousarray(mesh.vertices, dtype=np.float64),
                                    np.ascontiguousarray(mesh.faces, dtype=np.int32),
                                    int(resolution), seed=int(seed))
    out = tm.Trimesh(v, f, process=True)
    out.metadata.update(mesh.metadata)
    return out


def signed_distance(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Signed distance of ``points`` to ``mesh`` (negative inside by the winding number)."""
    import point_cloud_utils as pcu

    d, _, _ = pcu.signed_distance_to_mesh(np.ascontiguousarray(points, dtype=np.float64),
                                          np.ascontiguousarray(mesh.vertices, dtype=np.float64),
                                          np.ascontiguousarray(mesh.faces, dtype=np.int32))
    return np.asarray(d)


def narrow_band_sdf(mesh: trimesh.Trimesh, resolution: int, truncation: float,
                    coarse: int | None = None) -> np.ndarray:
    """Exact truncated SDF on the ``resolution^3`` grid, evaluated only near the surface.

    The signed distance is 1-Lipschitz, so a fine node whose nearest node of a coarse grid
    (spacing ``h``) has ``|d| > truncation + sqrt(3) h / 2`` lies on that node's side of a
    watertight surface and farther than ``truncation`` from it: its truncated value is
    ``sign * truncation`` without evaluating it. Only the other (narrow-band) nodes are queried.
    Equal to clipping the dense grid for a watertight mesh (the caller checks that).

    Args:
        mesh: a watertight mesh in unit-cube coordinates.
        resolution: fine grid nodes per side.
        truncation: the clip value (> 0).
        coarse: coarse grid nodes per side (default ``max(8, resolution // 4)``).

    Returns:
        float64 [R, R, R]; values beyond the band are exactly ``+-truncation``.
    """
    r = int(resolution)
    rc = int(coarse or max(8, r // 4))
    d_c = signed_distance(mesh, grid_points(rc)).reshape((rc,) * 3)
    nearest = np.rint(np.linspace(0.0, rc - 1.0, r)).astype(int)  # per axis, fine -> coarse
    near = d_c[np.ix_(nearest, nearest, nearest)]
    margin = truncation + np.sqrt(3.0) / 2 / (rc - 1)
    out = np.where(near < 0, -float(truncation), float(truncation))
    band = np.abs(near) <= margin
    if band.any():
        g = np.linspace(-0.5, 0.5, r)
        i, j, k = np.nonzero(band)
        out[band] = signed_distance(mesh, np.stack([g[i], g[j], g[k]], axis=1))
    return out


def mesh_to_sdf(mesh: trimesh.Trimesh, cfg: SDFConfig | None = None, *,
                normalized: bool = False) -> tuple[np.ndarray, dict]:
    """Truncated SDF grid of a mesh (float32 [R, R, R]) and a record of what was done.

    Args:
        mesh: a validated ``trimesh.Trimesh`` (see ``shapes.mesh_io.load_mesh``).
        cfg: grid settings.
        normalized: the mesh already lies in the unit cube (skip ``normalize_to_unit_cube``).

    Returns:
        ``(sdf, info)`` with ``info`` holding ``center``, ``scale``, ``made_watertight`` and
        ``repairs`` (sentences).
    """
    cfg = cfg or SDFConfig()
    if cfg.watertight not in ("auto", "never", "always"):
        raise ValueError(f"watertight must be auto/never/always, got {cfg.watertight!r}")
    repairs = list(mesh.metadata.get("genpipes_repairs", []))
    if normalized:
        center, scale = np.zeros(3), 1.0
    else:
        mesh, center, scale = normalize_to_unit_cube(mesh, cfg.padding)
    repaired = cfg.watertight == "always" or (cfg.watertight == "auto" and not mesh.is_watertight)
    if repaired:
        mesh = make_watertight(mesh, cfg.manifold_resolution)
        text = "not watertight: wrapped with Manifold before the SDF" if cfg.watertight == "auto" \
            else "wrapped with Manifold before the SDF"
        repairs.append(text)
        log.info("%s: %s", mesh.metadata.get("source", "<mesh>"), text)
    if cfg.truncation is not None and cfg.resolution > NARROW_BAND_MIN_RES and mesh.is_watertight:
        sdf = narrow_band_sdf(mesh, cfg.resolution, cfg.truncation)
    else:
        sdf = signed_distance(mesh, grid_points(cfg.resolution)).reshape((cfg.resolution,) * 3)
    if cfg.truncation is not None:
        sdf = np.clip(sdf, -cfg.truncation, cfg.truncation)
    info = {"center": np.asarray(center).tolist(), "scale": float(scale),
            "made_watertight": bool(repaired), "repairs": repairs}
    return sdf.astype(np.float32), info


def _mesh_key(mesh: trimesh.Trimesh, cfg: SDFConfig) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes())
    h.update(json.dumps({**asdict(cfg), "v": CACHE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:24]


def cached_mesh_to_sdf(mesh: trimesh.Trimesh, cfg: SDFConfig, cache_dir: str | Path | None
                       ) -> tuple[np.ndarray, dict]:
    """``mesh_to_sdf`` with an on-disk cache keyed by the mesh's geometry and ``cfg``.

    Cache files are ``<cache_dir>/<sha256[:24]>.npz`` (grid + JSON info), written atomically;
    a corrupt cache file is recomputed.
    """
    if cache_dir is None:
        return mesh_to_sdf(mesh, cfg)
    path = Path(cache_dir) / f"{_mesh_key(mesh, cfg)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["sdf"].astype(np.float32), json.loads(str(z["info"]))
        except Exception as exc:  # corrupt or truncated cache: recompute
            log.warning("%s: unreadable SDF cache (%s); recomputing", path, exc)
    sdf, info = mesh_to_sdf(mesh, cfg)
    buf = io.BytesIO()
    np.savez_compressed(buf, sdf=sdf, info=np.array(json.dumps(info)))
    atomic_write_bytes(path, buf.getvalue())
    return sdf, info


def sdf_to_mesh(sdf: np.ndarray, level: float = 0.0, decimate_to: int | None = None
                ) -> trimesh.Trimesh:
    """Marching cubes (Lorensen & Cline 1987; scikit-image's Lewiner variant) on a unit-cube grid.

    Args:
        sdf: [R, R, R] grid on the nodes of ``linspace(-0.5, 0.5, R)^3`` (negative inside).
        level: the iso-value.
        decimate_to: if set, decimate the result to at most this many faces (edge collapse).

    Returns:
        A ``trimesh.Trimesh`` in unit-cube coordinates; empty (no faces) if the grid has no
        zero crossing.
    """
    import trimesh as tm
    from skimage.measure import marching_cubes

    sdf = np.asarray(sdf, dtype=np.float32)
    if not (sdf.min() < level < sdf.max()):
        return tm.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    r = sdf.shape[0]
    verts, faces, _, _ = marching_cubes(sdf, level=level, spacing=(1 / (r - 1),) * 3)
    mesh = tm.Trimesh(verts - 0.5, faces, process=True)  # outward normals for SDF < 0 inside
    if decimate_to is not None and len(mesh.faces) > decimate_to:
        import point_cloud_utils as pcu

        v, f, _, _ = pcu.decimate_triangle_mesh(np.ascontiguousarray(mesh.vertices),
                                                np.ascontiguousarray(mesh.faces, dtype=np.int32),
                                                int(decimate_to))
        mesh = tm.Trimesh(v, f, process=True)
    return mesh


__all__ = ["SDFConfig", "grid_points", "make_watertight", "signed_distance",
           "narrow_band_sdf", "mesh_to_sdf",
           "cached_mesh_to_sdf", "sdf_to_mesh"]
