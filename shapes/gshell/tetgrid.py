"""Tet grid for DMTet / G-Shell (Shen et al. 2021 Sec. 3.1): a cube grid, 6 Kuhn tets per cube.

Every cube is split along its main diagonal into the six tetrahedra of the Freudenthal-Kuhn
triangulation (one per permutation of the axes). All cubes use the same diagonal, so the faces of
neighbouring cubes match and the grid is a conforming tetrahedral mesh. Tets are reordered to
positive signed volume. Built here at any resolution; no downloaded tet files.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from common.errors import ConfigError

# the six (v1 - v0, v2 - v1, v3 - v2) unit steps of a Kuhn simplex = permutations of the axes
_PERMS = list(itertools.permutations(range(3)))
# tet edge list in local vertex indices (the order DMTet's triangle table expects)
TET_EDGES = torch.tensor([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])


@dataclass
class TetGrid:
    """A tetrahedral grid over the cube ``[-bound, bound]^3``.

    Attributes:
        vertices: ``[V, 3]`` float positions.
        tets: ``[T, 4]`` long vertex indices, positively oriented.
        edges: ``[E, 2]`` long unique edges (sorted pairs).
        resolution: number of cubes per axis.
        bound: half the side of the cube the grid covers.
    """

    vertices: torch.Tensor
    tets: torch.Tensor
    edges: torch.Tensor
    resolution: int
    bound: float

    @property
    def cell_size(self) -> float:
        """Side length of one cube of the grid."""
        return 2.0 * self.bound / self.resolution

    def to(self, device: torch.device | str) -> TetGrid:
        """Return the grid with its tensors on ``device``."""
        return TetGrid(self.vertices.to(device), self.tets.to(device), self.edges.to(device),
                       self.resolution, self.bound)


def unique_edges(tets: torch.Tensor) -> torch.Tensor:
    """Unique undirected edges ``[E, 2]`` (smaller index first) of a tet mesh ``[T, 4]``."""
    e = tets[:, TET_EDGES.to(tets.device)].reshape(-1, 2)
    e = torch.sort(e, dim=1).values
    n = int(tets.max()) + 1
    key = torch.unique(e[:, 0] * n + e[:, 1])  # 1-D unique: much faster than dim=0 on CPU
    return torch.stack([key // n, key % n], dim=1)


def build_tet_grid(resolution: int, bound: float = 1.0, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> TetGrid:
    """Build a Kuhn-subdivided cube grid with ``resolution`` cubes per axis.

    Args:
        resolution: cubes per axis (>= 1); the grid has ``(resolution + 1)^3`` vertices and
            ``6 * resolution^3`` tets.
        bound: the grid covers ``[-bound, bound]^3``.
        dtype: float dtype of the vertex positions.
        device: where the tensors live.

    Returns:
        The :class:`TetGrid`.
    """
    if not isinstance(resolution, int) or resolution < 1:
        raise ConfigError(f"tet grid resolution must be a positive integer, got {resolution!r}")
    if bound <= 0:
        raise ConfigError(f"tet grid bound must be positive, got {bound!r}")
    n = resolution + 1
    lin = torch.linspace(-bound, bound, n, dtype=torch.float64)
    gx, gy, gz = torch.meshgrid(lin, lin, lin, indexing="ij")
    vertices = torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)

    def vid(i: torch.Tensor, j: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return (i * n + j) * n + k

    r = torch.arange(resolution)
    ci, cj, ck = (c.reshape(-1) for c in torch.meshgrid(r, r, r, indexing="ij"))
    tets = []
    for perm in _PERMS:
        corner = [ci.clone(), cj.clone(), ck.clone()]
        ids = [vid(*corner)]
        for axis in perm:
            corner[axis] = corner[axis] + 1
            ids.append(vid(*corner))
        tets.append(torch.stack(ids, dim=1))
    tets = torch.cat(tets, dim=0)
    # orient every tet to positive volume (odd permutations come out negative)
    p = vertices[tets]
    vol = torch.linalg.det(torch.stack([p[:, k] - p[:, 0] for k in (1, 2, 3)], 1))
    neg = vol < 0
    tets[neg] = tets[neg][:, [0, 2, 1, 3]]
    return TetGrid(vertices.to(dtype=dtype, device=device), tets.to(device),
                   unique_edges(tets).to(device), resolution, float(bound))


def resample_lattice(values: torch.Tensor, resolution: int, new_resolution: int,
                     keep_negative: bool = False) -> torch.Tensor:
    """Trilinear resampling of per-vertex values between tet grids of the same bound.

    The grid vertices are a regular ``(resolution + 1)^3`` lattice whose corners coincide at
    every resolution, so this is ``F.interpolate(..., mode="trilinear", align_corners=True)``
    (coarse-to-fine SDF, as DMTet's subdivision/resampling between grid levels). A part thinner
    than a cell (one negative SDF vertex across) can fall between the new lattice points and
    vanish; ``keep_negative`` keeps it: when no new vertex whose nearest old vertex is a
    negative one comes out negative, those new vertices take the old (negative) value.

    Args:
        values: ``[V]`` or ``[V, C]`` values on the ``resolution`` grid.
        resolution, new_resolution: cubes per axis of the source and target grids.
        keep_negative: keep every negative old vertex represented (scalar fields, e.g. SDF).

    Returns:
        ``[V']`` or ``[V', C]`` values on the ``new_resolution`` grid.
    """
    import torch.nn.functional as F

    n, m = resolution + 1, new_resolution + 1
    if values.shape[0] != n**3:
        raise ConfigError(f"{values.shape[0]} values for a {resolution}^3 grid; expected {n**3}")
    x = values.reshape(n, n, n, -1).permute(3, 0, 1, 2)[None]
    y = F.interpolate(x, size=(m, m, m), mode="trilinear", align_corners=True)[0]
    y = y.permute(1, 2, 3, 0).reshape(m**3, *values.shape[1:])
    if keep_negative and values.dim() == 1:
        near = torch.round(torch.arange(m, device=values.device) * (resolution / new_resolution))
        near = near.long()
        ci, cj, ck = torch.meshgrid(near, near, near, indexing="ij")
        cid = ((ci * n + cj) * n + ck).reshape(-1)  # nearest old vertex of every new vertex
        has_neg = torch.zeros(n**3, dtype=torch.bool, device=values.device)
        has_neg[cid[y < 0]] = True
        fix = (values[cid] < 0) & ~has_neg[cid]
        y = torch.where(fix, torch.minimum(y, values[cid]), y)
    return y


def sample_lattice(values: torch.Tensor, resolution: int, bound: float, points: torch.Tensor
                   ) -> torch.Tensor:
    """Trilinear interpolation of per-vertex values ``[V]`` of a ``resolution`` tet grid over
    ``[-bound, bound]^3`` at world ``points [P, 3]`` (clamped to the grid; the undeformed
    lattice: the DMTet deformation, under half a cell, is ignored). Returns ``[P]``."""
    import torch.nn.functional as F

    n = resolution + 1
    if values.shape[0] != n**3:
        raise ConfigError(f"{values.shape[0]} values for a {resolution}^3 grid; expected {n**3}")
    vol = values.detach().reshape(1, 1, n, n, n).float()
    # lattice index (i, j, k) = (x, y, z); grid_sample wants (W, H, D) = (z, y, x) in [-1, 1]
    g = (points.detach().to(vol.device) / bound).float()[:, [2, 1, 0]].reshape(1, -1, 1, 1, 3)
    out = F.grid_sample(vol, g, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(-1).to(points.dtype)
