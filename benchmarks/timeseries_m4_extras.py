"""Benchmark: refinement (TSDiff Sec. 3.2, Eq. 10-12) and the missing-value scenarios (Sec. 5.1)
with the M4-hourly model trained on all 414 series (``benchmarks/timeseries_m4.py train``).

On every ``--stride``-th M4 series (single final 48-step window, 100 samples): the base
forecasters seasonal naive (season 24), the linear (ridge) model and GluonTS DeepAR (the stored
all-series forecasts of ``timeseries_m4.py eval``, ``fc/deepar<seed>-<steps>``), each refined by
the most-likely (gradient descent) and the Langevin variant; and guided TSDiff-Q with half of
each context hidden (RM, BM-B, BM-E). Rows go to ``<work>/results.json`` (keys ``refine/...``,
``missing/...``), forecasts to ``<work>/fc/``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_m4_extras.py --work runs/bench/m4 \
        --predictor seed0/step1000 --stride 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.timeseries_common import DATA_ROOT, crps_of  # noqa: E402
from benchmarks.timeseries_m4 import Cache, Store, forecasts  # noqa: E402
from timeseries.datasets import load_dataset  # noqa: E402
from timeseries.estimator import TSDiffPredictor  # noqa: E402
from timeseries.evaluation import seasonal_naive, truncate  # noqa: E402
from timeseries.refine import refine_forecasts, ridge_forecasts  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/bench/m4")
    p.add_argument("--root", default=str(DATA_ROOT))
    p.add_argument("--predictor", default="seed0/step1000")
    p.add_argument("--stride", type=int, default=30, help="every stride-th series (30: 14)")
    p.add_argument("--num-samples", type=int, default=100)
    p.add_argument("--deepar", default="deepar0-500", help="stored DeepAR forecasts (all 414)")
    p.add_argument("--iters", type=int, default=20, help="refinement iterations")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight", type=float, default=1.0, help="regulariser weight lambda")
    p.add_argument("--noise", type=float, default=0.1,
                   help="Langevin temperature gamma (noise sqrt(2 lr gamma) per iteration)")
    p.add_argument("--t", type=int, default=None, help="representative diffusion step")
    p.add_argument("--grid", default="0.05:0.1:10,0.05:0.01:10,0.05:0.001:10,0.1:0.01:20,"
                   "0.05:0:10", help="tune: lr:noise:t settings (noise 0 = most likely)")
    p.add_argument("--tune-samples", type=int, default=32)
    p.add_argument("--modes", default="ml,langevin", help="refine: variants to run")
    p.add_argument("--bases", default="all", help="refine: 'all' or a comma list of base names")
    p.add_argument("--parts", default="missing,refine", help="missing, refine, tune")
    args = p.parse_args()
    torch.set_num_threads(1)

    ds = load_dataset("m4_hourly", args.root)
    P, freq = ds.prediction_length, ds.freq
    idx = list(range(0, len(ds.train), args.stride))
    test = [ds.test[i] for i in idx]
    inputs = truncate(test, P)
    n = len(idx)
    work = Path(args.work)
    cache = Cache(work / "results.json")
    pred = TSDiffPredictor.deserialize(work / args.predictor)
    pred.batch_size = 8
    rel = args.predictor.replace("/", "-")
    seed0 = pred.seed

    if "missing" in args.parts:
        for scen in ("RM", "BM-B", "BM-E"):
            def make(part: list[int], scen: str = scen) -> tuple[list, float]:
                pred.seed = seed0 + part[0]
                pos = [idx.index(i) for i in part]
                t0 = time.process_time()
                fc = pred.predict([inputs[k] for k in pos], num_samples=args.num_samples,
                                  sampler="ddim", steps=10, missing_scenario=scen,
                                  progress=False)
                return [f.samples for f in fc], time.process_time() - t0

            def job(scen: str = scen, make=make) -> dict:
                samples, s_series = Store(work, f"{rel}-ddim10-sd-{scen}").get(idx, make)
                return {"crps": crps_of(forecasts(samples, inputs, freq), test),
                        "s_series": s_series, "scale": pred.config.scale_for("ddim")}

            row = cache.get(f"missing/{args.predictor}/ddim/10/{scen}/{n}", job)
            print(f"missing {scen}: {row['crps']:.4f}", flush=True)

    if "tune" in args.parts:
        tune(args, ds, idx, pred, cache)

    if "refine" in args.parts:
        deepar = Store(work, args.deepar)
        bases = {
            "seasonal naive": lambda: seasonal_naive(inputs, P, freq),
            "ridge": lambda: ridge_forecasts(ds.train, inputs, 312, P, args.num_samples),
            f"DeepAR ({args.deepar})": lambda: forecasts(
                [np.load(deepar.dir / f"{i}.npz")["samples"] for i in idx], inputs, freq),
        }
        for name, make_base in bases.items():
            if args.bases != "all" and name not in args.bases.split(","):
                continue
            base = make_base()
            cache.get(f"refine/base/{name}/{n}", lambda base=base: {"crps": crps_of(base, test)})
            for mode in args.modes.split(","):
                def job(base=base, mode=mode) -> dict:
                    t0 = time.process_time()
                    out = []
                    for k in range(n):  # one series (100 rows) at a time: cache-friendly
                        out += refine_forecasts(pred, inputs[k:k + 1], base[k:k + 1],
                                                num_samples=args.num_samples, steps=args.iters,
                                                lr=args.lr, weight=args.weight, mode=mode,
                                                noise=args.noise, t=args.t, seed=idx[k])
                    return {"crps": crps_of(out, test), "s_series": (time.process_time() - t0) / n,
                            "iters": args.iters, "lr": args.lr, "weight": args.weight,
                            "noise": args.noise if mode == "langevin" else 0.0, "t": args.t}

                key = f"refine/{args.predictor}/{name}/{mode}/{args.iters}/{n}"
                if (args.lr, args.noise, args.t) != (0.05, 0.1, None):  # round 6's setting
                    key += f"/lr{args.lr:g}-T{args.noise:g}-t{args.t}"
                row = cache.get(key, job)
                print(f"refine {name} {mode}: {cache.rows[f'refine/base/{name}/{n}']['crps']:.4f}"
                      f" -> {row['crps']:.4f}", flush=True)


def tune(args: argparse.Namespace, ds, idx: list[int], pred: TSDiffPredictor, cache: Cache
         ) -> None:
    """Refinement settings (lr, Langevin temperature, diffusion step t) on VALIDATION windows:
    the last 48 steps of each evaluation series' training part (the forecaster and the ridge
    base see only what precedes them), bases seasonal naive and ridge, ``--tune-samples``."""
    P, freq = ds.prediction_length, ds.freq
    val = [ds.train[i] for i in idx]
    inputs = truncate(val, P)
    n, k = len(idx), args.tune_samples
    bases = {"seasonal naive": seasonal_naive(inputs, P, freq),
             "ridge": ridge_forecasts(inputs, inputs, 312, P, k)}
    for name, base in bases.items():
        row = cache.get(f"tune/base/{name}/{n}", lambda base=base: {"crps": crps_of(base, val)})
        print(f"tune {name} base: {row['crps']:.4f}", flush=True)
        for setting in args.grid.split(","):
            lr, noise, t = (float(v) for v in setting.split(":"))
            mode = "ml" if noise == 0 else "langevin"

            def job(base=base, lr=lr, noise=noise, t=int(t), mode=mode) -> dict:
                t0 = time.process_time()
                out = []
                for j in range(n):
                    out += refine_forecasts(pred, inputs[j:j + 1], base[j:j + 1], num_samples=k,
                                            steps=args.iters, lr=lr, weight=args.weight,
                                            mode=mode, noise=noise, t=t, seed=idx[j])
                return {"crps": crps_of(out, val), "s_series": (time.process_time() - t0) / n}

            key = f"tune/{args.predictor}/{name}/{mode}/{args.iters}/lr{lr:g}-T{noise:g}-t{t:g}/{n}"
            row = cache.get(key, job)
            print(f"tune {name} {mode} lr {lr:g} T {noise:g} t {t:g}: {row['crps']:.4f} "
                  f"({row['s_series']:.1f} CPU s / series, {k} samples)", flush=True)


if __name__ == "__main__":
    main()
