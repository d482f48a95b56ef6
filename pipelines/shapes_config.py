"""Typed settings of `genpipes shapes` (WaLa): data, sampling, evaluation, export, model."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.training import TrainerConfig
from shapes.model_config import ShapeModelConfig


@dataclass
class DataConfig:
    """Where shapes come from: ``root`` (a folder of OBJ/PLY/STL/OFF/GLB) or the synthetic family.

    ``holdout`` shapes (a fraction, at least 2) never reach training: they are the reference set
    of the generation metrics and the inputs of the point-cloud reconstructions.
    """

    root: str | None = None
    dataset: str = "synthetic"  # without root: synthetic, modelnet10 or modelnet40 (downloaded)
    modelnet_classes: list[str] | None = None  # e.g. [chair, table]; all when null
    modelnet_limit: int | None = 100  # at most this many training meshes per class
    n_shapes: int = 96  # synthetic family size (ignored with root)
    categories: list[str] = field(default_factory=lambda: ["table", "chair", "stool", "shelf"])
    holdout: float = 0.2
    seed: int = 0
    cache_dir: str | None = None  # SDF cache; default <run>/cache/sdf


@dataclass
class SampleConfig:
    n: int = 32
    seed: int = 0
    # classifier-free guidance weight for point-cloud conditions; used when the point-cloud fit
    # starts from a diffusion sample (model.refine_init="sample"; the default "points" starts
    # from the points' flood-fill SDF)
    guidance: float = 2.0
    batch_size: int = 16
    conditional: bool = True  # reconstruct held-out shapes from points (condition="points")


@dataclass
class EvalConfig:
    n_points: int = 2048  # surface points per shape for Chamfer-based metrics
    fscore_threshold: float = 0.02  # in unit-cube units (longest side 1 - 2 padding)


@dataclass
class ExportConfig:
    formats: list[str] = field(default_factory=lambda: ["obj", "glb"])  # any of obj ply stl glb
    previews: int = 8  # shapes per preview grid
    mesh_previews: bool = True  # also a <name>.png (four views) next to every exported mesh
    # meshes/<group>/ holds the cleaned meshes (model.min_component_fraction: components below
    # that share of the surface area dropped); raw=True also writes the marching cubes output
    # as it came to meshes/<group>_raw/ (samples/<group>/*.ply always keeps it)
    raw: bool = True


@dataclass
class ShapesConfig:
    data: DataConfig = field(default_factory=DataConfig)
    # one model serves unconditional sampling and point clouds: half of its training examples
    # are unconditional (the null condition), not 10 % as for a conditional-only model
    model: ShapeModelConfig = field(default_factory=lambda: ShapeModelConfig(
        resolution=64, condition="points", cond_drop=0.5))
    sample: SampleConfig = field(default_factory=SampleConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=4000))


__all__ = ["DataConfig", "SampleConfig", "EvalConfig", "ExportConfig", "ShapesConfig"]
