"""Motion stylization pipeline (GenMoStyle, Guo et al. ICLR 2024): data -> train -> stylize -> eval.

``prepare`` writes the train/test split (by take) as label CSVs, generating BVH clips for the
SYNTHETIC procedural default; ``train`` fits the :class:`~motion.stylizer.Stylizer` (autoencoder,
then stylizer, resumable); ``sample`` stylizes held-out content clips into every style and draws
prior samples; ``evaluate`` trains style/content classifiers on the training clips and scores
real held-out clips, our outputs and two baselines; ``export`` writes stick-figure previews and
the report. ``genpipes motion stylize`` stylizes one clip with a trained run.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from common.errors import ConfigError, DataError, RunDirError
from common.io import atomic_write_text
from common.training import TrainerConfig
from motion.config import ModelConfig, StylizerConfig

from .registry import Command, Vertical
from .rundir import RunDir
from .runner import log


@dataclass
class DataConfig:
    """``source``: ``synthetic`` (procedural, offline), ``bandai-namco`` or ``folder``."""

    source: str = "synthetic"
    root: str | None = None          # Bandai-Namco dataset-1 folder (None: download it into
    #                                  ~/.cache/genpipes/motion), or a folder of BVH files
    labels: str | None = None        # label CSV for ``folder`` (default: <root>/labels.csv)
    fps: float = 30.0
    contents: list[str] | None = None  # Bandai-Namco contents to keep (None: the paired ten)
    test_takes: list[str] = field(default_factory=lambda: ["002"])  # held-out takes
    n_takes: int = 3                 # synthetic: takes per style x content
    n_frames: int = 240              # synthetic: frames per clip
    seed: int = 0


@dataclass
class SampleConfig:
    n_content: int = 4               # held-out content clips to stylize
    styles: list[str] | None = None  # target styles (None: all)
    n_prior: int = 3                 # prior samples per content clip (diversity)
    seed: int = 0
    cleanup_feet: bool = False


@dataclass
class EvalConfig:
    classifier_window: int = 64
    classifier_steps: int = 400


@dataclass
class MotionConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(ema_decay=None, gradient_clip_val=1.0))


# -- helpers ----------------------------------------------------------------------------------
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _load_split(run: RunDir, split: str, fps: float) -> list:
    from motion.data import load_clips

    path = run.path / "data" / f"{split}.csv"
    if not path.exists():
        raise RunDirError(f"{path} is missing; run `genpipes motion prepare` first")
    return load_clips(run.path / "data", labels=path, fps=fps)


def _stylizer_config(cfg: MotionConfig) -> StylizerConfig:
    m = dataclasses.asdict(cfg.model)
    return StylizerConfig(fps=cfg.data.fps, seed=cfg.trainer.seed, **m)


def _model_path(run_or_dir: RunDir | Path) -> Path:
    base = run_or_dir.path if isinstance(run_or_dir, RunDir) else Path(run_or_dir)
    return base / "checkpoints" / "stylizer.pt" if base.is_dir() else base


# -- stages -----------------------------------------------------------------------------------
def prepare(cfg: MotionConfig, run: RunDir) -> None:
    """Split by take into ``data/train.csv`` / ``data/test.csv`` (synthetic clips as BVH)."""
    from motion.bvh import save_bvh
    from motion.data import BANDAI_CONTENTS, load_bandai_namco, load_clips

    d = cfg.data
    rows: list[dict[str, Any]] = []
    if d.source == "synthetic":
        from motion.procedural import generate_dataset

        for clip in generate_dataset(d.n_takes, d.n_frames, d.fps, d.seed):
            take = f"{int(clip.meta['take']) % 100:03d}"
            path = save_bvh(clip, run.path / "data" / "clips" / f"{clip.name}.bvh")
            rows.append({"file": str(path.relative_to(run.path / "data")),
                         "style": clip.meta["style"], "content": clip.meta["content"],
                         "take": take})
        test = {f"{d.n_takes - 1:03d}"}           # the last take of every pair is held out
    elif d.source == "bandai-namco":
        root = d.root
        if not root:                      # fetch the public dataset into the cache (online)
            from motion.data import download_bandai_namco

            log("motion: data.root not set; downloading Bandai-Namco dataset 1 into the cache")
            root = download_bandai_namco()
        for clip in load_bandai_namco(root, d.contents or BANDAI_CONTENTS, d.fps):
            rows.append({"file": clip.meta["file"], "style": clip.meta["style"],
                         "content": clip.meta["content"], "take": clip.meta["take"]})
        test = set(d.test_takes)
    elif d.source == "folder":
        if not d.root:
            raise ConfigError("data.root: a folder of BVH files with labels.csv is required")
        for clip in load_clips(d.root, d.labels, d.fps):
            rows.append({"file": clip.meta["file"], "style": clip.meta.get("style", ""),
                         "content": clip.meta.get("content", ""),
                         "take": clip.meta.get("take", "001")})
        test = set(d.test_takes)
    else:
        raise ConfigError(f"data.source={d.source!r}; valid: synthetic, bandai-namco, folder")
    train = [r for r in rows if r["take"] not in test]
    held = [r for r in rows if r["take"] in test]
    if not train or not held:
        raise DataError(f"split by take gives {len(train)} train / {len(held)} test clips",
                        field="data.test_takes", expected="takes present in the data")
    for r in rows:                                    # paths relative to data/ when possible
        p = Path(r["file"])
        r["file"] = str(p if not p.is_absolute() else p.resolve())
    _write_csv(run.path / "data" / "train.csv", train)
    _write_csv(run.path / "data" / "test.csv", held)
    run.write_metrics({"train_clips": len(train), "test_clips": len(held),
                       "styles": sorted({r["style"] for r in rows}),
                       "synthetic": d.source == "synthetic"}, section="data")


def train(cfg: MotionConfig, run: RunDir) -> None:
    """Fit the stylizer (resumes each stage from ``checkpoints/<stage>/last.ckpt``)."""
    from motion.stylizer import Stylizer

    loaded = _load_split(run, "train", cfg.data.fps)
    clips = [c for c in loaded if c.n_frames >= cfg.model.window]
    if len(clips) < len(loaded):
        log(f"motion: skipping {len(loaded) - len(clips)} training clip(s) shorter than the "
            f"{cfg.model.window}-frame window")
    model = Stylizer(_stylizer_config(cfg)).fit(clips, cfg.trainer, checkpoint_dir=run.checkpoints)
    model.save(run.checkpoints / "stylizer.pt")
    run.write_metrics({"parameters": model.n_parameters, "styles": model.styles,
                       "train_clips": len(clips), "skipped_short": len(loaded) - len(clips)},
                      section="train")


def sample(cfg: MotionConfig, run: RunDir) -> None:
    """Stylize held-out content clips into each style (+ prior samples) as BVH files."""
    from motion.bvh import save_bvh
    from motion.stylizer import Stylizer

    model = Stylizer.load(_model_path(run))
    test = _load_split(run, "test", cfg.data.fps)
    test = [c for c in test if c.n_frames >= model.config.window]
    contents = _pick_contents(test, cfg.sample.n_content)
    styles = cfg.sample.styles or model.styles
    rows = []
    jobs = [(c, s) for c in contents for s in styles] + [(c, None) for c in contents]
    for clip, style in tqdm(jobs, desc="stylize", unit="clip"):
        if style is None:
            outs = model.stylize(clip, None, n_samples=max(cfg.sample.n_prior, 1),
                                 seed=cfg.sample.seed, cleanup_feet=cfg.sample.cleanup_feet)
            outs = outs if isinstance(outs, list) else [outs]
            tags = [f"prior{k}" for k in range(len(outs))]
        else:
            outs = [model.stylize(clip, style, seed=cfg.sample.seed,
                                  cleanup_feet=cfg.sample.cleanup_feet)]
            tags = [style]
        for out, tag in zip(outs, tags):
            path = save_bvh(out, run.samples / f"{clip.name}__{tag}.bvh")
            rows.append({"file": path.name, "content_clip": clip.meta["file"],
                         "content": clip.meta.get("content", ""),
                         "source_style": clip.meta.get("style", ""),
                         "target": tag if style is not None else "", "kind":
                         "label" if style is not None else "prior"})
    _write_csv(run.samples / "index.csv", rows)


def _pick_contents(test: list, n: int) -> list:
    """Up to ``n`` held-out clips, cycling through content labels for variety."""
    by: dict[str, list] = {}
    for c in sorted(test, key=lambda c: c.name):
        by.setdefault(str(c.meta.get("content", "")), []).append(c)
    out, k = [], 0
    while len(out) < n and any(k < len(v) for v in by.values()):
        out += [v[k] for v in by.values() if k < len(v)][: n - len(out)]
        k += 1
    return out


def evaluate(cfg: MotionConfig, run: RunDir) -> None:
    """Classifier accuracies on real held-out clips; metrics of ours and of two baselines."""
    from motion.baselines import StatisticsTransfer
    from motion.bvh import load_bvh
    from motion.metrics import MotionEvaluator, diversity
    from motion.stylizer import Stylizer

    model = Stylizer.load(_model_path(run))
    train_clips = _load_split(run, "train", cfg.data.fps)
    test = _load_split(run, "test", cfg.data.fps)
    ev = MotionEvaluator(model.info, cfg.eval.classifier_window, cfg.eval.classifier_steps,
                         seed=cfg.trainer.seed).fit(train_clips)
    run.write_metrics(ev.accuracy(test), section="real_test")
    # what the motion autoencoder alone keeps: the ceiling of any latent stylization
    run.write_metrics(ev.stylized([model.reconstruct(c) for c in test],
                                  [str(c.meta["style"]) for c in test], test),
                      section="autoencoder_only")
    index = list(csv.DictReader(io.StringIO((run.samples / "index.csv").read_text())))
    by_file = {c.meta["file"]: c for c in test}
    labelled = [r for r in index if r["kind"] == "label"]
    outs = [load_bvh(run.samples / r["file"]) for r in labelled]
    srcs = [by_file[r["content_clip"]] for r in labelled]
    targets = [r["target"] for r in labelled]
    run.write_metrics(ev.stylized(outs, targets, srcs), section="ours")
    base = StatisticsTransfer(model.info).fit(train_clips)
    run.write_metrics(ev.stylized([base.stylize(c, t) for c, t in zip(srcs, targets)], targets,
                                  srcs), section="baseline_stats_transfer")
    run.write_metrics(ev.stylized(srcs, targets, srcs), section="baseline_identity")
    prior = [r for r in index if r["kind"] == "prior"]
    if prior:
        outs = [load_bvh(run.samples / r["file"]) for r in prior]
        srcs = [by_file[r["content_clip"]] for r in prior]
        real = {"all": np.concatenate(list(ev.real_style_embeddings.values()))}
        m = ev.stylized(outs, ["all"] * len(outs), srcs, reference=real)
        groups: dict[str, list] = {}
        for r, out in zip(prior, outs):
            groups.setdefault(r["content_clip"], []).append(ev.style_embedding(out))
        run.write_metrics({"diversity": float(np.mean([diversity(np.stack(v))
                                                       for v in groups.values()])),
                           "content_acc": m["content_acc"], "style_fid_all": m["style_fid"],
                           "geodesic": m["geodesic"], "foot_skating": m["foot_skating"],
                           "prior": model.config.style_prior,
                           "prior_stats_align": model.config.prior_stats_align
                           if model.stats_head is not None else 0.0}, section="ours_prior")


def export(cfg: MotionConfig, run: RunDir) -> None:
    """Stick-figure previews (content vs stylized) and the report."""
    from motion.bvh import load_bvh
    from motion.plots import frame_strip

    index = list(csv.DictReader(io.StringIO((run.samples / "index.csv").read_text())))
    images = []
    for content in list(dict.fromkeys(r["content_clip"] for r in index))[:2]:
        rows = [r for r in index if r["content_clip"] == content]
        clips = [load_bvh(content)] + [load_bvh(run.samples / r["file"]) for r in rows[:6]]
        titles = [f"content: {Path(content).name}"] + [
            f"{r['kind']}: {r['target'] or r['file']}" for r in rows[:6]]
        images.append(frame_strip(clips, titles, run.plots / f"{Path(content).stem}.png"))
    m = run.metrics()
    keys = ("style_acc", "content_acc", "style_fid", "geodesic", "foot_skating")
    table = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for sec in ("ours", "baseline_stats_transfer", "baseline_identity"):
        vals = m.get(sec, {})
        table.append(f"| {sec} | " + " | ".join(
            f"{vals[k]:.3f}" if k in vals else "-" for k in keys) + " |")
    real, pri = m.get("real_test", {}), m.get("ours_prior", {})
    synth = " (SYNTHETIC procedural gaits, not mocap)" if m.get("data", {}).get("synthetic") else ""
    text = (f"Data: {cfg.data.source}{synth}; {m.get('data', {}).get('train_clips')} train / "
            f"{m.get('data', {}).get('test_clips')} test clips, split by take. "
            f"Classifiers on the held-out data clips: style acc {_fmt(real.get('style_acc'))}, "
            f"content acc {_fmt(real.get('content_acc'))}. Prior samples (`style=None`, "
            f"{pri.get('prior', '-')} prior, aligned to the statistics predicted from the code "
            f"with weight {pri.get('prior_stats_align', 0)}): diversity of style features "
            f"{_fmt(pri.get('diversity'))}, geodesic to the content {_fmt(pri.get('geodesic'))}, "
            f"foot skating {_fmt(pri.get('foot_skating'))}. Geodesic distance to "
            "the content clip in radians; foot skating in skeleton units per second. BVH "
            "outputs in `samples/`.\n\n"
            + "\n".join(table))
    run.add_report("Motion stylization", text, images=images)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


# -- the `genpipes motion stylize` command ------------------------------------------------------
def _stylize_args(p: Any) -> None:
    p.add_argument("--content", required=True, metavar="CLIP.bvh", help="content clip")
    p.add_argument("--style", default=None, metavar="LABEL|REF.bvh",
                   help="a style label, a reference BVH, or omit to sample the prior")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="outputs to draw")
    p.add_argument("--model", required=True, metavar="RUN_DIR",
                   help="a trained run directory (or its checkpoints/stylizer.pt)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cleanup-feet", action="store_true", help="pin feet on predicted contacts")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _stylize_cmd(args: Any) -> int:
    from motion.bvh import load_bvh, save_bvh
    from motion.plots import frame_strip
    from motion.stylizer import Stylizer

    model = Stylizer.load(_model_path(Path(args.model)))
    content = load_bvh(args.content, fps=model.config.fps)
    outs = model.stylize(content, args.style, n_samples=args.samples, seed=args.seed,
                         cleanup_feet=args.cleanup_feet)
    outs = outs if isinstance(outs, list) else [outs]
    out_dir = Path(args.out)
    paths = [out_dir / f"{o.name}.bvh" for o in outs]
    clash = [p for p in paths if p.exists()]
    if clash and not args.overwrite:
        raise RunDirError(f"{clash[0]} exists; pass --overwrite or choose another --out")
    for o, p in zip(outs, paths):
        save_bvh(o, p)
        print(p)
    frame_strip([content] + outs, ["content"] + [o.name for o in outs],
                out_dir / f"{content.name}_preview.png")
    return 0


VERTICAL = Vertical(
    name="motion",
    description="latent motion stylization (GenMoStyle) with BVH in and out",
    config_cls=MotionConfig,
    stages={"prepare": prepare, "train": train, "sample": sample, "evaluate": evaluate,
            "export": export},
    demo_overrides={"data.n_takes": 3, "data.n_frames": 160, "model.window": 64,
                    "model.hidden": 64, "model.latent": 32, "model.content": 32,
                    "model.style": 16, "model.depth": 1, "model.batch_size": 16,
                    "model.lr": 1e-3, "model.ae_steps": 150, "model.stylizer_steps": 100,
                    "model.steps_per_epoch": 25, "model.out_cls_steps": 60,
                    "sample.n_content": 2, "sample.n_prior": 3,
                    "eval.classifier_steps": 100, "eval.classifier_window": 48},
    commands={"stylize": Command(help="stylize a BVH clip with a trained run",
                                 add_arguments=_stylize_args, handler=_stylize_cmd)},
)
