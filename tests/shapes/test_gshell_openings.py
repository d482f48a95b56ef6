"""Minimum opening size and mSDF smoothness: known answers on analytic SDF + mSDF fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shapes.gshell import build_tet_grid, extract_gshell
from shapes.gshell.extract import close_small_openings
from shapes.gshell.reconstruct import msdf_dirichlet

RES, R, H = 24, 0.6, 0.0137  # cell 1/12; the small hole and flake span ~2 cells


def _loops(mesh) -> list[float]:
    e = np.sort(np.asarray(mesh.edges), axis=1)
    u, c = np.unique(e, axis=0, return_counts=True)
    b = u[c == 1]
    import trimesh

    comps = trimesh.graph.connected_components(b, min_len=1)
    v = np.asarray(mesh.vertices)
    out = []
    for comp in comps:
        s = set(int(i) for i in comp)
        sel = np.array([a in s for a in b[:, 0]])
        out.append(float(np.linalg.norm(v[b[sel, 0]] - v[b[sel, 1]], axis=1).sum()))
    return sorted(out)


def _fields():
    g = build_tet_grid(RES, dtype=torch.float64)
    p = g.vertices
    sdf = p.norm(dim=1) - R
    bottom = torch.tensor([0.0, 0.0, -R], dtype=torch.float64)
    top = torch.tensor([0.0, 0.0, R], dtype=torch.float64)
    # keep z < h (a hemisphere opening upwards), punch a small hole at the bottom pole and
    # leave a small flake at the top pole
    msdf = torch.minimum(H - p[:, 2], (p - bottom).norm(dim=1) - 0.13)
    msdf = torch.maximum(msdf, 0.13 - (p - top).norm(dim=1))
    return g, sdf, msdf


def test_small_hole_and_flake_are_removed_big_opening_kept():
    g, sdf, msdf = _fields()
    raw = extract_gshell(g, sdf, msdf).to_trimesh()
    raw.merge_vertices()
    assert len(_loops(raw)) == 3  # the rim, the hole, the flake
    out = extract_gshell(g, sdf, msdf, min_opening=100).to_trimesh()
    out.merge_vertices()
    loops = _loops(out)
    assert len(loops) == 1
    assert loops[0] == pytest.approx(2 * math.pi * math.sqrt(R**2 - H**2), rel=0.06)
    assert out.area == pytest.approx(2 * math.pi * R * (R + H), rel=0.02)  # the lower half
    assert float(out.vertices[:, 2].max()) <= H + 1e-9


def test_filter_sizes_and_identity_cases():
    g, sdf, msdf = _fields()
    shell = extract_gshell(g, sdf, msdf)
    tm, tf = shell.template_msdf, shell.template_faces
    # the hole and the flake hold a few dozen template vertices each, the halves ~1.5k
    neg_small = int(((tm <= 0) & (shell.template_vertices[:, 2] < 0)).sum())
    pos_small = int(((tm > 0) & (shell.template_vertices[:, 2] > H)).sum())
    assert 10 <= neg_small < 100 and 10 <= pos_small < 100
    out = close_small_openings(tf, tm, 100)
    flipped = (out > 0) != (tm > 0)
    assert int(flipped.sum()) == neg_small + pos_small
    assert torch.equal(out[~flipped], tm[~flipped])
    assert torch.equal(out[flipped].abs(), tm[flipped].abs())  # sign flips, size kept
    assert torch.equal(close_small_openings(tf, tm, 0), tm)
    assert torch.equal(close_small_openings(tf, tm, 2), tm)  # no single-vertex regions here
    # all positive (watertight): nothing to close, and the one piece is not a flake
    assert torch.equal(close_small_openings(tf, tm.abs() + 1e-3, 10**6), tm.abs() + 1e-3)


def test_filter_keeps_gradients_of_unflipped_values():
    g, sdf, msdf = _fields()
    msdf = msdf.clone().requires_grad_(True)
    shell = extract_gshell(g, sdf, msdf, min_opening=100)
    shell.vertices.sum().backward()
    assert msdf.grad is not None and float(msdf.grad.abs().sum()) > 0


def test_msdf_dirichlet_known_values():
    faces = torch.tensor([[0, 1, 2]])
    m = torch.tensor([0.0, 1.0, 3.0], requires_grad=True)
    e = msdf_dirichlet(m, faces)
    assert float(e.detach()) == pytest.approx((1 + 4 + 9) / 3)
    e.backward()
    # d/dm_i of mean((m_a - m_b)^2) over the 3 edges
    assert torch.allclose(m.grad, torch.tensor([-8.0, -2.0, 10.0]) / 3)
    assert float(msdf_dirichlet(torch.full((3,), 0.7), faces)) == 0.0


def test_cut_without_msdf_gradient():
    """``cut_grad=False``: the open surface passes no gradient to the mSDF, the SDF still gets
    one, and the template mSDF (what the regularisers see) keeps its gradient."""
    g, sdf, msdf = _fields()
    sdf, msdf = sdf.clone().requires_grad_(True), msdf.clone().requires_grad_(True)
    shell = extract_gshell(g, sdf, msdf, cut_grad=False)
    shell.vertices.sum().backward(retain_graph=True)
    assert msdf.grad is None or float(msdf.grad.abs().sum()) == 0.0
    assert float(sdf.grad.abs().sum()) > 0
    shell.template_msdf.sum().backward()
    assert float(msdf.grad.abs().sum()) > 0


def test_min_opening_keeps_its_area_across_resolutions():
    from shapes.gshell.reconstruct import ReconstructConfig, min_opening_vertices

    assert min_opening_vertices(ReconstructConfig(resolution=24, min_opening=16)) == 16
    assert min_opening_vertices(ReconstructConfig(resolution=48, min_opening=16)) == 64
    assert min_opening_vertices(ReconstructConfig(resolution=32, min_opening=0)) == 0


def _n_loops(g, sdf, msdf, **kw) -> int:
    out = extract_gshell(g, sdf, msdf, **kw).to_trimesh()
    out.merge_vertices()
    return len(_loops(out))


def test_openings_judged_by_the_views_evidence():
    """A small opening the views confirm stays; one they do not confirm closes at any size."""
    g, sdf, msdf = _fields()
    shell = extract_gshell(g, sdf, msdf)
    tm, tv = shell.template_msdf, shell.template_vertices
    hole = (tm <= 0) & (tv[:, 2] < 0)  # the small hole at the bottom pole
    rim = (tm <= 0) & (tv[:, 2] > 0)  # the big opening (upper half, minus the flake)
    n_hole = int(hole.sum())
    ev = torch.zeros_like(hole)
    # size only: the hole and the flake go, the rim stays
    assert _n_loops(g, sdf, msdf, min_opening=100) == 1
    # the hole fully confirmed, the rim a third confirmed: both kept (flake still dropped)
    idx = torch.nonzero(rim)[:, 0]
    ev_both = ev.clone()
    ev_both[hole] = True
    ev_both[idx[: len(idx) // 3 + 1]] = True
    assert _n_loops(g, sdf, msdf, min_opening=100, evidence=ev_both) == 2
    # the same hole, but only 20 % of it confirmed (< keep 0.3): closed by its size
    ev_part = ev_both.clone()
    hidx = torch.nonzero(hole)[:, 0]
    ev_part[hidx[int(0.2 * n_hole) + 1:]] = False
    assert _n_loops(g, sdf, msdf, min_opening=100, evidence=ev_part) == 1
    # no evidence anywhere: every opening closes, whatever its size -> the watertight sphere
    out = extract_gshell(g, sdf, msdf, min_opening=100, evidence=ev).to_trimesh()
    out.merge_vertices()
    assert out.is_watertight
    # a confirmed opening under a quarter of min_opening is still closed
    assert _n_loops(g, sdf, msdf, min_opening=4 * n_hole + 4, evidence=ev_both) == 1
    # fractions (keep 1.0, drop 0): only a fully confirmed small hole stays, big ones always do
    assert _n_loops(g, sdf, msdf, min_opening=100, evidence=ev_both, fractions=(1.0, 0.0)) == 2
    assert _n_loops(g, sdf, msdf, min_opening=100, evidence=ev_part, fractions=(1.0, 0.0)) == 1
    with pytest.raises(ValueError, match="evidence"):
        extract_gshell(g, sdf, msdf, evidence=ev[:-1])


def test_weak_regions_known_shares():
    """Two parts of a vertex chain (triangles i, i+1, i+2): part A (vertices 0-9) has 2 of 10
    vertices as evidence, part B (13-22) none, vertex 11 outside the region is evidence too."""
    from shapes.gshell.extract import weak_regions

    n = 23
    faces = torch.stack([torch.arange(n - 2), torch.arange(1, n - 1), torch.arange(2, n)], 1)
    region = torch.zeros(n, dtype=torch.bool)
    region[:10] = True
    region[13:] = True
    evidence = torch.zeros(n, dtype=torch.bool)
    evidence[[2, 7, 11]] = True
    a, b = torch.arange(n) < 10, torch.arange(n) >= 13
    assert torch.equal(weak_regions(faces, region, evidence, 0.1), b)  # A: 0.2, B: 0
    assert torch.equal(weak_regions(faces, region, evidence, 0.2), b)  # 0.2 is not under 0.2
    assert torch.equal(weak_regions(faces, region, evidence, 0.25), a | b)
    assert not bool(weak_regions(faces, torch.zeros(n, dtype=torch.bool), evidence, 0.5).any())
    # joined into one part (vertices 10-12 added): 3 of 23 = 0.13
    assert bool(weak_regions(faces, torch.ones(n, dtype=torch.bool), evidence, 0.14).all())
    assert not bool(weak_regions(faces, torch.ones(n, dtype=torch.bool), evidence, 0.13).any())


def test_sdf_sign_change_loss_known_values():
    """nvdiffrec Eq. 9 on three values: edges (0,1) and (1,2) change sign, (0,2) does not;
    each end's logit is pushed towards the other end's sign with a binary cross-entropy."""
    from shapes.gshell.reconstruct import sdf_sign_change_loss

    sdf = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([[0, 1], [1, 2], [0, 2]])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  (softplus)
    # ends a = (1, -1) against targets (0, 1); ends b = (-1, 2) against targets (1, 0)
    want = (sp(1) + sp(1)) / 2 + (sp(1) + sp(2)) / 2
    loss = sdf_sign_change_loss(sdf, edges)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6)  # targets are float32
    loss.backward()
    # gradient descent moves each crossing end towards its neighbour's sign: 0 and 2 down, 1 up
    assert float(sdf.grad[0]) > 0 and float(sdf.grad[2]) > 0 and float(sdf.grad[1]) < 0
    same = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    zero = sdf_sign_change_loss(same, edges)
    assert float(zero.detach()) == 0.0 and zero.requires_grad
