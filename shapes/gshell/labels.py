"""Observation labels and space carving for G-Shell's mSDF regularisers (Liu et al. 2024, Sec. 5.1).

Per template vertex, the target views say whether it lies on an observed surface (the "close"
term keeps the mSDF positive there) or whether some view sees through it (the "open" term pulls
the mSDF negative there). The initial SDF is the visual hull of the masks (space carving, as
DMTet/nvdiffrec initialise from silhouettes). Our design, built on the paper's description; the
authors' code (read in round 8) uses global Huber pulls instead: ``shapes/gshell/paper.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from .render import Camera
from .tetgrid import TetGrid, sample_lattice
from .views import Views

GRAZING_COS = 0.2  # views closer than ~78 degrees to a template face's plane do not observe it


def _project(points: torch.Tensor, cam: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    R = torch.as_tensor(cam.R, dtype=points.dtype, device=points.device)
    t = torch.as_tensor(cam.t, dtype=points.dtype, device=points.device)
    K = torch.as_tensor(cam.K, dtype=points.dtype, device=points.device)
    xc = points @ R.T + t
    uv = xc[:, :2] / xc[:, 2:3].clamp_min(1e-6) @ K[:2, :2].T + K[:2, 2]
    return uv, xc[:, 2]


def carving_maps(views: Views, radius: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Conservative targets for space carving: the mask dilated by ``radius`` pixels and the
    nearest observed depth within that radius (so silhouette rounding never carves the object)."""
    k = 2 * radius + 1
    dil = F.max_pool2d(views.masks[:, None].float(), k, 1, radius)[:, 0]
    near = None
    if views.depths is not None:
        d = torch.where(views.masks > 0.5, views.depths.float(), torch.full_like(views.depths, 1e9))
        near = -F.max_pool2d(-d[:, None], k, 1, radius)[:, 0]
    return dil, near


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[V, 3]`` of a triangle mesh (no gradient)."""
    v = vertices.detach()
    fn = torch.linalg.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = torch.zeros_like(v).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, 0))
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)


def observe(points: torch.Tensor, views: Views, cameras: list[Camera], margin: float,
            see_margin: float | None = None, radius: int = 2,
            maps: tuple[torch.Tensor, torch.Tensor | None] | None = None,
            normals: torch.Tensor | None = None, outside_opens: bool = True,
            surface: torch.Tensor | None = None, concave_margin: float | None = None,
            see_near: torch.Tensor | None = None,
            exit_sdf: Callable[[torch.Tensor], torch.Tensor] | None = None,
            exit_margin: float = 0.0, inside_margin: float | None = None,
            min_views: int = 1, exit_cos: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Observation labels of template points for the mSDF regularisers (no gradient).

    A view *observes* a point when the point projects inside the mask and lies on the observed
    surface (``|z - depth| <= margin``; without depth maps: inside the mask and not behind
    another view's evidence). A view *contradicts* it when it sees through it: a surface is
    observed ``see_margin`` or more behind the point around its pixel (``z < near -
    see_margin``). A point that projects outside the (dilated) masks of all views that frame
    it is contradicted too (unless ``outside_opens`` is False: then the mask loss alone removes
    such template bulges, the mSDF does not cut them). Points just off the observed surface
    (bulges of the template that the SDF is still fitting) get neither label: the image terms
    move them, the mSDF does not cut them. With ``surface`` (template vertices) and
    ``concave_margin``, a view sees through a point only if the surface it observes behind it
    (the point's ray at the observed depth) lies within ``concave_margin`` of the template: an
    opening shows the far side of the template (a garment's back through its neck), whereas a
    concavity (a slot in a box) shows a surface deep inside the template, which the SDF must
    carve rather than the mSDF open. ``see_near`` (``[N, H, W]``, e.g. ``carving_maps(views,
    0)[1]``) replaces the depth map of ``maps`` in the see-through test: the default window of
    ``radius`` pixels takes the nearest depth around the pixel, which on a small opening (a
    collar a few pixels wide) is the rim in front of it, so the opening is never seen into.
    With ``exit_sdf`` (the template's SDF at world points), a view sees through a point only
    when the surface it observes there is the template's far side seen from inside: its pixel
    is foreground and the SDF ``exit_margin`` behind the observed point (along the ray) is
    positive. Through a garment's neck a view sees the inside of its back, with empty space
    behind; through the web that the visual hull leaves between two legs (or across a tunnel)
    it sees a surface with template volume behind it (Sec. 5.1 reading, ours). With
    ``inside_margin`` as well, the observed surface must not lie more than that inside the
    template (there the template is too fat: :func:`concave_free_space` lets the SDF carve).
    ``exit_cos`` (with ``exit_sdf`` and normal maps): the observed surface must also *face like*
    the template's far side: ``|n_observed . grad SDF(observed point)| >= exit_cos``. Through a
    garment's neck the inside of its back is parallel to the template's back (``|cos|`` ~ 1);
    across the web the visual hull leaves between a cow's legs a view sees a leg, and through a
    template bulge under a box a grazing view sees the box's bottom near its edge, where the
    template's far side is rounded: surfaces at an angle to it (median ``|cos|`` 0.2-0.3).
    ``min_views``: a point counts as seen through only when that many views see through it
    (one view's evidence at a depth edge or a grazing rim is often a pixel-rounding artefact).

    Returns:
        ``(observed, unsupported)``: bool ``[P]``. ``observed``: observed by at least one view
        (the "close" term keeps the mSDF positive there). ``unsupported``: contradicted and
        observed by no view (the "open" term pulls the mSDF negative there).
    """
    p = points.detach()
    see_margin = 2 * margin if see_margin is None else see_margin
    dil, near = maps if maps is not None else carving_maps(views, radius)
    seen = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
    through = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)
    framed = torch.zeros_like(seen)
    in_some = torch.zeros_like(seen)
    H, W = views.masks.shape[1:]
    tree = None
    if surface is not None and concave_margin is not None and concave_margin > 0:
        from scipy.spatial import cKDTree

        tree = cKDTree(surface.detach().cpu().double().numpy())
    for i, cam in enumerate(cameras):
        uv, z = _project(p, cam)
        col, row = uv[:, 0].round().long(), uv[:, 1].round().long()
        inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
        c, r = col.clamp(0, W - 1), row.clamp(0, H - 1)
        in_mask = inside & (dil[i].to(p.device)[r, c] > 0.5)
        framed |= inside
        in_some |= in_mask
        if views.depths is not None:
            m = views.masks[i].to(p.device)[r, c] > 0.5
            d = views.depths[i].to(p.device, p.dtype)[r, c]
            nd = near if see_near is None else see_near
            gap = nd[i].to(p.device, p.dtype)[r, c] - z
            facing = torch.ones_like(seen)
            if normals is not None:  # |cos| between the viewing ray and the template normal
                Rt = torch.as_tensor(cam.R, dtype=p.dtype, device=p.device)
                xc = p @ Rt.T + torch.as_tensor(cam.t, dtype=p.dtype, device=p.device)
                cos = ((normals.to(p.dtype) @ Rt.T) * xc).sum(1).abs() / xc.norm(dim=1).clamp_min(
                    1e-9)
                gap = gap * cos
                facing = cos >= GRAZING_COS
            seen |= inside & m & facing & ((z - d).abs() <= margin)
            cand = in_mask & (gap > see_margin)
            if exit_sdf is not None and bool(cand.any()):
                cand &= m & (d > 0)
                nobs = (views.normals[i].to(p.device, p.dtype)[r, c]
                        if exit_cos > 0 and views.normals is not None else None)
                _keep_far_side(cand, p, z, d, cam, exit_sdf, exit_margin, inside_margin,
                               nobs, exit_cos)
            if tree is not None and bool(cand.any()):
                _keep_openings(cand, p, z, near[i].to(p.device, p.dtype)[r, c], cam, tree,
                               concave_margin)
            through += cand.long()
        else:
            seen |= in_mask
    unsupported = ((through >= min_views) | (framed & ~in_some & outside_opens)) & ~seen
    return seen, unsupported


def _keep_openings(cand: torch.Tensor, p: torch.Tensor, z: torch.Tensor, near: torch.Tensor,
                   cam: Camera, tree, concave_margin: float) -> None:
    """Clear ``cand`` (in place) where the observed surface behind the point (its ray at the
    observed depth ``near``) lies farther than ``concave_margin`` from the template (``tree``)."""
    idx = torch.nonzero(cand).reshape(-1)
    R = torch.as_tensor(cam.R, dtype=p.dtype, device=p.device)
    t = torch.as_tensor(cam.t, dtype=p.dtype, device=p.device)
    xc = (p[idx] @ R.T + t) * (near[idx] / z[idx].clamp_min(1e-9))[:, None]
    q = ((xc - t) @ R).cpu().double().numpy()
    dist, _ = tree.query(q)
    cand[idx[torch.as_tensor(dist, device=p.device) > concave_margin]] = False


def _keep_far_side(cand: torch.Tensor, p: torch.Tensor, z: torch.Tensor, depth: torch.Tensor,
                   cam: Camera, sdf: Callable[[torch.Tensor], torch.Tensor], behind: float,
                   inside: float | None = None, normals: torch.Tensor | None = None,
                   min_cos: float = 0.0) -> None:
    """Clear ``cand`` (in place) where the SDF ``behind`` past the observed point (the point's
    ray at the observed ``depth``) is not positive, or (``inside``) the SDF at the observed point
    is below ``-inside``: the view sees a surface inside the template (a concavity), not the
    template's far side (an opening). With ``normals`` (observed world normals ``[P, 3]``) also
    where ``|normal . grad SDF| < min_cos`` at the observed point (central differences over
    ``behind``): the surface seen is not parallel to the template's far side."""
    idx = torch.nonzero(cand).reshape(-1)
    if len(idx) == 0:
        return
    R = torch.as_tensor(cam.R, dtype=p.dtype, device=p.device)
    t = torch.as_tensor(cam.t, dtype=p.dtype, device=p.device)
    xc = (p[idx] @ R.T + t) * (depth[idx] / z[idx].clamp_min(1e-9))[:, None]
    drop = torch.zeros(len(idx), dtype=torch.bool, device=p.device)
    q = (xc - t) @ R
    if inside is not None:
        drop |= sdf(q) < -inside
    if behind > 0:
        xb = xc + behind * xc / xc.norm(dim=1, keepdim=True).clamp_min(1e-12)
        drop |= sdf((xb - t) @ R) <= 0
    if normals is not None and min_cos > 0 and behind > 0:
        step = 0.5 * behind * torch.eye(3, dtype=q.dtype, device=q.device)
        grad = torch.stack([sdf(q + step[k]) - sdf(q - step[k]) for k in range(3)], 1)
        n = normals[idx]
        cos = (grad * n).sum(1).abs() / (grad.norm(dim=1) * n.norm(dim=1)).clamp_min(1e-12)
        drop |= cos < min_cos
    cand[idx[drop]] = False


def concave_free_space(points: torch.Tensor, views: Views, cameras: list[Camera],
                       sdf: Callable[[torch.Tensor], torch.Tensor], margin: float,
                       inside: float, near: torch.Tensor | None = None) -> torch.Tensor:
    """Depth carving of concavities the visual hull leaves (our reading of G-Shell Sec. 5.1).

    A point is free space in view ``i`` when it projects onto a foreground pixel and lies more
    than ``margin`` in front of the observed depth there (``near``: e.g. the nearest depth
    within a pixel, ``carving_maps(views, 1)[1]``; default the pixel's own). Such evidence is
    used only where the surface the pixel observes lies more than ``inside`` within the
    template (``sdf(q) < -inside``): the template is too fat there (the web between two legs,
    a tunnel the silhouettes never see through), so the SDF must carve. Through a garment's
    opening a view observes the garment's far side, which lies on the template: no carving,
    so a thin shell is never hollowed into a double layer.

    Returns:
        bool ``[P]``: free space in some view.
    """
    p = points.detach()
    free = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
    if views.depths is None:
        return free
    H, W = views.masks.shape[1:]
    v, u = torch.meshgrid(torch.arange(H, dtype=p.dtype, device=p.device),
                          torch.arange(W, dtype=p.dtype, device=p.device), indexing="ij")
    for i, cam in enumerate(cameras):
        K = torch.as_tensor(cam.K, dtype=p.dtype, device=p.device)
        R = torch.as_tensor(cam.R, dtype=p.dtype, device=p.device)
        t = torch.as_tensor(cam.t, dtype=p.dtype, device=p.device)
        d = views.depths[i].to(p.device, p.dtype)
        fg = (views.masks[i].to(p.device) > 0.5) & (d > 0)
        if not bool(fg.any()):
            continue
        xy = torch.stack([(u[fg] - K[0, 2]) / K[0, 0], (v[fg] - K[1, 2]) / K[1, 1]], 1)
        q = (torch.cat([xy, torch.ones_like(xy[:, :1])], 1) * d[fg][:, None] - t) @ R
        concave = torch.zeros(H, W, dtype=torch.bool, device=p.device)
        concave[fg] = sdf(q) < -inside
        if not bool(concave.any()):
            continue
        uv, z = _project(p, cam)
        col, row = uv[:, 0].round().long(), uv[:, 1].round().long()
        ok = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
        c, r = col.clamp(0, W - 1), row.clamp(0, H - 1)
        dn = (d if near is None else near[i].to(p.device, p.dtype))[r, c]
        free |= ok & concave[r, c] & (z < dn - margin)
    return free


def outside_some_mask(points: torch.Tensor, masks: torch.Tensor, cameras: list[Camera]
                      ) -> torch.Tensor:
    """Space carving: bool ``[P]``, True where some view sees background at the point's pixel,
    or the point projects outside the image of a view that shows the whole object (its mask
    does not touch the image border; a cropped view says nothing about what lies beyond it)."""
    p = points.detach()
    free = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
    H, W = masks.shape[1:]
    for i, cam in enumerate(cameras):
        uv, z = _project(p, cam)
        col, row = uv[:, 0].round().long(), uv[:, 1].round().long()
        inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
        c, r = col.clamp(0, W - 1), row.clamp(0, H - 1)
        m = masks[i].to(p.device) >= 0.5
        whole = not bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        outside = ~inside if whole else torch.zeros_like(inside)
        free |= (z > 0) & (outside | (inside & ~m[r, c]))
    return free


def visual_hull_sdf(grid: TetGrid, views: Views, cameras: list[Camera], margin: float
                    ) -> torch.Tensor:
    """Initial SDF: signed distance (scipy EDT, world units) to the visual hull of the masks.

    Depth is left out on purpose: carving with depth turns a thin open surface into a thin
    double-layered shell, whereas the mask hull of an open surface is a closed template that
    contains it, whose extra parts the mSDF then removes (G-Shell Sec. 4).
    """
    from scipy.ndimage import distance_transform_edt

    dil = F.max_pool2d(views.masks[:, None].float(), 3, 1, 1)[:, 0]
    free = outside_some_mask(grid.vertices.double(), dil, cameras)
    n = grid.resolution + 1
    occ = (~free).reshape(n, n, n).cpu().numpy()
    if not occ.any():
        occ[n // 2, n // 2, n // 2] = True
    h = grid.cell_size
    sdf = (distance_transform_edt(~occ) - distance_transform_edt(occ) + 0.5 * (~occ) - 0.5 * occ)
    return torch.as_tensor(sdf.reshape(-1) * h, dtype=torch.float32)


def config_labels(shell, grid: TetGrid, sdf: torch.Tensor, views: Views, cameras: list[Camera],
                  maps, see_near, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """``observe()`` on the template of ``shell`` (a ``GShellMesh``) with the options of a
    ``ReconstructConfig`` ``cfg``: ``(seen, seen_through)`` per template vertex."""
    use_sdf = cfg.exit_margin > 0 or cfg.inside_margin > 0
    exit_sdf = partial(sample_lattice, sdf.detach(), grid.resolution,
                       grid.bound) if use_sdf else None
    h = grid.cell_size
    return observe(shell.template_vertices, views, cameras, cfg.carve_margin * h,
                   cfg.see_margin * h, maps=maps,
                   normals=vertex_normals(shell.template_vertices, shell.template_faces),
                   outside_opens=cfg.open_outside, surface=shell.template_vertices,
                   concave_margin=cfg.concave_margin * h, see_near=see_near,
                   exit_sdf=exit_sdf, exit_margin=cfg.exit_margin * h,
                   inside_margin=cfg.inside_margin * h if cfg.inside_margin > 0 else None,
                   min_views=cfg.see_views, exit_cos=cfg.exit_cos)
