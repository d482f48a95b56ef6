"""Benchmark: GenMoStyle-style latent stylization vs two baselines on Bandai-Namco dataset 1.

Split by take: take 001 trains everything (stylizer, classifiers, statistics baseline); the
clips of take 002 (walks in every style, plus three "normal" actions) are the held-out real clips
and the content clips to stylize, into every style. Rows: real held-out clips, ours (label
styles), per-style feature statistics transfer, the unchanged content clip. GenMoStyle's
published numbers (its own data: Aberman/BFA and Xia, 21-joint CMU, paper budget) are quoted
beside, not reproduced. Run: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/motion.py``
(defaults = the config of round 8's headline row in ``benchmarks/results/motion.md``: a 2400-step
autoencoder on the fixed mirror copies, 900 OCLS stylizer steps with ``align_in_loop`` 1.0, and
``stats_align`` 1.0; ~25-40 min on this loaded 2-core CPU; ``--out`` replaces that curated page
by default).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

# run as `python benchmarks/motion.py`, this file would shadow the `motion` package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import copy  # noqa: E402
import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common.io import atomic_write_text  # noqa: E402
from common.training import TrainerConfig  # noqa: E402
from motion.baselines import StatisticsTransfer  # noqa: E402
from motion.config import ModelConfig  # noqa: E402
from motion.data import load_bandai_namco  # noqa: E402
from motion.features import clip_to_features  # noqa: E402
from motion.metrics import (  # noqa: E402
    POSITION_GROUPS,
    ROTATION_GROUPS,
    ChannelStyleFID,
    MotionEvaluator,
    diversity,
)
from motion.stylizer import Stylizer, StylizerConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = ("GenMoStyle (paper, own data) | 0.945 BFA / 0.934 Xia | 0.674 Xia "
             "| - | - | - | - | - |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(REPO.parent / "shared/data/motion/bandai-namco-1"))
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--ae-steps", type=int, default=2400)
    p.add_argument("--stylizer-steps", type=int, default=900)
    p.add_argument("--classifier-steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--grad-clip", type=float, default=None, help="gradient-norm clipping")
    d = ModelConfig()
    p.add_argument("--w-kl", type=float, default=d.w_kl)
    p.add_argument("--w-kl-label", type=float, default=d.w_kl_label)
    p.add_argument("--w-style-cls", type=float, default=d.w_style_cls)
    p.add_argument("--w-content-adv", type=float, default=d.w_content_adv)
    p.add_argument("--w-feat-stats", type=float, default=d.w_feat_stats)
    p.add_argument("--w-style-rec", type=float, default=d.w_style_rec)
    p.add_argument("--w-rot6d", type=float, default=d.w_rot6d)
    p.add_argument("--w-style-adv", type=float, default=d.w_style_adv)
    p.add_argument("--w-out-cls", type=float, default=d.w_out_cls)
    p.add_argument("--w-fk", type=float, default=d.w_fk)
    p.add_argument("--w-rot-stats", type=float, default=d.w_rot_stats)
    p.add_argument("--injection", default=d.injection, choices=["blocks", "all"])
    p.add_argument("--stats-align", type=float, default=d.stats_align,
                   help="inference-time rotation-channel statistics alignment (0 = off)")
    p.add_argument("--align-in-loop", type=float, default=d.align_in_loop,
                   help="the alignment applied to the decoded outputs in training (0 = off)")
    p.add_argument("--same-clip-swap", action="store_true",
                   help="round-2 pairing: swap partner from the same clip")
    p.add_argument("--label-code", default=d.label_code, choices=["near", "bank", "encode"])
    p.add_argument("--n-prior", type=int, default=3, help="prior samples per held-out clip")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/motion.md"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", default=None,
                   help="resume/keep the two training stages' Lightning checkpoints here")
    p.add_argument("--save", default=None, metavar="MODEL.pt", help="keep the trained stylizer")
    p.add_argument("--load", default=None, metavar="MODEL.pt",
                   help="evaluate a saved stylizer instead of training one")
    p.add_argument("--diagnose", action="store_true",
                   help="add the style-code probe and generator-use diagnosis")
    args = p.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    t0 = time.perf_counter()
    clips = [c for c in load_bandai_namco(args.root, contents=None)
             if c.n_frames >= args.window]
    train = [c for c in clips if c.meta["take"] == "001"]
    test = [c for c in clips if c.meta["take"] != "001"]
    cfg = StylizerConfig(window=args.window, hidden=args.hidden, latent=64, content=64,
                         style=32, depth=1, batch_size=32, lr=args.lr, ae_steps=args.ae_steps,
                         stylizer_steps=args.stylizer_steps, seed=args.seed, w_kl=args.w_kl,
                         w_kl_label=args.w_kl_label, w_style_cls=args.w_style_cls,
                         w_content_adv=args.w_content_adv, w_feat_stats=args.w_feat_stats,
                         w_style_rec=args.w_style_rec, injection=args.injection,
                         w_rot6d=args.w_rot6d, w_style_adv=args.w_style_adv,
                         w_out_cls=args.w_out_cls, w_fk=args.w_fk, w_rot_stats=args.w_rot_stats,
                         cross_clip_swap=not args.same_clip_swap, label_code=args.label_code,
                         stats_align=args.stats_align, align_in_loop=args.align_in_loop)
    trainer = TrainerConfig(ema_decay=None, enable_progress_bar=False, seed=args.seed,
                            gradient_clip_val=args.grad_clip)
    t_fit = time.perf_counter()
    if args.load:
        model = Stylizer.load(args.load)
        model.config = dataclasses.replace(model.config, stats_align=args.stats_align)
        if args.stats_align and not model.feature_stats:      # saved before round 7
            model._feature_statistics([clip_to_features(c, model.info)[0] for c in train],
                                      [model.styles.index(c.meta["style"]) for c in train])
        if model.stats_head is None:                            # saved before round 8b
            model.fit_statistics_head(train)
        cfg = model.config
    else:
        model = Stylizer(cfg).fit(train, trainer, checkpoint_dir=args.checkpoint_dir)
    t_fit = time.perf_counter() - t_fit
    if args.save:
        model.save(args.save)
    ev = MotionEvaluator(model.info, window=48, steps=args.classifier_steps,
                         seed=args.seed).fit(train)
    real = ev.accuracy(test)
    styles = model.styles
    srcs = [c for c in test for _ in styles]
    targets = [s for _ in test for s in styles]
    t_sty = time.perf_counter()
    ours = [model.stylize(c, s, seed=args.seed) for c, s in zip(srcs, targets)]
    t_sty = time.perf_counter() - t_sty
    stats = StatisticsTransfer(model.info).fit(train)
    stats_out = [stats.stylize(c, s) for c, s in zip(srcs, targets)]
    t_feet = time.perf_counter()
    ours_feet = [model.stylize(c, s, seed=args.seed, cleanup_feet=True)
                 for c, s in zip(srcs, targets)]
    t_feet = time.perf_counter() - t_feet
    plain = copy.copy(model)                 # the same networks without the alignment
    plain.config = dataclasses.replace(model.config, stats_align=0.0)
    ours_plain = [plain.stylize(c, s, seed=args.seed) for c, s in zip(srcs, targets)]
    pred = copy.copy(model)                  # the statistics predicted from the label's code
    pred.config = dataclasses.replace(model.config, stats_source="predicted",
                                      stats_align=model.config.stats_align or 1.0)
    ours_pred = [pred.stylize(c, s, seed=args.seed) for c, s in zip(srcs, targets)]
    # style FID seen through positions/velocities only and through 6-D rotations only
    channel_evs = [ChannelStyleFID(model.info, g, window=48, steps=args.classifier_steps,
                                   seed=args.seed).fit(train)
                   for g in (POSITION_GROUPS, ROTATION_GROUPS)]
    sets = {
        f"ours (label style, stats_align {cfg.stats_align:g})": (ours, targets, srcs),
        "ours without the alignment (stats_align 0)": (ours_plain, targets, srcs),
        "ours, statistics predicted from the code (stats_source predicted)": (
            ours_pred, targets, srcs),
        "ours + foot clean-up (IK on predicted contacts)": (ours_feet, targets, srcs),
        "statistics transfer": (stats_out, targets, srcs),
        "unchanged content": (srcs, targets, srcs),
        # the ceiling of any latent stylizer: what the autoencoder alone keeps
        "autoencoder only, real held-out clips (own style)": (
            [model.reconstruct(c) for c in test], [c.meta["style"] for c in test], test),
        "autoencoder only, statistics-transfer outputs": (
            [model.reconstruct(c) for c in stats_out], targets, srcs),
    }
    # the take-002 walks (content seen in every style in training) vs the three actions (call,
    # punch, slash: each seen once in training, in the normal style only)
    for name, outs in (("ours", ours), ("statistics transfer", stats_out)):
        for part, keep in (("walk contents", True), ("action contents", False)):
            idx = [i for i, c in enumerate(srcs) if (c.meta["content"] == "walk") == keep]
            sets[f"{name}, {part} only"] = (
                [outs[i] for i in idx], [targets[i] for i in idx], [srcs[i] for i in idx])
    rows = {}
    for name, (outs, tg, sr) in sets.items():
        rows[name] = ev.stylized(outs, tg, sr)
        for key, cev in zip(("fid_posvel", "fid_rot"), channel_evs):
            rows[name][key] = cev.scores(outs, tg)["style_fid"]
    prior_rows = prior_samples(model, ev, test, args.n_prior, args.seed, train)
    # for scale: label outputs scored like the prior samples (FID against all styles' clips)
    every = {"all": np.concatenate(list(ev.real_style_embeddings.values()))}
    for name, outs in (("for scale: ours, the 15 label stylizations per clip", ours),
                       ("for scale: statistics transfer, 15 per clip", stats_out)):
        m = ev.stylized(outs, ["all"] * len(outs), srcs, reference=every)
        m["diversity"] = float(np.mean([diversity(ev_embed(ev, outs[i:i + len(styles)]))
                                        for i in range(0, len(outs), len(styles))]))
        prior_rows[name] = m
    label_div = float(sum(diversity(ev_embed(ev, ours[i:i + len(styles)]))
                          for i in range(0, len(ours), len(styles))) / len(test))
    # seconds per 160-frame clip (fully convolutional: any length >= window)
    long = next(c for c in clips if c.n_frames >= 160).slice(0, 160)
    model.stylize(long, styles[0])
    t = time.perf_counter()
    for k in range(5):
        model.stylize(long, styles[k % len(styles)], seed=k)
    per_clip = (time.perf_counter() - t) / 5
    keys = ("style_acc", "content_acc", "style_fid", "fid_posvel", "fid_rot", "geodesic",
            "foot_skating")
    lines = [
        "# Motion stylization on Bandai-Namco dataset 1 (split by take)", "",
        f"Budget: CPU (2 shared cores), stylizer {cfg.ae_steps} AE + {cfg.stylizer_steps} "
        f"stylizer steps (batch {cfg.batch_size}, window {cfg.window} frames at 30 fps, hidden "
        f"{cfg.hidden}, {model.n_parameters / 1e6:.2f} M parameters, lr {cfg.lr:g}, gradient "
        f"clipping {args.grad_clip}, fit {t_fit:.0f} s; losses: swap partner from "
        f"{'the same clip' if args.same_clip_swap else 'another clip of the same label'}, "
        f"w_kl {cfg.w_kl:g}, w_kl_label {cfg.w_kl_label:g}, w_style_cls {cfg.w_style_cls:g}, "
        f"w_content_adv {cfg.w_content_adv:g}, w_feat_stats {cfg.w_feat_stats:g}, "
        f"w_style_rec {cfg.w_style_rec:g}, w_rot6d {cfg.w_rot6d:g}, w_style_adv "
        f"{cfg.w_style_adv:g}, w_out_cls {cfg.w_out_cls:g}, w_fk {cfg.w_fk:g}, w_rot_stats "
        f"{cfg.w_rot_stats:g}, injection {cfg.injection}, stats_align {cfg.stats_align:g}, "
        f"align_in_loop {cfg.align_in_loop:g}; "
        f"label code: {cfg.label_code}), "
        f"classifiers {args.classifier_steps} steps. Train: {len(train)} clips of take 001; "
        f"held-out: {len(test)} clips of take 002 ({sorted({c.meta['content'] for c in test})}),"
        f" each stylized into all {len(styles)} styles ({len(ours)} outputs). Clips shorter "
        f"than the window are skipped. Total wall time {time.perf_counter() - t0:.0f} s.", "",
        f"Classifiers on REAL held-out clips: style accuracy {real['style_acc']:.3f}, content "
        f"accuracy {real['content_acc']:.3f} (chance: {1 / len(styles):.3f} style); style "
        f"classifiers on positions/velocities only / 6-D rotations only: "
        + " / ".join(f"{cev.scores(test, [c.meta['style'] for c in test])['style_acc']:.3f}"
                     for cev in channel_evs) + ".", "",
        "| method | style acc | content acc | style FID | style FID (positions/velocities) | "
        "style FID (rotations) | geodesic (rad) | foot skating (cm/s) |",
        "|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |")
    lines += [f"| {PUBLISHED}", "",
              f"Prior samples (`style=None`, {args.n_prior} per held-out clip, seed "
              f"{args.seed}; style FID against real training clips of all styles; diversity: "
              "mean pairwise distance of the style classifier's features among one clip's "
              f"samples; for scale, the same among one clip's {len(styles)} label "
              f"stylizations: {label_div:.2f}):", "",
              "| prior | content acc | style FID (all styles) | geodesic (rad) | "
              "foot skating (cm/s) | diversity |", "|---|---|---|---|---|---|"]
    for name, m in prior_rows.items():
        lines.append(f"| {name} | {m['content_acc']:.3f} | {m['style_fid']:.1f} | "
                     f"{m['geodesic']:.3f} | {m['foot_skating']:.1f} | {m['diversity']:.2f} |")
    if args.diagnose:
        lines += [""] + diagnose(model, ev, stats, train, test)
        lines += [""] + fid_by_channel_group(model, ev, ours, stats_out, targets)
    lines += ["",
              f"Stylization time: {per_clip:.3f} s per 160-frame clip on this CPU "
              f"(all {len(ours)} label stylizations: {t_sty:.1f} s; with the foot clean-up: "
              f"{t_feet:.1f} s).", "",
              "Style FID uses the style classifier's penultimate features against real training "
              "clips of the target styles; geodesic distance is to the content clip's local "
              "joint rotations; foot skating is the horizontal speed of feet at ground height. "
              "The GenMoStyle row is the paper's own numbers on other datasets and budgets "
              "(~19 M parameters, GPU training), quoted for scale only."]
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out, text)
    print(text)


def ev_embed(ev: MotionEvaluator, clips: list) -> np.ndarray:
    """Style-classifier features [n, K] of clips."""
    return np.stack([ev.style_embedding(c) for c in clips])


def _knn_accuracy(a: np.ndarray, ya: np.ndarray, b: np.ndarray, yb: np.ndarray, k: int = 5
                  ) -> float:
    """Accuracy of a k-nearest-neighbour (majority vote) probe trained on (a, ya), on (b, yb)."""
    d = ((b[:, None] - a[None]) ** 2).sum(-1)
    votes = ya[np.argsort(d, axis=1, kind="stable")[:, :k]]
    # ties go to the label met first (the nearer neighbour): no dependence on set/hash order
    pred = [Counter(v.tolist()).most_common(1)[0][0] for v in votes]
    return float(np.mean(np.asarray(pred) == yb))


@torch.no_grad()
def diagnose(model: Stylizer, ev: MotionEvaluator, stats: StatisticsTransfer, train: list,
             test: list) -> list[str]:
    """Where the style gets lost: style/content codes (kNN probes) and the generator's use of
    the style code (codes of statistics-transferred clips, i.e. of correctly styled motion)."""
    nets, w = model.nets, model.config.window

    def latents(clip):
        f = model._normalise(clip_to_features(clip, model.info)[0])
        return nets["ae"].encode(model._pad(torch.as_tensor(f.T[None], dtype=torch.float32)))

    def codes(clips):
        s, c, y, k = [], [], [], []
        for clip in clips:
            z = latents(clip)
            for a in range(0, z.shape[-1] * 4 - w + 1, w // 2):
                zw = z[..., a // 4:(a + w) // 4]
                s.append(nets["style"](zw, None)[0][0].numpy())
                c.append(nets["content"](zw)[0].mean(-1).numpy())
                y.append(clip.meta["style"])
                k.append(clip.meta["content"])
        return np.array(s), np.array(c), np.array(y), np.array(k)

    s_tr, c_tr, y_tr, k_tr = codes(train)
    s_te, c_te, y_te, k_te = codes(test)
    swapped = []
    for clip in test:
        for style in model.styles:
            ref = stats.stylize(clip, style)
            code = nets["style"](latents(ref), None)[0]
            f, start = clip_to_features(clip, model.info)
            xp = model._pad(torch.as_tensor(model._normalise(f).T[None], dtype=torch.float32))
            z = nets["generator"](nets["content"](nets["ae"].encode(xp)), code)
            out = model._decode(z, xp, len(f), clip, start, label=style)[0]
            swapped.append((out, style, clip))
    m = ev.stylized(*map(list, zip(*swapped)))
    return ["Diagnosis (kNN-5 probes trained on take-001 windows, scored on take-002 windows; "
            "label withheld from the style encoder):", "",
            "| question | measurement | value |", "|---|---|---|",
            f"| style in the style code? | kNN style accuracy of the posterior mean | "
            f"{_knn_accuracy(s_tr, y_tr, s_te, y_te):.3f} |",
            f"| style left in the content code? | kNN style accuracy of the time-averaged "
            f"content code | {_knn_accuracy(c_tr, y_tr, c_te, y_te):.3f} |",
            f"| content (action) in the style code? | kNN content accuracy of the posterior mean "
            f"(of the content code, for scale) | {_knn_accuracy(s_tr, k_tr, s_te, k_te):.3f} "
            f"({_knn_accuracy(c_tr, k_tr, c_te, k_te):.3f}) |",
            f"| does the generator use the code? | style / content accuracy of G(content code, "
            f"style code of the content's statistics-transferred version) | "
            f"{m['style_acc']:.3f} / {m['content_acc']:.3f} |"]


def fid_by_channel_group(model: Stylizer, ev: MotionEvaluator, ours: list, stats_out: list,
                         targets: list[str]) -> list[str]:
    """Which feature channels make our style FID: ours with one channel group replaced by the
    statistics-transfer output's (same content and target), and the reverse."""
    from motion.features import FeatureLayout
    from motion.metrics import frechet_distance

    layout = FeatureLayout(len(model.template.names))
    fo = [clip_to_features(c, model.info)[0] for c in ours]
    fs = [clip_to_features(c, model.info)[0] for c in stats_out]
    real = np.concatenate([ev.real_style_embeddings[t] for t in sorted(set(targets))])

    def fid(feats):
        return frechet_distance(np.stack([ev.style_clf.logits_and_embedding(f)[1]
                                          for f in feats]), real)

    lines = ["Style FID by channel group (ours with the group taken from statistics transfer; "
             "statistics transfer with the group taken from ours):", "",
             f"| channel group | ours {fid(fo):.0f} -> | statistics transfer {fid(fs):.0f} -> |",
             "|---|---|---|"]
    for g in ("ang_vel", "lin_vel", "height", "ric", "rot6d", "vel", "contact"):
        sl = layout.slice(g)
        mixed = [np.concatenate([a[:, :sl.start], b[:, sl], a[:, sl.stop:]], 1)
                 for a, b in zip(fo, fs)]
        back = [np.concatenate([b[:, :sl.start], a[:, sl], b[:, sl.stop:]], 1)
                for a, b in zip(fo, fs)]
        lines.append(f"| {g} | {fid(mixed):.0f} | {fid(back):.0f} |")
    return lines


def prior_samples(model: Stylizer, ev: MotionEvaluator, test: list, n: int,
                  seed: int, train: list | None = None) -> dict[str, dict[str, float]]:
    """Metrics of ``style=None`` draws under the N(0, I) prior, the fitted code Gaussian and the
    diffusion prior over codes (fitted here on the style bank when the model has none), each
    without and with the alignment to the statistics the head predicts from the code (the
    model's head, and with ``train`` one regressed on the windows' own statistics)."""
    rows, before, prior_net = {}, model.config, model.prior
    real = {"all": np.concatenate(list(ev.real_style_embeddings.values()))}
    if prior_net is None:
        from motion.style_prior import DiffusionStylePrior

        names = sorted(model.style_bank)
        codes = torch.as_tensor(np.concatenate([model.style_bank[k] for k in names]))
        labs = torch.as_tensor(np.concatenate([[model.styles.index(k)] * len(model.style_bank[k])
                                               for k in names]), dtype=torch.long)
        t = time.process_time()
        diffusion = DiffusionStylePrior(model.config.style, len(model.styles)).fit(
            codes.float(), labs, steps=model.config.prior_steps, seed=seed)
        print(f"diffusion prior over {len(codes)} codes: {time.process_time() - t:.0f} CPU-s")
    else:
        diffusion = prior_net
    head = model.stats_head
    window_head = None
    if train is not None:                    # the head regressed on the windows' own statistics
        other = copy.copy(model)
        other.config = dataclasses.replace(before, stats_target="window")
        window_head = other.fit_statistics_head(train)
    for name, prior, align, target in (
            ("N(0, I) (paper), not aligned", "gaussian", 0.0, "label"),
            ("N(0, I), aligned to predicted statistics", "gaussian", 1.0, "label"),
            ("N(0, I), aligned, head on window statistics", "gaussian", 1.0, "window"),
            ("diffusion prior over codes, not aligned", "diffusion", 0.0, "label"),
            ("diffusion prior over codes, aligned to predicted statistics", "diffusion", 1.0,
             "label"),
            ("diffusion prior, aligned, head on window statistics", "diffusion", 1.0, "window"),
            ("Gaussian fitted to training codes, not aligned", "posterior", 0.0, "label"),
            ("Gaussian fitted to training codes, aligned to predicted statistics", "posterior",
             1.0, "label")):
        if target == "window" and window_head is None:
            continue
        model.config = dataclasses.replace(before, style_prior=prior, prior_stats_align=align)
        model.prior = diffusion if prior == "diffusion" else None
        model.stats_head = window_head if target == "window" else head
        outs = [model.stylize(c, None, n_samples=n, seed=seed) for c in test]
        outs = [o if isinstance(o, list) else [o] for o in outs]        # n == 1: one clip
        flat = [o for group in outs for o in group]
        srcs = [c for c in test for _ in range(n)]
        m = ev.stylized(flat, ["all"] * len(flat), srcs, reference=real)
        m["diversity"] = float(np.mean([diversity(ev_embed(ev, g)) for g in outs]))
        rows[name] = m
    model.config, model.prior, model.stats_head = before, prior_net, head
    return rows


if __name__ == "__main__":
    main()
