"""The materials pipeline: UniMat crystal generation (Yang et al., ICLR 2024) with a DFT proxy.

``prepare`` loads crystals (a CDVAE CSV or a CIF folder via ``data.root``; by default the embedded
offline set of charge-balanced ionic prototypes, ``materials.prototypes``); ``train`` fits the
UniMat diffusion model (Lightning, resumable); ``sample`` draws unconditional candidates and CSP
candidates for ``sample.compositions``; ``evaluate`` scores validity, uniqueness, novelty, and
relaxes valid candidates with CHGNet for proxy energies above hull (self-consistent hull of the
training set, and the DFT-anchored MP-20 hull when ``evaluate.mp20_hull`` is given); ``export``
writes CIFs, unit-cell pictures and the report.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from common.errors import DataError
from common.io import atomic_write_json

from .materials_config import (
    DataConfig,
    EvaluateConfig,
    MaterialsConfig,
    ModelConfig,
    SampleConfig,
)
from .materials_evaluate import evaluate
from .materials_export import export
from .materials_runfiles import read_structures
from .materials_stable_set import stable_set_args, stable_set_cmd
from .registry import Command, Vertical
from .rundir import RunDir


def prepare(cfg: MaterialsConfig, run: RunDir) -> None:
    """Load or build the training crystals; write them to ``data/train.json``."""
    from materials.data import load_structures
    from materials.prototypes import prototype_structures

    if cfg.data.root:
        from materials.stable_set import stable_set_file

        structures, report = load_structures(stable_set_file(cfg.data.root), niggli=cfg.data.niggli,
                                             on_error=cfg.data.on_error,
                                             limit=cfg.data.max_structures)
        source, skipped = cfg.data.root, report.skipped
    else:
        structures = prototype_structures(cfg.data.max_per_prototype)[: cfg.data.max_structures]
        source, skipped = "embedded ionic prototypes (materials.prototypes)", []
    if not structures:
        raise DataError("no usable structure", file=source, expected="ordered crystals")
    atomic_write_json(run.path / "data" / "train.json", [s.as_dict() for s in structures])
    run.write_metrics({"source": source, "n_structures": len(structures),
                       "n_skipped": len(skipped), "skipped": skipped[:20]}, section="data")


def _generator(cfg: MaterialsConfig) -> Any:
    from materials.generator import CrystalGenerator, GeneratorConfig

    m, s = cfg.model, cfg.sample
    gcfg = GeneratorConfig(slots=m.slots, channels=m.channels, emb_dim=m.emb_dim, lr=m.lr,
                           batch_size=m.batch_size, p_uncond=m.p_uncond, sampler=s.sampler,
                           steps=s.steps, guidance=s.guidance)
    return CrystalGenerator(gcfg, trainer=cfg.trainer)


def train(cfg: MaterialsConfig, run: RunDir) -> None:
    """Fit UniMat (Lightning bar; resumes from ``checkpoints/last.ckpt``); save the generator."""
    from common.training import make_trainer

    from .fit import StepRecorder, fit_resumable

    structures = read_structures(run.path / "data" / "train.json")
    gen = _generator(cfg)
    module, loader = gen.training_objects(structures, cfg.trainer.seed)
    trainer = make_trainer(cfg.trainer, run.checkpoints, [StepRecorder()])
    t0 = time.perf_counter()
    info = fit_resumable(trainer, module, loader, run.checkpoints)
    if trainer.is_global_zero:
        gen.model.eval()
        gen.save(run.checkpoints / "generator.pt")
        run.write_metrics({**info, "train_seconds": round(time.perf_counter() - t0, 2),
                           "slots": gen.encoder.slots, "skipped_too_many_atoms":
                           len(gen.skipped)}, section="train")


def sample(cfg: MaterialsConfig, run: RunDir) -> None:
    """Unconditional candidates plus ``per_composition`` CSP candidates per composition."""
    from materials.generator import CrystalGenerator

    gen = CrystalGenerator.load(run.checkpoints / "generator.pt")
    gen.config.sampler, gen.config.steps = cfg.sample.sampler, cfg.sample.steps
    gen.config.guidance = cfg.sample.guidance
    gen.config.repulsion, gen.config.unconditional = cfg.sample.repulsion, cfg.sample.unconditional
    gen.config.element_count = cfg.sample.element_count
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for s in gen.sample(cfg.sample.num_samples, seed=cfg.sample.seed, return_invalid=True):
        rows.append({"mode": "unconditional", "target": "", "structure": s})
    skipped = []
    for comp in cfg.sample.compositions:
        try:
            cands = gen.sample(cfg.sample.per_composition, composition=comp,
                               seed=cfg.sample.seed, return_invalid=True)
        except DataError as exc:  # e.g. not charge-balanced or too many atoms for L
            skipped.append(str(exc))
            continue
        rows += [{"mode": "csp", "target": comp, "structure": s} for s in cands]
    if cfg.sample.substitution:
        rows += _substitution_rows(gen, cfg, read_structures(run.path / "data" / "train.json"))
    seconds = time.perf_counter() - t0
    atomic_write_json(run.samples / "candidates.json",
                      [{**r, "structure": None if r["structure"] is None else
                        r["structure"].as_dict()} for r in rows])
    run.write_metrics({"n_candidates": len(rows), "decoded": sum(r["structure"] is not None
                                                                 for r in rows),
                       "sample_seconds": round(seconds, 2), "csp_skipped": skipped},
                      section="sample")


def _substitution_rows(gen: Any, cfg: MaterialsConfig, train: list) -> list[dict[str, Any]]:
    """Composition-conditioned candidates: Hautier substitution compositions, CSP structures."""
    from materials.stable_compositions import generate_for_compositions, substitution_compositions

    palette = sorted({e.symbol for s in train for e in s.composition.elements})
    comps = substitution_compositions(train, cfg.sample.substitution, cfg.sample.seed, palette)
    comps = [c for c in comps if c is not None]  # proposals ran out: fewer rows
    structs = generate_for_compositions(gen, comps, seed=cfg.sample.seed)
    return [{"mode": "substitution_csp", "target": c.formula.replace(" ", ""), "structure": s}
            for c, s in zip(comps, structs)]


VERTICAL = Vertical(
    name="materials",
    description="UniMat crystal generation (free and CSP) with CHGNet proxy stability metrics",
    config_cls=MaterialsConfig,
    stages={"prepare": prepare, "train": train, "sample": sample, "evaluate": evaluate,
            "export": export},
    demo_overrides={"trainer.max_steps": 60, "trainer.ema_decay": None,
                    "data.max_per_prototype": 3, "model.channels": 16, "model.emb_dim": 64,
                    "model.batch_size": 32, "sample.num_samples": 8,
                    "sample.compositions": ["SrTiO3"], "sample.per_composition": 2,
                    "sample.steps": 12, "evaluate.relax_steps": 30, "evaluate.max_relax": 4,
                    "evaluate.element_steps": 25},
    commands={"build-stable-set": Command(
        help="build the proxy-stable training set (decorated prototypes, CHGNet-relaxed, "
             "DFT-anchored proxy E_hull below a threshold) as a CDVAE CSV",
        add_arguments=stable_set_args, handler=stable_set_cmd)},
)

__all__ = ["VERTICAL", "DataConfig", "EvaluateConfig", "MaterialsConfig", "ModelConfig",
           "SampleConfig", "asdict", "evaluate", "export", "prepare", "sample", "train"]
