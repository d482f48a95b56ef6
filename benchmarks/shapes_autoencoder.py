"""Shapes benchmark, autoencoder rows: trained WaLa autoencoders on the shared real meshes.

Run: ``python benchmarks/shapes_autoencoder.py --model AE64.pt AE128.pt AE256.pt
[--sdf-cache DIR] [--train-names cow chair] [--heldout-synthetic 24] [--generate 32
--preview P.png] [--timing] [--step-cost 128 256] --out RESULTS.md``.

For each ``ShapeModel`` checkpoint, at its own resolution: the real meshes' exact TSDFs (cached
with ``--sdf-cache``), then (a) the wavelet codec's dense part alone (coarse + coarsest details,
the autoencoder's input and target) and (b) the autoencoder (dense part -> latent -> dense part,
Sivaram et al. 2024 Sec. 3.2), both through the inverse DWT. IoU of the occupancy (SDF < 0) on
the grid; Chamfer-L1 (sum of the two directional means, 5000 points, unit-cube units) against
the marching cubes of the true TSDF; bytes per shape as float32 and the compression against the
float32 grid. ``--train-names`` marks meshes the model saw in training (reported apart).
``--heldout-synthetic N``: the same rows on N synthetic furniture shapes never trained on
(``furniture_dataset(N, seed=1)``; training uses seed 0). ``--generate N``: N unconditional
samples of the checkpoint's prior (seeds 0..N-1) scored with PointFlow's MMD-CD / COV-CD /
1-NNA (squared-L2 Chamfer, 2048 points per shape, Yang et al. 2019 Sec. 5) against the held-out
synthetic shapes, beside N random synthetic TRAINING shapes (the memorise ceiling) and their
autoencoder reconstructions (a perfect prior through this decoder); ``--preview`` renders the
first 8 samples.
``--timing``: seconds per generated mesh with each checkpoint's weights (sampling with its
sampler and steps + inverse DWT + marching cubes + clean-up, batch 2). ``--step-cost``: CPU
seconds per sample-step of the autoencoder loss with the TSDF terms on the full grid and on the
64-row sub-grid (``ae_grid_rows``), same process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
_HERE = Path(__file__).resolve().parent  # keep this folder (named like the package) off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

MESHES = ["common-3d-test-models/cow.obj", "common-3d-test-models/fandisk.obj",
          "common-3d-test-models/cheburashka.obj", "trimesh-models/bunny.ply",
          "mesh_to_sdf/chair.obj", "common-3d-test-models/spot.obj"]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def real_meshes(data: Path) -> dict:
    """The 6 scored shared real meshes, by stem."""
    from shapes.mesh_io import load_mesh

    return {Path(rel).stem: load_mesh(data / rel) for rel in MESHES}


def mesh_scores(model, meshes: dict, cache: str | None) -> dict[str, dict[str, tuple]]:
    """Per mesh: {"codec" | "autoencoder": (IoU, Chamfer-L1)} at the model's resolution."""
    from shapes import wavelet as wt
    from shapes.metrics import chamfer_distance, sample_surface, volumetric_iou
    from shapes.sdf import cached_mesh_to_sdf, sdf_to_mesh

    res, out = model.config.resolution, {}
    for name, mesh in meshes.items():
        sdf, _ = cached_mesh_to_sdf(mesh, model.sdf_config(), cache)
        dense = model.dense_parts([sdf])
        grids = {"codec": wt.decode(wt.tree_from_dense(dense[0].numpy(), res, model.codec)),
                 "autoencoder": model.decode_sdf(model.latents_from_dense(dense))[0]}
        ref = sample_surface(sdf_to_mesh(sdf), 5000, 1)[0]
        row = {}
        for path, grid in grids.items():
            rec = sdf_to_mesh(grid)
            cd = np.nan if len(rec.faces) == 0 else chamfer_distance(
                sample_surface(rec, 5000, 2)[0], ref)
            row[path] = (volumetric_iou(sdf < 0, grid < 0), cd)
        out[name] = row
        print(f"  {res}^3 {name}: {row}", flush=True)
    return out


def model_rows(model, scores: dict, seen: set[str], label: str = "real") -> list[str]:
    """Markdown rows (codec, autoencoder; all meshes / unseen / seen when both exist)."""
    c, ae = model.config, model.autoencoder
    res, dense_bytes = c.resolution, 4 * 8 * ae.dense_size ** 3
    latent_bytes = 4 * c.latent_channels * c.latent_size ** 3
    groups = {f"{label}, all": list(scores)}
    if seen:
        groups = {f"{label}, unseen": [n for n in scores if n not in seen],
                  f"{label}, seen in training": [n for n in scores if n in seen]}
    rows = []
    for path, nbytes in (("codec", dense_bytes), ("autoencoder", latent_bytes)):
        for group, names in groups.items():
            if not names:
                continue
            iou = [scores[n][path][0] for n in names]
            cd = [scores[n][path][1] for n in names]
            per = ", ".join(f"{n} {scores[n][path][0]:.3f}" for n in names)
            kind = f"dense part 8 x {ae.dense_size}^3" if path == "codec" else \
                f"latent {c.latent_size}^3 x {c.latent_channels}"
            rows.append(f"| {res}^3 | {path} ({kind}) | {group} ({len(names)}) | "
                        f"{np.mean(iou):.4f} | {np.nanmean(cd):.5f} | {nbytes / 1024:.1f} KiB | "
                        f"{4 * res ** 3 / nbytes:.1f}x | {per} |")
    return rows


def generation_seconds(model, n: int = 2) -> tuple[float, float]:
    """(wall, CPU) seconds per generated mesh with the model's weights, after one warm-up."""
    model.fitted = True
    model.sample(1, seed=0, progress=False)
    t0, c0 = time.perf_counter(), cpu_seconds()
    model.sample(n, seed=1, progress=False, batch_size=n)
    return (time.perf_counter() - t0) / n, (cpu_seconds() - c0) / n


def generation_rows(model, heldout: dict, n_gen: int, n_train: int, cache: str | None,
                    preview: str | None) -> list[str]:
    """PointFlow metrics of ``n_gen`` samples vs the held-out shapes, with the two baselines."""
    from shapes.export import render_preview
    from shapes.metrics import cov_cd, mmd_cd, one_nna, sample_surface
    from shapes.sdf import cached_mesh_to_sdf, sdf_to_mesh
    from shapes.synthetic import furniture_dataset

    def clouds(meshes: list) -> list[np.ndarray]:
        return [sample_surface(m, 2048, i)[0] for i, m in enumerate(meshes) if len(m.faces)]

    def tsdfs(meshes) -> list[np.ndarray]:
        return [cached_mesh_to_sdf(m, model.sdf_config(), cache)[0] for m in meshes]

    ref = clouds([sdf_to_mesh(s) for s in tsdfs(heldout.values())])
    c0, t0 = cpu_seconds(), time.perf_counter()
    gens = model.sample(n_gen, seed=0, progress=False, batch_size=8)
    cpu, wall = (cpu_seconds() - c0) / n_gen, (time.perf_counter() - t0) / n_gen
    if preview:
        render_preview(gens[:8], preview, titles=[f"seed {i}" for i in range(8)])
    train = list(furniture_dataset(n_train, seed=0).values())
    pick = np.random.default_rng(0).choice(n_train, min(n_gen, n_train), replace=False)
    train_sdf = tsdfs([train[i] for i in pick])
    ae_sdf = model.decode_sdf(model.latents_from_dense(model.dense_parts(train_sdf)))
    c = model.config
    sets = {f"**generated** ({c.sampler}, {c.num_steps} steps; {cpu:.2f} CPU-s / {wall:.1f} "
            "wall-s per mesh)": clouds(gens),
            "random SYNTHETIC training shapes (memorise ceiling)":
                clouds([sdf_to_mesh(s) for s in train_sdf]),
            "their autoencoder reconstructions (a perfect prior)":
                clouds([sdf_to_mesh(s) for s in ae_sdf])}
    rows = ["", f"Generation at {c.resolution}^3 vs {len(ref)} held-out SYNTHETIC shapes "
            "(squared-L2 Chamfer, 2048 points):", "",
            "| set | n | empty | MMD-CD | COV-CD | 1-NNA |", "|---|---|---|---|---|---|"]
    for name, pts in sets.items():
        n = n_gen if name.startswith("**") else len(pick)
        scores = (f"{mmd_cd(pts, ref):.4f} | {cov_cd(pts, ref):.2f} | {one_nna(pts, ref):.3f}"
                  if pts else "- | - | -")
        rows.append(f"| {name} | {n} | {n - len(pts)} | {scores} |")
    print("\n".join(rows), flush=True)
    return rows


GEOMETRY = {64: (2, 14), 128: (3, 16), 256: (3, 12)}  # (levels, latent size) per grid


def step_cost(res: int, rows: int | None, steps: int = 3) -> float:
    """CPU seconds per sample-step of the autoencoder loss (forward, backward, Adam; batch 2 of
    two sphere TSDFs) with the TSDF terms on ``rows`` nodes per axis (None: the full grid)."""
    import torch

    from shapes.model import ShapeModel

    levels, latent = GEOMETRY[res]
    model = ShapeModel(resolution=res, levels=levels, latent_size=latent, ae_grid_rows=rows)
    ae = model.autoencoder
    g = np.linspace(-0.5, 0.5, res)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    dense = model.dense_parts([np.clip(r - rad, -0.1, 0.1).astype(np.float32)
                               for rad in (0.3, 0.35)])
    ae.set_normalization(dense)
    batch = ae.standardize(dense).float()
    opt = torch.optim.Adam(ae.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad()
        ae.loss(batch).mean().backward()
        opt.step()

    step()
    c0 = cpu_seconds()
    for _ in range(steps):
        step()
    return (cpu_seconds() - c0) / steps / len(batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(_HERE.parents[1] / "shared" / "data" / "shapes"))
    p.add_argument("--model", nargs="*", default=[], help="ShapeModel checkpoints")
    p.add_argument("--step-cost", type=int, nargs="*", default=[],
                   help="grids at which to time one AE step, full grid vs 64-row sub-grid")
    p.add_argument("--sdf-cache", default=None, help="TSDF cache folder (reused across runs)")
    p.add_argument("--train-names", nargs="*", default=[],
                   help="mesh stems seen in training (reported apart)")
    p.add_argument("--timing", action="store_true", help="seconds per generated mesh")
    p.add_argument("--heldout-synthetic", type=int, default=0,
                   help="also score N held-out synthetic shapes (furniture seed 1)")
    p.add_argument("--generate", type=int, default=0,
                   help="N unconditional samples scored against the held-out synthetic shapes")
    p.add_argument("--train-synthetic", type=int, default=80,
                   help="synthetic training shapes (seed 0) for the memorise ceiling")
    p.add_argument("--preview", default=None, help="PNG of the first 8 generated meshes")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    from common.io import atomic_write_text
    from shapes.model import ShapeModel

    lines = ["| grid | path | meshes | IoU | Chamfer-L1 | bytes/shape (float32) | compression "
             "vs float32 grid | IoU per mesh |", "|---|---|---|---|---|---|---|---|"]
    timing = ["", "| grid | checkpoint | s/mesh wall | CPU-s/mesh |", "|---|---|---|---|"]
    t_all = time.perf_counter()
    gen_rows: list[str] = []
    heldout = {}
    if args.heldout_synthetic or args.generate:
        from shapes.synthetic import furniture_dataset

        heldout = furniture_dataset(max(args.heldout_synthetic, 1) if args.heldout_synthetic
                                    else 24, seed=1)
    for path in args.model:
        model = ShapeModel.load(path)
        scores = mesh_scores(model, real_meshes(Path(args.data)), args.sdf_cache)
        lines += model_rows(model, scores, set(args.train_names))
        if args.heldout_synthetic:
            lines += model_rows(model, mesh_scores(model, heldout, args.sdf_cache), set(),
                                "held-out SYNTHETIC")
        if args.generate:
            gen_rows += generation_rows(model, heldout, args.generate, args.train_synthetic,
                                        args.sdf_cache, args.preview)
        if args.timing:
            wall, cpu = generation_seconds(model)
            c = model.config
            timing.append(f"| {c.resolution}^3 | {Path(path).name} ({c.sampler}, "
                          f"{c.num_steps} steps) | {wall:.2f} | {cpu:.2f} |")
    lines += timing if args.timing else []
    lines += gen_rows
    if args.step_cost:
        lines += ["", "| grid | TSDF terms on | CPU-s per sample-step |", "|---|---|---|"]
        for res in args.step_cost:
            for rows in (None, 64):
                where = "full grid" if rows is None or rows >= res else f"{rows}^3 sub-grid"
                lines.append(f"| {res}^3 | {where} | {step_cost(res, rows):.3f} |")
    lines += ["", f"Total wall time: {time.perf_counter() - t_all:.0f} s, "
              f"{cpu_seconds():.0f} CPU-s."]
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
