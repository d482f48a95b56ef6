"""G-Shell extraction (Liu et al., ICLR 2024, Sec. 3-4): marching tets on the SDF, then an mSDF cut.

1. Differentiable marching tetrahedra (DMTet, Shen et al. 2021, Eq. 1-2) on the sign of the
   SDF gives a watertight template mesh; a vertex on a tet edge ``(a, b)`` is
   ``(p_a * s_b - p_b * s_a) / (s_b - s_a)``.
2. The manifold SDF (mSDF) is interpolated onto the template vertices with the same edge
   weights (G-Shell Eq. 3).
3. Every template face is cut along the mSDF zero crossing (marching triangles) and only the
   part with mSDF > 0 is kept (G-Shell Sec. 4). New vertices lie on template edges, so faces
   that share an edge share the cut vertex and the open surface stays connected.

Everything is plain torch indexing and arithmetic: differentiable with respect to SDF, mSDF and
the per-vertex deformation, on whatever device the inputs live.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tetgrid import TET_EDGES, TetGrid

# DMTet triangle table indexed by the 4-bit occupancy code of a tet (bit i = sdf_i > 0); entries
# are local tet edge ids (TET_EDGES order), -1 = unused.
_TRI_TABLE = torch.tensor([
    [-1, -1, -1, -1, -1, -1], [1, 0, 2, -1, -1, -1], [4, 0, 3, -1, -1, -1],
    [1, 4, 2, 1, 3, 4], [3, 1, 5, -1, -1, -1], [2, 3, 0, 2, 5, 3],
    [1, 4, 0, 1, 5, 4], [4, 2, 5, -1, -1, -1], [4, 5, 2, -1, -1, -1],
    [4, 1, 0, 4, 5, 1], [3, 2, 0, 3, 5, 2], [1, 3, 5, -1, -1, -1],
    [4, 1, 2, 4, 3, 1], [3, 0, 4, -1, -1, -1], [2, 0, 1, -1, -1, -1],
    [-1, -1, -1, -1, -1, -1]], dtype=torch.long)
_NUM_TRI = torch.tensor([0, 1, 1, 2, 1, 2, 2, 1, 1, 2, 2, 1, 2, 1, 1, 0], dtype=torch.long)


@dataclass
class GShellMesh:
    """Result of :func:`extract_gshell`.

    Attributes:
        vertices, faces: the open (mSDF-cut) surface.
        template_vertices, template_faces: the watertight marching-tets template.
        template_msdf: mSDF interpolated onto the template vertices.
        boundary_vertices: bool ``[V]``, True for vertices created by the mSDF cut.
        vertex_attrs: per-vertex attributes (e.g. colour) interpolated like the positions.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    template_vertices: torch.Tensor
    template_faces: torch.Tensor
    template_msdf: torch.Tensor | None
    boundary_vertices: torch.Tensor
    vertex_attrs: torch.Tensor | None = None

    def to_trimesh(self):  # -> trimesh.Trimesh (trimesh is imported lazily)
        """The open surface as a ``trimesh.Trimesh`` (detached, float64, not merged further)."""
        import trimesh

        colors = None
        if self.vertex_attrs is not None and self.vertex_attrs.shape[1] >= 3:
            rgb = self.vertex_attrs[:, :3].detach().cpu().clamp(0, 1).numpy()
            colors = (rgb * 255).round().astype("uint8")
        return trimesh.Trimesh(self.vertices.detach().cpu().double().numpy(),
                               self.faces.detach().cpu().numpy(), vertex_colors=colors,
                               process=False)


def unique_pairs(pairs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(pairs, dim=0, return_inverse=True)`` for sorted index pairs ``< n``, via a
    1-D int64 key (``unique`` along a dim is far slower on CPU)."""
    key = pairs[:, 0] * n + pairs[:, 1]
    uk, inverse = torch.unique(key, return_inverse=True)
    return torch.stack([uk // n, uk % n], dim=1), inverse


def _edge_lerp(pos: torch.Tensor, val: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Zero crossing of the linear interpolant of ``val`` on each edge (DMTet Eq. 1)."""
    va, vb = val[edges[:, 0]], val[edges[:, 1]]
    denom = vb - va
    return (pos[edges[:, 0]] * vb[:, None] - pos[edges[:, 1]] * va[:, None]) / denom[:, None]


def marching_tets(vertices: torch.Tensor, tets: torch.Tensor, sdf: torch.Tensor,
                  msdf: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Differentiable marching tets (DMTet Sec. 3.1.2) with mSDF interpolation (G-Shell Eq. 3).

    The surface is the zero level set of ``sdf``; negative is inside. Faces are oriented with
    normals pointing to positive SDF (outwards).

    Args:
        vertices: ``[V, 3]`` (deformed) grid vertex positions.
        tets: ``[T, 4]`` positively oriented tets.
        sdf: ``[V]`` signed distance values.
        msdf: optional ``[V]`` manifold SDF values, interpolated with the same weights.

    Returns:
        ``(verts [N, 3], faces [F, 3], msdf_on_verts [N] or None)``.
    """
    device = vertices.device
    with torch.no_grad():
        occ = sdf > 0
        occ_fx4 = occ[tets]
        occ_sum = occ_fx4.sum(-1)
        valid = (occ_sum > 0) & (occ_sum < 4)
        vtets = tets[valid]
        all_edges = vtets[:, TET_EDGES.to(device)].reshape(-1, 2)
        all_edges = torch.sort(all_edges, dim=1).values
        uniq, inverse = unique_pairs(all_edges, vertices.shape[0])
        crossing = occ[uniq[:, 0]] != occ[uniq[:, 1]]
        mapping = torch.full((uniq.shape[0],), -1, dtype=torch.long, device=device)
        mapping[crossing] = torch.arange(int(crossing.sum()), device=device)
        idx_map = mapping[inverse].reshape(-1, 6)
        cross_edges = uniq[crossing]
        code = (occ_fx4[valid].long() * torch.tensor([1, 2, 4, 8], device=device)).sum(-1)
        num_tri = _NUM_TRI.to(device)[code]
        table = _TRI_TABLE.to(device)
        f1 = torch.gather(idx_map[num_tri == 1], 1, table[code[num_tri == 1]][:, :3])
        f2 = torch.gather(idx_map[num_tri == 2], 1, table[code[num_tri == 2]][:, :6]).reshape(-1, 3)
        faces = torch.cat([f1, f2], dim=0)
    verts = _edge_lerp(vertices, sdf, cross_edges)
    out_m = None
    if msdf is not None:
        out_m = _edge_lerp(msdf[:, None], sdf, cross_edges)[:, 0]
    return verts, faces, out_m


def cut_by_msdf(vertices: torch.Tensor, faces: torch.Tensor, msdf: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Marching triangles on a template mesh: keep the part where ``msdf > 0`` (G-Shell Sec. 4).

    Cut vertices are placed on template edges at the mSDF zero crossing (linear interpolation), so
    they are shared by both faces of the edge. Face orientation is preserved.

    Args:
        vertices: ``[N, 3]`` template vertices.
        faces: ``[F, 3]`` template faces.
        msdf: ``[N]`` mSDF on the template vertices.

    Returns:
        ``(verts [M, 3], faces [K, 3], is_boundary [M])``; unused vertices are removed.
    """
    device = vertices.device
    n = vertices.shape[0]
    with torch.no_grad():
        pos = msdf > 0
        npos = pos[faces].sum(1)
        # directed face edges (k, k+1) -> unique undirected edges
        fe = torch.stack([faces, faces.roll(-1, dims=1)], dim=-1).reshape(-1, 2)
        fe_sorted = torch.sort(fe, dim=1).values
        uniq, inverse = unique_pairs(fe_sorted, n)
        crossing = pos[uniq[:, 0]] != pos[uniq[:, 1]]
        new_id = torch.full((uniq.shape[0],), -1, dtype=torch.long, device=device)
        new_id[crossing] = n + torch.arange(int(crossing.sum()), device=device)
        edge_vid = new_id[inverse].reshape(-1, 3)  # [F, 3]: cut vertex on edge (k, k+1)

        full = faces[npos == 3]
        # one positive corner: rotate it to slot 0 -> (a, e_ab, e_ca)
        sel1 = npos == 1
        r1 = torch.argmax(pos[faces[sel1]].long(), dim=1)
        ar = torch.arange(3, device=device)
        rot = (ar[None, :] + r1[:, None]) % 3
        fv1 = torch.gather(faces[sel1], 1, rot)
        ev1 = torch.gather(edge_vid[sel1], 1, rot)  # ev1[:, k] is on rotated edge (k, k+1)
        tri1 = torch.stack([fv1[:, 0], ev1[:, 0], ev1[:, 2]], dim=1)
        # two positive corners: rotate the negative one to slot 0 -> (n, p1, p2)
        sel2 = npos == 2
        r2 = torch.argmax((~pos[faces[sel2]]).long(), dim=1)
        rot = (ar[None, :] + r2[:, None]) % 3
        fv2 = torch.gather(faces[sel2], 1, rot)
        ev2 = torch.gather(edge_vid[sel2], 1, rot)
        e_p2n, e_np1 = ev2[:, 2], ev2[:, 0]
        tri2a = torch.stack([fv2[:, 1], fv2[:, 2], e_p2n], dim=1)
        tri2b = torch.stack([fv2[:, 1], e_p2n, e_np1], dim=1)
        new_faces = torch.cat([full, tri1, tri2a, tri2b], dim=0)
    cut_verts = _edge_lerp(vertices, msdf, uniq[crossing])
    all_verts = torch.cat([vertices, cut_verts], dim=0)
    with torch.no_grad():
        used = torch.zeros(all_verts.shape[0], dtype=torch.bool, device=device)
        used[new_faces.reshape(-1)] = True
        remap = torch.cumsum(used.long(), 0) - 1
        is_boundary = torch.arange(all_verts.shape[0], device=device) >= n
    return all_verts[used], remap[new_faces], is_boundary[used]


def _components(n: int, edges: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Connected-component label ``[n]`` of the graph on ``n`` nodes made of the edges whose
    two ends are both ``keep`` (scipy's union-find; other nodes are singletons)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = edges.cpu().numpy()
    k = keep.cpu().numpy()
    e = e[k[e[:, 0]] & k[e[:, 1]]]
    adj = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    return torch.as_tensor(connected_components(adj, directed=False)[1], device=keep.device)


def close_small_openings(faces: torch.Tensor, msdf: torch.Tensor, min_vertices: int,
                         evidence: torch.Tensor | None = None, keep_fraction: float = 0.3,
                         drop_fraction: float = 0.1) -> torch.Tensor:
    """Minimum opening size: flip the mSDF sign of small cut regions and small kept islands.

    The mSDF of G-Shell (Sec. 4) may dip below zero in patches a cell or two wide where the
    views are ambiguous (thin walls, noisy labels), which punches ragged holes; likewise a few
    template vertices left positive inside an opening become floating flakes. Connected
    regions (over template edges) of negative vertices with fewer than ``min_vertices``
    vertices are closed (mSDF set to ``|mSDF|``), then positive regions with fewer than
    ``min_vertices`` vertices, except the largest, are removed (``-|mSDF|``). Flipped values
    carry no gradient.

    Args:
        faces: ``[F, 3]`` template faces.
        msdf: ``[N]`` mSDF on the template vertices.
        min_vertices: smallest opening (and smallest piece) kept, in template vertices.
        evidence: optional bool ``[N]``, template vertices the views see through.
        keep_fraction, drop_fraction: confirmed shares that keep a small opening / close any.

    Returns:
        The filtered ``[N]`` mSDF (a new tensor; unflipped entries keep their gradient).
    """
    if (min_vertices <= 1 and evidence is None) or msdf.numel() == 0:
        return msdf
    n = msdf.shape[0]
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    with torch.no_grad():
        out = msdf.detach().clone()
        for sign in (-1.0, 1.0):  # close small holes first, then drop small flakes
            sel = out <= 0 if sign < 0 else out > 0
            if not bool(sel.any()):
                continue
            lab = _components(n, edges, sel)
            size = torch.bincount(lab[sel], minlength=n)
            small = sel & (size[lab] < min_vertices)
            if sign < 0 and evidence is not None:
                ok = torch.bincount(lab[sel & evidence.to(sel.device)], minlength=n)
                share = ok.double() / size.clamp_min(1).double()
                tiny = size < max(min_vertices // 4, 2)
                small = sel & (((size < min_vertices) & ((share < keep_fraction) | tiny))
                               | (share < drop_fraction))[lab]
            if sign > 0:  # the largest kept piece always stays
                small &= lab != int(torch.argmax(size))
            out[small] = -sign * out[small].abs().clamp_min(1e-9)
        flipped = (out > 0) != (msdf.detach() > 0)
    return torch.where(flipped, out, msdf)


def weak_regions(faces: torch.Tensor, region: torch.Tensor, evidence: torch.Tensor,
                 fraction: float) -> torch.Tensor:
    """Vertices of the connected parts of ``region`` (over template edges) in which under
    ``fraction`` of the vertices are ``evidence``: bool ``[N]``, the drop rule of
    :func:`close_small_openings` applied to any vertex set (no gradient)."""
    n = region.shape[0]
    if n == 0 or not bool(region.any()):
        return torch.zeros(n, dtype=torch.bool, device=region.device)
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    lab = _components(n, edges, region)
    size = torch.bincount(lab[region], minlength=n)
    ok = torch.bincount(lab[region & evidence.to(region.device)], minlength=n)
    share = ok.double() / size.clamp_min(1).double()
    return region & (share < fraction)[lab]


def extract_gshell(grid: TetGrid, sdf: torch.Tensor, msdf: torch.Tensor | None = None,
                   deform: torch.Tensor | None = None, attrs: torch.Tensor | None = None,
                   min_opening: int = 0, cut_grad: bool = True,
                   evidence: torch.Tensor | None = None,
                   fractions: tuple[float, float] = (0.3, 0.1)) -> GShellMesh:
    """Extract a G-Shell surface from per-vertex SDF, mSDF and deformation on a tet grid.

    Args:
        grid: the tetrahedral grid.
        sdf: ``[V]`` SDF at grid vertices (negative inside the watertight template).
        msdf: ``[V]`` manifold SDF at grid vertices; ``None`` (or > 0 everywhere) keeps the
            watertight template.
        deform: ``[V, 3]`` vertex offsets added to the grid positions (DMTet deformation).
        attrs: optional ``[V, C]`` per-vertex attributes (e.g. RGB); they ride along as extra
            coordinates, so they are interpolated with exactly the weights of the positions.
        min_opening: when > 1, openings and kept pieces smaller than this many template
            vertices are removed first (:func:`close_small_openings`; no gradient through the
            flipped values).
        evidence: optional bool per *template* vertex (views see through it): openings are
            then judged by their confirmed share (:func:`close_small_openings`; ``fractions`` =
            ``(keep_fraction, drop_fraction)``).
        cut_grad: when False the cut vertices do not pass gradients to the mSDF (the
            ``template_msdf`` still does): losses on the open surface then move the SDF and the
            deformation only, and the mSDF is left to its own regularisers.

    Returns:
        A :class:`GShellMesh` with the open surface and its template.
    """
    if sdf.shape != grid.vertices.shape[:1]:
        raise ValueError(f"sdf must have shape {tuple(grid.vertices.shape[:1])}, "
                         f"got {tuple(sdf.shape)}")
    pos = grid.vertices.to(dtype=sdf.dtype, device=sdf.device)
    if deform is not None:
        pos = pos + deform
    if attrs is not None:
        pos = torch.cat([pos, attrs.to(pos.dtype)], dim=1)
    tv, tf, tm = marching_tets(pos, grid.tets.to(sdf.device), sdf, msdf)
    if tm is None:
        v, f, b = tv, tf, torch.zeros(tv.shape[0], dtype=torch.bool, device=tv.device)
    else:
        if min_opening > 1 or evidence is not None:
            if evidence is not None and evidence.shape != tm.shape:
                raise ValueError(f"evidence has shape {tuple(evidence.shape)}; the template "
                                 f"has {tm.shape[0]} vertices")
            tm = close_small_openings(tf, tm, min_opening, evidence, *fractions)
        v, f, b = cut_by_msdf(tv, tf, tm if cut_grad else tm.detach())
    extra = v[:, 3:] if attrs is not None else None
    return GShellMesh(v[:, :3], f, tv[:, :3], tf, tm, b, extra)
