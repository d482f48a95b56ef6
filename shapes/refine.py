"""Fit a sampled latent to an observed point cloud: test-time latent optimisation.

The point-conditioned diffusion gives a plausible shape of the family; its surface rarely passes
exactly through the observed points. As in DeepSDF's inference (Park et al. 2019, Eq. 10: a
latent code fitted to observed SDF samples by gradient descent through a frozen decoder, with a
Gaussian prior on the code), we minimise over the standardised latent z

    E(z) = mean_i (f_z(p_i) / tau)^2 + lam * mean((z - z_0)^2)

where ``f_z`` is the TSDF decoded from z (autoencoder -> dense wavelet part -> the exact
differentiable inverse DWT ``wavelet.dense_to_grid``), read at the points ``p_i`` by trilinear
interpolation, ``tau`` the truncation, and ``z_0`` the diffusion sample (the prior keeps the
shape in the family and the inside/outside decided by the sampler; the data term only moves the
zero level set onto the points).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .wavelet import dense_to_grid

if TYPE_CHECKING:
    from .model import ShapeModel


def decoded_sdf_at(model: ShapeModel, z: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """TSDF decoded from standardised latents z [B, c, L^3], read at unit-cube points [B, N, 3].

    Grid node k of ``linspace(-0.5, 0.5, R)`` is normalised coordinate ``2 p`` with
    ``align_corners=True``; ``grid_sample`` orders coordinates (W, H, D) = (z, y, x).
    """
    ae = model.autoencoder
    dense = ae.unstandardize(ae.decode(z * model.latent_std + model.latent_mean))
    grid = dense_to_grid(dense, ae.synth_lo, ae.synth_hi)  # [B, R, R, R], axes (x, y, z)
    where = (2 * points.to(grid.dtype)).flip(-1)[:, :, None, None, :]  # [B, N, 1, 1, 3]
    vals = F.grid_sample(grid[:, None], where, mode="bilinear", align_corners=True)
    return vals.view(len(z), -1)


def point_energy(model: ShapeModel, z: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Per-sample data term mean_i (f_z(p_i) / tau)^2 (zero when every point is on the surface)."""
    tau = model.config.truncation or 0.1
    return (decoded_sdf_at(model, z, points) / tau).pow(2).mean(1)


def unsigned_distance_targets(points: torch.Tensor, resolution: int, truncation: float
                              ) -> torch.Tensor:
    """min(distance to the nearest observed point, truncation) at every grid node [B, R, R, R].

    The observed points sample the surface, so this is the truncated unsigned distance to it,
    up to half the point spacing (used by ``udf_energy``; scipy's k-d tree).
    """
    from scipy.spatial import cKDTree

    from .sdf import grid_points

    nodes = grid_points(resolution)
    out = [cKDTree(p.detach().cpu().numpy()).query(nodes, distance_upper_bound=truncation)[0]
           for p in points]
    d = torch.as_tensor(np.stack(out), dtype=torch.float32).clamp_max(truncation)
    return d.view(len(points), resolution, resolution, resolution)


def udf_energy(model: ShapeModel, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean_x ((|f_z(x)| - u(x)) / tau)^2 over the grid nodes x (u: the targets).

    The point term alone only pins the zero level set at the points; this term also removes
    surfaces where no point was observed (|f| must reach the distance to the points), the
    unsigned-distance fit of learned-prior reconstruction (e.g. Neural-Pull/NDF-style targets).
    """
    ae = model.autoencoder
    tau = model.config.truncation or 0.1
    dense = ae.unstandardize(ae.decode(z * model.latent_std + model.latent_mean))
    grid = dense_to_grid(dense, ae.synth_lo, ae.synth_hi)
    return ((grid.abs().clamp_max(tau) - target) / tau).pow(2).flatten(1).mean(1)


def refine_latents(model: ShapeModel, z0: torch.Tensor, points: torch.Tensor, steps: int = 60,
                   lr: float = 0.05, prior_weight: float = 0.01, udf_weight: float = 0.0
                   ) -> torch.Tensor:
    """Minimise ``point_energy + prior_weight * mean((z - z0)^2)`` with Adam (DeepSDF Eq. 10).

    Args:
        model: a fitted ``ShapeModel`` (its autoencoder is frozen here).
        z0: [B, c, L^3] standardised latents (e.g. from ``sample_latents`` with the points).
        points: [B, N, 3] observed surface points in the model's unit-cube frame.
        steps, lr: Adam iterations and step size on z.
        prior_weight: weight of the pull towards ``z0``.
        udf_weight: weight of ``udf_energy`` (0 = off): the decoded |TSDF| at every grid node
            should equal the truncated distance to the observed points.

    Returns:
        The refined latents [B, c, L^3] (detached); ``steps=0`` returns ``z0``.
    """
    ae = model.autoencoder.eval()
    z0 = z0.detach().float()
    points = points.float()
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    flags = [p.requires_grad for p in ae.parameters()]
    for p in ae.parameters():
        p.requires_grad_(False)
    target = None
    if udf_weight > 0 and steps > 0:
        target = unsigned_distance_targets(points, model.config.resolution,
                                           model.config.truncation or 0.1)
    try:
        with torch.enable_grad():
            for _ in range(int(steps)):
                loss = point_energy(model, z, points) + \
                    prior_weight * (z - z0).pow(2).flatten(1).mean(1)
                if target is not None:
                    loss = loss + udf_weight * udf_energy(model, z, target)
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
    finally:
        for p, flag in zip(ae.parameters(), flags):
            p.requires_grad_(flag)
    return z.detach()


__all__ = ["decoded_sdf_at", "point_energy", "udf_energy", "unsigned_distance_targets",
           "refine_latents"]
