"""Benchmark: TSDiff-Q on M4 hourly in the paper's setting (trained on all 414 series).

``train``: one TSDiff run per seed on ALL M4-hourly training series (context 312 + 48, no lags,
paper's guidance scale 2), resumable from ``<work>/seed<s>/ckpt/last.ckpt``; the EMA weights at
each budget are serialized as a gluonts predictor ``<work>/seed<s>/step<b>`` with the CPU
seconds per training step. ``eval``: CRPS of every saved predictor (DDIM-k), of seasonal naive
and of GluonTS DeepAR (same budget, several seeds) on the SAME evaluation series (every
``--stride``-th series, the single final 48-step window; ``--stride 1``: all 414), and a sampler
study (guided DDPM-100, DDIM-k, DPM-Solver++(2M)) on one predictor. Forecast samples are stored
per series under ``<work>/fc/`` (an interrupted job resumes; a subset reuses the series already
forecast); CRPS rows go to ``<work>/results.json`` and the tables to ``--out``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_m4.py train --seed 0 \
        --budgets 500,1000,2000,3000 --work runs/bench/m4
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_m4.py eval --work runs/bench/m4 \
        --stride 4 --jobs seed0/step1000:ddim:10:0.25,deepar:0:500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, where benchmarks/timeseries.py
# would shadow the ``timeseries`` package: put the repository root there instead
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch  # noqa: E402

from benchmarks.timeseries_common import DATA_ROOT, REPO  # noqa: E402
from common.io import atomic_write_text  # noqa: E402
from common.training import TrainerConfig  # noqa: E402
from timeseries.datasets import load_dataset  # noqa: E402
from timeseries.estimator import TSDiffEstimator  # noqa: E402


def train(args: argparse.Namespace) -> None:
    """Train seed ``args.seed`` up to the largest budget; serialize the EMA predictor at each."""
    ds = load_dataset("m4_hourly", args.root)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    work = Path(args.work) / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    est = TSDiffEstimator(ds.freq, ds.prediction_length, context_length=312, use_lags=False,
                          dataset_name="m4_hourly", checkpoint_dir=work / "ckpt",
                          trainer=TrainerConfig(max_steps=budgets[-1], accelerator="cpu",
                                                enable_progress_bar=False, seed=args.seed,
                                                checkpoint_every_n_steps=250),
                          seed=args.seed)

    train_with_snapshots(est, ds.train, work, budgets, args.seed)


def train_with_snapshots(est: TSDiffEstimator, train_data, work: Path, budgets: list[int],
                         seed: int) -> None:
    """Train ``est`` to the largest budget, serializing the EMA predictor at every budget."""
    from benchmarks.timeseries_common import snapshots

    def save(step: int, state: dict, cpu: float) -> None:
        module = est.create_module()
        module.load_state_dict(state, strict=False)
        est.create_predictor(module).serialize(work / f"step{step}")
        done = step - snap.step0
        atomic_write_text(work / f"step{step}" / "budget.json", json.dumps({
            "steps": step, "series": len(train_data), "cpu_s_per_step": cpu / max(done, 1),
            "load_at_start": load0, "utc": time.strftime("%Y-%m-%d %H:%M")}))
        print(f"seed {seed} step {step}: {cpu / max(done, 1):.3f} CPU s / step", flush=True)

    load0 = os.getloadavg()[0]
    snap = snapshots(set(budgets), save)
    est.train(train_data, callbacks=[snap])


class Cache:
    """Results of finished jobs (``<work>/results.json``): re-running ``eval`` skips them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, job) -> dict:
        if key not in self.rows:
            self.rows[key] = {**job(), "utc": time.strftime("%H:%M"),
                              "load": round(os.getloadavg()[0], 1)}
            atomic_write_text(self.path, json.dumps(self.rows, indent=1))
        return self.rows[key]


class Store:
    """Per-series forecast samples of one method (``<work>/fc/<tag>/<i>.npz``: samples and CPU
    seconds of series ``i``): a 414-series job resumes after an interruption, and any subset's
    CRPS (another stride, another seed's subset) reuses the series already forecast."""

    def __init__(self, root: Path, tag: str) -> None:
        self.dir = root / "fc" / tag
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, idx: list[int], make, group: int = 8) -> tuple[list, float]:
        """``(samples per series of idx, mean CPU s per series)``; ``make(indices)`` returns
        ``(samples list, CPU seconds)`` for the missing ones, ``group`` at a time."""
        import io

        import numpy as np

        from common.io import atomic_write_bytes

        todo = [i for i in idx if not (self.dir / f"{i}.npz").exists()]
        for lo in range(0, len(todo), group):
            part = todo[lo:lo + group]
            samples, cpu = make(part)
            for i, x in zip(part, samples):
                buf = io.BytesIO()
                np.savez(buf, samples=np.asarray(x, dtype=np.float32), cpu=cpu / len(part))
                atomic_write_bytes(self.dir / f"{i}.npz", buf.getvalue())
            print(f"{self.dir.name}: {len(todo) - lo - len(part)} series left", flush=True)
        got = [np.load(self.dir / f"{i}.npz") for i in idx]
        return [g["samples"] for g in got], float(np.mean([float(g["cpu"]) for g in got]))


def forecasts(samples: list, inputs: list, freq: str) -> list:
    """``SampleForecast``s of stored samples (start: the step after each input's end)."""
    import pandas as pd
    from gluonts.model.forecast import SampleForecast

    return [SampleForecast(samples=x, start_date=pd.Period(e["start"], freq=freq)
                           + len(e["target"]), item_id=e.get("item_id"))
            for x, e in zip(samples, inputs)]


def evaluate_all(args: argparse.Namespace) -> None:
    """Seasonal naive, DeepAR seeds and every requested TSDiff predictor/sampler on the same
    evaluation series (every ``stride``-th); forecasts are stored per series, so jobs resume
    and subsets reuse them; rewrites ``args.out`` after every job."""
    from benchmarks.timeseries_common import crps_of, deepar
    from benchmarks.timeseries_results_m4 import write_m4
    from timeseries.estimator import TSDiffPredictor
    from timeseries.evaluation import seasonal_naive, truncate

    ds = load_dataset("m4_hourly", args.root)
    P, freq = ds.prediction_length, ds.freq
    idx = list(range(0, len(ds.train), args.stride))
    test, pre = [ds.test[i] for i in idx], ""  # one window per M4 series: test[i] is series i
    if args.split == "val":  # validation window: the last P steps of each training series
        test, pre = [ds.train[i] for i in idx], "val-"
    inputs = truncate(test, P)
    full_inputs = truncate(ds.test, P)
    n = len(test)
    cache = Cache(Path(args.work) / "results.json")

    def flush() -> None:
        write_m4(args.out, cache.rows, n, args.stride, len(ds.train))

    cache.get(f"naive/{n}", lambda: {"crps": crps_of(seasonal_naive(inputs, P, freq),
                                                          test)})
    cache.get(f"naive/{len(ds.test)}", lambda: {
        "crps": crps_of(seasonal_naive(full_inputs, P, freq), ds.test)})
    flush()
    pos = {i: k for k, i in enumerate(idx)}

    def tsdiff(rel: str, sampler: str, k: int, scale: float | None,
               guidance: str = "quantile") -> dict:
        pred = TSDiffPredictor.deserialize(Path(args.work) / rel)
        seed0 = pred.seed

        def make(part: list[int]) -> tuple[list, float]:
            pred.seed, pred.batch_size = seed0 + part[0], 8  # series i draws from seed0 + i
            t0 = time.process_time()
            fc = list(pred.predict([inputs[pos[i]] for i in part], num_samples=args.num_samples,
                                   sampler=sampler, steps=k, scale=scale, progress=False,
                                   guidance=guidance))
            return [f.samples for f in fc], time.process_time() - t0

        tag = f"{pre}{rel.replace('/', '-')}-{sampler}{k}-s{scale if scale is not None else 'd'}"
        tag += "-ms" if guidance == "mse" else ""
        samples, s_series = Store(Path(args.work), tag).get(idx, make)
        meta = json.loads((Path(args.work) / rel / "budget.json").read_text())
        return {"crps": crps_of(forecasts(samples, inputs, freq), test), "s_series": s_series,
                "s_step": meta["cpu_s_per_step"], "steps": meta["steps"]}

    def deepar_job(seed: int, steps: int) -> dict:
        # trained on ALL series (as TSDiff); forecasts of all 414 stored, any subset scored
        store = Store(Path(args.work), f"deepar{seed}-{steps}")
        every = list(range(len(ds.test)))
        spent = {}

        def make(part: list[int]) -> tuple[list, float]:
            fc, tt, tp = deepar(freq, P, 312, ds.train, [full_inputs[i] for i in part], steps,
                                seed, args.num_samples)
            spent["train"] = tt
            return [f.samples for f in fc], tp

        samples_all, s_series = store.get(every, make, group=len(every))
        meta = store.dir / "train.json"
        if "train" in spent:
            atomic_write_text(meta, json.dumps({"cpu_train": spent["train"]}))
        tt = json.loads(meta.read_text())["cpu_train"] if meta.exists() else float("nan")
        return {"crps": crps_of(forecasts([samples_all[i] for i in idx], inputs, freq), test),
                "crps_all": crps_of(forecasts(samples_all, full_inputs, freq), ds.test),
                "s_step": tt / steps, "s_series": s_series, "steps": steps}

    for job in filter(None, args.jobs.split(",")):
        kind, *rest = job.split(":")
        if kind == "deepar":  # deepar:<seed>:<steps>
            cache.get(f"deepar/{rest[0]}/{rest[1]}/{n}",
                      partial(deepar_job, int(rest[0]), int(rest[1])))
        else:  # <seed<s>/step<b>>:<sampler>:<k>[:<scale, default the predictor's>][:ms]
            ms = rest[-1] == "ms"  # TSDiff-MS (mean squared error guidance); else TSDiff-Q
            rest = rest[:-1] if ms else rest
            scale = float(rest[2]) if len(rest) > 2 else None
            tag = "" if scale is None else f"/s{scale:g}"
            cache.get(f"{pre}tsdiff{'-ms' if ms else ''}/{kind}/{rest[0]}/{rest[1]}{tag}/{n}",
                      partial(tsdiff, kind, rest[0], int(rest[1]), scale,
                              "mse" if ms else "quantile"))
        flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train", help="train one seed on all series, predictors at each budget")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--budgets", default="500,1000,2000,3000")
    e = sub.add_parser("eval", help="CRPS of saved predictors and of the baselines")
    e.add_argument("--jobs", default="seed0/step500:ddim:10,deepar:0:500",
                   help="comma-separated jobs in order: seed<s>/step<b>:<sampler>:<steps>"
                        "[:<scale>][:ms] (sampler ddim, ddpm, dpmpp_2m; ms: TSDiff-MS) or "
                        "deepar:<seed>:<steps>")
    e.add_argument("--stride", type=int, default=30,
                   help="evaluate every stride-th series (414 / 30 -> 14 series)")
    e.add_argument("--num-samples", type=int, default=100)
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="val: forecast the last 48 steps of each training series instead "
                        "(to choose a guidance scale without the test windows)")
    e.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "timeseries_m4_auto.md"),
                   help="auto-generated tables (timeseries_m4.md is the curated summary)")
    for q in (t, e):
        q.add_argument("--root", default=str(DATA_ROOT))
        q.add_argument("--work", default="runs/bench/m4")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.mode == "train":
        train(args)
    else:
        evaluate_all(args)


if __name__ == "__main__":
    main()
