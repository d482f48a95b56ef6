"""Benchmark: TSDiff missing-value scenarios, refinement and train-on-synthetic/test-on-real.

With ``--extras-from DIR`` (a serialized predictor, one data set): the missing-value scenarios
(RM, BM-B, BM-E), seasonal-naive refinement and extra samplers on every subset series; then
train-on-synthetic/test-on-real: ridge (TSDiff's Linear Predictive Score) and GluonTS DeepAR
(lags that fit inside a window, ``timeseries.tstr.window_lags``), each against the same model
trained on real windows. Without ``--extras-from`` a TSDiff is trained for ``--train-steps``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_tstr.py --datasets m4_hourly \
        --extras-from runs/bench/m4/seed0/step1000 --train-steps 250
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.timeseries_common import (  # noqa: E402
    add_subset_args,
    crps_of,
    load_subset,
    parse_subset_args,
    table_writer,
)
from common.training import TrainerConfig  # noqa: E402
from timeseries.estimator import TSDiffEstimator  # noqa: E402
from timeseries.evaluation import seasonal_naive  # noqa: E402
from timeseries.refine import refine  # noqa: E402
from timeseries.windows import forecast_window, mean_scale  # noqa: E402


def _scaled_windows(entries, length: int, context: int, per_series: int, rng) -> np.ndarray:
    """Target windows [n, length] of ``entries``, each divided by its context's mean |y|."""
    out = []
    for e in entries:
        y = np.asarray(e["target"], dtype=np.float64)
        for end in rng.integers(length, len(y) + 1, size=per_series) if per_series else [len(y)]:
            w = y[end - length:end]
            out.append(w / max(np.abs(w[:context]).mean(), 1e-3))
    return np.stack(out)


def tstr(args, load0: float, t0: float) -> None:
    """With ``--extras-from DIR`` (a serialized predictor, one data set): missing-value scenarios
    and seasonal-naive refinement on every subset series; then train-on-synthetic/test-on-real:
    ridge (TSDiff's LPS) and DeepAR, against the same models trained on real windows, on the
    test windows (one seed). Without it a TSDiff is trained for ``--train-steps``."""
    from timeseries.estimator import TSDiffPredictor
    from timeseries.refine import linear_predictive_score, synthesize
    from timeseries.tstr import tstr_deepar

    rows = ["| data (subset) | experiment | result | budget |", "|---|---|---|---|"]
    rng = np.random.default_rng(0)

    out = table_writer(
        args.out, rows, "# TSDiff: missing values, refinement, train on synthetic / test on real",
        lambda: (f"`benchmarks/timeseries_tstr.py` ({time.strftime('%Y-%m-%d %H:%M UTC')}, "
                 f"{(time.time() - t0) / 60:.1f} min, load average {load0:.1f} at start), seed 0, "
                 f"{args.num_samples} samples, CRPS = GluonTS mean weighted quantile loss. Real "
                 "windows are mean-scaled (context) windows of the training series; DeepAR is "
                 "trained on windows as short series with GluonTS' lags that fit in a window "
                 "(`window_lags`: hourly lags <= 156, context 167 for 312 + 48)."))

    for name in args.datasets.split(","):
        ds, train, test, windows, inputs, context = load_subset(name, args)
        P = ds.prediction_length
        if args.extras_from:
            pred = TSDiffPredictor.deserialize(Path(args.extras_from))
            budget = f"TSDiff from {'/'.join(Path(args.extras_from).parts[-2:])}"
        else:
            pred = TSDiffEstimator(ds.freq, P, context_length=context,
                                   use_lags=name != "m4_hourly", dataset_name=name,
                                   trainer=TrainerConfig(max_steps=args.train_steps,
                                                         accelerator="cpu",
                                                         enable_progress_bar=False, seed=0),
                                   seed=0, init_skip=name == "exchange_rate_nips").train(train)
            budget = f"TSDiff {args.train_steps} steps"
        c = pred.config
        sub = f"{name} ({len(train)} series x {windows} windows)"
        if args.extras_from and not args.no_extras:
            obs, masks = zip(*(forecast_window(np.asarray(e["target"], dtype=np.float64),
                                               np.isfinite(e["target"]).astype(np.float32),
                                               c.context_length, P, c.lags) for e in inputs))
            obs, masks = np.stack(obs), np.stack(masks)
            sc = mean_scale(obs, masks, c.context_length)
            sn = seasonal_naive(inputs, P, ds.freq)
            base = np.stack([np.resize(f.samples, (args.refine_samples, P)) for f in sn])
            for mode in ("ml", "langevin"):
                ref = refine(pred.denoiser, torch.from_numpy(obs / sc[:, None, None]),
                             torch.from_numpy(masks),
                             torch.from_numpy((base / sc[:, None, None]).astype(np.float32)),
                             P, steps=args.refine_iters, mode=mode, lr=0.05, weight=1.0)
                fc = [type(f)(samples=r.numpy() * s, start_date=f.start_date, item_id=f.item_id)
                      for f, r, s in zip(sn, ref, sc)]
                out(f"| {sub} | seasonal naive refined ({mode}, {args.refine_iters} it, "
                    f"{args.refine_samples} samples) | CRPS {crps_of(fc, test):.4f} (base "
                    f"{crps_of(sn, test):.4f}) | {budget} |")
        syn = synthesize(pred.denoiser, args.synthetic, 1 + len(c.lags), context + P)[:, 0]
        syn = syn.numpy().astype(np.float64)
        real_test = _scaled_windows(test, context + P, context, 0, rng)
        real_train = _scaled_windows(train, context + P, context,
                                     max(args.synthetic // len(train), 1), rng)
        syn_budget = f"{budget}, {args.synthetic} DDPM-100 samples"
        for label, data in (("real", real_train), ("TSDiff synthetic", syn)):
            lps = linear_predictive_score(data, real_test, context)
            out(f"| {sub} | ridge trained on {label} ({len(data)} windows) | LPS (NMAE) "
                f"{lps:.4f} | {'-' if label == 'real' else syn_budget} |")
        if args.extras_from and not args.no_extras:  # the dearest extras last
            pred.batch_size = 8
            for item in filter(None, args.extras_samplers.split(",")):
                sampler, k = item.split(":")[0], int(item.split(":")[1])
                t1 = time.process_time()
                fc = list(pred.predict(inputs, num_samples=args.num_samples, sampler=sampler,
                                       steps=k, progress=False))
                out(f"| {sub} | TSDiff-Q {sampler.upper()}-{k} | CRPS {crps_of(fc, test):.4f} "
                    f"({(time.process_time() - t1) / len(inputs):.1f} CPU s / series) | "
                    f"{budget} |")
            for scen in ("RM", "BM-B", "BM-E"):  # "none" is the budget curve's row
                fc = list(pred.predict(inputs, num_samples=args.num_samples, sampler="ddim",
                                       steps=args.ddim_steps, missing_scenario=scen,
                                       progress=False))
                out(f"| {sub} | TSDiff-Q DDIM-{args.ddim_steps}, missing: {scen} (half the "
                    "context hidden) | "
                    f"CRPS {crps_of(fc, test):.4f} | {budget} |")
        for label, data in (("real", real_train), ("TSDiff synthetic", syn)):
            fc = tstr_deepar(data, inputs, ds.freq, P, context, max_steps=args.train_steps,
                             num_samples=args.num_samples)
            out(f"| {sub} | DeepAR trained on {label} ({len(data)} windows) | CRPS "
                f"{crps_of(fc, test):.4f} | {args.train_steps} DeepAR steps"
                f"{'' if label == 'real' else '; ' + syn_budget} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_subset_args(p, "timeseries_tstr.md")
    p.add_argument("--train-steps", type=int, default=250,
                   help="DeepAR TSTR steps (and TSDiff steps without --extras-from)")
    p.add_argument("--synthetic", type=int, default=256, help="synthetic windows")
    p.add_argument("--extras-from", default="",
                   help="use this serialized predictor; also missing values, refinement")
    p.add_argument("--extras-samplers", default="ddim:25,ddpm:100",
                   help="--extras-from: sampler:steps variants forecast on every series")
    p.add_argument("--no-extras", action="store_true",
                   help="with --extras-from: only the train-on-synthetic rows")
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--refine-samples", type=int, default=16)
    p.add_argument("--refine-iters", type=int, default=20)
    args = parse_subset_args(p)
    tstr(args, os.getloadavg()[0], time.time())


if __name__ == "__main__":
    main()
