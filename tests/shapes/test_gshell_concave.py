"""Openings vs concavities: the far-side test of the "open" label and depth carving, on analytic
scenes (a U-shaped arch under a solid-box template; a bowl under a solid-ball template)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("deodr")

from shapes.gshell.labels import carving_maps, concave_free_space, observe  # noqa: E402
from shapes.gshell.render import DeodrRenderer, look_at_camera  # noqa: E402
from shapes.gshell.tetgrid import build_tet_grid, sample_lattice  # noqa: E402
from shapes.gshell.views import Views  # noqa: E402

H = 0.05  # "cell" used for the margins below


def _box_sdf(lo, hi):
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)

    def f(p):
        p = p.double()
        q = (p - (lo + hi) / 2).abs() - (hi - lo) / 2
        return q.clamp_min(0).norm(dim=1) + q.max(dim=1).values.clamp_max(0)
    return f


def _render(mesh, cams):
    r = DeodrRenderer()
    v = torch.as_tensor(mesh.vertices)
    f = torch.as_tensor(mesh.faces)
    outs = [r.render(v, f, c) for c in cams]
    return Views(torch.stack([o["mask"].float() for o in outs]),
                 torch.stack([o["depth"].float() for o in outs]),
                 torch.stack([o["normal"].float() for o in outs]))


@pytest.fixture(scope="module")
def arch():
    """Two legs and a top bar: a tunnel x in (-0.1, 0.1), y < 0.1, open at the bottom and along
    z; seen from below (and slightly off axis), never straight through along z, nor grazing its
    ends (there a view would see the ceiling's edge, which lies on the template)."""
    parts = [trimesh.creation.box(bounds=b) for b in (
        [[-0.3, -0.3, -0.2], [-0.1, 0.1, 0.2]], [[0.1, -0.3, -0.2], [0.3, 0.1, 0.2]],
        [[-0.3, 0.1, -0.2], [0.3, 0.3, 0.2]])]
    mesh = trimesh.util.concatenate(parts)
    cams = [look_at_camera(e, [0, 0, 0], [0, 0, 1], 40, 48, 48)
            for e in ([0, -2.0, 0.0], [0.3, -2.0, 0.1], [-0.3, -2.0, -0.1])]
    template = _box_sdf([-0.3, -0.3, -0.2], [0.3, 0.3, 0.2])  # the hull fills the tunnel
    return mesh, cams, _render(mesh, cams), template


@pytest.fixture(scope="module")
def bowl():
    """Lower hemisphere (open at the top) seen from above; the template is the solid ball."""
    s = trimesh.creation.icosphere(4, radius=0.4)
    mesh = trimesh.Trimesh(s.vertices, s.faces[s.triangles_center[:, 1] < 0.0])
    cams = [look_at_camera(e, [0, 0, 0], [0, 0, 1], 40, 48, 48)
            for e in ([0, 2.0, 0.0], [0.4, 2.0, 0.3])]

    def template(p):
        return p.double().norm(dim=1) - 0.4
    return mesh, cams, _render(mesh, cams), template


def test_sample_lattice_is_exact_for_linear_fields():
    g = build_tet_grid(6, 0.5, dtype=torch.float64)
    a = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    vals = g.vertices @ a + 0.1
    pts = torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5
    got = sample_lattice(vals, 6, 0.5, pts)
    assert torch.allclose(got, pts @ a + 0.1, atol=1e-5)
    # outside the grid the value is clamped to the border
    far = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(sample_lattice(vals, 6, 0.5, far)) == pytest.approx(0.5 * 0.3 + 0.1, abs=1e-5)


def test_tunnel_is_carved_legs_and_bar_are_not(arch):
    mesh, cams, views, template = arch
    lin = torch.linspace(-0.28, 0.28, 15, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(lin, lin, lin * 0.6, indexing="ij"), -1).reshape(-1, 3)
    inside = template(pts) < 0
    free = concave_free_space(pts, views, cams, template, margin=H, inside=H)
    x, y = pts[:, 0], pts[:, 1]
    # (within 2 cells of the tunnel's ends the ceiling is within a cell of the template's face)
    tunnel = (x.abs() < 0.1 - H) & (y < 0.1 - 2 * H) & (pts[:, 2].abs() < 0.2 - 2 * H) & inside
    solid = torch.as_tensor(mesh.contains(pts.numpy()))
    assert bool(free[tunnel].float().mean() > 0.9)  # the tunnel, in front of its ceiling
    assert not bool(free[solid].any())  # never inside the real object
    # with a margin larger than the tunnel is deep, nothing is carved
    assert not bool(concave_free_space(pts, views, cams, template, margin=0.5, inside=H).any())


def test_bowl_is_not_hollowed(bowl):
    mesh, cams, views, template = bowl
    lin = torch.linspace(-0.38, 0.38, 13, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3)
    pts = pts[template(pts) < -H]
    # every interior point is in front of the observed inside of the bowl, but that surface lies
    # on the template (the ball's far side): an opening, not a concavity
    assert not bool(concave_free_space(pts, views, cams, template, margin=H, inside=H).any())


def _cap_labels(views, cams, verts, normals, template, far_side: bool):
    maps = carving_maps(views, 3)
    near0 = carving_maps(views, 0)[1]
    kw = {"see_near": near0}
    if far_side:
        kw.update(exit_sdf=template, exit_margin=H, inside_margin=H)
    return observe(verts, views, cams, H, 2 * H, maps=maps, normals=normals, **kw)


def test_far_side_test_opens_the_bowl_not_the_tunnel(arch, bowl):
    # bowl: the template's upper cap is seen through onto the ball's far side -> open
    _, cams, views, template = bowl
    s = trimesh.creation.icosphere(3, radius=0.4)
    v = torch.as_tensor(s.vertices)
    n = torch.tensor(np.asarray(s.vertex_normals))
    cap = v[:, 1] > 0.2
    for far_side in (False, True):
        _, uns = _cap_labels(views, cams, v, n, template, far_side)
        assert bool(uns[cap].float().mean() > 0.8)
        assert not bool(uns[v[:, 1] < -0.05].any())
    # arch: the template's floor under the tunnel is seen through onto the tunnel's ceiling,
    # inside the template -> open without the far-side test, not with it
    _, cams, views, template = arch
    lin = torch.linspace(-0.06, 0.06, 5, dtype=torch.float64)
    zs = torch.linspace(-0.1, 0.1, 5, dtype=torch.float64)
    gx, gz = torch.meshgrid(lin, zs, indexing="ij")
    floor = torch.stack([gx.reshape(-1), torch.full((gx.numel(),), -0.3, dtype=torch.float64),
                         gz.reshape(-1)], 1)
    n = torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64).expand_as(floor)
    _, uns = _cap_labels(views, cams, floor, n, template, far_side=False)
    assert bool(uns.float().mean() > 0.8)
    _, uns = _cap_labels(views, cams, floor, n, template, far_side=True)
    assert not bool(uns.any())


def test_reconstruct_accepts_the_new_options():
    s = trimesh.creation.icosphere(2, radius=0.35)
    from shapes.gshell import reconstruct, render_views

    views, cams = render_views(s, 6, 32, renderer="deodr")
    out = reconstruct(views, cams, resolution=10, iterations=4, progress=False, see_radius=0,
                      exit_margin=1.0, inside_margin=1.0, w_carve=1.0)
    assert len(out.faces) > 0
    assert np.isfinite(np.asarray(out.vertices)).all()


def test_min_views_counts_the_views_that_see_through(bowl):
    _, cams, views, template = bowl  # two cameras above the bowl
    s = trimesh.creation.icosphere(3, radius=0.4)
    v = torch.as_tensor(np.asarray(s.vertices))
    n = torch.tensor(np.asarray(s.vertex_normals))
    cap = v[:, 1] > 0.3  # seen through by both cameras
    maps = carving_maps(views, 3)
    kw = {"maps": maps, "normals": n, "see_near": carving_maps(views, 0)[1],
          "exit_sdf": template, "exit_margin": H}
    one = observe(v, views, cams, H, 2 * H, min_views=1, **kw)[1]
    two = observe(v, views, cams, H, 2 * H, min_views=2, **kw)[1]
    three = observe(v, views, cams, H, 2 * H, min_views=3, **kw)[1]
    assert bool(two[cap].all()) and bool(one[cap].all())
    assert bool((two <= one).all())  # more views required -> a subset
    assert not bool(three.any())  # only two cameras (and every cap vertex is inside both masks)


def test_orientation_test_keeps_the_bowl_drops_a_tilted_fin(bowl):
    """``exit_cos``: the surface seen through a template vertex must be parallel to the
    template's far side. Inside the bowl it is (|cos| ~ 1: still open); a fin standing across
    the ball's lower surface (its plane contains the ball's normal there) passes the far-side
    position test but not the orientation test."""
    _, bcams, bviews, template = bowl
    s = trimesh.creation.icosphere(3, radius=0.4)
    v = torch.as_tensor(np.asarray(s.vertices))
    n = torch.tensor(np.asarray(s.vertex_normals))
    kw = {"see_near": carving_maps(bviews, 0)[1], "exit_sdf": template, "exit_margin": H}
    uns = observe(v, bviews, bcams, H, 2 * H, maps=carving_maps(bviews, 3), normals=n,
                  exit_cos=0.5, **kw)[1]
    assert bool(uns[v[:, 1] > 0.2].float().mean() > 0.8)
    # a fin in the plane z = 0 near the ball's lower right surface, seen obliquely from above
    fin = trimesh.Trimesh([[0.2, -0.33, 0.0], [0.36, -0.2, 0.0], [0.28, -0.12, 0.0],
                           [0.12, -0.25, 0.0]], [[0, 1, 2], [0, 2, 3]])
    cams = [look_at_camera(e, [0.1, -0.1, 0], [0, 1, 0], 40, 48, 48)
            for e in ([0.1, 1.9, 1.4], [0.3, 1.9, 1.5])]
    views = _render(fin, cams)
    assert bool((views.masks > 0.5).any(dim=(1, 2)).all())
    kw = {"maps": carving_maps(views, 3), "normals": n, "see_near": carving_maps(views, 0)[1],
          "exit_sdf": template, "exit_margin": H, "outside_opens": False}
    pos_only = observe(v, views, cams, H, 2 * H, exit_cos=0.0, **kw)[1]
    oriented = observe(v, views, cams, H, 2 * H, exit_cos=0.5, **kw)[1]
    assert int(pos_only.sum()) >= 3  # the far-side position test alone opens the cap over it
    assert not bool(oriented.any())
    # without normal maps the orientation test cannot run: position test only
    bare = Views(views.masks, views.depths)
    assert torch.equal(observe(v, bare, cams, H, 2 * H, exit_cos=0.5, **kw)[1], pos_only)
