"""Test-time latent refinement: the decoded TSDF read at points, and the energy it lowers."""

from __future__ import annotations

import numpy as np
import torch

from shapes.model import ShapeModel
from shapes.refine import decoded_sdf_at, point_energy, refine_latents

TINY = dict(resolution=24, latent_size=4, ae_width=16, unet_width=16, emb_dim=32, n_points=64,
            condition="points")


def _model_and_latents(seed: int = 0) -> tuple[ShapeModel, torch.Tensor]:
    torch.manual_seed(seed)
    model = ShapeModel(**TINY)
    c = model.config
    z = torch.randn(2, c.latent_channels, c.latent_size, c.latent_size, c.latent_size)
    return model, z


def test_sdf_at_grid_nodes_equals_the_decoded_grid():
    """At the grid's nodes the interpolation is exact: it must match ``decode_sdf`` per axis."""
    model, z = _model_and_latents()
    res = model.config.resolution
    rng = np.random.default_rng(0)
    idx = rng.integers(0, res, size=(2, 50, 3))
    pts = torch.from_numpy(-0.5 + idx / (res - 1)).float()
    with torch.no_grad():
        got = decoded_sdf_at(model, z, pts).numpy()
    grids = model.decode_sdf(z)
    want = np.stack([g[i[:, 0], i[:, 1], i[:, 2]] for g, i in zip(grids, idx)])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_refinement_lowers_the_energy_and_zero_steps_is_identity():
    model, z = _model_and_latents(1)
    pts = torch.rand(2, 64, 3) * 0.6 - 0.3
    assert torch.equal(refine_latents(model, z, pts, steps=0), z)
    with torch.no_grad():
        before = point_energy(model, z, pts)
    z1 = refine_latents(model, z, pts, steps=20, lr=0.05, prior_weight=0.0)
    with torch.no_grad():
        after = point_energy(model, z1, pts)
    assert (after < before).all()
    assert all(p.requires_grad for p in model.autoencoder.parameters())  # frozen only inside


def test_unsigned_distance_targets_by_hand_and_udf_term_is_lowered():
    from shapes.refine import udf_energy, unsigned_distance_targets
    from shapes.sdf import grid_points

    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.25, 0.0, 0.0]]])  # two points
    u = unsigned_distance_targets(pts, 5, 0.2)[0].reshape(-1).numpy()
    nodes = grid_points(5)
    exact = np.minimum(np.linalg.norm(nodes[:, None] - pts[0].numpy()[None], axis=2).min(1), 0.2)
    np.testing.assert_allclose(u, exact, atol=1e-6)  # truncated at 0.2; 0 at the points
    model, z = _model_and_latents(2)
    cloud = torch.rand(2, 64, 3) * 0.6 - 0.3
    target = unsigned_distance_targets(cloud, model.config.resolution, 0.1)
    with torch.no_grad():
        before = udf_energy(model, z, target)
    z1 = refine_latents(model, z, cloud, steps=20, lr=0.05, prior_weight=0.0, udf_weight=10.0)
    with torch.no_grad():
        after = udf_energy(model, z1, target)
    assert (after < before).all()
