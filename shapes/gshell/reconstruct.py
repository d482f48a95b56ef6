"""Multiview G-Shell reconstruction (Liu et al., ICLR 2024, Sec. 5.1; DMTet/nvdiffrec losses).

Per iteration: extract the G-Shell mesh from per-vertex SDF, mSDF and deformation on the tet
grid, render a random subset of the views, and take an Adam step on

    L = w_mask |M - M*|^2 + w_depth |D - D*|_1 + w_normal (1 - n.n*)          (image terms)
      + w_color |C - C*|_1  (per-vertex colour on the grid, when the views carry colour)
      + w_sdf(t) L_sign-change(SDF)                                           (nvdiffrec Eq. 9)
      + w_open L_open(mSDF) + w_close L_close(mSDF)                          (G-Shell mSDF regs)
      + w_msdf_smooth mean_edges (mSDF_a - mSDF_b)^2 / h^2          (cut-length / label diffusion)

The mSDF regularisers act on template vertices, labelled each step by the target views
(:func:`observe`): "close" keeps the mSDF above zero on every vertex some view observes (it lies
on the observed surface, inside the mask), so a closed object is never cut; "open" pulls it
below zero only on vertices no view observes and some view contradicts (a view looks through
the template there, at a surface well behind it along the template normal, or the vertex is
outside every silhouette), e.g. the caps the visual hull puts over a garment's neck and sleeves.
"Looks through" is judged on the pixel's own depth, only where the surface seen is the
template's far side (the SDF a cell behind it is positive: a garment's back seen through its
neck, not a leg seen through the web the visual hull leaves between two legs) and faces like it
(observed normal parallel to the SDF gradient within ``exit_cos``), and by at least
``see_views`` views.
Opt-in ``open_share`` (e.g. 0.1): the "open" pull acts only in connected unobserved parts of
the template in which at least that share of the vertices is seen through (the extraction's
evidence rule during the fit): stray votes then never cut the floor the visual hull puts over a
closed box's groove (wallhole 0.0328 -> 0.0283) but the tank gets 7 % worse (results md).
Vertices just off the observed surface (template bulges) get neither label: the image terms
move the SDF there instead of the mSDF cutting holes. The Dirichlet term on the template's
edges, with the labels holding the mSDF near +-delta, costs about (2 delta)^2 per edge the cut
crosses: cuts straighten, and vertices no view labels take their neighbours' sign. At
extraction, openings and kept pieces smaller than ``min_opening`` template vertices are closed
or dropped (:func:`~shapes.gshell.extract.close_small_openings`), unless the final labels
confirm them (``keep_fraction`` of their vertices seen through); openings the views hardly
confirm (under ``drop_fraction``) are closed at any size. These labels are our design;
``msdf_reg="paper"`` uses the authors' code's regularisers instead and ``preset_config("paper")``
their whole multiview setting (:mod:`shapes.gshell.paper`). The SDF starts from the visual
hull of the masks (space carving), so a CPU budget of a few hundred steps suffices. Optionally
the run starts on a coarser grid (``coarse_resolution``) and the SDF, mSDF and deformation are
resampled trilinearly onto the final grid after ``coarse_fraction`` of the iterations.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from common.errors import ConfigError

from .extract import extract_gshell, marching_tets, weak_regions
from .labels import (  # noqa: F401  (re-exported: the label helpers lived here)
    carving_maps,
    concave_free_space,
    config_labels,
    observe,
    outside_some_mask,
    vertex_normals,
    visual_hull_sdf,
)
from .paper import (
    PRESETS,  # noqa: F401  (re-exported)
    cut_edges,
    cut_points,
    lr_factor,
    paper_msdf_losses,
    preset_config,  # noqa: F401  (re-exported)
    sdf_weight,
    visible_points,
)
from .render import Camera, Renderer, get_renderer
from .tetgrid import TetGrid, build_tet_grid, resample_lattice, sample_lattice
from .views import Views, check_views

MODES = ("gshell", "watertight")


@dataclass
class ReconstructConfig:
    """Knobs of :func:`reconstruct` (defaults: CPU-sized; the paper uses res 128+, 5k+ iters)."""

    mode: str = "gshell"          # "gshell" (SDF + mSDF) or "watertight" (mSDF off)
    resolution: int = 32          # tet grid cubes per axis
    bound: float = 0.6            # grid covers [-bound, bound]^3
    iterations: int = 300
    views_per_step: int = 4
    lr: float = 0.01              # Adam, warm-up then exponential decay to lr * lr_final
    lr_final: float = 0.1
    warmup: int = 20
    schedule: str = "warmup_exp"  # or "paper": lr_final ** (it / iterations), no warm-up
    w_mask: float = 2.0
    w_depth: float = 1.0
    w_normal: float = 0.2
    w_color: float = 1.0          # used when the views carry colour
    lr_color: float = 0.05        # Adam step of the per-vertex colour
    w_sdf_start: float = 0.2      # sign-change regulariser, decays linearly to w_sdf_end
    w_sdf_end: float = 0.01
    sdf_decay: float = 1.0        # ... over this fraction of the run (paper: 0.25)
    msdf_reg: str = "labels"      # mSDF regularisers: "labels" (ours, below) or "paper" (the
                                  # G-Shell code's Huber pulls, weights w_open / w_close)
    msdf_eps: float = 1e-3        # "paper": Huber targets -eps (open) / +eps (close)
    msdf_init: str = "constant"   # mSDF start: 0.5 cell ("constant") or U[-0.01, 0.99] ("paper")
    w_open: float = 1.0
    w_close: float = 1.0
    w_unseen: float = 0.0         # weak "open" pull where no view labels a vertex
    w_msdf_smooth: float = 10.0   # Dirichlet energy of the mSDF over template edges (clean cuts)
    min_opening: int = 16         # openings / kept pieces below this many template vertices (at
                                  # 24^3; scaled by (resolution / 24)^2, i.e. a fixed area) are
                                  # closed / dropped at extraction (0 = keep all)
    keep_fraction: float = 0.3    # an opening under min_opening stays if this share of its
                                  # template vertices is seen through (final labels) ...
    drop_fraction: float = 0.1    # ... and one of any size closes if under this share is
                                  # (negative: judge openings by size only, as in round 4)
    carve_margin: float = 1.0     # on-surface margin in grid cells ("close" label)
    see_margin: float = 2.0       # a view "sees through" a point this many cells in front of
                                  # the nearest observed depth (open pull there)
    open_radius: int = 3          # silhouette dilation (pixels) before background counts as free
    msdf_image_grad: bool = True  # image losses move the mSDF (through the cut vertices)
    open_outside: bool = True     # points outside every silhouette count as seen through
    open_start: float = 0.0       # fraction of the run before the "open" terms ramp in (over 0.2)
    open_share: float = 0.0       # > 0: the "open" pull acts only in connected unobserved parts of
                                  # the template where at least this share of vertices is seen
                                  # through (0.1 fixes closed objects' grooves, costs the tank 7 %)
    concave_margin: float = 0.0   # cells; a view sees through a vertex only if the surface it
                                  # observes behind it lies within this of the template (else it
                                  # is a concavity inside the template: the SDF, not the mSDF,
                                  # must carve it); 0 = off
    see_radius: int = 0           # pixels: the see-through test compares with the nearest
                                  # observed depth within this window (0 = the pixel's own; the
                                  # round-4 default 3 hid openings a few pixels wide)
    exit_margin: float = 1.0      # cells; > 0: a view sees through a vertex only if the SDF this
                                  # far behind the surface it observes is positive (the template's
                                  # far side, an opening; not a concavity); 0 = off
    inside_margin: float = 0.0    # cells; > 0: a pixel whose observed surface lies this far inside
                                  # the template shows a concavity: no "open" evidence through it,
                                  # and (w_carve) the SDF carves the space in front of it
    see_views: int = 2            # views that must see through a vertex for the "open" label
    exit_cos: float = 0.5         # the surface seen through a vertex must face like the template's
                                  # far side: |n_observed . grad SDF| >= this (needs normal maps;
                                  # with exit_margin > 0; 0 = off)
    w_carve: float = 0.0          # weight of that depth carving (pushes the SDF positive)
    coarse_resolution: int = 0    # coarse-to-fine: start on this grid (0 = off), then resample
    coarse_fraction: float = 0.5  # SDF / mSDF / deformation to ``resolution`` after this fraction
    renderer: str = "auto"
    seed: int = 0
    progress: bool = True


def sdf_sign_change_loss(sdf: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """nvdiffrec Eq. 9: BCE pulling the two ends of every sign-changing grid edge to agree."""
    a, b = sdf[edges[:, 0]], sdf[edges[:, 1]]
    cross = torch.sign(a) != torch.sign(b)
    if not bool(cross.any()):
        return sdf.sum() * 0
    a, b = a[cross], b[cross]
    return (F.binary_cross_entropy_with_logits(a, (b > 0).float())
            + F.binary_cross_entropy_with_logits(b, (a > 0).float()))


def min_opening_vertices(cfg: ReconstructConfig) -> int:
    """``cfg.min_opening`` (template vertices at 24^3) at ``cfg.resolution``: template vertices
    per unit area grow with the resolution squared, so this keeps the smallest opening's area."""
    return int(round(cfg.min_opening * (cfg.resolution / 24) ** 2))


def msdf_dirichlet(msdf: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Mean squared mSDF difference over template edges (a discrete Dirichlet energy).

    With the open/close terms holding the mSDF near +-delta, each edge across the cut costs
    about ``(2 delta)^2``, so this is a cut-length penalty: ragged cuts straighten, one-cell
    holes and flakes close, and vertices no view labels take their neighbours' sign.
    """
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return ((msdf[e[:, 0]] - msdf[e[:, 1]]) ** 2).mean()


@dataclass
class Reconstruction:
    """Optimised fields and the extracted mesh; ``history`` holds the loss per iteration."""

    grid: TetGrid
    sdf: torch.Tensor
    msdf: torch.Tensor | None
    deform: torch.Tensor
    history: list[float]
    seconds: float
    color: torch.Tensor | None = None
    min_opening: int = 0
    evidence: torch.Tensor | None = None  # final "open" labels of the template vertices
    fractions: tuple[float, float] = (0.3, 0.1)

    def mesh(self):  # -> trimesh.Trimesh
        """The extracted surface as a ``trimesh.Trimesh`` with duplicate vertices merged
        (openings and pieces below ``min_opening`` template vertices removed, openings judged
        by the share of them the views see through when ``evidence`` is set)."""
        out = extract_gshell(self.grid, self.sdf, self.msdf, self.deform, self.color,
                             min_opening=self.min_opening, evidence=self.evidence,
                             fractions=self.fractions).to_trimesh()
        out.merge_vertices()
        out.remove_unreferenced_vertices()
        return out


def optimise(views: Views, cameras: list[Camera], cfg: ReconstructConfig | None = None,
             renderer: Renderer | str | None = None) -> Reconstruction:
    """Fit SDF, mSDF and deformation to the views with Adam; see the module docstring."""
    cfg = cfg or ReconstructConfig()
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown reconstruction mode {cfg.mode!r}; valid: {MODES}")
    for key, valid in (("schedule", ("warmup_exp", "paper")), ("msdf_reg", ("labels", "paper")),
                       ("msdf_init", ("constant", "paper"))):
        if getattr(cfg, key) not in valid:
            raise ConfigError(f"unknown {key} {getattr(cfg, key)!r}; valid: {valid}")
    check_views(views, cameras, bound=cfg.bound)
    if cfg.mode == "gshell" and views.depths is None:
        warnings.warn("the views carry no depth maps: without them no view can see through the "
                      "template, so the mSDF opens only where the template leaves every "
                      "silhouette (open surfaces such as garments stay mostly closed); add "
                      "per-view depth (.npy) to cameras.json", RuntimeWarning, stacklevel=2)
    if renderer is None or isinstance(renderer, str):
        renderer = get_renderer(renderer or cfg.renderer)
    r = renderer
    device = torch.device(getattr(r, "device", "cpu"))
    gen = torch.Generator().manual_seed(cfg.seed)
    coarse = 0 < cfg.coarse_resolution < cfg.resolution
    switch = int(round(cfg.coarse_fraction * cfg.iterations)) if coarse else 0
    grid = build_tet_grid(cfg.coarse_resolution if coarse else cfg.resolution,
                          cfg.bound).to(device)
    sdf = visual_hull_sdf(grid, views, cameras, 0.0).to(device)
    deform = torch.zeros_like(grid.vertices)
    msdf = None
    if cfg.mode == "gshell":
        msdf = (torch.rand(sdf.shape, generator=gen, dtype=sdf.dtype).to(device) - 0.01
                if cfg.msdf_init == "paper" else torch.full_like(sdf, 0.5 * grid.cell_size))
    color = None
    if views.colors is not None and cfg.w_color > 0:
        color = torch.full_like(grid.vertices, 0.5)
    def leaves(grid: TetGrid, sdf, msdf, deform, color):
        """Fresh Adam over the fields on ``grid`` (deformation through tanh, |d| < 0.45 h)."""
        lim = 0.45 * grid.cell_size
        raw = torch.atanh((deform / lim).clamp(-0.99, 0.99))
        fields = [t.detach().clone().requires_grad_(True) if t is not None else None
                  for t in (sdf, msdf, raw, color)]
        groups = [{"params": [f for f in fields[:3] if f is not None], "lr": cfg.lr}]
        if fields[3] is not None:
            groups.append({"params": [fields[3]], "lr": cfg.lr_color})
        return fields, torch.optim.Adam(groups), [g["lr"] for g in groups]

    (sdf, msdf, deform_raw, color), opt, base_lr = leaves(grid, sdf, msdf, deform, color)
    tgt = {k: getattr(views, k).to(device) if getattr(views, k) is not None else None
           for k in ("masks", "depths", "normals", "colors")}
    maps = carving_maps(views, cfg.open_radius)
    near1 = carving_maps(views, 1)[1] if cfg.w_carve > 0 else None
    see_near = None if cfg.see_radius == cfg.open_radius else carving_maps(views,
                                                                             cfg.see_radius)[1]
    history: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.iterations), desc=f"G-Shell ({cfg.mode})", disable=not cfg.progress)
    for it in bar:
        if it == switch and grid.resolution != cfg.resolution:  # coarse-to-fine: resample
            n0, n1 = grid.resolution, cfg.resolution
            states = [opt.state.get(q, {}) if q is not None else {}
                      for q in (sdf, msdf, deform_raw, color)]
            with torch.no_grad():
                deform = 0.45 * grid.cell_size * torch.tanh(deform_raw)
                sdf = resample_lattice(sdf, n0, n1, keep_negative=True)
                msdf, deform, color = (None if t is None else resample_lattice(t, n0, n1)
                                       for t in (msdf, deform, color))
            grid = build_tet_grid(n1, cfg.bound).to(device)
            (sdf, msdf, deform_raw, color), opt, base_lr = leaves(grid, sdf, msdf, deform, color)
            # carry Adam's moments over, resampled like the fields: a fresh Adam moves every
            # value by about lr in its first steps, which erases parts thinner than that
            for st, q in zip(states, (sdf, msdf, deform_raw, color)):
                if q is not None and st:
                    opt.state[q] = {k: v.clone() if k == "step" else
                                    resample_lattice(v, n0, n1).clamp_min(0)
                                    if k == "exp_avg_sq" else resample_lattice(v, n0, n1)
                                    for k, v in st.items()}
        margin = cfg.carve_margin * grid.cell_size
        for group, lr in zip(opt.param_groups, base_lr):
            group["lr"] = lr * lr_factor(cfg, it)
        deform = 0.45 * grid.cell_size * torch.tanh(deform_raw)
        shell = extract_gshell(grid, sdf, msdf, deform, color, cut_grad=cfg.msdf_image_grad)
        loss = sdf_weight(cfg, it) * sdf_sign_change_loss(sdf, grid.edges)
        if cfg.w_carve > 0 and cfg.inside_margin > 0 and tgt["depths"] is not None:
            inner = sdf.detach() < 0
            free = torch.zeros_like(inner)
            free[inner] = concave_free_space(
                grid.vertices[inner], views, cameras, partial(
                    sample_lattice, sdf.detach(), grid.resolution, grid.bound),
                margin, cfg.inside_margin * grid.cell_size, near=near1)
            if free.any():
                loss = loss + cfg.w_carve * F.relu(0.5 * grid.cell_size - sdf[free]).mean() / (
                    grid.cell_size)
        pick = torch.randperm(len(views), generator=gen)[: cfg.views_per_step].tolist()
        paper_reg = msdf is not None and cfg.msdf_reg == "paper" and len(shell.template_faces)
        if paper_reg:  # the code's regularisers: template mSDF with the SDF weights detached
            tstop = marching_tets(grid.vertices.to(sdf) + deform.detach(), grid.tets,
                                  sdf.detach(), msdf)[2]
            cuts = cut_edges(shell.template_faces, tstop.detach())
            seen_cut = torch.zeros(len(cuts), dtype=torch.bool, device=device)
            cut_pts = cut_points(shell.template_vertices, tstop, cuts)
        for i in pick:
            out = r.render(shell.vertices, shell.faces, cameras[i], shell.vertex_attrs)
            if paper_reg:
                seen_cut |= visible_points(cut_pts, cameras[i], out["depth"], out["mask"],
                                           grid.cell_size)
            tm = tgt["masks"][i]
            img = cfg.w_mask * ((out["mask"] - tm) ** 2).mean()
            if color is not None:  # rendered colour is premultiplied by coverage
                img = img + cfg.w_color * (out["color"] - tgt["colors"][i] * tm[..., None]
                                           ).abs().mean()
            both = (out["mask"].detach() > 0.5) & (tm > 0.5)
            if both.any() and tgt["depths"] is not None:
                img = img + cfg.w_depth * (out["depth"] - tgt["depths"][i])[both].abs().mean()
            if both.any() and tgt["normals"] is not None:
                cos = (out["normal"] * tgt["normals"][i]).sum(-1)[both]
                img = img + cfg.w_normal * (1 - cos).mean()
            loss = loss + img / len(pick)
        if paper_reg:
            op, cl = paper_msdf_losses(tstop, shell.template_faces, grid.resolution,
                                       cfg.msdf_eps, seen_cut)
            loss = loss + cfg.w_open * op + cfg.w_close * cl
        elif msdf is not None and shell.template_msdf is not None and len(shell.template_msdf):
            tmsdf = shell.template_msdf
            seen, unsupported = config_labels(shell, grid, sdf, views, cameras, maps, see_near, cfg)
            if cfg.open_share > 0 and unsupported.any():
                unsupported = unsupported & ~weak_regions(shell.template_faces, ~seen,
                                                          unsupported, cfg.open_share)
            delta = 0.5 * grid.cell_size
            ramp = min(max((it / max(cfg.iterations, 1) - cfg.open_start) / 0.2, 0.0), 1.0)
            h = grid.cell_size
            if unsupported.any() and ramp > 0:
                loss = loss + ramp * cfg.w_open * F.relu(tmsdf[unsupported] + delta).mean() / h
            unseen = ~seen & ~unsupported
            if unseen.any() and ramp > 0 and cfg.w_unseen > 0:
                loss = loss + ramp * cfg.w_unseen * F.relu(tmsdf[unseen] + delta).mean() / h
            if seen.any():
                loss = loss + cfg.w_close * F.relu(delta - tmsdf[seen]).mean() / h
            if cfg.w_msdf_smooth > 0:
                loss = loss + cfg.w_msdf_smooth * msdf_dirichlet(tmsdf, shell.template_faces) / h**2
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            # a degenerate (zero-area) face can give the rasteriser a non-finite gradient; one
            # such entry would turn every field into NaN through Adam, so it is zeroed
            for group in opt.param_groups:
                for q in group["params"]:
                    if q.grad is not None:
                        torch.nan_to_num_(q.grad, nan=0.0, posinf=0.0, neginf=0.0)
            opt.step()
        history.append(float(loss.detach()))
        bar.set_postfix(loss=f"{history[-1]:.4f}", faces=int(shell.faces.shape[0]))
    with torch.no_grad():
        deform = 0.45 * grid.cell_size * torch.tanh(deform_raw)
        evidence = None
        if msdf is not None and cfg.drop_fraction >= 0:  # final labels judge the openings
            final = extract_gshell(grid, sdf, msdf, deform)
            if len(final.template_vertices):
                evidence = config_labels(final, grid, sdf, views, cameras, maps, see_near, cfg)[1]
    return Reconstruction(grid, sdf.detach(), None if msdf is None else msdf.detach(),
                          deform.detach(), history, time.perf_counter() - t0,
                          None if color is None else color.detach(), min_opening_vertices(cfg),
                          evidence, (cfg.keep_fraction, cfg.drop_fraction))


def reconstruct(views: Views, cameras: list[Camera], cfg: ReconstructConfig | None = None,
                renderer: Renderer | str | None = None, **overrides):  # -> trimesh.Trimesh
    """Reconstruct an open or closed mesh from multiview masks / depths / normals (G-Shell).

    Args:
        views: target observations (see :class:`~shapes.gshell.views.Views`).
        cameras: one OpenCV camera per view.
        cfg: a :class:`ReconstructConfig`; ``overrides`` replace its fields by name.
        renderer: a renderer or its name (default: ``get_renderer(cfg.renderer)``).

    Returns:
        The reconstructed ``trimesh.Trimesh``; ``mesh.metadata["gshell"]`` holds the seconds
        taken and the final loss.
    """
    cfg = cfg or ReconstructConfig()
    if overrides:
        unknown = set(overrides) - set(cfg.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown reconstruction options {sorted(unknown)}")
        cfg = ReconstructConfig(**{**cfg.__dict__, **overrides})
    rec = optimise(views, cameras, cfg, renderer)
    mesh = rec.mesh()
    if len(mesh.faces) == 0:
        warnings.warn(f"G-Shell ({cfg.mode}) reconstruction collapsed to an empty mesh (the SDF "
                      f"is positive everywhere at resolution {cfg.resolution}); try a lower lr, "
                      "fewer iterations or another resolution", RuntimeWarning, stacklevel=2)
    mesh.metadata["gshell"] = {"seconds": rec.seconds, "final_loss": rec.history[-1]
                               if rec.history else None, "mode": cfg.mode}
    return mesh


from .baselines import udf_baseline  # noqa: E402,F401  (re-exported: it lived here)
