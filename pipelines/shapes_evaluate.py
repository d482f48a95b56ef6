"""`genpipes shapes evaluate`: PointFlow generation metrics (MMD-CD, COV-CD, 1-NNA; Yang et al.
2019 Sec. 5) against the held-out set with training-set baselines, codec / autoencoder IoU,
and Chamfer / F-score / normal consistency / IoU of the point-cloud reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.errors import DataError
from common.io import atomic_write_json

from .rundir import RunDir
from .shapes_config import ShapesConfig
from .shapes_io import clean, load_npz, load_ply, marching_cubes, surface_points


def evaluate(cfg: ShapesConfig, run: RunDir) -> None:
    """Generation metrics vs the held-out set; reconstruction metrics for conditional samples."""

    from shapes import metrics as M

    e = cfg.evaluate
    refs = {p.stem: load_ply(p)
            for p in sorted((run.path / "data" / "holdout_meshes").glob("*.ply"))}
    gen_files = sorted((run.samples / "unconditional").glob("*.ply"))
    if not gen_files:
        raise DataError("no samples; run `genpipes shapes sample` first", file=run.samples)
    raw = [load_ply(p) for p in gen_files]
    ref_pts = [surface_points(m, e.n_points, i) for i, m in enumerate(refs.values())]
    frac = cfg.model.min_component_fraction
    out = _generation_metrics([clean(m, frac) for m in raw], ref_pts, e.n_points)
    run.write_metrics({**out, "min_component_fraction": frac}, section="generation")
    if frac > 0:  # the same samples before the clean-up (what `export.raw` also writes)
        run.write_metrics(_generation_metrics(raw, ref_pts, e.n_points), section="generation_raw")
    run.write_metrics(_baseline_metrics(cfg, run, ref_pts, len(raw)),
                      section="generation_baselines")
    run.write_metrics(_codec_metrics(run), section="holdout_codec")
    cond_dir = run.samples / "conditional"
    if cond_dir.is_dir():
        grids = load_npz(run.samples / "conditional_sdf.npz", "sample")["sdf"]
        hold = load_npz(run.path / "data" / "holdout.npz", "prepare")
        rows = []
        for i, name in enumerate(Path(str(n)).stem for n in hold["names"]):
            pred = clean(load_ply(cond_dir / f"{name}.ply"), frac)
            row = {"name": name, "iou": M.volumetric_iou(grids[i] < 0, hold["sdf"][i] < 0)}
            p = surface_points(pred, e.n_points, 0)
            if p is not None:
                q = surface_points(refs[name], e.n_points, 1)
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


def _generation_metrics(gens: list, ref_pts: list, n_points: int) -> dict[str, Any]:
    """PointFlow's MMD-CD / COV-CD / 1-NNA of ``gens`` against the references, and counts."""
    from shapes import metrics as M
    from shapes.cleanup import component_labels

    gen_pts = [surface_points(m, n_points, i) for i, m in enumerate(gens)]
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
    data = load_npz(run.path / "data" / "train.npz", "prepare")
    rng = np.random.default_rng(cfg.sample.seed)
    pick = rng.choice(len(data["sdf"]), min(n, len(data["sdf"])), replace=False)
    model = ShapeModel.load(run.checkpoints / "model.pt")
    dense = model.dense_parts(data["sdf"][pick])
    grids = {"train": data["sdf"][pick], "ae": model.decode_sdf(model.latents_from_dense(dense))}
    out: dict[str, Any] = {"n": len(pick)}
    for key, gs in grids.items():
        pts = [p for i, g in enumerate(gs)
               if (p := surface_points(marching_cubes(g, cfg), e.n_points, i)) is not None]
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
    hold = load_npz(run.path / "data" / "holdout.npz", "prepare")
    dense = model.dense_parts(hold["sdf"])
    res = model.config.resolution
    codec = [wt.decode(wt.tree_from_dense(d, res, model.codec)) for d in dense.numpy()]
    ae = model.decode_sdf(model.latents_from_dense(dense))
    truth = [g < 0 for g in hold["sdf"]]
    return {"iou_dense_wavelet_only": float(np.mean([volumetric_iou(t, g < 0)
                                                     for t, g in zip(truth, codec)])),
            "iou_autoencoder": float(np.mean([volumetric_iou(t, g < 0)
                                              for t, g in zip(truth, ae)]))}
