"""``ShapeModel``: WaLa's pipeline (Sivaram et al. 2024, Fig. 2) on the shared diffusion core.

mesh -> TSDF (``sdf``) -> wavelet tree (``wavelet``) -> dense part -> autoencoder latent
(``networks.WaveletAutoencoder``) -> EDM latent diffusion (``common.denoiser.Preconditioned``
around ``networks.LatentUNet3D``, trained with ``common.training``) and back: latent -> dense
part -> inverse DWT -> SDF -> marching cubes. Sampling uses the core's samplers with few steps
and classifier-free guidance (``common.guidance.classifier_free``) on a point-cloud condition;
a point-cloud sample is then fitted to its points (``refine.refine_latents``, DeepSDF Eq. 10).
The autoencoder is variational with a light KL (``ae_kl_weight``), so the latent is near unit
scale before its scalar standardisation.
The finer wavelet details are not generated (WaLa's coarse-band setting); the codec's
``top_k=0`` reconstruction measures what that costs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from common.denoiser import Preconditioned
from common.errors import ConfigError, DataError
from common.guidance import classifier_free
from common.io import load_checkpoint, save_checkpoint
from common.noise import sigmas_karras
from common.samplers import get_sampler
from common.seeds import randn, sample_generators
from common.training import TrainerConfig

from . import wavelet as wt
from .mesh_io import load_mesh_dir, normalize_to_unit_cube, validate_mesh
from .metrics import sample_surface
from .networks import LatentUNet3D, WaveletAutoencoder
from .sdf import SDFConfig, cached_mesh_to_sdf, sdf_to_mesh

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)
KIND = "shapes/wala"


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
        if self.refine_points is not None and self.refine_points < 8:
            raise ConfigError(f"refine_points must be None or >= 8, got {self.refine_points}")
        if not 0.0 <= self.min_component_fraction < 1.0:
            raise ConfigError("min_component_fraction must be in [0, 1), got "
                              f"{self.min_component_fraction}")


def normalize_points(points: np.ndarray, padding: float, name: str = "condition") -> np.ndarray:
    """Map a point cloud into the unit cube the way meshes are (bounding box, ``padding``)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 8:
        raise DataError(f"point cloud of shape {p.shape}", file=name, field="points",
                        expected="an [N, 3] array with N >= 8")
    if not np.isfinite(p).all():
        raise DataError("point cloud holds NaN or infinite values", file=name, field="points",
                        expected="finite coordinates")
    lo, hi = p.min(0), p.max(0)
    if (hi - lo).max() <= 0:
        raise DataError("all points coincide", file=name, field="points",
                        expected="a point cloud with non-zero extent")
    return (p - (lo + hi) / 2) * ((1 - 2 * padding) / (hi - lo).max())


def resample_points(points: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Exactly ``n`` points: a random subset, or repeats when there are fewer."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(points), n, replace=len(points) < n)
    return points[idx]


class ShapeModel:
    """Generate 3-D meshes with wavelet-latent diffusion (WaLa): ``fit`` / ``sample`` / ``save``.

    Example:
        >>> model = ShapeModel(resolution=32, condition="points").fit("my_meshes/")
        >>> meshes = model.sample(4, seed=0)                        # unconditional
        >>> mesh = model.sample(1, condition=points_n_by_3)[0]      # from a point cloud
    """

    def __init__(self, config: ShapeModelConfig | None = None, **overrides: Any) -> None:
        cfg = config or ShapeModelConfig()
        names = {f.name for f in fields(ShapeModelConfig)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown ShapeModel settings {sorted(unknown)}; valid: "
                              f"{', '.join(sorted(names))}")
        self.config = ShapeModelConfig(**{**asdict(cfg), **overrides})
        self.config.validate()
        c = self.config
        self.codec = wt.WaveletConfig(c.wavelet, c.levels, c.mode, top_k=0)
        dshape = wt.dense_shape(c.resolution, self.codec)
        lo, hi = wt.synthesis_matrices(c.resolution, self.codec)
        self.autoencoder = WaveletAutoencoder(
            dshape[0], dshape[1], c.latent_channels, c.latent_size, c.ae_width,
            synthesis=(torch.from_numpy(lo), torch.from_numpy(hi)), sdf_weight=c.ae_sdf_weight,
            sdf_scale=c.truncation or 0.1, surface_band=1.5 / c.resolution,
            occupancy_weight=c.ae_occupancy_weight, kl_weight=c.ae_kl_weight)
        backbone = LatentUNet3D(c.latent_channels, c.unet_width, c.emb_dim, c.condition,
                                c.cond_drop, self.latent_frame() if c.point_grid else None)
        self.denoiser = Preconditioned(backbone, c.sigma_data, c.P_mean, c.P_std)
        self.latent_mean, self.latent_std = 0.0, 1.0
        self.load_errors: dict[str, str] = {}
        self.sdf_info: dict[str, dict] = {}
        self.fitted = False

    def latent_frame(self) -> tuple[float, float]:
        """(origin, cell): latent cell k spans ``origin + cell * [k, k + 1)`` in unit-cube units.

        A dense-part coefficient stands for ``2^levels`` voxels, centred on the grid's centre;
        the autoencoder pads the dense part by ``lo`` and groups ``patch`` coefficients per cell.
        """
        ae, c = self.autoencoder, self.config
        step = 2 ** c.levels / c.resolution
        lo = (ae.padded - ae.dense_size) // 2
        return -(ae.dense_size / 2 + lo) * step, ae.patch * step

    # data ------------------------------------------------------------------------------------
    def sdf_config(self) -> SDFConfig:
        c = self.config
        return SDFConfig(c.resolution, c.padding, c.truncation, c.watertight)

    def load_meshes(self, meshes: Any) -> dict[str, trimesh.Trimesh]:
        """A folder, a name -> mesh mapping or a list of meshes, validated (bad ones reported)."""
        if isinstance(meshes, (str, Path)):
            good, self.load_errors = load_mesh_dir(meshes)
        else:
            items = meshes.items() if isinstance(meshes, Mapping) else \
                ((f"mesh_{i:04d}", m) for i, m in enumerate(meshes))
            good, self.load_errors = {}, {}
            for name, mesh in items:
                try:
                    good[name] = validate_mesh(mesh, name)
                except DataError as exc:
                    self.load_errors[name] = str(exc)
        if not good:
            raise DataError(f"no usable mesh ({len(self.load_errors)} rejected: "
                            f"{list(self.load_errors.values())[:3]})", file=str(meshes)[:200],
                            expected="at least one valid mesh")
        return good

    def dense_parts(self, sdfs: Sequence[np.ndarray]) -> torch.Tensor:
        """Dense wavelet parts [N, 8, C, C, C] of TSDF grids."""
        return torch.from_numpy(np.stack([wt.encode(s, self.codec).dense for s in sdfs]))

    def surface_points(self, mesh: trimesh.Trimesh, n: int, seed: int) -> np.ndarray:
        """``n`` surface points in the model's unit-cube frame (via ``normalize_points``)."""
        pts, _ = sample_surface(mesh, n, seed)
        return normalize_points(pts, self.config.padding).astype(np.float32)

    def prepare(self, meshes: Any, cache_dir: str | Path | None = None, progress: bool = True
                ) -> dict[str, Any]:
        """Meshes -> {"names", "sdf" [N,R,R,R], "points" [N, 4 n_points, 3]} (SDFs cached)."""
        from tqdm.auto import tqdm

        good = self.load_meshes(meshes)
        names, sdfs, points = [], [], []
        for name, mesh in tqdm(good.items(), desc="SDF grids", disable=not progress):
            try:  # one mesh whose SDF fails (or has no inside) never stops the others
                sdf, info = cached_mesh_to_sdf(mesh, self.sdf_config(), cache_dir)
                if not sdf.min() < 0 < sdf.max():
                    raise DataError("its TSDF has no inside (or no outside) on the "
                                    f"{self.config.resolution}^3 grid", file=name, field="faces",
                                    expected="a closed volume larger than a grid cell")
            except Exception as exc:  # noqa: BLE001 - reported per file, like load errors
                err = exc if isinstance(exc, DataError) else DataError(
                    f"SDF failed ({type(exc).__name__}: {exc})"[:300], file=name)
                self.load_errors[name] = str(err)
                log.warning("skipped %s", err)
                continue
            self.sdf_info[name] = info
            names.append(name)
            sdfs.append(sdf)
            points.append(self.surface_points(mesh, 4 * self.config.n_points, len(names)))
        if not names:
            raise DataError(f"no usable mesh ({len(self.load_errors)} rejected: "
                            f"{list(self.load_errors.values())[:3]})", file=str(meshes)[:200],
                            expected="at least one mesh with a valid SDF")
        return {"names": names, "sdf": np.stack(sdfs), "points": np.stack(points)}

    # training --------------------------------------------------------------------------------
    def fit(self, meshes: Any = None, *, data: dict[str, Any] | None = None,
            trainer: TrainerConfig | None = None, checkpoint_dir: str | Path | None = None,
            cache_dir: str | Path | None = None) -> ShapeModel:
        """Train the autoencoder, then the latent diffusion model.

        Args:
            meshes: a folder of meshes, a name -> Trimesh mapping or a list (or pass ``data``).
            data: the output of ``prepare`` (skips mesh loading and SDFs).
            trainer: Lightning settings; ``max_steps`` is the diffusion's step budget.
            checkpoint_dir: where ``autoencoder/last.ckpt`` and ``diffusion/last.ckpt`` go; an
                interrupted fit resumes from them.
            cache_dir: SDF cache folder.
        """
        from .training import train_autoencoder, train_diffusion

        if data is None:
            if meshes is None:
                raise ConfigError("fit needs meshes or prepared data")
            data = self.prepare(meshes, cache_dir)
        trainer = trainer or TrainerConfig()
        dense = self.dense_parts(data["sdf"])
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
        ae_file = None if ckpt is None else ckpt / "autoencoder.pt"
        if ae_file is not None and ae_file.is_file():  # resumed fit: the AE stage is done
            state = load_checkpoint(ae_file, KIND + "/autoencoder")
            self.autoencoder.load_state_dict(state["autoencoder"])
            self.latent_mean, self.latent_std = state["latent_mean"], state["latent_std"]
            log.info("%s: autoencoder already trained; resuming the diffusion stage", ae_file)
        else:
            train_autoencoder(self, dense, trainer, None if ckpt is None else ckpt / "autoencoder")
            if ae_file is not None:
                save_checkpoint(ae_file, KIND + "/autoencoder", {
                    "autoencoder": self.autoencoder.state_dict(),
                    "latent_mean": float(self.latent_mean), "latent_std": float(self.latent_std)})
        train_diffusion(self, dense, torch.from_numpy(data["points"]), trainer,
                        None if ckpt is None else ckpt / "diffusion")
        self.fitted = True
        return self

    # latent <-> mesh -------------------------------------------------------------------------
    @torch.no_grad()
    def latents_from_dense(self, dense: torch.Tensor) -> torch.Tensor:
        """Standardised latents of dense wavelet parts (the diffusion's data space)."""
        self.autoencoder.eval()
        z = self.autoencoder.encode(self.autoencoder.standardize(dense))
        return (z - self.latent_mean) / self.latent_std

    @torch.no_grad()
    def dense_from_latents(self, z: torch.Tensor) -> torch.Tensor:
        self.autoencoder.eval()
        return self.autoencoder.unstandardize(
            self.autoencoder.decode(z * self.latent_std + self.latent_mean))

    def encode(self, mesh: trimesh.Trimesh) -> torch.Tensor:
        """A mesh's standardised latent grid [latent_channels, L, L, L]."""
        mesh = validate_mesh(mesh, mesh.metadata.get("source", "<mesh>"))
        sdf, _ = cached_mesh_to_sdf(mesh, self.sdf_config(), None)
        return self.latents_from_dense(self.dense_parts([sdf]))[0]

    def latents_from_points(self, points: torch.Tensor) -> torch.Tensor:
        """Standardised latents of the flood-fill SDF estimates of point clouds [B, N, 3].

        ``point_sdf.points_to_sdf`` (unsigned distance + flood-fill sign, no normals) on the
        model's grid, then the encoder: the start of ``refine_init="points"``.
        """
        from .point_sdf import points_to_sdf

        c = self.config
        sdfs = [points_to_sdf(p.numpy(), c.resolution, c.truncation)[0] for p in points]
        return self.latents_from_dense(self.dense_parts(sdfs)).float()

    def decode_sdf(self, latent: torch.Tensor) -> np.ndarray:
        """Latent(s) -> TSDF grid(s) via the dense wavelet part and the inverse DWT."""
        z = latent if latent.ndim == 5 else latent[None]
        dense = self.dense_from_latents(z.float()).numpy()
        res = self.config.resolution
        return np.stack([wt.decode(wt.tree_from_dense(d, res, self.codec)) for d in dense])

    def decode(self, latent: torch.Tensor) -> trimesh.Trimesh:
        """A latent grid [c, L, L, L] -> a mesh in unit-cube coordinates (marching cubes)."""
        return sdf_to_mesh(self.decode_sdf(latent)[0], decimate_to=self.config.decimate_to)

    # sampling --------------------------------------------------------------------------------
    def _condition_batch(self, condition: Any, n: int, n_points: int | None = None
                         ) -> torch.Tensor | None:
        """[n, n_points (default: the config's), 3] normalised clouds from a condition."""
        if condition is None:
            return None
        if self.config.condition != "points":
            raise ConfigError("this model was trained without a condition (condition='none')")
        if hasattr(condition, "faces"):  # a mesh: use its surface points
            condition = sample_surface(condition, 4 * max(self.config.n_points,
                                                          n_points or 0), 0)[0]
        clouds = [condition] if isinstance(condition, np.ndarray) and condition.ndim == 2 \
            else list(condition)
        if len(clouds) == 1:
            clouds = clouds * n
        if len(clouds) != n:
            raise DataError(f"{len(clouds)} point clouds for {n} samples", field="condition",
                            expected="one point cloud, or one per sample")
        out = [resample_points(normalize_points(c, self.config.padding, f"condition[{i}]"),
                               n_points or self.config.n_points, i)
               for i, c in enumerate(clouds)]
        return torch.from_numpy(np.stack(out)).float()

    @torch.no_grad()
    def sample_latents(self, n: int, condition: Any = None, seed: int | None = None, *,
                       guidance: float | None = None, num_steps: int | None = None,
                       sampler: str | None = None, batch_size: int = 16,
                       progress: bool = True) -> torch.Tensor:
        """``n`` standardised latents; sample i uses seed ``seed + i`` whatever the batch size."""
        from tqdm.auto import tqdm

        c = self.config
        seed = 0 if seed is None else int(seed)
        cond = self._condition_batch(condition, n)
        fit_pts = cond if cond is None or not c.refine_points else \
            self._condition_batch(condition, n, c.refine_points)
        w = c.guidance if guidance is None else float(guidance)
        denoise = self.denoiser.eval()
        if cond is not None and w != 1.0:
            denoise = classifier_free(self.denoiser, w, uncond=None)
        sigmas = sigmas_karras(num_steps or c.num_steps, c.sigma_min, c.sigma_max, c.rho).float()
        fn = get_sampler(sampler or c.sampler)
        shape = (c.latent_channels,) + (c.latent_size,) * 3
        out = []
        n_steps = len(sigmas) - 1
        with tqdm(total=n_steps * ((n + batch_size - 1) // batch_size), disable=not progress,
                  desc=f"sampling {n} latents ({fn.__name__}, {n_steps} steps)") as bar:
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                gens = sample_generators(range(seed + start, seed + stop))
                x = randn((stop - start, *shape), gens) * float(sigmas[0])
                cb = None if cond is None else cond[start:stop]
                if cb is not None and c.refine_steps > 0 and c.refine_init != "sample":
                    # fit from the mean latent, or from the encoding of the points' flood-fill
                    # SDF: no diffusion sample
                    z = torch.zeros_like(x) if c.refine_init == "mean" else \
                        self.latents_from_points(fit_pts[start:stop])
                    bar.update(n_steps)
                else:
                    z = fn(denoise, x, sigmas, cond=cb, generator=gens,
                           callback=lambda info: bar.update(1))
                if cb is not None and c.refine_steps > 0:
                    from .refine import refine_latents

                    z = refine_latents(self, z, fit_pts[start:stop], c.refine_steps,
                                       prior_weight=c.refine_prior,
                                       udf_weight=c.refine_udf)
                out.append(z)
        return torch.cat(out)

    def sample(self, n: int, condition: Any = None, seed: int | None = None, *,
               min_component_fraction: float | None = None, **kwargs: Any
               ) -> list[trimesh.Trimesh]:
        """Generate ``n`` meshes (unit-cube coordinates).

        Args:
            n: number of shapes.
            condition: None, an [N, 3] point cloud (any frame; normalised by its bounding box),
                a list of clouds (one per sample) or a mesh (its surface points).
            seed: sample i uses seed ``seed + i``.
            min_component_fraction: drop components below this share of the surface area
                (default: the config's; 0 returns the raw marching cubes meshes).
            **kwargs: ``guidance``, ``num_steps``, ``sampler``, ``batch_size``, ``progress``.
        """
        if not self.fitted:
            raise ConfigError("ShapeModel.sample before fit/load")
        frac = self.config.min_component_fraction if min_component_fraction is None \
            else float(min_component_fraction)
        z = self.sample_latents(n, condition, seed, **kwargs)
        dec = self.config.decimate_to
        return [self.clean(sdf_to_mesh(s, decimate_to=dec), frac) for s in self.decode_sdf(z)]

    def clean(self, mesh: trimesh.Trimesh, min_fraction: float | None = None) -> trimesh.Trimesh:
        """``mesh`` without components below ``min_fraction`` of its area (default: config)."""
        from .cleanup import remove_small_components

        frac = self.config.min_component_fraction if min_fraction is None else min_fraction
        return mesh if frac <= 0 else remove_small_components(mesh, frac)[0]

    # persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomically save config and weights (``common.io.save_checkpoint``)."""
        return save_checkpoint(path, KIND, {
            "config": asdict(self.config), "autoencoder": self.autoencoder.state_dict(),
            "denoiser": self.denoiser.state_dict(), "latent_mean": float(self.latent_mean),
            "latent_std": float(self.latent_std), "fitted": self.fitted})

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        """Load a model saved by ``save`` (``weights_only=True``)."""
        state = load_checkpoint(path, KIND)
        model = cls(ShapeModelConfig(**state["config"]))
        model.autoencoder.load_state_dict(state["autoencoder"])
        model.denoiser.load_state_dict(state["denoiser"])
        model.latent_mean, model.latent_std = state["latent_mean"], state["latent_std"]
        model.fitted = bool(state["fitted"])
        return model


def unit_cube_mesh(mesh: trimesh.Trimesh, padding: float) -> trimesh.Trimesh:
    """``mesh`` normalised the way the model sees training shapes."""
    return normalize_to_unit_cube(mesh, padding)[0]


__all__ = ["ShapeModel", "ShapeModelConfig", "normalize_points", "resample_points",
           "unit_cube_mesh"]
