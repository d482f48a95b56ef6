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

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import DataError
from common.io import atomic_write_json, atomic_write_text
from common.training import TrainerConfig

from .registry import Command, Vertical
from .rundir import RunDir


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


def _read_structures(path: Any) -> list[Any]:
    from pymatgen.core import Structure

    if not path.is_file():
        raise DataError("missing; run the earlier stage first", file=path)
    return [None if d is None else Structure.from_dict(d) for d in json.loads(path.read_text())]


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

    structures = _read_structures(run.path / "data" / "train.json")
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
    seconds = time.perf_counter() - t0
    atomic_write_json(run.samples / "candidates.json",
                      [{**r, "structure": None if r["structure"] is None else
                        r["structure"].as_dict()} for r in rows])
    run.write_metrics({"n_candidates": len(rows), "decoded": sum(r["structure"] is not None
                                                                 for r in rows),
                       "sample_seconds": round(seconds, 2), "csp_skipped": skipped},
                      section="sample")


def _load_candidates(run: RunDir) -> list[dict[str, Any]]:
    from pymatgen.core import Structure

    f = run.samples / "candidates.json"
    if not f.is_file():
        raise DataError("missing; run `genpipes materials sample` first", file=f)
    rows = json.loads(f.read_text())
    for r in rows:
        r["structure"] = None if r["structure"] is None else Structure.from_dict(r["structure"])
    return rows


def evaluate(cfg: MaterialsConfig, run: RunDir) -> None:
    """Validity, uniqueness, novelty, CHGNet relaxation and proxy E_hull; candidates.csv."""
    from common.executor import get_executor
    from materials import metrics as M
    from materials.baselines import spacegroup_label
    from materials.stability import (
        DFTHull,
        ElementalReferences,
        RelaxConfig,
        SelfConsistentHull,
        _chgnet,
        relax_many,
        stability_summary,
    )
    from materials.stable_screen import screen

    train_set = _read_structures(run.path / "data" / "train.json")
    rows = _load_candidates(run)
    structs = [r["structure"] for r in rows]
    val = M.validity(structs)
    passes = screen(structs, cfg.evaluate.screen)
    idx = [i for i, s in enumerate(structs) if s is not None]
    decoded = [structs[i] for i in idx]
    uniq = dict(zip(idx, M.uniqueness(decoded)))
    nov = dict(zip(idx, M.novelty(decoded, train_set)))
    relax_cfg = RelaxConfig(fmax=cfg.evaluate.fmax, steps=cfg.evaluate.relax_steps)
    to_relax = [i for i in idx if val["valid"][i] and passes[i]] if cfg.evaluate.relax else []
    if cfg.evaluate.max_relax is not None:
        to_relax = to_relax[: cfg.evaluate.max_relax]
    t0 = time.perf_counter()
    with get_executor(cfg.evaluate.executor, n_workers=cfg.evaluate.workers) as ex:
        relaxed = dict(zip(to_relax, relax_many([structs[i] for i in to_relax], relax_cfg, ex)))
    relax_seconds = time.perf_counter() - t0
    refs = ElementalReferences(relax=RelaxConfig(fmax=0.1, steps=cfg.evaluate.element_steps))
    if cfg.evaluate.reference_energies == "relax":
        self_hull = SelfConsistentHull.from_structures(train_set, relax_cfg, refs=refs)
    else:  # single-point CHGNet energies of the training structures
        preds = _chgnet().predict_structure(train_set, task="e", batch_size=16)
        self_hull = SelfConsistentHull([(s.composition, float(p["e"]))
                                        for s, p in zip(train_set, preds)], refs)
    dft_hull = DFTHull.from_file(cfg.evaluate.mp20_hull, refs) if cfg.evaluate.mp20_hull else None
    table = []
    for i, r in enumerate(rows):
        s = r["structure"]
        rel = relaxed.get(i)
        e = rel["energy_per_atom"] if rel else float("nan")
        final = rel["structure"] if rel else s
        e_self = self_hull.e_above_hull(final.composition, e) if rel else float("nan")
        e_dft = dft_hull.e_above_hull(final.composition, e) if rel and dft_hull else float("nan")
        table.append({
            "id": i, "mode": r["mode"], "target": r["target"],
            "formula": "" if s is None else s.composition.reduced_formula,
            "spacegroup": "" if final is None else spacegroup_label(final),
            "n_atoms": 0 if s is None else len(s), "decoded": s is not None,
            "struct_valid": val["struct_valid"][i], "comp_valid": val["comp_valid"][i],
            "valid": val["valid"][i], "unique": uniq.get(i, False), "novel": nov.get(i, False),
            "passes_screen": passes[i], "energy_per_atom_chgnet": e, "proxy_e_hull_self": e_self,
            "proxy_e_hull_mp20": e_dft, "relax_steps": rel["steps"] if rel else 0,
        })
        if rel:
            rows[i]["relaxed"] = final
    _write_csv(run, table)
    atomic_write_json(run.samples / "relaxed.json", {str(i): rows[i]["relaxed"].as_dict()
                                                     for i in relaxed})
    n = len(rows)
    uncond = [t for t in table if t["mode"] == "unconditional"]
    csp = [t for t in table if t["mode"] == "csp"]
    metrics: dict[str, Any] = {
        "n_candidates": n,
        "unconditional": _rates(uncond), "csp": _rates(csp),
        "csp_composition_match": sum(bool(t["formula"]) and _same_formula(t["formula"], t["target"])
                                     for t in csp) / max(len(csp), 1),
        "relaxations": len(to_relax), "relax_seconds": round(relax_seconds, 2),
        f"valid_screened_out (evaluate.screen={cfg.evaluate.screen})": sum(
            v and not p for v, p in zip(val["valid"], passes)),
        "valid_not_relaxed (evaluate.max_relax)": sum(val["valid"]) - len(to_relax)
        if cfg.evaluate.relax else 0,
        "relaxations_per_minute": round(60 * len(to_relax) / max(relax_seconds, 1e-9), 2),
        "property_distances_vs_train (valid candidates)": M.property_distances(
            [structs[i] for i in idx if val["valid"][i]], train_set),
    }
    for key, label in (("proxy_e_hull_self", "self-consistent CHGNet hull of the training set"),
                       ("proxy_e_hull_mp20", "DFT-anchored MP-20 hull (CHGNet formation energy)")):
        if key == "proxy_e_hull_mp20" and dft_hull is None:
            continue
        metrics[key] = stability_summary([t[key] for t in table], [t["unique"] for t in table],
                                         [t["novel"] for t in table],
                                         [t["valid"] for t in table], label)
    run.write_metrics(metrics, section="evaluate")


def _same_formula(a: str, b: str) -> bool:
    from pymatgen.core import Composition

    return Composition(a).reduced_formula == Composition(b).reduced_formula


def _rates(table: list[dict[str, Any]]) -> dict[str, Any]:
    n = max(len(table), 1)
    return {k: sum(bool(t[k]) for t in table) / n
            for k in ("decoded", "struct_valid", "comp_valid", "valid", "unique", "novel")} | {
        "n": len(table)}


def _write_csv(run: RunDir, table: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]) if table else ["id"])
    w.writeheader()
    for t in table:
        w.writerow({k: (round(v, 5) if isinstance(v, float) and math.isfinite(v) else v)
                    for k, v in t.items()})
    atomic_write_text(run.path / "candidates.csv", buf.getvalue())


def export(cfg: MaterialsConfig, run: RunDir) -> None:
    """CIFs of every decoded (and relaxed) candidate, unit-cell pictures, histogram, report."""
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifWriter

    from materials.plots import plot_ehull_histogram, plot_unit_cells

    rows = _load_candidates(run)
    relaxed_f = run.samples / "relaxed.json"
    relaxed = json.loads(relaxed_f.read_text()) if relaxed_f.is_file() else {}
    cif_dir = run.samples / "cif"
    for i, r in enumerate(rows):
        if r["structure"] is None:
            continue
        tag = f"{i:04d}_{r['mode']}_{r['structure'].composition.reduced_formula[:40]}"
        atomic_write_text(cif_dir / f"{tag}.cif", str(CifWriter(r["structure"])))
        if str(i) in relaxed:
            atomic_write_text(cif_dir / f"{tag}_relaxed.cif",
                              str(CifWriter(Structure.from_dict(relaxed[str(i)]))))
    table = list(csv.DictReader((run.path / "candidates.csv").open()))
    shown = [int(t["id"]) for t in table if t["valid"] == "True"][:8]
    shown = shown or [i for i, r in enumerate(rows) if r["structure"] is not None][:8]
    images = []
    if shown:
        images.append(plot_unit_cells([rows[i]["structure"] for i in shown],
                                      run.plots / "unit_cells.png",
                                      [f"#{i} {rows[i]['structure'].composition.reduced_formula}"
                                       f" ({rows[i]['mode']})" for i in shown]))
    series = {"self-consistent hull": [_f(t["proxy_e_hull_self"]) for t in table]}
    if any(math.isfinite(_f(t["proxy_e_hull_mp20"])) for t in table):
        series["MP-20 DFT-anchored hull"] = [_f(t["proxy_e_hull_mp20"]) for t in table]
    images.append(plot_ehull_histogram(series, run.plots / "proxy_e_hull_hist.png"))
    ev = run.metrics().get("evaluate", {})
    lines = ["UniMat diffusion over the periodic-table tensor; energies are CHGNet **proxy** "
             "energies, not DFT.", "",
             f"- candidates: {ev.get('n_candidates')}; CIFs in `samples/cif/`; one row per "
             "candidate in `candidates.csv`",
             f"- unconditional: {json.dumps(ev.get('unconditional'))}",
             f"- CSP: {json.dumps(ev.get('csp'))}"]
    for key in ("proxy_e_hull_self", "proxy_e_hull_mp20"):
        if key in ev:
            e = ev[key]
            lines.append(f"- {key} ({e['hull']}): median {e['median_e_hull']:.3f} eV/atom; "
                         f"stable {e['stable']}, metastable {e['metastable']}, S.U.N. {e['sun']}")
    run.add_report("Materials: generated crystals", "\n".join(lines), images)


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _stable_set_args(p: Any) -> None:
    from materials.stable_set import StableSetConfig

    d = StableSetConfig()
    p.add_argument("--out", required=True, help="output folder (a half-built set resumes)")
    p.add_argument("--hull", required=True,
                   help="MP-20 hull folder or ensemble_above_hull_dataset.parquet")
    p.add_argument("--n", type=int, default=d.n_candidates, help="decorated candidates")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help="keep proxy E_hull below this (eV/atom)")
    p.add_argument("--min-probability", type=float, default=d.min_probability,
                   help="Hautier substitution probability cut-off")
    p.add_argument("--relax-steps", type=int, default=d.relax_steps)
    p.add_argument("--fmax", type=float, default=d.fmax)
    p.add_argument("--executor", default="local", help="local or dask")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rescore", action="store_true",
                   help="only re-place the built candidates on the hull (new elemental refs)")


def _stable_set_cmd(args: Any) -> int:
    from common.executor import get_executor
    from materials.stable_set import StableSetConfig, build_stable_set, rescore_stable_set

    if args.rescore:
        kept = rescore_stable_set(args.out, args.hull)
        print(f"rescored: {len(kept)} rows in {Path(args.out) / 'stable_set.csv'}")
        return 0
    cfg = StableSetConfig(n_candidates=args.n, seed=args.seed, threshold=args.threshold,
                          min_probability=args.min_probability, relax_steps=args.relax_steps,
                          fmax=args.fmax)
    with get_executor(args.executor, n_workers=args.workers) as ex:
        kept = build_stable_set(args.out, args.hull, cfg, executor=ex)
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    print(f"kept {summary['n_kept_after_dedup']} candidates (proxy E_hull < {cfg.threshold} "
          f"eV/atom, deduplicated); {len(kept)} rows in {Path(args.out) / 'stable_set.csv'}")
    return 0


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
        add_arguments=_stable_set_args, handler=_stable_set_cmd)},
)

__all__ = ["MaterialsConfig", "VERTICAL", "asdict"]
