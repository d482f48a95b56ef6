"""The G-Shell authors' multiview settings (Liu et al., ICLR 2024, Sec. 5.1 + lzzcd001/GShell).

Read from the authors' public code (``train_gshelltet_*.py``, ``geometry/gshell_tets_geometry.py``,
``configs/deepfashion_mc.json``, commit c2f0ba9; read, not copied) for tet-grid G-Shell:

- Adam; all per-vertex geometry fields (SDF, mSDF, deformation) at ``learning_rate[0] = 0.03``
  (the code's path without the SDF MLP; with it the MLP gets 0.03 * 1e-2), no warm-up
  (``warmup_iter=0``) and ``lr(it) = lr * 10 ** (-0.0002 it)``: an exponential fall from 1 to 0.1
  over the 5000 iterations (``"iter": 5000``). For a run of ``iterations`` steps the preset keeps
  that shape, ``10 ** (-it / iterations)`` (identical at 5000).
- 2 views per step (``"batch": 2``), tet grid 128^3 (``"gshell_grid": 128``; 256 in
  ``deepfashion_mc_256.json``), training images 1024^2.
- SDF sign-change regulariser (nvdiffrec Eq. 9) weighted ``0.2 - (0.2 - 0.01) min(1, 4 t)``
  (``--sdf_regularizer 0.2``, ``t = it / iter``): it falls to 0.01 over the first quarter.
- mSDF regularisers, both Huber losses summed over vertices and scaled by ``(64 / res) ** 3``,
  with ``eps = 1e-3``: "open" pulls the mSDF of every vertex of the extracted mesh towards
  ``-eps`` (``msdf.clamp(min=-eps)``, ``--msdf_reg_open_scale 1e-6``); "close" pushes the mSDF of
  the cut (boundary) vertices that some rendered view sees towards ``+eps``
  (``clamp(max=eps)``, ``--msdf_reg_close_scale 3e-6``; 3e-4 for the hat data). A boundary
  vertex's mSDF is the edge interpolation with the interpolation weights detached, so its
  value is 0 but the gradient reaches the two template vertices of its edge.
- mSDF initialised uniform in ``[-0.01, 0.99]`` (``rand - 0.01``); the mesh is extracted as it
  is (none of our small-opening / evidence filtering at extraction).

Not reproduced here (CPU budget / different inputs): the SDF MLP with its sphere pre-training and
eikonal term, PBR shading with a learned environment light (our views carry mask, depth and
normals), and the two rendered-mSDF mask terms (weight 0.5; our "open" label outside every
silhouette plays that role in the default regularisers).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from common.errors import ConfigError

from .extract import unique_pairs
from .render import Camera

PAPER = {  # the values above, as ReconstructConfig fields
    "resolution": 128, "iterations": 5000, "views_per_step": 2, "lr": 0.03, "warmup": 0,
    "schedule": "paper", "lr_final": 0.1, "w_sdf_start": 0.2, "w_sdf_end": 0.01,
    "sdf_decay": 0.25, "msdf_reg": "paper", "w_open": 1e-6, "w_close": 3e-6,
    "msdf_eps": 1e-3, "msdf_init": "paper", "w_msdf_smooth": 0.0,
    "min_opening": 0, "drop_fraction": -1.0,  # the code extracts without our opening filter
}
"""``ReconstructConfig`` overrides of the ``"paper"`` preset (see the module docstring)."""

PRESETS = ("default", "paper")
PAPER_DECAY_PER_STEP = 0.0002  # the code's 10 ** (-0.0002 it) at its 5000 iterations


def preset_config(name: str = "default", **overrides: Any):  # -> ReconstructConfig
    """A ``ReconstructConfig`` from a named preset, then ``overrides`` by field name.

    ``"default"``: its CPU-sized defaults. ``"paper"``: the G-Shell authors' multiview
    settings (:data:`PAPER`: 128^3, 5000 Adam steps at lr 0.03 falling 10x with no warm-up,
    2 views per step, SDF regulariser 0.2 -> 0.01 over the first quarter, the code's Huber
    mSDF regularisers at 1e-6 / 3e-6); override ``resolution`` and ``iterations`` for a
    CPU-sized run of the same shape.
    """
    from .reconstruct import ReconstructConfig  # lazy: reconstruct imports this module

    if name not in PRESETS:
        raise ConfigError(f"unknown reconstruction preset {name!r}; valid: {PRESETS}")
    fields = dict(PAPER) if name == "paper" else {}
    unknown = set(overrides) - set(ReconstructConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown reconstruction options {sorted(unknown)}")
    return ReconstructConfig(**{**fields, **overrides})


def lr_factor(cfg: Any, it: int) -> float:
    """Learning-rate multiplier at step ``it`` (0-based) of ``cfg.iterations``.

    ``schedule="paper"``: ``lr_final ** (it / iterations)`` (G-Shell code: ``10 ** (-0.0002 it)``
    over 5000 steps, no warm-up). ``"warmup_exp"`` (ours): linear warm-up over ``warmup`` steps,
    then exponential decay reaching ``lr_final`` at the last step.
    """
    if cfg.schedule == "paper":
        return float(cfg.lr_final ** (it / max(cfg.iterations, 1)))
    warm = min(1.0, (it + 1) / max(cfg.warmup, 1))
    decay = math.log(cfg.lr_final) / max(cfg.iterations - cfg.warmup, 1)
    return warm * math.exp(decay * max(it - cfg.warmup, 0))


def sdf_weight(cfg: Any, it: int) -> float:
    """Weight of the SDF sign-change regulariser at step ``it``: linear from ``w_sdf_start`` to
    ``w_sdf_end`` over the first ``sdf_decay`` of the run, then constant (G-Shell code: 0.25)."""
    t = it / max(cfg.iterations, 1)
    s = min(1.0, t / cfg.sdf_decay) if cfg.sdf_decay > 0 else 1.0
    return cfg.w_sdf_start + (cfg.w_sdf_end - cfg.w_sdf_start) * s


def cut_edges(faces: torch.Tensor, msdf: torch.Tensor) -> torch.Tensor:
    """Unique template edges ``[E, 2]`` whose ends have opposite mSDF signs (> 0 vs <= 0): the
    edges that carry a boundary vertex of the mSDF cut."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = unique_pairs(torch.sort(e, dim=1).values, len(msdf))[0]
    pos = msdf > 0
    return e[pos[e[:, 0]] != pos[e[:, 1]]]


def _zero_crossing_weight(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Weight ``w`` of the first end with ``w a + (1 - w) b = 0`` (0.5 on a flat edge)."""
    den = b - a
    return torch.where(den.abs() > 1e-12, b / den, torch.full_like(den, 0.5))


def boundary_msdf(msdf: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """mSDF of the cut vertices on ``edges`` with detached weights (G-Shell code's
    ``msdf_vert_boundary_stopvgd``): value 0, gradient ``(w_a, w_b)`` on the two ends."""
    a, b = msdf[edges[:, 0]], msdf[edges[:, 1]]
    wa = _zero_crossing_weight(a.detach(), b.detach())
    return wa * a + (1 - wa) * b


def cut_points(vertices: torch.Tensor, msdf: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Positions ``[E, 3]`` of the cut vertices on ``edges`` (mSDF zero crossing, no gradient)."""
    m = msdf.detach()
    w = _zero_crossing_weight(m[edges[:, 0]], m[edges[:, 1]])[:, None]
    v = vertices.detach()
    return w * v[edges[:, 0]] + (1 - w) * v[edges[:, 1]]


def visible_points(points: torch.Tensor, camera: Camera, depth: torch.Tensor,
                   mask: torch.Tensor, tol: float) -> torch.Tensor:
    """Bool ``[N]``: the point projects into the rendered ``mask`` and lies within ``tol`` of the
    rendered depth there (a z-test; the code uses the rasteriser's visible triangles)."""
    R = torch.as_tensor(camera.R, dtype=points.dtype, device=points.device)
    t = torch.as_tensor(camera.t, dtype=points.dtype, device=points.device)
    K = torch.as_tensor(camera.K, dtype=points.dtype, device=points.device)
    xc = points @ R.T + t
    z = xc[:, 2].clamp_min(1e-6)
    u = (K[0, 0] * xc[:, 0] / z + K[0, 2]).round().long()
    v = (K[1, 1] * xc[:, 1] / z + K[1, 2]).round().long()
    inside = (xc[:, 2] > 1e-6) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    out = torch.zeros_like(inside)
    ui, vi = u[inside], v[inside]
    d, m = depth.detach()[vi, ui], mask.detach()[vi, ui]
    out[inside] = (m > 0.5) & ((xc[inside, 2] - d).abs() <= tol)
    return out


def paper_msdf_losses(template_msdf: torch.Tensor, template_faces: torch.Tensor,
                      resolution: int, eps: float = 1e-3,
                      visible: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """G-Shell code's mSDF regularisers ("open", "close"), unweighted, each times (64/res)^3.

    Args:
        template_msdf: ``[N]`` mSDF on the template vertices.
        template_faces: ``[F, 3]`` template faces.
        resolution: tet-grid cubes per axis.
        eps: the Huber targets ``-eps`` (open) and ``+eps`` (close).
        visible: bool over :func:`cut_edges` (their cut vertex seen by a view); None = all.

    Returns:
        ``(open, close)``: ``sum huber(max(m, -eps), -eps)`` over the template and cut vertices
        (the code's ``verts_aug``, unused ones included) and ``sum huber(min(m_b, eps), eps)``
        over the visible cut vertices. Pass a ``template_msdf`` interpolated with detached SDF
        weights to keep these terms off the SDF, as the code does.
    """
    scale = (64.0 / resolution) ** 3
    edges = cut_edges(template_faces, template_msdf.detach())
    mb = boundary_msdf(template_msdf, edges)
    m = torch.cat([template_msdf, mb])
    op = F.huber_loss(m.clamp(min=-eps), torch.full_like(m, -eps), reduction="sum")
    if visible is not None:
        mb = mb[visible]
    cl = F.huber_loss(mb.clamp(max=eps), torch.full_like(mb, eps), reduction="sum")
    return op * scale, cl * scale
