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
from dataclasses import asdict, fields
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
from .model_config import ShapeModelConfig
from .networks import LatentUNet3D, WaveletAutoencoder
from .points import normalize_points, resample_points
from .sdf import SDFConfig, cached_mesh_to_sdf, sdf_to_mesh

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)
KIND = "shapes/wala"


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
            occupancy_weight=c.ae_occupancy_weight, kl_weight=c.ae_kl_weight,
            grid_rows=c.ae_grid_rows)
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
