"""The shapes vertical: WaLa wavelet-latent diffusion (Sivaram et al. 2024), end to end.

``prepare`` loads meshes (a folder, or the embedded SYNTHETIC furniture family), splits off a
held-out set and caches TSDF grids; ``train`` fits the wavelet autoencoder and the latent
diffusion model (Lightning, resumable); ``sample`` draws unconditional shapes and, for a
point-cloud model, reconstructs every held-out shape from its surface points; ``evaluate``
computes MMD-CD / COV-CD / 1-NNA (PointFlow) against the held-out set and Chamfer / F-score /
normal consistency / IoU for the reconstructions; ``export`` writes meshes, previews and the report.
Stages live in ``shapes_prepare`` / ``shapes_evaluate`` / ``shapes_export`` (train and sample
here), settings in ``shapes_config``, run-directory helpers in ``shapes_io``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .registry import Command, Vertical
from .rundir import RunDir
from .shapes_config import DataConfig, EvalConfig, ExportConfig, SampleConfig, ShapesConfig
from .shapes_evaluate import evaluate
from .shapes_export import export
from .shapes_io import load_npz, marching_cubes, save_meshes, save_npz
from .shapes_prepare import prepare


def train(cfg: ShapesConfig, run: RunDir) -> None:
    """Fit the autoencoder then the latent diffusion (resumes from ``checkpoints/*/last.ckpt``)."""
    from shapes.model import ShapeModel

    data = load_npz(run.path / "data" / "train.npz", "prepare")
    t0 = time.perf_counter()
    model = ShapeModel(cfg.model).fit(data=data, trainer=cfg.trainer,
                                      checkpoint_dir=run.checkpoints)
    model.save(run.checkpoints / "model.pt")
    run.write_metrics({"seconds": round(time.perf_counter() - t0, 1),
                       "ae_steps": cfg.model.ae_steps, "diffusion_steps": cfg.trainer.max_steps},
                      section="train")


def sample(cfg: ShapesConfig, run: RunDir) -> None:
    """Unconditional samples, and point-cloud reconstructions of the held-out shapes."""
    from shapes.model import ShapeModel

    model = ShapeModel.load(run.checkpoints / "model.pt")
    s = cfg.sample
    t0 = time.perf_counter()
    z = model.sample_latents(s.n, None, s.seed, batch_size=s.batch_size)
    sdf = model.decode_sdf(z)
    meshes = [marching_cubes(g, cfg) for g in sdf]
    secs = (time.perf_counter() - t0) / max(s.n, 1)
    save_meshes(meshes, run.samples / "unconditional", [f"sample_{i:04d}" for i in range(s.n)])
    timing = {"seconds_per_mesh": round(secs, 3), "resolution": cfg.model.resolution,
              "sampler": cfg.model.sampler, "num_steps": cfg.model.num_steps}
    if s.conditional and cfg.model.condition == "points":
        hold = load_npz(run.path / "data" / "holdout.npz", "prepare")
        clouds = [p[: cfg.model.n_points] for p in hold["points"]]
        z = model.sample_latents(len(clouds), clouds, s.seed, guidance=s.guidance,
                                 batch_size=s.batch_size)
        grids = model.decode_sdf(z)
        save_npz(run.samples / "conditional_sdf.npz", sdf=grids.astype(np.float16))
        names = [Path(str(n)).stem for n in hold["names"]]
        save_meshes([marching_cubes(g, cfg) for g in grids], run.samples / "conditional",
                    names)
    run.write_metrics(timing, section="sampling")


def _commands() -> dict[str, Command]:
    commands: dict[str, Command] = {}
    try:
        from pipelines.shapes_reconstruct import RECONSTRUCT
    except ImportError:
        return commands
    commands["reconstruct"] = RECONSTRUCT
    return commands


VERTICAL = Vertical(
    name="shapes",
    description="WaLa wavelet-latent 3-D shape diffusion (unconditional and from point clouds)",
    config_cls=ShapesConfig,
    stages={"prepare": prepare, "train": train, "sample": sample, "evaluate": evaluate,
            "export": export},
    # 32^3 with ONE wavelet level (the dense part is then the whole tree: codec IoU 1.0) and a
    # 12^3 latent whose cells are 0.125 unit-cube wide, as WaLa's 12^3 latent at 256^3; with 2
    # levels a 10^3 latent has 0.25-wide cells, ~4^3 of them on the shape (held-out AE IoU 0.38)
    demo_overrides={"data.n_shapes": 36, "model.resolution": 32, "model.levels": 1,
                    "model.latent_size": 12, "model.ae_steps": 300, "model.ae_lr": 3e-3,
                    "model.ae_width": 16, "model.lr": 2e-3, "model.unet_width": 16,
                    "model.batch_size": 8, "trainer.max_steps": 300, "sample.n": 8,
                    "evaluate.n_points": 1024, "export.previews": 6},
    commands=_commands(),
)


__all__ = ["VERTICAL", "DataConfig", "SampleConfig", "EvalConfig", "ExportConfig",
           "ShapesConfig", "prepare", "train", "sample", "evaluate", "export"]
