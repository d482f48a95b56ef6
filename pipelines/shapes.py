"""The shapes vertical: WaLa wavelet-latent diffusion (Sivaram et al. 2024), end to end.

``prepare`` loads meshes (a folder, or the embedded SYNTHETIC furniture family), splits off a
held-out set and caches TSDF grids; ``train`` fits the wavelet autoencoder and the latent
diffusion model (Lightning, resumable); ``sample`` draws unconditional shapes and, for a
point-cloud model, reconstructs every held-out shape from its surface points; ``evaluate``
computes MMD-CD / COV-CD / 1-NNA (PointFlow) against the held-out set and Chamfer / F-score /
normal consistency / IoU for the reconstructions; ``export`` writes meshes, previews and the report.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError, DataError
from common.io import atomic_write_bytes, atomic_write_json
from common.training import TrainerConfig
from shapes.model_config import ShapeModelConfig

from .registry import Command, Vertical
from .rundir import RunDir


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


def _save_npz(path: Path, **arrays: Any) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: Path, stage: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"missing; run `genpipes shapes {stage}` first", file=path)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _source_meshes(cfg: DataConfig) -> tuple[dict[str, Any], dict[str, str], str]:
    if cfg.root:
        from shapes.mesh_io import load_mesh_dir

        meshes, errors = load_mesh_dir(cfg.root)
        return meshes, errors, f"folder {cfg.root}"
    if cfg.dataset.startswith("modelnet"):
        from shapes.datasets import modelnet
        from shapes.mesh_io import load_mesh_dir

        folder = modelnet(cfg.dataset, cfg.modelnet_classes, "train", limit=cfg.modelnet_limit)
        meshes, errors = load_mesh_dir(folder)
        return meshes, errors, f"{cfg.dataset} (train split, {folder})"
    if cfg.dataset != "synthetic":
        raise ConfigError(f"data.dataset: unknown {cfg.dataset!r}; valid: synthetic, "
                          "modelnet10, modelnet40 (or set data.root to a folder)")
    from shapes.synthetic import CATEGORIES, furniture_dataset

    bad = [c for c in cfg.categories if c not in CATEGORIES]
    if bad or not cfg.categories:
        raise ConfigError(f"data.categories: unknown {bad}; valid: {', '.join(CATEGORIES)}")
    meshes = furniture_dataset(cfg.n_shapes, cfg.seed, tuple(cfg.categories))
    return meshes, {}, f"SYNTHETIC furniture family ({cfg.n_shapes} CSG shapes, generated)"


def prepare(cfg: ShapesConfig, run: RunDir) -> None:
    """Load meshes, split train / held-out, compute cached TSDF grids and surface points."""
    from shapes.mesh_io import normalize_to_unit_cube
    from shapes.model import ShapeModel

    meshes, errors, source = _source_meshes(cfg.data)
    names = sorted(meshes)
    n_hold = max(2, int(round(cfg.data.holdout * len(names))))
    if len(names) < n_hold + 2:
        raise DataError(f"only {len(names)} usable meshes ({len(errors)} rejected)",
                        file=cfg.data.root or "synthetic", expected=f">= {n_hold + 2} meshes")
    order = np.random.default_rng(cfg.data.seed).permutation(len(names))
    hold = sorted(names[i] for i in order[:n_hold])
    train = sorted(names[i] for i in order[n_hold:])
    model = ShapeModel(cfg.model)
    cache = cfg.data.cache_dir or run.path / "cache" / "sdf"
    data_dir = run.path / "data"
    for split, keys in (("train", train), ("holdout", hold)):
        prepared = model.prepare({k: meshes[k] for k in keys}, cache_dir=cache)
        errors.update(model.load_errors)  # meshes whose SDF failed: reported, not fatal
        if split == "train":
            train = list(prepared["names"])
        else:
            hold = list(prepared["names"])
        _save_npz(data_dir / f"{split}.npz", names=np.array(prepared["names"]),
                  sdf=prepared["sdf"], points=prepared["points"])
    ref_dir = data_dir / "holdout_meshes"
    ref_dir.mkdir(parents=True, exist_ok=True)
    for k in hold:
        unit = normalize_to_unit_cube(meshes[k], cfg.model.padding)[0]
        atomic_write_bytes(ref_dir / f"{Path(k).stem}.ply", unit.export(file_type="ply"))
    info = {"source": source, "n_train": len(train), "n_holdout": len(hold),
            "rejected": errors, "repairs": {k: v["repairs"] for k, v in model.sdf_info.items()
                                            if v["repairs"]}}
    atomic_write_json(data_dir / "info.json", info)
    run.write_metrics({"n_train": len(train), "n_holdout": len(hold),
                       "n_rejected": len(errors)}, section="data")


def train(cfg: ShapesConfig, run: RunDir) -> None:
    """Fit the autoencoder then the latent diffusion (resumes from ``checkpoints/*/last.ckpt``)."""
    from shapes.model import ShapeModel

    data = _load_npz(run.path / "data" / "train.npz", "prepare")
    t0 = time.perf_counter()
    model = ShapeModel(cfg.model).fit(data=data, trainer=cfg.trainer,
                                      checkpoint_dir=run.checkpoints)
    model.save(run.checkpoints / "model.pt")
    run.write_metrics({"seconds": round(time.perf_counter() - t0, 1),
                       "ae_steps": cfg.model.ae_steps, "diffusion_steps": cfg.trainer.max_steps},
                      section="train")


def _save_meshes(meshes: list, folder: Path, names: list[str]) -> None:
    from shapes.export import export_mesh

    folder.mkdir(parents=True, exist_ok=True)
    for name, mesh in zip(names, meshes):
        export_mesh(mesh, folder / f"{name}.ply", overwrite=True)


def sample(cfg: ShapesConfig, run: RunDir) -> None:
    """Unconditional samples, and point-cloud reconstructions of the held-out shapes."""
    from shapes.model import ShapeModel

    model = ShapeModel.load(run.checkpoints / "model.pt")
    s = cfg.sample
    t0 = time.perf_counter()
    z = model.sample_latents(s.n, None, s.seed, batch_size=s.batch_size)
    sdf = model.decode_sdf(z)
    meshes = [_mc(g, cfg) for g in sdf]
    secs = (time.perf_counter() - t0) / max(s.n, 1)
    _save_meshes(meshes, run.samples / "unconditional", [f"sample_{i:04d}" for i in range(s.n)])
    timing = {"seconds_per_mesh": round(secs, 3), "resolution": cfg.model.resolution,
              "sampler": cfg.model.sampler, "num_steps": cfg.model.num_steps}
    if s.conditional and cfg.model.condition == "points":
        hold = _load_npz(run.path / "data" / "holdout.npz", "prepare")
        clouds = [p[: cfg.model.n_points] for p in hold["points"]]
        z = model.sample_latents(len(clouds), clouds, s.seed, guidance=s.guidance,
                                 batch_size=s.batch_size)
        grids = model.decode_sdf(z)
        _save_npz(run.samples / "conditional_sdf.npz", sdf=grids.astype(np.float16))
        names = [Path(str(n)).stem for n in hold["names"]]
        _save_meshes([_mc(g, cfg) for g in grids], run.samples / "conditional", names)
    run.write_metrics(timing, section="sampling")


def _load(path: Path) -> Any:
    """A PLY written by ``sample`` as a Trimesh (an empty sample loads as an empty mesh)."""
    import trimesh

    mesh = trimesh.load(path, process=False)
    if not isinstance(mesh, trimesh.Trimesh):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    return mesh


def _mc(grid: np.ndarray, cfg: ShapesConfig) -> Any:
    from shapes.sdf import sdf_to_mesh

    return sdf_to_mesh(grid, decimate_to=cfg.model.decimate_to)


def _surface(mesh: Any, n: int, seed: int) -> np.ndarray | None:
    from shapes.metrics import sample_surface

    return None if len(mesh.faces) == 0 else sample_surface(mesh, n, seed)[0]


def evaluate(cfg: ShapesConfig, run: RunDir) -> None:
    """Generation metrics vs the held-out set; reconstruction metrics for conditional samples."""

    from shapes import metrics as M

    e = cfg.evaluate
    refs = {p.stem: _load(p)
            for p in sorted((run.path / "data" / "holdout_meshes").glob("*.ply"))}
    gen_files = sorted((run.samples / "unconditional").glob("*.ply"))
    if not gen_files:
        raise DataError("no samples; run `genpipes shapes sample` first", file=run.samples)
    raw = [_load(p) for p in gen_files]
    ref_pts = [_surface(m, e.n_points, i) for i, m in enumerate(refs.values())]
    frac = cfg.model.min_component_fraction
    out = _generation_metrics([_clean(m, frac) for m in raw], ref_pts, e.n_points)
    run.write_metrics({**out, "min_component_fraction": frac}, section="generation")
    if frac > 0:  # the same samples before the clean-up (what `export.raw` also writes)
        run.write_metrics(_generation_metrics(raw, ref_pts, e.n_points), section="generation_raw")
    run.write_metrics(_baseline_metrics(cfg, run, ref_pts, len(raw)),
                      section="generation_baselines")
    run.write_metrics(_codec_metrics(run), section="holdout_codec")
    cond_dir = run.samples / "conditional"
    if cond_dir.is_dir():
        grids = _load_npz(run.samples / "conditional_sdf.npz", "sample")["sdf"]
        hold = _load_npz(run.path / "data" / "holdout.npz", "prepare")
        rows = []
        for i, name in enumerate(Path(str(n)).stem for n in hold["names"]):
            pred = _clean(_load(cond_dir / f"{name}.ply"), frac)
            row = {"name": name, "iou": M.volumetric_iou(grids[i] < 0, hold["sdf"][i] < 0)}
            p = _surface(pred, e.n_points, 0)
            if p is not None:
                q = _surface(refs[name], e.n_points, 1)
                row.update(chamfer_l1=M.chamfer_distance(p, q),
                           f_score=M.f_score(p, q, e.fscore_threshold),
                           normal_consistency=M.normal_consistency(pred, refs[name], e.n_points))
            rows.append(row)
        atomic_write_json(run.path / "reconstruction.json", rows)
        keys = ("iou", "chamfer_l1", "f_score", "normal_consistency")
        summary = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys
                   if any(k in r for r in rows)}
        summary["f_score_threshold"] = e.fscore_threshold
        summary["chamfer"] = "L1, sum of the two directional means, unit-cube units"
        run.write_metrics(summary, section="point_cloud_reconstruction")


def _clean(mesh: Any, frac: float) -> Any:
    from shapes.cleanup import remove_small_components

    return mesh if frac <= 0 or len(mesh.faces) == 0 else remove_small_components(mesh, frac)[0]


def _generation_metrics(gens: list, ref_pts: list, n_points: int) -> dict[str, Any]:
    """PointFlow's MMD-CD / COV-CD / 1-NNA of ``gens`` against the references, and counts."""
    from shapes import metrics as M
    from shapes.cleanup import component_labels

    gen_pts = [_surface(m, n_points, i) for i, m in enumerate(gens)]
    valid = [p for p in gen_pts if p is not None]
    multi = [len(np.unique(component_labels(g))) > 1 for g in gens if len(g.faces)]
    out: dict[str, Any] = {"n_generated": len(gens), "n_empty": len(gens) - len(valid),
                           "watertight_fraction": float(np.mean([g.is_watertight for g in gens])),
                           "multi_component_fraction": float(np.mean(multi)) if multi else 0.0,
                           "n_reference": len(ref_pts), "chamfer": "L2 (squared), sum of means"}
    if valid:
        out.update({"mmd_cd": M.mmd_cd(valid, ref_pts), "cov_cd": M.cov_cd(valid, ref_pts),
                    "1nna_cd": M.one_nna(valid, ref_pts)})
    return out


def _baseline_metrics(cfg: ShapesConfig, run: RunDir, ref_pts: list, n: int) -> dict[str, Any]:
    """The same generation metrics for two references drawn from the TRAINING set.

    ``train``: ``n`` training shapes picked at random (marching cubes of their true TSDF on the
    model's grid): a model that memorises its training set perfectly scores this, the ceiling a
    generator of a small family can reach against held-out shapes. ``ae``: the autoencoder's
    reconstructions of the same shapes: what a perfect latent prior would score through this
    decoder.
    """
    from shapes import metrics as M
    from shapes.model import ShapeModel

    e = cfg.evaluate
    data = _load_npz(run.path / "data" / "train.npz", "prepare")
    rng = np.random.default_rng(cfg.sample.seed)
    pick = rng.choice(len(data["sdf"]), min(n, len(data["sdf"])), replace=False)
    model = ShapeModel.load(run.checkpoints / "model.pt")
    dense = model.dense_parts(data["sdf"][pick])
    grids = {"train": data["sdf"][pick], "ae": model.decode_sdf(model.latents_from_dense(dense))}
    out: dict[str, Any] = {"n": len(pick)}
    for key, gs in grids.items():
        pts = [p for i, g in enumerate(gs) if (p := _surface(_mc(g, cfg), e.n_points, i))
               is not None]
        if pts:
            out.update({f"{key}_mmd_cd": M.mmd_cd(pts, ref_pts),
                        f"{key}_cov_cd": M.cov_cd(pts, ref_pts),
                        f"{key}_1nna_cd": M.one_nna(pts, ref_pts)})
    return out


def _codec_metrics(run: RunDir) -> dict[str, float]:
    """IoU of held-out TSDFs through the wavelet codec alone and through the autoencoder."""
    from shapes import wavelet as wt
    from shapes.metrics import volumetric_iou
    from shapes.model import ShapeModel

    model = ShapeModel.load(run.checkpoints / "model.pt")
    hold = _load_npz(run.path / "data" / "holdout.npz", "prepare")
    dense = model.dense_parts(hold["sdf"])
    res = model.config.resolution
    codec = [wt.decode(wt.tree_from_dense(d, res, model.codec)) for d in dense.numpy()]
    ae = model.decode_sdf(model.latents_from_dense(dense))
    truth = [g < 0 for g in hold["sdf"]]
    return {"iou_dense_wavelet_only": float(np.mean([volumetric_iou(t, g < 0)
                                                     for t, g in zip(truth, codec)])),
            "iou_autoencoder": float(np.mean([volumetric_iou(t, g < 0)
                                              for t, g in zip(truth, ae)]))}


def export(cfg: ShapesConfig, run: RunDir) -> None:
    """Meshes in the configured formats, preview grids and the report."""

    from shapes.export import EXPORT_FORMATS, export_mesh, render_preview

    bad = [f for f in cfg.export.formats if f".{f.lower()}" not in EXPORT_FORMATS]
    if bad:
        raise ConfigError(f"export.formats: unsupported {bad}; valid: "
                          f"{', '.join(x[1:] for x in EXPORT_FORMATS)}")
    out_dir = run.path / "meshes"
    images = []
    frac = cfg.model.min_component_fraction
    for group in ("unconditional", "conditional"):
        files = sorted((run.samples / group).glob("*.ply"))
        if not files:
            continue
        raw = [_load(p) for p in files]
        meshes = [_clean(m, frac) for m in raw]
        for p, m, r in zip(files, meshes, raw):
            if len(m.faces):
                for fmt in cfg.export.formats:
                    export_mesh(m, out_dir / group / f"{p.stem}.{fmt.lower()}", overwrite=True)
                    if cfg.export.raw and frac > 0:
                        export_mesh(r, out_dir / f"{group}_raw" / f"{p.stem}.{fmt.lower()}",
                                    overwrite=True)
                if cfg.export.mesh_previews:
                    render_preview(m, out_dir / group / f"{p.stem}.png", titles=[p.stem],
                                   max_faces=4000, size=1.6)
        k = cfg.export.previews
        show, titles = meshes[:k], [p.stem for p in files[:k]]
        if group == "conditional":
            refs = [_load(run.path / "data" / "holdout_meshes" / f"{p.stem}.ply")
                    for p in files[:k // 2]]
            show = [m for pair in zip(refs, meshes[:k // 2]) for m in pair]
            titles = [t for p in files[:k // 2] for t in (f"{p.stem} (truth)", "from points")]
        images.append(render_preview(show, run.plots / f"{group}.png", titles=titles,
                                     views=((25, 35), (25, 145))))
    train = _load_npz(run.path / "data" / "train.npz", "prepare")  # what samples should resemble
    pick = np.unique(np.linspace(0, len(train["sdf"]) - 1, cfg.export.previews).astype(int))
    images.append(render_preview([_mc(train["sdf"][i], cfg) for i in pick],
                                 run.plots / "training_shapes.png",
                                 titles=[f"{Path(str(train['names'][i])).stem} (train)"
                                         for i in pick], views=((25, 35), (25, 145))))
    metrics = run.metrics()
    info = json.loads((run.path / "data" / "info.json").read_text())
    text = [f"Data: {info['source']}; {info['n_train']} training and {info['n_holdout']} "
            f"held-out shapes; {len(info['rejected'])} files rejected."]
    text += [f"- rejected `{name}`: {why}" for name, why in sorted(info["rejected"].items())]
    text += [f"- repaired `{name}`: {'; '.join(what)}"
             for name, what in sorted(info["repairs"].items())]
    text += ["", "| section | metric | value |", "|---|---|---|"]
    for section in ("generation", "generation_raw", "generation_baselines",
                    "point_cloud_reconstruction", "holdout_codec", "sampling", "train"):
        for key, val in metrics.get(section, {}).items():
            v = f"{val:.4g}" if isinstance(val, float) else str(val)
            text.append(f"| {section} | {key} | {v} |")
    text += ["", f"Model: resolution {cfg.model.resolution}^3, latent {cfg.model.latent_size}^3 x "
             f"{cfg.model.latent_channels}, condition {cfg.model.condition}. Meshes in "
             f"`meshes/` ({', '.join(cfg.export.formats)}); config in `config.yaml`."]
    run.add_report("WaLa shapes", "\n".join(text), images=images)
    atomic_write_json(run.path / "model_config.json", asdict(cfg.model))


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
