"""`genpipes shapes export`: meshes in OBJ / PLY / STL / GLB, CPU-rendered previews, report."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from common.io import atomic_write_json

from .rundir import RunDir
from .shapes_config import ShapesConfig
from .shapes_io import clean, load_npz, load_ply, marching_cubes


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
        raw = [load_ply(p) for p in files]
        meshes = [clean(m, frac) for m in raw]
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
            refs = [load_ply(run.path / "data" / "holdout_meshes" / f"{p.stem}.ply")
                    for p in files[:k // 2]]
            show = [m for pair in zip(refs, meshes[:k // 2]) for m in pair]
            titles = [t for p in files[:k // 2] for t in (f"{p.stem} (truth)", "from points")]
        images.append(render_preview(show, run.plots / f"{group}.png", titles=titles,
                                     views=((25, 35), (25, 145))))
    train = load_npz(run.path / "data" / "train.npz", "prepare")  # what samples should resemble
    pick = np.unique(np.linspace(0, len(train["sdf"]) - 1, cfg.export.previews).astype(int))
    images.append(render_preview([marching_cubes(train["sdf"][i], cfg) for i in pick],
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
