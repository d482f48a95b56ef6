"""Shapes benchmark, autoencoder rows: trained WaLa autoencoders on the shared real meshes.

Run: ``python benchmarks/shapes_autoencoder.py --model AE64.pt AE128.pt AE256.pt
[--sdf-cache DIR] [--train-names cow chair] [--timing] [--step-cost 128 256] --out RESULTS.md``.

For each ``ShapeModel`` checkpoint, at its own resolution: the real meshes' exact TSDFs (cached
with ``--sdf-cache``), then (a) the wavelet codec's dense part alone (coarse + coarsest details,
the autoencoder's input and target) and (b) the autoencoder (dense part -> latent -> dense part,
Sivaram et al. 2024 Sec. 3.2), both through the inverse DWT. IoU of the occupancy (SDF < 0) on
the grid; Chamfer-L1 (sum of the two directional means, 5000 points, unit-cube units) against
the marching cubes of the true TSDF; bytes per shape as float32 and the compression against the
float32 grid. ``--train-names`` marks meshes the model saw in training (reported apart).
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


def mesh_scores(model, data: Path, cache: str | None) -> dict[str, dict[str, tuple]]:
    """Per mesh: {"codec" | "autoencoder": (IoU, Chamfer-L1)} at the model's resolution."""
    from shapes import wavelet as wt
    from shapes.mesh_io import load_mesh
    from shapes.metrics import chamfer_distance, sample_surface, volumetric_iou
    from shapes.sdf import cached_mesh_to_sdf, sdf_to_mesh

    res, out = model.config.resolution, {}
    for rel in MESHES:
        sdf, _ = cached_mesh_to_sdf(load_mesh(data / rel), model.sdf_config(), cache)
        dense = model.dense_parts([sdf])
        grids = {"codec": wt.decode(wt.tree_from_dense(dense[0].numpy(), res, model.codec)),
                 "autoencoder": model.decode_sdf(model.latents_from_dense(dense))[0]}
        ref = sample_surface(sdf_to_mesh(sdf), 5000, 1)[0]
        row = {}
        for name, grid in grids.items():
            rec = sdf_to_mesh(grid)
            cd = np.nan if len(rec.faces) == 0 else chamfer_distance(
                sample_surface(rec, 5000, 2)[0], ref)
            row[name] = (volumetric_iou(sdf < 0, grid < 0), cd)
        out[Path(rel).stem] = row
        print(f"  {res}^3 {Path(rel).stem}: {row}", flush=True)
    return out


def model_rows(model, scores: dict, seen: set[str]) -> list[str]:
    """Markdown rows (codec, autoencoder; all meshes / unseen / seen when both exist)."""
    c, ae = model.config, model.autoencoder
    res, dense_bytes = c.resolution, 4 * 8 * ae.dense_size ** 3
    latent_bytes = 4 * c.latent_channels * c.latent_size ** 3
    groups = {"all": list(scores)}
    if seen:
        groups = {"unseen": [n for n in scores if n not in seen],
                  "seen in training": [n for n in scores if n in seen]}
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
    p.add_argument("--out", required=True)
    args = p.parse_args()
    from common.io import atomic_write_text
    from shapes.model import ShapeModel

    lines = ["| grid | path | meshes | IoU | Chamfer-L1 | bytes/shape (float32) | compression "
             "vs float32 grid | IoU per mesh |", "|---|---|---|---|---|---|---|---|"]
    timing = ["", "| grid | checkpoint | s/mesh wall | CPU-s/mesh |", "|---|---|---|---|"]
    t_all = time.perf_counter()
    for path in args.model:
        model = ShapeModel.load(path)
        scores = mesh_scores(model, Path(args.data), args.sdf_cache)
        lines += model_rows(model, scores, set(args.train_names))
        if args.timing:
            wall, cpu = generation_seconds(model)
            c = model.config
            timing.append(f"| {c.resolution}^3 | {Path(path).name} ({c.sampler}, "
                          f"{c.num_steps} steps) | {wall:.2f} | {cpu:.2f} |")
    lines += timing if args.timing else []
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
