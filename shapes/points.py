"""Point-cloud conditions of WaLa (Sivaram et al. 2024, Sec. 4.2): unit-cube framing, resampling."""

from __future__ import annotations

import numpy as np

from common.errors import DataError


def normalize_points(points: np.ndarray, padding: float, name: str = "condition") -> np.ndarray:
    """Map a point cloud into the unit cube the way meshes are (bounding box, ``padding``)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 8:
        raise DataError(f"point cloud of shape {p.shape}", file=name, field="points",
                        expected="an [N, 3] array with N >= 8")
    if not np.isfinite(p).all():
        raise DataError("point cloud holds NaN or infinite values", file=name, field="points",
                        expected="finite coordinates")
    lo, hi = p.min(0), p.max(0)
    if (hi - lo).max() <= 0:
        raise DataError("all points coincide", file=name, field="points",
                        expected="a point cloud with non-zero extent")
    return (p - (lo + hi) / 2) * ((1 - 2 * padding) / (hi - lo).max())


def resample_points(points: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Exactly ``n`` points: a random subset, or repeats when there are fewer."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(points), n, replace=len(points) < n)
    return points[idx]
