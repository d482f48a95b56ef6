"""Reconstruction metrics (ONet Sec. 4: Chamfer-L1 sum, normal consistency; Tatarchenko F-score).

Thin wrappers over ``shapes.metrics`` plus the open-surface statistic G-Shell cares about: the
number of boundary edges (edges used by one face; 0 for watertight meshes).
"""

from __future__ import annotations

import numpy as np

from shapes.metrics import chamfer_distance, f_score, normal_consistency, sample_surface


def boundary_edge_count(mesh) -> int:
    """Number of edges used by exactly one face (after merging vertices by position only)."""
    m = mesh.copy()
    m.merge_vertices(merge_tex=True, merge_norm=True)
    if len(m.faces) == 0:
        return 0
    e = np.sort(np.asarray(m.edges), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return int((counts == 1).sum())


def boundary_stats(mesh) -> tuple[int, float]:
    """``(loops, length)``: number of boundary loops (connected components of the boundary
    edges after merging vertices by position) and their total length. Unlike the edge count,
    the length does not grow with the mesh's resolution."""
    import trimesh

    m = mesh.copy()
    m.merge_vertices(merge_tex=True, merge_norm=True)
    if len(m.faces) == 0:
        return 0, 0.0
    e = np.sort(np.asarray(m.edges), axis=1)
    u, counts = np.unique(e, axis=0, return_counts=True)
    b = u[counts == 1]
    if len(b) == 0:
        return 0, 0.0
    v = np.asarray(m.vertices)
    loops = len(trimesh.graph.connected_components(b, min_len=1))
    return loops, float(np.linalg.norm(v[b[:, 0]] - v[b[:, 1]], axis=1).sum())


def compare_meshes(pred, target, n_points: int = 10000, f_threshold: float = 0.02,
                   seed: int = 0) -> dict[str, float | int]:
    """Chamfer (sum of the two mean nearest-neighbour distances), normal consistency, F-score at
    ``f_threshold`` (unit-cube units) and boundary-edge counts of ``pred`` against ``target``."""
    if len(pred.faces) == 0:
        return {"chamfer": float("inf"), "normal_consistency": 0.0, "f_score": 0.0,
                "boundary_edges": 0, "target_boundary_edges": boundary_edge_count(target),
                "boundary_loops": 0, "target_boundary_loops": boundary_stats(target)[0],
                "boundary_length": 0.0, "target_boundary_length": boundary_stats(target)[1],
                "faces": 0}
    loops, length = boundary_stats(pred)
    t_loops, t_length = boundary_stats(target)
    pa = sample_surface(pred, n_points, seed)[0]
    pb = sample_surface(target, n_points, seed + 1)[0]
    return {"chamfer": chamfer_distance(pa, pb),
            "normal_consistency": normal_consistency(pred, target, n_points, seed),
            "f_score": f_score(pa, pb, f_threshold),
            "boundary_edges": boundary_edge_count(pred),
            "target_boundary_edges": boundary_edge_count(target),
            "boundary_loops": loops, "target_boundary_loops": t_loops,
            "boundary_length": length, "target_boundary_length": t_length,
            "faces": int(len(pred.faces))}
