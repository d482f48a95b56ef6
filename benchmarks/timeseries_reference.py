"""Benchmark: our TSDiff against the REFERENCE TSDiff code (Kollovieh et al. 2023, Alg. 1 training,
Eq. 8-9 self-guided DDPM/DDIM), like for like on M4 hourly (context 312 + 48, no lags).

The reference (github.com/amazon-science/unconditional-time-series-diffusion, Apache-2.0) is never
copied: it is IMPORTED from the checkout given as ``--reference-dir`` and run in its own recipe,
read from its ``configs/train_tsdiff/train_m4.yaml`` (diffusion_small_config: S4 hidden 64,
3 blocks, d_state 128; Adam lr 1e-3, gradient-norm clip 0.5, batch 64) on its own gluonts data
pipeline (``create_transforms`` + ``create_splitter``: one random 360-step window per sampled
series) fed with the M4 hourly training series of ``--root``.

``speed``: CPU seconds per training step (batch 64, one thread) of the reference and of ours, in
one process, interleaved rounds, best-of block means: the model step alone (forward, backward,
clip, optimizer step), each recipe's data loading, and ours through its real Lightning trainer.
``train``: trains the reference up to the largest ``--budgets`` (resumable from
``<work>/ref/last.pt``, a snapshot of the weights and the CPU seconds spent at each budget).
``eval``: the reference's own guided sampler (``DDIMGuidance``/``DDPMGuidance``, TSDiff-Q) on the
SAME evaluation series as ``benchmarks/timeseries_m4.py`` (every ``--stride``-th M4 series, its
final 48-step window, 100 samples, series i seeded with i), CRPS (GluonTS mean weighted quantile
loss) and CPU seconds per series; forecasts are stored per series (resumable).
``report``: the tables of all that, with our rows read from ``timeseries_m4.py``'s work folders.

Shims (written here, applied only inside ``import_reference``) to import the reference under the
installed versions (torch 2.x CPU, lightning 2.x, gluonts 0.17), none changing its numerics:

* ``pytorch_lightning`` is aliased to ``lightning.pytorch`` (its S4 file needs ``rank_zero_only``,
  its model subclasses ``LightningModule``). Lightning 2 refuses its ``training_epoch_end`` hooks,
  so its Trainer is not used: ``train`` runs the same step in a plain loop (its
  ``configure_optimizers`` Adam, ``clip_grad_norm_(0.5)`` as its ``gradient_clip_val``); its
  ReduceLROnPlateau has patience 1e12, i.e. never changes the lr, and is left out.
* ``gluonts.torch.modules.scaler`` (removed in gluonts 0.13): ``MeanScaler``/``NOPScaler`` of
  ``gluonts.torch.scaler`` returning the old ``(scaled, scale)`` pair.
* ``gluonts.model.forecast_generator.predict_to_numpy`` (removed): an empty singledispatch, so that
  its (unused) linear baseline module imports.
* ``seaborn`` (imported by its utils only to set a plot style): an empty stand-in when absent.
* ``einops`` and ``opt_einsum`` are real packages (``pip install einops opt_einsum``); without
  pykeops or its CUDA extension its S4 kernel takes its own slow (naive Cauchy) path.
* its ``training_step`` fails for tensor batches (``features`` unbound), so batches are always the
  dicts of its gluonts pipeline, as in its ``bin/train_model.py``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_reference.py speed \
        --reference-dir DIR --work runs/bench/reference
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_reference.py train \
        --reference-dir DIR --work runs/bench/reference --budgets 500,1000
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_reference.py eval \
        --reference-dir DIR --work runs/bench/reference --jobs step500:ddim:10:0.25
    python benchmarks/timeseries_reference.py report --work runs/bench/reference \
        --ours-work runs/bench/m4
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

# run as a script, this file's folder comes first on sys.path, where benchmarks/timeseries.py
# would shadow the ``timeseries`` package: put the repository root there instead
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.timeseries_common import DATA_ROOT  # noqa: E402
from common.errors import ConfigError  # noqa: E402
from common.io import atomic_write_text, load_checkpoint, save_checkpoint  # noqa: E402
from timeseries.datasets import load_dataset  # noqa: E402

KIND = "benchmarks/tsdiff-reference"
CONFIG = "configs/train_tsdiff/train_m4.yaml"


def _install_shims() -> None:
    """Make the reference importable under the installed versions (see the module docstring)."""
    import gluonts.model.forecast_generator as fg
    import gluonts.torch.modules as gtm
    import lightning.pytorch as lpl
    import lightning.pytorch.callbacks as lcb
    import lightning.pytorch.utilities as lut
    from gluonts.torch import scaler as new_scaler

    sys.modules.setdefault("pytorch_lightning", lpl)
    sys.modules.setdefault("pytorch_lightning.utilities", lut)
    sys.modules.setdefault("pytorch_lightning.callbacks", lcb)
    try:
        import seaborn  # noqa: F401
    except ImportError:
        stub = types.ModuleType("seaborn")
        stub.set = lambda *args, **kwargs: None
        sys.modules["seaborn"] = stub

    class MeanScaler(new_scaler.MeanScaler):
        """gluonts < 0.13's MeanScaler: ``(data / scale, scale)``."""

        def __call__(self, data: torch.Tensor, observed: torch.Tensor):
            scaled, _, scale = super().__call__(data, observed)
            return scaled, scale

    class NOPScaler(new_scaler.NOPScaler):
        """gluonts < 0.13's NOPScaler: ``(data, ones)``."""

        def __call__(self, data: torch.Tensor, observed: torch.Tensor):
            scaled, _, scale = super().__call__(data, observed)
            return scaled, scale

    if "gluonts.torch.modules.scaler" not in sys.modules:
        old = types.ModuleType("gluonts.torch.modules.scaler")
        old.MeanScaler, old.NOPScaler = MeanScaler, NOPScaler
        sys.modules[old.__name__] = old
        gtm.scaler = old
    if not hasattr(fg, "predict_to_numpy"):
        @functools.singledispatch
        def predict_to_numpy(prediction_net: Any, kwargs: dict) -> np.ndarray:
            raise NotImplementedError(type(prediction_net).__name__)

        fg.predict_to_numpy = predict_to_numpy


def import_reference(ref_dir: str | Path) -> types.SimpleNamespace:
    """The reference's modules and its M4 config (``ref.config``) from the checkout ``ref_dir``."""
    import yaml

    ref_dir = Path(ref_dir)
    cfg_path = ref_dir / CONFIG
    if not (ref_dir / "src" / "uncond_ts_diff").is_dir() or not cfg_path.is_file():
        raise ConfigError(f"--reference-dir {ref_dir}: expected a checkout of "
                          "amazon-science/unconditional-time-series-diffusion (with "
                          f"src/uncond_ts_diff and {CONFIG})")
    _install_shims()
    sys.path.insert(0, str(ref_dir / "src"))
    import uncond_ts_diff.configs as configs
    import uncond_ts_diff.utils as utils
    from uncond_ts_diff.model import TSDiff
    from uncond_ts_diff.sampler import DDIMGuidance, DDPMGuidance

    config = yaml.safe_load(cfg_path.read_text())
    return types.SimpleNamespace(configs=configs, utils=utils, TSDiff=TSDiff, config=config,
                                 samplers={"ddim": DDIMGuidance, "ddpm": DDPMGuidance})


def reference_model(ref: types.SimpleNamespace) -> torch.nn.Module:
    """The reference TSDiff built as its ``bin/train_model.py:create_model`` does, on the CPU."""
    c = ref.config
    return ref.TSDiff(**getattr(ref.configs, c["diffusion_config"]), freq=c["freq"],
                      use_features=c["use_features"], use_lags=c["use_lags"],
                      normalization=c["normalization"], context_length=c["context_length"],
                      prediction_length=c["prediction_length"], lr=c["lr"],
                      init_skip=c["init_skip"])


def reference_transforms(ref: types.SimpleNamespace, model: torch.nn.Module, mode: str):
    """The reference's feature transforms and its instance splitter (``mode`` "train"/"test")."""
    c = ref.config
    transform = ref.utils.create_transforms(
        num_feat_dynamic_real=0, num_feat_static_cat=0, num_feat_static_real=0,
        time_features=model.time_features, prediction_length=c["prediction_length"])
    splitter = ref.utils.create_splitter(
        past_length=c["context_length"] + max(model.lags_seq),
        future_length=c["prediction_length"], mode=mode)
    return transform, splitter


def reference_loader(ref: types.SimpleNamespace, model: torch.nn.Module, train: list):
    """The reference's training batches (its transforms, splitter and gluonts TrainDataLoader),
    epoch after epoch (one epoch = its ``num_batches_per_epoch`` batches)."""
    from gluonts.dataset.loader import TrainDataLoader
    from gluonts.itertools import Cached
    from gluonts.torch.batchify import batchify

    c = ref.config
    transform, splitter = reference_transforms(ref, model, "train")
    loader = TrainDataLoader(Cached(transform.apply(train, is_train=True)),
                             batch_size=c["batch_size"], stack_fn=batchify, transform=splitter,
                             num_batches_per_epoch=c["num_batches_per_epoch"])
    while True:
        yield from loader


def reference_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict,
                   clip: float) -> float:
    """One training step of the reference's recipe: its ``training_step`` loss (DDPM eps MSE at
    a uniform random step), backward, gradient-norm clip (its ``gradient_clip_val``), Adam."""
    loss = model.training_step(batch, 0)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss.detach())


def train(args: argparse.Namespace) -> None:
    """Train the reference up to the largest budget (resumable); snapshot at every budget."""
    ref = import_reference(args.reference_dir)
    ds = load_dataset("m4_hourly", args.root)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    work = Path(args.work) / "ref"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = reference_model(ref)
    opt = model.configure_optimizers()[0][0]
    step, cpu, losses = 0, 0.0, []
    if (work / "last.pt").exists():
        state = load_checkpoint(work / "last.pt", KIND)
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, cpu, losses = int(state["step"]), float(state["cpu_s"]), list(state["losses"])
        print(f"resuming the reference at step {step} ({cpu:.0f} CPU s spent)", flush=True)
    np.random.seed(args.seed + step)  # its instance sampler draws from numpy's global RNG
    batches = iter(reference_loader(ref, model, ds.train))
    clip = float(ref.config.get("gradient_clip_val") or 0.0) or float("inf")
    model.train()
    load0 = os.getloadavg()[0]
    while step < budgets[-1]:
        t0 = time.process_time()
        losses.append(reference_step(model, opt, next(batches), clip))
        cpu += time.process_time() - t0
        step += 1
        if step % args.save_every == 0 or step in budgets:
            state = {"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                     "torch_rng": torch.get_rng_state(), "step": step, "cpu_s": cpu,
                     "losses": losses}
            save_checkpoint(work / "last.pt", KIND, state)
            print(f"reference step {step}: {cpu / step:.3f} CPU s / step, mean loss of the "
                  f"last 50 {np.mean(losses[-50:]):.4f}", flush=True)
        if step in budgets:
            save_checkpoint(work / f"step{step}.pt", KIND, {
                "state_dict": model.state_dict(), "step": step, "cpu_s": cpu,
                "loss_last50": float(np.mean(losses[-50:])), "load_at_start": load0,
                "utc": time.strftime("%Y-%m-%d %H:%M")})



def reference_forecaster(ref: types.SimpleNamespace, path: Path, sampler: str, steps: int,
                         scale: float, num_samples: int):
    """``forecast(entry) -> samples [num_samples, P]`` by the reference's own guided sampler
    (TSDiff-Q) and gluonts predictor path, as its ``evaluate_guidance`` builds it."""
    c = ref.config
    model = reference_model(ref)
    model.load_state_dict(load_checkpoint(path, KIND)["state_dict"])
    model.eval()
    kwargs = {"skip_factor": model.timesteps // steps} if sampler == "ddim" else {}
    if sampler == "ddpm" and steps != model.timesteps:
        raise ConfigError(f"the reference's DDPM guidance runs all {model.timesteps} steps")
    guide = ref.samplers[sampler](model=model, prediction_length=c["prediction_length"],
                                  num_samples=num_samples, guidance="quantile", scale=scale,
                                  missing_scenario="none", missing_values=0, **kwargs)
    transform, splitter = reference_transforms(ref, model, "test")
    masking = ref.utils.MaskInput("target", "observed_values", c["context_length"], "none", 0)
    predictor = guide.get_predictor(splitter + masking, batch_size=1, device="cpu")

    def forecast(entry: dict) -> np.ndarray:
        data = transform.apply([entry], is_train=False)
        return next(iter(predictor.predict(data, num_samples=num_samples))).samples

    return forecast


def evaluate(args: argparse.Namespace) -> None:
    """CRPS and CPU s per series of the reference's snapshots with its own guided samplers on the
    evaluation series of ``timeseries_m4.py`` (every ``stride``-th, final window)."""
    from benchmarks.timeseries_common import crps_of
    from benchmarks.timeseries_m4 import Cache, Store, forecasts
    from timeseries.evaluation import seasonal_naive, truncate

    ref = import_reference(args.reference_dir)
    ds = load_dataset("m4_hourly", args.root)
    P, freq = ds.prediction_length, ds.freq
    idx = list(range(0, len(ds.train), args.stride))
    test = [ds.test[i] for i in idx]  # one window per M4 series: test[i] is series i
    inputs = truncate(test, P)
    pos = {i: k for k, i in enumerate(idx)}
    work = Path(args.work)
    cache = Cache(work / "results.json")
    n = len(test)
    cache.get(f"naive/{n}", lambda: {"crps": crps_of(seasonal_naive(inputs, P, freq), test)})
    for job in filter(None, args.jobs.split(",")):
        snap, sampler, k, scale = job.split(":")
        path = work / "ref" / f"{snap}.pt"

        def run(snap=snap, sampler=sampler, k=int(k), scale=float(scale), path=path) -> dict:
            fc = reference_forecaster(ref, path, sampler, k, scale, args.num_samples)

            def make(part: list[int]) -> tuple[list, float]:
                out, t0 = [], time.process_time()
                for i in part:
                    torch.manual_seed(args.seed + i)
                    out.append(fc(inputs[pos[i]]))
                return out, time.process_time() - t0

            samples, s_series = Store(work, f"ref-{snap}-{sampler}{k}-s{scale:g}").get(
                idx, make, group=1)
            meta = load_checkpoint(path, KIND)
            return {"crps": crps_of(forecasts(samples, inputs, freq), test),
                    "s_series": s_series, "steps": int(meta["step"]),
                    "cpu_train": float(meta["cpu_s"])}

        row = cache.get(f"ref/{snap}/{sampler}/{k}/s{float(scale):g}/{n}", run)
        print(job, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
              flush=True)



def _best(times: list[list[float]]) -> float:
    """Best (smallest) block mean of per-step CPU seconds."""
    return float(min(np.mean(block) for block in times if block))


def speed(args: argparse.Namespace) -> None:
    """CPU s per training step (batch 64, one thread), reference and ours in one process:
    ``rounds`` interleaved blocks of ``steps`` steps each, best block mean; then ours through
    its real Lightning trainer (data, EMA, logging included). Writes ``<work>/speed.json``."""
    import lightning.pytorch as pl

    from common.training import TrainerConfig
    from timeseries.estimator import TSDiffEstimator

    ref = import_reference(args.reference_dir)
    ds = load_dataset("m4_hourly", args.root)
    c = ref.config
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rmodel = reference_model(ref).train()
    ropt = rmodel.configure_optimizers()[0][0]
    rdata = iter(reference_loader(ref, rmodel, ds.train))
    clip = float(c["gradient_clip_val"])
    est = TSDiffEstimator(ds.freq, ds.prediction_length, context_length=c["context_length"],
                          use_lags=c["use_lags"], dataset_name="m4_hourly",
                          batch_size=c["batch_size"], lr=c["lr"], gradient_clip_val=clip,
                          seed=args.seed)
    ours = est.create_module().model.train()
    oopt = torch.optim.AdamW(ours.parameters(), lr=est.lr)  # DiffusionModule's optimizer
    odata = iter(est.create_loader(ds.train))

    def ours_step(batch: dict) -> None:
        loss = ours.loss(batch["x"], None, batch["mask"]).mean()
        oopt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), clip)
        oopt.step()

    t = {k: [] for k in ("ref_data", "ref_step", "ours_data", "ours_step")}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name, data, step in (("ref", rdata, lambda b: reference_step(rmodel, ropt, b, clip)),
                                 ("ours", odata, ours_step)):
            td, ts = [], []
            for _ in range(args.steps):
                t0 = time.process_time()
                batch = next(data)
                t1 = time.process_time()
                step(batch)
                td.append(t1 - t0)
                ts.append(time.process_time() - t1)
            if r:
                t[f"{name}_data"].append(td)
                t[f"{name}_step"].append(ts)
        print(f"round {r}: " + ", ".join(f"{k} {np.mean(v[-1]):.3f}" for k, v in t.items()
                                          if v), flush=True)

    class Clock(pl.Callback):
        """Process CPU time at the end of every training batch."""

        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_batch_end(self, *args: Any) -> None:
            self.marks.append(time.process_time())

    n_pl = 2 + args.rounds * args.steps
    est.trainer_config = TrainerConfig(max_steps=n_pl, accelerator="cpu",
                                       enable_progress_bar=False, seed=args.seed)
    clock = Clock()
    est.train(ds.train, callbacks=[clock])
    d = np.diff(clock.marks)[1:]  # steps 3.. (the first two warm up)
    blocks = [list(d[i:i + args.steps]) for i in range(0, len(d), args.steps)]
    out = {"ref_step": _best(t["ref_step"]), "ref_data": _best(t["ref_data"]),
           "ours_step": _best(t["ours_step"]), "ours_data": _best(t["ours_data"]),
           "ours_lightning": _best(blocks), "rounds": args.rounds, "steps": args.steps,
           "threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 1),
           "utc": time.strftime("%Y-%m-%d %H:%M"), "raw": t}
    out["ref_total"] = out["ref_step"] + out["ref_data"]
    out["ours_total"] = out["ours_step"] + out["ours_data"]
    Path(args.work).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.work) / "speed.json", json.dumps(out, indent=1))
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items() if k != "raw"})



def _rows(path: Path, prefix: str, n: int) -> dict[tuple[int, str], list[dict]]:
    """``{(training steps, guidance scale): [row, ...]}`` of the guided DDIM-10 rows on ``n``
    series in ``results.json`` (ours: ``tsdiff/seed<s>/step<b>/...``, the reference's
    ``ref/step<b>/...``)."""
    import re

    pattern = re.compile(rf"^{prefix}(seed\d+/)?step\d+/ddim/10/s([\d.]+)/{n}$")
    out: dict[tuple[int, str], list[dict]] = {}
    if not path.exists():
        return out
    for key, row in json.loads(path.read_text()).items():
        m = pattern.match(key)
        if m:
            out.setdefault((int(row["steps"]), m.group(2)), []).append({**row, "key": key})
    return out


def report(args: argparse.Namespace) -> None:
    """Tables: CRPS against training steps and CPU seconds (reference and ours, DDIM-10 at the
    same scale on the same series), CPU s per step (``speed.json``) and the CPU time each needs
    to reach the reference's best CRPS; written to ``--out``."""
    work = Path(args.work)
    n = args.series
    sp = json.loads((work / "speed.json").read_text()) if (work / "speed.json").exists() else {}
    ref = _rows(work / "results.json", "ref/", n)
    ours: dict[tuple[int, str], list[dict]] = {}
    for w in filter(None, args.ours_work.split(",")):
        for at, rows in _rows(Path(w) / "results.json", "tsdiff/", n).items():
            seen = {r["key"] for r in ours.get(at, [])}
            ours.setdefault(at, []).extend(r for r in rows if r["key"] not in seen)
    s_ref, s_ours = sp.get("ref_total"), sp.get("ours_lightning")
    lines = [f"CRPS on {n} M4 series (final window, 100 samples, guided DDIM-10, TSDiff-Q), "
             "against training steps (batch 64, one thread):", "",
             "| model | steps | guidance scale | seeds | CRPS | CPU s / step (in its run) | "
             "train CPU s (in its run) | train CPU s (steps x same-process s/step) | "
             "forecast CPU s / series |", "|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, at: tuple[int, str], rs: list[dict], per_step: float | None) -> None:
        steps = at[0]
        crps = [r["crps"] for r in rs]
        c = f"{np.mean(crps):.4f}" + (f" ± {np.std(crps):.4f}" if len(crps) > 1 else "")
        ss = [r.get("s_step") or r["cpu_train"] / steps for r in rs]
        same = f"{steps * per_step:.0f}" if per_step else "-"
        lines.append(f"| {name} | {steps} | {at[1]} | {len(rs)} | {c} | {np.mean(ss):.3f} | "
                     f"{steps * np.mean(ss):.0f} | {same} | "
                     f"{np.mean([r['s_series'] for r in rs]):.1f} |")

    for at in sorted(ref):
        row("reference (its code, its recipe)", at, ref[at], s_ref)
    for at in sorted(ours):
        row("ours (genpipes timeseries)", at, ours[at], s_ours)
    if sp:
        lines += ["", f"CPU s per training step, same process, best of {sp['rounds']} "
                  f"interleaved blocks of {sp['steps']} steps ({sp['utc']} UTC, load "
                  f"{sp['load']}, {sp['threads']} thread):", "",
                  "| | reference | ours | ratio |", "|---|---|---|---|"]
        for label, a, b in (("model step (fwd, bwd, clip, optimizer)", "ref_step",
                             "ours_step"), ("data (its own pipeline)", "ref_data", "ours_data"),
                            ("step + data, plain loop", "ref_total", "ours_total"),
                            ("ours through its Lightning trainer (+ EMA, logging)", "ref_total",
                             "ours_lightning")):
            lines.append(f"| {label} | {sp[a]:.3f} | {sp[b]:.3f} | {sp[a] / sp[b]:.2f}x |")
    if ref and ours and s_ref and s_ours:
        at = min(ref, key=lambda b: np.mean([r["crps"] for r in ref[b]]))
        best, target = at[0], float(np.mean([r["crps"] for r in ref[at]]))
        seed0 = [b[0] for b in sorted(ours) if any(r["key"].startswith("tsdiff/seed0/")
                                                    and r["crps"] <= target for r in ours[b])]
        lines += ["", f"Time to the reference's best CRPS ({target:.4f}, its {best} steps at "
                  f"scale {at[1]} = {best * s_ref:.0f} CPU s at {s_ref:.3f} s/step):"]
        if seed0:
            b = seed0[0]
            lines.append(f"ours (seed 0) reaches it within {b} steps = {b * s_ours:.0f} CPU s "
                         f"at {s_ours:.3f} s/step: {best * s_ref / (b * s_ours):.1f}x less CPU "
                         "time (an upper bound on ours' time: the budgets are discrete)")
        else:
            lines.append("ours (seed 0) does not reach it at any evaluated budget")
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out or work / "tables.md", text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train", help="train the reference in its recipe, snapshots at budgets")
    t.add_argument("--budgets", default="500,1000")
    t.add_argument("--save-every", type=int, default=50, help="steps between last.pt saves")
    e = sub.add_parser("eval", help="CRPS of reference snapshots with its own guided samplers")
    e.add_argument("--jobs", default="step1000:ddim:10:0.25",
                   help="comma-separated step<b>:<ddim|ddpm>:<sampling steps>:<scale>")
    e.add_argument("--stride", type=int, default=30,
                   help="evaluate every stride-th series (414 / 30 -> 14 series)")
    e.add_argument("--num-samples", type=int, default=100)
    s = sub.add_parser("speed", help="CPU s per training step, reference vs ours, one process")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--steps", type=int, default=5, help="steps per block")
    r = sub.add_parser("report", help="tables of speed.json, the reference's and our rows")
    r.add_argument("--work", default="runs/bench/reference")
    r.add_argument("--ours-work", default="runs/bench/m4",
                   help="comma-separated work folders of benchmarks/timeseries_m4.py")
    r.add_argument("--series", type=int, default=14, help="evaluation series of the rows")
    r.add_argument("--out", default=None, help="default <work>/tables.md")
    for q in (t, e, s):
        q.add_argument("--reference-dir", required=True,
                       help="checkout of amazon-science/unconditional-time-series-diffusion")
        q.add_argument("--root", default=str(DATA_ROOT))
        q.add_argument("--work", default="runs/bench/reference")
        q.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    try:
        {"train": train, "eval": evaluate, "speed": speed, "report": report}[args.mode](args)
    except ConfigError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
