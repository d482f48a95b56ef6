"""Shape metrics: Chamfer, F-score, normal consistency, IoU, EMD and PointFlow's MMD/COV/1-NNA.

Reconstruction metrics follow Occupancy Networks (Mescheder et al. 2019, Sec. 4) and "What do
single-view 3D reconstruction networks learn?" (Tatarchenko et al. 2019, F-score); generation
metrics follow PointFlow (Yang et al. 2019, Sec. 5.1, Eq. 10-12). Nearest neighbours use
``scipy.spatial.cKDTree``; EMD uses POT's exact solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    import trimesh


def _points(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise ValueError(f"{name}: expected a non-empty [N, 3] point array, got shape {p.shape}")
    return p


def _nn_dist(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Euclidean distance from every point of ``src`` to its nearest neighbour in ``dst``."""
    return cKDTree(dst).query(src, k=1)[0]


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray, squared: bool = False) -> float:
    """Symmetric Chamfer distance, the SUM of the two directional means (ONet Sec. 4 without 1/2).

    ``squared=False`` (L1-Chamfer): mean_a min_b |a-b| + mean_b min_a |a-b|, in the units of the
    points. ``squared=True`` (L2-Chamfer, PointFlow's CD): the same with squared distances.
    No further normalisation: normalise the shapes (e.g. to the unit cube) before comparing.

    Args:
        points_a, points_b: [N, 3] and [M, 3] arrays.
        squared: use squared Euclidean distances.
    """
    a, b = _points(points_a, "points_a"), _points(points_b, "points_b")
    da, db = _nn_dist(a, b), _nn_dist(b, a)
    if squared:
        da, db = da**2, db**2
    return float(da.mean() + db.mean())


def f_score(points_a: np.ndarray, points_b: np.ndarray, threshold: float) -> float:
    """F-score at distance ``threshold`` (Tatarchenko et al. 2019, Eq. 1-3).

    Precision: fraction of ``points_a`` (prediction) within ``threshold`` of ``points_b``;
    recall: fraction of ``points_b`` (ground truth) within ``threshold`` of ``points_a``;
    F = 2 P R / (P + R), 0 when both are 0.
    """
    a, b = _points(points_a, "points_a"), _points(points_b, "points_b")
    precision = float((_nn_dist(a, b) <= threshold).mean())
    recall = float((_nn_dist(b, a) <= threshold).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly on the surface (area-weighted) and their face normals.

    Returns:
        ``(points[n, 3], normals[n, 3])`` as float64, reproducible for a given ``seed``.
    """
    import trimesh as tm

    points, face_idx = tm.sample.sample_surface(mesh, int(n), seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[face_idx],
                                                           dtype=np.float64)


def normal_consistency(mesh_a: trimesh.Trimesh, mesh_b: trimesh.Trimesh, n_points: int = 10000,
                       seed: int = 0) -> float:
    """Normal consistency (ONet Sec. 4): mean |n_a(p) . n_b(q)|, q the closest surface point.

    Points p are sampled on one mesh; q is the exact closest point on the other mesh's surface
    (point-cloud-utils, libigl AABB tree), so a mesh against itself scores exactly 1. Averaged
    over both directions; the absolute value ignores face orientation (open and soup meshes).
    """
    import point_cloud_utils as pcu

    def one_way(src: trimesh.Trimesh, dst: trimesh.Trimesh, s: int) -> float:
        p, n = sample_surface(src, n_points, s)
        _, fid, _ = pcu.closest_points_on_mesh(p, np.ascontiguousarray(dst.vertices, np.float64),
                                               np.ascontiguousarray(dst.faces, np.int32))
        return float(np.abs((n * np.asarray(dst.face_normals)[fid]).sum(1)).mean())

    return (one_way(mesh_a, mesh_b, seed) + one_way(mesh_b, mesh_a, seed + 1)) / 2


def volumetric_iou(occ_a: np.ndarray, occ_b: np.ndarray) -> float:
    """Intersection over union of two boolean occupancy grids (or point labels) of equal shape."""
    a, b = np.asarray(occ_a, dtype=bool), np.asarray(occ_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"occupancy shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def emd(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Earth mover's distance: mean transport distance of the exact optimal plan (POT ``emd2``).

    Uniform weights on both sets (sizes may differ), Euclidean ground cost. Cost is O(N^3):
    subsample to a few thousand points.
    """
    import ot

    a, b = _points(points_a, "points_a"), _points(points_b, "points_b")
    cost = ot.dist(a, b, metric="euclidean")
    wa, wb = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    return float(ot.emd2(wa, wb, cost, numItermax=1_000_000))


def pairwise_chamfer(set_a: Sequence[np.ndarray], set_b: Sequence[np.ndarray],
                     squared: bool = True) -> np.ndarray:
    """Matrix ``D[i, j] = chamfer_distance(set_a[i], set_b[j])`` (KD-trees built once per cloud)."""
    trees_a = [cKDTree(_points(p, "set_a")) for p in set_a]
    trees_b = [cKDTree(_points(p, "set_b")) for p in set_b]
    out = np.zeros((len(set_a), len(set_b)))
    for i, (pa, ta) in enumerate(zip(set_a, trees_a)):
        for j, (pb, tb) in enumerate(zip(set_b, trees_b)):
            da, db = tb.query(pa, k=1)[0], ta.query(pb, k=1)[0]
            if squared:
                da, db = da**2, db**2
            out[i, j] = da.mean() + db.mean()
    return out


def mmd_cd(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Minimum matching distance (PointFlow Eq. 11): mean over references of the closest sample.

    Uses the squared (L2) Chamfer distance, as PointFlow does.
    """
    return float(pairwise_chamfer(generated, reference).min(axis=0).mean())


def cov_cd(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Coverage (PointFlow Eq. 10): fraction of references that are the nearest one of a sample."""
    nearest = pairwise_chamfer(generated, reference).argmin(axis=1)
    return float(len(set(nearest.tolist())) / len(reference))


def one_nna(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """1-nearest-neighbour accuracy (PointFlow Eq. 12), leave-one-out over S_g and S_r.

    Each cloud is classified by the set of its nearest neighbour among all others; the accuracy
    is 0.5 when the two sets are indistinguishable and 1 when they are fully separated.
    """
    clouds = list(generated) + list(reference)
    labels = np.array([0] * len(generated) + [1] * len(reference))
    d = pairwise_chamfer(clouds, clouds)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(axis=1)] == labels).mean())


__all__ = ["chamfer_distance", "f_score", "normal_consistency", "sample_surface", "volumetric_iou",
           "emd", "pairwise_chamfer", "mmd_cd", "cov_cd", "one_nna"]
