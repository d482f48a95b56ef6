"""`genpipes shapes prepare`: meshes (a folder, ModelNet or the SYNTHETIC furniture family) ->
train / held-out split, cached TSDF grids (WaLa Sec. 3.1) and surface points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError, DataError
from common.io import atomic_write_bytes, atomic_write_json

from .rundir import RunDir
from .shapes_config import DataConfig, ShapesConfig
from .shapes_io import save_npz


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
        save_npz(data_dir / f"{split}.npz", names=np.array(prepared["names"]),
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
