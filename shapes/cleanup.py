"""Mesh clean-up: drop small connected components, as MeshLab's "Remove Isolated pieces".

Components are the face-adjacency components of ``trimesh.graph.connected_component_labels``
(triangles sharing an edge). A component is dropped when its share of the mesh's total surface
area (``measure="area"``) or of its total enclosed volume (``measure="volume"``, |signed volume|
of each closed component; open components fall back to area) is below ``min_fraction``; the
largest component is always kept. Marching cubes of a generated TSDF leaves floating specks
where the decoded field dips below zero away from the shape: this removes them, and the caller
keeps the raw mesh (the function never changes its input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import ConfigError

if TYPE_CHECKING:
    import trimesh

MEASURES = ("area", "volume")


def component_labels(mesh: trimesh.Trimesh) -> np.ndarray:
    """Per-face component label [F] (faces connected through shared edges share a label)."""
    import trimesh as tm

    if len(mesh.faces) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(tm.graph.connected_component_labels(mesh.face_adjacency,
                                                          node_count=len(mesh.faces)))


def component_sizes(mesh: trimesh.Trimesh, measure: str = "area") -> np.ndarray:
    """Size of every component: its surface area, or |enclosed volume| (divergence theorem).

    With ``measure="volume"``, a component that is not closed (an edge used by one face only)
    has no enclosed volume: every size is then its area instead, so that the fractions compare
    like with like.
    """
    if measure not in MEASURES:
        raise ConfigError(f"component measure must be one of {MEASURES}, got {measure!r}")
    labels = component_labels(mesh)
    if len(labels) == 0:
        return np.zeros(0)
    n = int(labels.max()) + 1
    area = np.bincount(labels, weights=mesh.area_faces, minlength=n)
    if measure == "area":
        return area
    tris = mesh.triangles
    signed = np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])) / 6.0
    volume = np.abs(np.bincount(labels, weights=signed, minlength=n))
    return volume if mesh.is_watertight else area


def remove_small_components(mesh: trimesh.Trimesh, min_fraction: float = 0.01,
                            measure: str = "area") -> tuple[trimesh.Trimesh, dict[str, Any]]:
    """Drop components below ``min_fraction`` of the total size (MeshLab "Remove Isolated pieces").

    Args:
        mesh: any triangle mesh (left unchanged).
        min_fraction: a component is kept when its size is at least this fraction of the sum of
            all component sizes; 0 keeps everything. The largest component is always kept.
        measure: "area" (surface area) or "volume" (enclosed volume of closed components).

    Returns:
        ``(cleaned, info)``: a new mesh (unreferenced vertices removed) and
        ``{"components", "kept", "removed_fraction"}`` (the dropped share of the size).
    """
    if not 0.0 <= min_fraction < 1.0:
        raise ConfigError(f"min_fraction must be in [0, 1), got {min_fraction}")
    sizes = component_sizes(mesh, measure)
    if len(sizes) <= 1 or min_fraction == 0.0:
        return mesh.copy(), {"components": len(sizes), "kept": len(sizes), "removed_fraction": 0.0}
    total = float(sizes.sum())
    keep = sizes >= min_fraction * total
    keep[int(np.argmax(sizes))] = True
    out = mesh.copy()
    out.update_faces(keep[component_labels(mesh)])
    out.remove_unreferenced_vertices()
    removed = float(sizes[~keep].sum() / total) if total > 0 else 0.0
    return out, {"components": len(sizes), "kept": int(keep.sum()), "removed_fraction": removed}


__all__ = ["MEASURES", "component_labels", "component_sizes", "remove_small_components"]
