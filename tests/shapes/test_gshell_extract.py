"""Known answers for the tet grid and G-Shell extraction (analytic SDF + mSDF fields)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from shapes.gshell import build_tet_grid, extract_gshell

RES = 24


def _boundary_loops(vertices: np.ndarray, faces: np.ndarray) -> list[float]:
    """Lengths of the boundary loops (edges used by one face), via union-find on vertices."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    b = uniq[counts == 1]
    parent = {int(v): int(v) for v in b.reshape(-1)}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, c in b:
        parent[find(int(a))] = find(int(c))
    lengths: dict[int, float] = {}
    for a, c in b:
        r = find(int(a))
        lengths[r] = lengths.get(r, 0.0) + float(np.linalg.norm(vertices[a] - vertices[c]))
    return sorted(lengths.values())


def _extract(sdf, msdf, res=RES):
    g = build_tet_grid(res, dtype=torch.float64)
    p = g.vertices
    out = extract_gshell(g, sdf(p), None if msdf is None else msdf(p)).to_trimesh()
    out.merge_vertices()
    return out, g


def test_tet_grid_is_conforming_and_positive():
    g = build_tet_grid(3, bound=1.0, dtype=torch.float64)
    assert g.vertices.shape == (64, 3) and g.tets.shape == (6 * 27, 4)
    p = g.vertices[g.tets]
    vol = torch.linalg.det(torch.stack([p[:, k] - p[:, 0] for k in (1, 2, 3)], 1)) / 6
    assert bool((vol > 0).all())
    assert float(vol.sum()) == pytest.approx(8.0, rel=1e-12)
    # every interior triangle is shared by exactly two tets, the rest tile the cube's surface
    tri = torch.cat([g.tets[:, [0, 1, 2]], g.tets[:, [0, 1, 3]], g.tets[:, [0, 2, 3]],
                     g.tets[:, [1, 2, 3]]])
    _, counts = torch.unique(torch.sort(tri, 1).values, dim=0, return_counts=True)
    assert set(counts.tolist()) == {1, 2}
    assert int((counts == 1).sum()) == 6 * 9 * 2
    # Euler characteristic of a ball: V - E + F - T = 1
    n_f = counts.shape[0]
    assert g.vertices.shape[0] - g.edges.shape[0] + n_f - g.tets.shape[0] == 1


def test_positive_msdf_gives_watertight_template_unchanged():
    R = 0.61
    g = build_tet_grid(RES, dtype=torch.float64)
    sdf = g.vertices.norm(dim=1) - R
    closed = extract_gshell(g, sdf)
    kept = extract_gshell(g, sdf, torch.ones_like(sdf))
    assert torch.equal(kept.faces, closed.faces)
    assert torch.allclose(kept.vertices, closed.vertices)
    assert not bool(kept.boundary_vertices.any())
    m = kept.to_trimesh()
    m.merge_vertices()
    assert m.is_watertight
    assert m.volume > 0  # faces oriented outwards
    assert m.area == pytest.approx(4 * math.pi * R**2, rel=0.02)
    assert m.volume == pytest.approx(4 / 3 * math.pi * R**3, rel=0.02)


def test_plane_with_disc_msdf_is_an_open_disc():
    R = 0.5
    m, _ = _extract(lambda p: p[:, 2] - 0.0137, lambda p: R - p[:, :2].norm(dim=1))
    loops = _boundary_loops(m.vertices, m.faces)
    assert len(loops) == 1
    assert loops[0] == pytest.approx(2 * math.pi * R, rel=0.06)  # zig-zag of the cut <= 6%
    assert m.area == pytest.approx(math.pi * R**2, rel=0.02)


def test_sphere_with_plane_msdf_is_a_hemisphere():
    R, h = 0.6, 0.0137
    m, _ = _extract(lambda p: p.norm(dim=1) - R, lambda p: p[:, 2] - h)
    loops = _boundary_loops(m.vertices, m.faces)
    assert len(loops) == 1
    assert loops[0] == pytest.approx(2 * math.pi * math.sqrt(R**2 - h**2), rel=0.06)
    assert m.area == pytest.approx(2 * math.pi * R * (R - h), rel=0.02)
    assert m.vertices[:, 2].min() >= h - 1e-9


def test_cylinder_without_caps_has_two_rims():
    R, H = 0.5, 0.4123
    m, _ = _extract(lambda p: p[:, :2].norm(dim=1) - R, lambda p: H - p[:, 2].abs())
    loops = _boundary_loops(m.vertices, m.faces)
    assert len(loops) == 2
    for length in loops:
        assert length == pytest.approx(2 * math.pi * R, rel=0.06)
    assert m.area == pytest.approx(2 * math.pi * R * 2 * H, rel=0.02)


def test_gradients_match_finite_differences():
    g = build_tet_grid(4, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    p = g.vertices
    sdf = (p.norm(dim=1) - 0.55 + 0.05 * torch.rand(p.shape[0], generator=gen,
                                                     dtype=torch.float64)).requires_grad_()
    msdf = (p[:, 2] - 0.1 + 0.05 * torch.rand(p.shape[0], generator=gen,
                                              dtype=torch.float64)).requires_grad_()
    deform = (0.02 * torch.rand(p.shape, generator=gen, dtype=torch.float64)).requires_grad_()
    w = torch.randn(4096, 3, generator=gen, dtype=torch.float64)

    def f(s, m, d):
        out = extract_gshell(g, s, m, d)
        v, fc = out.vertices, out.faces
        tri = v[fc]
        area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1).norm(dim=1).sum()
        return area + (v * w[: v.shape[0]]).sum()

    f(sdf, msdf, deform).backward()
    for which, tensor in enumerate((sdf, msdf, deform)):
        flat_grad = tensor.grad.reshape(-1)
        idx = torch.nonzero(flat_grad.abs() > 1e-6)[:, 0]
        assert idx.numel() > 0
        for k in idx[torch.randperm(idx.numel(), generator=gen)[:5]].tolist():
            eps = 1e-6
            plus = tensor.detach().clone().reshape(-1)
            minus = plus.clone()
            plus[k] += eps
            minus[k] -= eps
            args = [sdf.detach(), msdf.detach(), deform.detach()]
            args[which] = plus.reshape(tensor.shape)
            fp = f(*args)
            args[which] = minus.reshape(tensor.shape)
            fm = f(*args)
            fd = float(fp - fm) / (2 * eps)
            assert fd == pytest.approx(float(flat_grad[k]), rel=1e-4, abs=1e-6)


def test_resample_lattice_is_exact_for_linear_fields():
    """Trilinear resampling between grid resolutions reproduces affine fields exactly."""
    from shapes.gshell.tetgrid import resample_lattice

    a, b = build_tet_grid(6, 0.6, dtype=torch.float64), build_tet_grid(9, 0.6, dtype=torch.float64)
    w = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)

    def field(p):
        return p @ w + 0.1

    up = resample_lattice(field(a.vertices), 6, 9)
    assert up.shape == (10**3,)
    torch.testing.assert_close(up, field(b.vertices))
    vec = resample_lattice(a.vertices, 6, 9)  # [V, 3] values: the positions themselves
    torch.testing.assert_close(vec, b.vertices)
    with pytest.raises(ConfigError):
        resample_lattice(field(a.vertices)[:-1], 6, 9)


def test_resample_lattice_keeps_a_thin_part():
    """A one-vertex-thick negative sheet between the new lattice planes survives resampling."""
    from shapes.gshell.tetgrid import resample_lattice

    a = build_tet_grid(6, 0.6, dtype=torch.float64)
    x = a.vertices[:, 0]
    sdf = torch.where((x - 0.2).abs() < 1e-9, -0.02, 0.2).to(torch.float64)  # plane x = 0.2
    plain = resample_lattice(sdf, 6, 8)  # new planes at x = 0.15, 0.3: the sheet falls between
    kept = resample_lattice(sdf, 6, 8, keep_negative=True)
    assert not bool((plain < 0).any())
    b = build_tet_grid(8, 0.6, dtype=torch.float64)
    neg = kept < 0
    assert bool(neg.any())
    # exactly the new vertices whose nearest old vertex is on the sheet (planes x = 0.15 and
    # x = 0.3; 0.3 is a tie), so the sheet stays connected
    assert torch.equal(neg, (b.vertices[:, 0] - 0.2).abs() <= 0.1 + 1e-9)
    assert int(neg.sum()) == 2 * 9**2
    m = extract_gshell(b, kept).to_trimesh()
    assert len(m.faces) > 0
