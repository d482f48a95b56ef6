"""Baseline (b) of the G-Shell benchmark: an unsigned-distance shell (double layer; G-Shell Sec. 1,
the failure of UDF iso-surfaces that motivates the mSDF)."""

from __future__ import annotations

import numpy as np
import torch

from common.errors import ConfigError

from .extract import extract_gshell
from .render import Camera
from .tetgrid import build_tet_grid
from .views import Views


def udf_baseline(views: Views, cameras: list[Camera], resolution: int = 32, bound: float = 0.6,
                 iso: float | None = None):  # -> trimesh.Trimesh
    """Baseline (b): unsigned distance to the back-projected depth points, meshed at a small
    iso-level ``iso`` (default one grid cell) with marching tets: a double-layered shell."""
    from scipy.spatial import cKDTree

    if views.depths is None:
        raise ConfigError("the UDF baseline needs depth maps")
    pts = []
    for i, cam in enumerate(cameras):
        d = views.depths[i].double().numpy()
        ok = (views.masks[i].numpy() > 0.5) & (d > 0)
        v, u = np.nonzero(ok)
        z = d[ok]
        xy = (np.stack([u, v], 1) - cam.K[:2, 2]) / np.diag(cam.K)[:2] * z[:, None]
        xc = np.concatenate([xy, z[:, None]], 1)
        pts.append((xc - cam.t) @ cam.R)
    pts = np.concatenate(pts, 0)
    grid = build_tet_grid(resolution, bound, dtype=torch.float64)
    udf, _ = cKDTree(pts).query(grid.vertices.numpy())
    iso = grid.cell_size if iso is None else iso
    out = extract_gshell(grid, torch.as_tensor(udf - iso)).to_trimesh()
    out.merge_vertices()
    return out
