"""Typed configuration of the materials pipeline (``genpipes materials ... --set key=value``).

One dataclass per stage group (data, model, sample, evaluate) plus Lightning's ``TrainerConfig``;
the UniMat settings (Yang et al., ICLR 2024) map onto ``materials.generator.GeneratorConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.training import TrainerConfig


@dataclass
class DataConfig:
    # CDVAE CSV (.csv/.csv.gz), a folder of CIFs or a build-stable-set folder; None = embedded set
    root: str | None = None
    max_structures: int | None = None
    max_per_prototype: int | None = 6  # embedded set only: decorations per prototype
    niggli: bool = True
    on_error: str = "skip"  # skip (counted, reasons in metrics.json) or raise


@dataclass
class ModelConfig:
    slots: int | None = None  # L; None = from the data
    channels: int = 32
    emb_dim: int = 128
    lr: float = 5e-4
    batch_size: int = 64
    p_uncond: float = 0.2


@dataclass
class SampleConfig:
    num_samples: int = 32  # unconditional candidates
    compositions: list = field(default_factory=lambda: ["SrTiO3", "KMgF3"])  # CSP targets
    per_composition: int = 4
    # composition-conditioned mode (materials.stable_compositions): this many candidates whose
    # compositions are Hautier ion substitutions of the training structures (novel formulas,
    # charge-balanced, trained elements only) and whose structures come from UniMat's CSP mode;
    # a different mode from unconditional sampling (rows labelled "substitution_csp"); 0 = off
    substitution: int = 0
    sampler: str = "heun"
    steps: int = 40
    guidance: float = 1.0  # classifier-free guidance weight for CSP
    repulsion: float = 10.0  # pair-repulsion guidance scale when the occupancy is known; 0 = off
    unconditional: str = "two_stage"  # or "joint" (one draw, its own coordinates)
    # "data": number of distinct elements from the training p(k | N) (materials.composition);
    # "free": the N most occupied slots of any cells
    element_count: str = "data"
    seed: int = 0


@dataclass
class EvaluateConfig:
    relax: bool = True
    fmax: float = 0.1
    relax_steps: int = 200
    max_relax: int | None = None  # relax at most this many valid candidates (in order); None = all
    executor: str = "local"  # local or dask
    workers: int = 1
    mp20_hull: str | None = None  # mp20_hull folder/parquet: enables the DFT-anchored proxy
    reference_energies: str = "single_point"  # self-consistent hull refs: single_point or relax
    element_steps: int = 150  # FIRE steps for the elemental reference crystals (cached on disk)
    # composition sanity rule before relaxation (materials.stable_screen): "none", or "ionic"
    # (SMACT neutrality + Pauling order on ICSD-common oxidation states; failures not relaxed)
    screen: str = "none"


@dataclass
class MaterialsConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=2000))
