"""Two-stage training of the stylizer (GenMoStyle, Guo et al. ICLR 2024, Sec. 3.2-3.3 and App. B).

:class:`StylizerFitting` is the ``fit`` half of :class:`motion.stylizer.Stylizer`: it computes
the features of the training clips (with mirror copies), then trains the motion autoencoder
(stage 1) and the latent stylizer on its frozen latents (stage 2) through Lightning, resuming
each stage from its ``last.ckpt``; it also builds what the optional stage-2 terms need (per-label
feature statistics, the frozen output style classifier, the FK skeleton, the rotation channels).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from common.errors import DataError
from common.training import TrainerConfig, make_trainer

from .bvh import Clip
from .features import FeatureLayout, clip_to_features
from .skeleton import SkeletonInfo, mirror
from .training import AutoencoderModule, StylizerModule, WindowPairs


class StylizerFitting:
    """``fit`` and its helpers; mixed into :class:`motion.stylizer.Stylizer`."""

    def fit(self, clips: list[Clip | str | Path], trainer: TrainerConfig | None = None,
            checkpoint_dir: str | Path | None = None) -> Self:
        """Train stage 1 (autoencoder) then stage 2 (stylizer); resumes from ``last.ckpt``.

        ``trainer`` sets devices/precision/EMA; its ``max_steps`` is replaced by the config's
        ``ae_steps`` / ``stylizer_steps`` for the two stages.
        """
        cfg = self.config
        clips = [self._as_clip(c) for c in clips]
        if not clips:
            raise DataError("no clips to fit", field="clips", expected="at least one clip")
        self.template = clips[0].slice(0, 1)
        for c in clips:
            self._check_clip(c, "training")
            if "style" not in c.meta and cfg.supervised:
                raise DataError("clip has no style label", file=c.meta.get("file", c.name),
                                field="style", expected="meta['style'] (label CSV column)")
        self.info = SkeletonInfo.from_clip(clips[0])
        groups = list(range(len(clips)))                  # a clip and its mirror share content
        if cfg.mirror_augment:
            clips = clips + [mirror(c) for c in clips]
            groups = groups + groups
        self.styles = sorted({str(c.meta.get("style", "unlabelled")) for c in clips})
        labels = [self.styles.index(str(c.meta.get("style", "unlabelled"))) for c in clips]
        feats = [clip_to_features(c, self.info)[0] for c in clips]
        n_orig = len(groups) // 2 if cfg.mirror_augment else len(groups)
        self._feature_statistics(feats[:n_orig], labels[:n_orig])
        allf = np.concatenate(feats)
        self.mean = allf.mean(0)
        self.std = np.maximum(allf.std(0), 1e-3)
        normed = [self._normalise(f).astype(np.float32) for f in feats]
        self._build()
        torch.manual_seed(cfg.seed)
        tcfg = dataclasses.replace(trainer or TrainerConfig(ema_decay=None), seed=cfg.seed)
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
        content_names = sorted({str(c.meta["content"]) for c in clips if "content" in c.meta})
        contents = ([content_names.index(str(c.meta["content"])) for c in clips]
                    if cfg.w_style_adv and len(content_names) > 1
                    and all("content" in c.meta for c in clips) else None)
        data = WindowPairs(normed, labels, cfg.window, cfg.batch_size * cfg.steps_per_epoch,
                           cfg.seed, groups=groups,
                           pair_by_label=cfg.supervised and cfg.cross_clip_swap,
                           contents=contents)
        loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(cfg.seed))
        stage1 = AutoencoderModule(self.nets["ae"], self.nets["gmp"], lr=cfg.lr)
        self._run(stage1, loader, dataclasses.replace(tcfg, max_steps=cfg.ae_steps), ckpt, "ae")
        stage2 = StylizerModule(self.nets["ae"], self.nets["content"], self.nets["style"],
                                self.nets["generator"], supervised=cfg.supervised, lr=cfg.lr,
                                w_rec=cfg.w_rec, w_swap=cfg.w_swap, w_cycle=cfg.w_cycle,
                                w_kl=cfg.w_kl, w_kl_pair=cfg.w_kl_pair,
                                w_kl_label=cfg.w_kl_label, label_dropout=cfg.label_dropout,
                                w_style_cls=cfg.w_style_cls, w_content_adv=cfg.w_content_adv,
                                n_styles=len(self.styles), w_feat_stats=cfg.w_feat_stats,
                                style_stats=self._label_feature_stats(normed, labels),
                                w_style_rec=cfg.w_style_rec, w_rot6d=cfg.w_rot6d,
                                w_style_adv=cfg.w_style_adv,
                                n_contents=0 if contents is None else len(content_names),
                                w_out_cls=cfg.w_out_cls,
                                out_classifier=self._output_classifier(normed, labels),
                                w_fk=cfg.w_fk, fk=self._fk_skeleton(),
                                w_rot_stats=cfg.w_rot_stats,
                                align_in_loop=cfg.align_in_loop if cfg.supervised else 0.0,
                                **self._rot6d_channels())
        self._run(stage2, loader, dataclasses.replace(tcfg, max_steps=cfg.stylizer_steps), ckpt,
                  "stylizer")
        for net in self.nets.values():
            net.eval().requires_grad_(False)
        self._style_statistics(normed, labels, n_orig=n_orig)
        return self

    def _feature_statistics(self, feats: list[np.ndarray], labels: list[int]) -> None:
        """Per-label raw feature (mean, std) over time averaged over the label's clips, mirror
        copies excluded: statistics transfer's, what ``stats_align`` re-colours with."""
        self.feature_stats = {}
        for k, name in enumerate(self.styles):
            fs = [f for f, lab in zip(feats, labels) if lab == k]
            if fs:
                self.feature_stats[name] = (np.mean([f.mean(0) for f in fs], 0).astype(np.float32),
                                            np.mean([f.std(0) for f in fs], 0).astype(np.float32))

    def _label_feature_stats(self, normed: list[np.ndarray], labels: list[int]) -> np.ndarray:
        """Per-label channel (mean, std) over time of normalised features, averaged over the
        label's clips [K, 2, D] (what statistics transfer copies)."""
        out = np.zeros((len(self.styles), 2, normed[0].shape[1]), np.float32)
        for k in range(len(self.styles)):
            fs = [f for f, lab in zip(normed, labels) if lab == k]
            if fs:
                out[k, 0] = np.mean([f.mean(0) for f in fs], 0)
                out[k, 1] = np.mean([f.std(0) for f in fs], 0)
        return out

    def _output_classifier(self, normed: list[np.ndarray], labels: list[int]) -> Any:
        """The frozen style classifier of the ``w_out_cls`` term: ``motion.metrics``' classifier
        trained on the (normalised, mirrored) training clips only, on its own random stream."""
        cfg = self.config
        if not (cfg.w_out_cls and cfg.supervised):
            return None
        from .metrics import train_classifier

        with torch.random.fork_rng():
            # zero-padded names: the classifier's sorted classes are the label indices in order
            return train_classifier(normed, [f"{k:04d}" for k in labels], cfg.window,
                                    cfg.out_cls_steps, hidden=max(cfg.hidden, 64),
                                    seed=cfg.seed + 17)

    def _fk_skeleton(self) -> dict[str, Any] | None:
        """Channel bounds, normalisation and skeleton of the ``w_fk`` term."""
        if not self.config.w_fk:
            return None
        from .fk_consistency import skeleton_tensors

        lay = FeatureLayout(len(self.template.names))
        r6, ric = lay.slice("rot6d"), lay.slice("ric")
        return {"rot6d": (r6.start, r6.stop), "ric": (ric.start, ric.stop),
                "norm": torch.as_tensor(np.stack([self.mean, self.std]), dtype=torch.float32),
                **skeleton_tensors(self.template.offsets, self.template.parents)}

    def _rot6d_channels(self) -> dict[str, Any]:
        """Bounds and (mean, std) of the 6-D rotation feature channels (the rotation term)."""
        sl = FeatureLayout(len(self.template.names)).slice("rot6d")
        return {"rot6d": (sl.start, sl.stop),
                "rot6d_norm": np.stack([self.mean[sl], self.std[sl]]).astype(np.float32)}

    def _run(self, module: Any, loader: Any, tcfg: TrainerConfig, ckpt: Path | None,
             stage: str) -> None:
        import lightning.pytorch as pl

        pl.seed_everything(tcfg.seed, verbose=False)
        folder = None if ckpt is None else ckpt / stage
        trainer = make_trainer(tcfg, checkpoint_dir=folder, default_root_dir=folder)
        last = None if folder is None else folder / "last.ckpt"
        trainer.fit(module, loader, ckpt_path=str(last) if last and last.exists() else None)

