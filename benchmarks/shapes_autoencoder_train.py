"""Shapes benchmark, autoencoder rows: train the WaLa autoencoder at 128^3 / 256^3 on the CPU.

Run: ``python benchmarks/shapes_autoencoder_train.py --res 256 --latent 12 --steps 600
--batch 4 --train-names cow cheburashka chair --n-synthetic 4 --sdf-cache DIR --out AE256.pt``,
then score it with ``benchmarks/shapes_autoencoder.py --model AE256.pt --sdf-cache DIR
--train-names cow cheburashka chair --out RESULTS.md``.

The training set: the named shared real meshes (reported as "seen" by the scoring script) plus
``--n-synthetic`` shapes of the project's parametric furniture family. The recipe is the
package's own (``shapes.training.train_autoencoder``: AdamW, 20 warm-up steps then cosine decay,
Lightning, resumable from ``<out>.ckpt/last.ckpt``), with the TSDF loss terms on a random
64-row sub-grid (``ae_grid_rows``; Sivaram et al. 2024 Sec. 3.2 train on the wavelet tree), so
one sample-step costs ~0.08 CPU s at 128^3 and 256^3 instead of 0.3 / 4.3 s on the full grid.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
_HERE = Path(__file__).resolve().parent  # keep this folder (named like the package) off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))



def scoring_meshes() -> list[str]:
    """The scoring script's mesh list (loaded by file: this folder is kept off the path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("shapes_autoencoder",
                                                  _HERE / "shapes_autoencoder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MESHES


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def training_meshes(data: Path, train_names: list[str], n_synthetic: int) -> dict:
    """Name -> mesh: the named shared real meshes plus ``n_synthetic`` furniture shapes."""
    from shapes.mesh_io import load_mesh
    from shapes.synthetic import furniture_dataset

    known = {Path(rel).stem: rel for rel in scoring_meshes()}
    unknown = sorted(set(train_names) - set(known))
    if unknown:
        raise SystemExit(f"--train-names {unknown} are not among the benchmark meshes "
                         f"{sorted(known)}")
    meshes = {name: load_mesh(data / known[name]) for name in train_names}
    if n_synthetic > 0:
        syn = furniture_dataset(n_synthetic, seed=0)
        items = syn.items() if isinstance(syn, dict) else \
            ((f"syn_{i:03d}", m) for i, m in enumerate(syn))
        meshes.update(items)
    return meshes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(_HERE.parents[1] / "shared" / "data" / "shapes"))
    p.add_argument("--res", type=int, required=True, help="grid resolution (64, 128, 256)")
    p.add_argument("--latent", type=int, required=True, help="latent grid size (12 at 256^3)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--train-names", nargs="*", default=["cow", "cheburashka", "chair"])
    p.add_argument("--n-synthetic", type=int, default=4)
    p.add_argument("--sdf-cache", default=None, help="TSDF cache folder (reused across runs)")
    p.add_argument("--out", required=True, help="ShapeModel checkpoint to write")
    args = p.parse_args()

    import torch

    from common.training import TrainerConfig
    from shapes.model import ShapeModel
    from shapes.training import train_autoencoder

    torch.set_num_threads(1)
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; remove it or pick another --out (no silent overwrite)")
    model = ShapeModel(resolution=args.res, levels=3, latent_size=args.latent,
                       ae_steps=args.steps, batch_size=args.batch, ae_grid_rows=64)
    c0, t0 = cpu_seconds(), time.time()
    prepared = model.prepare(training_meshes(Path(args.data), args.train_names,
                                             args.n_synthetic), args.sdf_cache)
    dense = model.dense_parts(prepared["sdf"]).float()
    prep_cpu = cpu_seconds() - c0
    print(f"{len(prepared['names'])} training shapes, dense {tuple(dense.shape)}, "
          f"TSDFs {prep_cpu:.0f} CPU s", flush=True)
    train_autoencoder(model, dense, TrainerConfig(seed=0, accelerator="cpu", devices=1),
                      Path(f"{out}.ckpt"))
    model.fitted = True
    model.save(out)
    print(json.dumps({"res": args.res, "latent": args.latent, "steps": args.steps,
                      "batch": args.batch, "train": list(prepared["names"]),
                      "prep_cpu_s": round(prep_cpu, 1),
                      "train_cpu_s": round(cpu_seconds() - c0 - prep_cpu, 1),
                      "wall_s": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
