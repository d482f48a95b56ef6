"""Benchmark: TSDiff-Q CRPS vs training budget on a benchmark subset (one run per seed).

EMA snapshots of ONE training run per seed are forecast with DDIM-k at every budget (and bf16,
DDPM-100 at the last); GluonTS DeepAR is trained for the last budget. Rows are appended to
``--out`` as they finish. (The all-series M4 study is ``benchmarks/timeseries_m4.py``.)

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_budget.py --budgets 500,1000 \
        --datasets m4_hourly --m4-series 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, where benchmarks/timeseries.py
# would shadow the ``timeseries`` package: put the repository root there instead
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.timeseries_common import (  # noqa: E402
    add_subset_args,
    crps_of,
    deepar,
    load_subset,
    parse_subset_args,
    snapshots,
    table_writer,
)
from common.training import TrainerConfig  # noqa: E402
from timeseries.estimator import TSDiffEstimator  # noqa: E402
from timeseries.evaluation import seasonal_naive  # noqa: E402


def budget_curve(args, load0: float, t0: float) -> None:
    """TSDiff-Q CRPS after each training budget of ONE training run per seed (EMA snapshots),
    DDIM-k at every budget and the paper's DDPM-100 at the last; DeepAR at the last budget."""
    budgets = sorted(int(b) for b in args.budgets.split(","))
    rows = ["| data (subset) | method | training steps x batch 64 | seed | CRPS | "
            "CPU s / train step | CPU s / forecast series |", "|---|---|---|---|---|---|---|"]

    out = table_writer(args.out, rows, "# TSDiff-Q: CRPS vs training budget", lambda: (
        f"`benchmarks/timeseries_budget.py --budgets {args.budgets}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC')}, {(time.time() - t0) / 60:.1f} min so far, "
        f"load average {load0:.1f} at start), {args.num_samples} samples, paper guidance "
        "scale, EMA weights, CPU seconds of this process."))

    for name in args.datasets.split(","):
        ds, train, test, windows, inputs, context = load_subset(name, args)
        P = ds.prediction_length
        sub = f"{name} ({len(train)} series x {windows} windows)"
        out(f"| {sub} | seasonal naive | - | - | "
            f"{crps_of(seasonal_naive(inputs, P, ds.freq), test):.4f} | - | - |")
        for seed in range(args.seeds):
            snap = snapshots(set(budgets))
            est = TSDiffEstimator(ds.freq, P, context_length=context,
                                  use_lags=name != "m4_hourly", dataset_name=name,
                                  sampler="ddim", sampling_steps=args.ddim_steps,
                                  trainer=TrainerConfig(max_steps=budgets[-1], accelerator="cpu",
                                                        enable_progress_bar=False, seed=seed),
                                  seed=seed, init_skip=name == "exchange_rate_nips")
            est.train(train, callbacks=[snap])
            for b in budgets:
                module = est.create_module()
                module.load_state_dict(snap.states[b], strict=False)
                pred = est.create_predictor(module)
                pred.batch_size = 8
                variants = [("ddim", args.ddim_steps, "32")]
                if b == budgets[-1] and seed == 0:
                    variants.append(("ddim", args.ddim_steps, "bf16"))
                    if args.save_dir:
                        pred.serialize(Path(args.save_dir) / f"{name}_{b}")
                if b == budgets[-1] and seed < args.ddpm_seeds:
                    variants.append(("ddpm", 100, "32"))
                for sampler, k, prec in variants:
                    t1 = time.process_time()
                    fc = list(pred.predict(inputs, num_samples=args.num_samples, sampler=sampler,
                                           steps=k, progress=False, precision=prec))
                    label = f"{sampler.upper()}-{k}" + (", bf16" if prec == "bf16" else "")
                    out(f"| {sub} | TSDiff-Q ({label}) | {b} | {seed} | "
                        f"{crps_of(fc, test):.4f} | {snap.cpu[b] / b:.3f} | "
                        f"{(time.process_time() - t1) / len(inputs):.2f} |")
        for seed in range(args.first_deepar_seed, args.first_deepar_seed + args.deepar_seeds):
            fc, tt, tp = deepar(ds.freq, P, context, train, inputs, budgets[-1], seed,
                                args.num_samples)
            out(f"| {sub} | DeepAR | {budgets[-1]} | {seed} | {crps_of(fc, test):.4f} | "
                f"{tt / budgets[-1]:.3f} | {tp / len(inputs):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_subset_args(p, "timeseries_budget.md")
    p.add_argument("--budgets", default="500,1000", help="comma-separated TSDiff budgets")
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--seeds", type=int, default=1, help="TSDiff seeds")
    p.add_argument("--deepar-seeds", type=int, default=3)
    p.add_argument("--first-deepar-seed", type=int, default=0,
                   help="DeepAR seeds start here (add seeds to an earlier run)")
    p.add_argument("--ddpm-seeds", type=int, default=1,
                   help="seeds also forecast with DDPM-100 at the last budget")
    p.add_argument("--save-dir", default="",
                   help="serialize seed 0's predictor at the last budget here")
    args = parse_subset_args(p)
    budget_curve(args, os.getloadavg()[0], time.time())


if __name__ == "__main__":
    main()
