"""``ShapeModelConfig``: every setting of WaLa's ``ShapeModel`` (Sivaram et al. 2024, Sec. 3-4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import ConfigError
from common.samplers import get_sampler


@dataclass
class ShapeModelConfig:
    """Every setting of the model (data, codec, networks, diffusion, sampling).

    Attributes (the less obvious ones):
        truncation: |TSDF| clip in unit-cube units.
        latent_size, latent_channels: the latent grid (WaLa: 12^3 x 4 at 256^3). Default: 64^3
            with 2 levels (dense part 28^3, codec-only IoU 0.93 on the synthetic family) and a
            14^3 latent, so a latent cell is 0.125 unit-cube wide like WaLa's.
        condition: "none" or "points" (a PointNet encoding of ``n_points`` surface points).
        point_grid: also feed the points as a latent-aligned occupancy channel (besides the
            PointNet code).
        cond_drop: probability of dropping the condition in training (for CFG).
        ae_sdf_weight: weight of the autoencoder's decoded-TSDF loss (surface-weighted; 0 = the
            wavelet-space MSE alone); ae_occupancy_weight: its inside/outside logistic loss;
            ae_kl_weight: weight of the variational autoencoder's KL term (0 = deterministic).
        ae_grid_rows: the autoencoder's TSDF terms are computed on a random sub-grid of this
            many nodes per axis each step (an unbiased estimate of the full-grid loss;
            ``WaveletAutoencoder.sample_rows``); None or >= resolution = the full grid (as at the
            default 64^3). 64 rows cut a 256^3 step from 4.3 to ~0.1 CPU-s per sample.
        ae_steps: autoencoder optimisation steps (the diffusion uses ``TrainerConfig.max_steps``).
        sampler, num_steps: a ``common.samplers`` name and its number of sigmas (few-step).
        guidance: classifier-free guidance weight w (1 = conditional model alone).
        refine_steps, refine_prior: with a point condition, Adam steps of test-time latent
            optimisation towards the points (``refine.refine_latents``; 0 = off) and its prior.
        refine_udf: weight of the refinement's unsigned-distance term (``refine.udf_energy``:
            removes surfaces away from the points; 0 = off). Defaults 300 steps, prior 0, UDF 1:
            held-out synthetic IoU 0.552 -> 0.734 over 60 steps / prior 0.01 / no UDF, real
            meshes 0.152 -> 0.214.
        refine_init: where the point-cloud refinement starts: "points" (default: the encoding
            of the points' flood-fill SDF, ``point_sdf.points_to_sdf``, which fixes the
            inside/outside a data term cannot decide; no diffusion), "sample" (the
            point-conditioned diffusion sample, CFG ``guidance``) or "mean" (the mean latent,
            DeepSDF's zero-mean code prior). 300 steps, ``refine_udf=1``, the `medium` model:
            real meshes (out of domain) 0.756 / 0.214 / 0.341 IoU, held-out synthetic shapes
            0.725 / 0.734 / 0.649 (``benchmarks/results/shapes.md``, round 6).
        refine_points: points per cloud used by the fit and the "points" start (each cloud
            resampled to this many; None = ``n_points``, what the diffusion condition sees).
        min_component_fraction: ``sample`` drops connected components with less than this
            fraction of a mesh's surface area (``cleanup.remove_small_components``, MeshLab's
            "Remove Isolated pieces"; 0 = raw marching cubes output).
    """

    resolution: int = 64
    padding: float = 0.05
    truncation: float | None = 0.1
    watertight: str = "auto"
    wavelet: str = "bior6.8"
    levels: int = 2
    mode: str = "symmetric"
    latent_channels: int = 4
    latent_size: int = 14
    ae_width: int = 32
    unet_width: int = 64
    emb_dim: int = 128
    condition: str = "none"
    n_points: int = 512
    cond_drop: float = 0.1
    point_grid: bool = True
    sigma_data: float = 1.0
    P_mean: float = -1.2
    P_std: float = 1.2
    ae_steps: int = 2000
    ae_sdf_weight: float = 3.0
    ae_occupancy_weight: float = 1.0
    ae_kl_weight: float = 1e-3
    ae_grid_rows: int | None = 64
    ae_lr: float = 2e-3
    lr: float = 2e-4
    batch_size: int = 16
    sampler: str = "heun"
    num_steps: int = 8
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    guidance: float = 1.0
    refine_steps: int = 300
    refine_prior: float = 0.0
    refine_udf: float = 1.0
    refine_init: str = "points"
    refine_points: int | None = None
    decimate_to: int | None = None
    min_component_fraction: float = 0.01
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ConfigError`` for impossible values."""
        if self.condition not in ("none", "points"):
            raise ConfigError(f"condition must be 'none' or 'points', got {self.condition!r}")
        if self.resolution < 16:
            raise ConfigError(f"resolution must be >= 16, got {self.resolution}")
        if self.latent_size < 2 or self.latent_channels < 1:
            raise ConfigError("latent_size must be >= 2 and latent_channels >= 1")
        get_sampler(self.sampler)
        if self.refine_init not in ("sample", "mean", "points"):
            raise ConfigError("refine_init must be 'sample', 'mean' or 'points', got "
                              f"{self.refine_init!r}")
        if self.ae_grid_rows is not None and self.ae_grid_rows < 2:
            raise ConfigError(f"ae_grid_rows must be None or >= 2, got {self.ae_grid_rows}")
        if self.refine_points is not None and self.refine_points < 8:
            raise ConfigError(f"refine_points must be None or >= 8, got {self.refine_points}")
        if not 0.0 <= self.min_component_fraction < 1.0:
            raise ConfigError("min_component_fraction must be in [0, 1), got "
                              f"{self.min_component_fraction}")
