"""User-facing stylizer (GenMoStyle, Guo et al. ICLR 2024, Sec. 3.4 inference): fit, stylize, save.

``Stylizer(config).fit(clips)`` trains the motion autoencoder, then the latent stylizer;
``stylize(content, style=...)`` re-renders a clip in a style given by a label, by a reference clip
(a draw from the style encoder's posterior) or by ``None`` (a prior draw). A label picks a style
code as ``config.label_code`` says: ``near`` (default) the posterior code of the label's training
window nearest the content clip's own code (a seeded draw among the 5 nearest when ``seed`` is
given), ``bank`` a training code of the label, ``encode`` the content clip encoded with the
target label. Codes are taken from the training set, not drawn from a per-label Gaussian, since
such draws left the generator's training distribution (issue 7). ``style=None`` draws from
N(0, I) (``style_prior="gaussian"``, the paper), from a Gaussian fitted to the training codes
(``"posterior"``) or from an EDM diffusion prior (``"diffusion"``). The output is a
:class:`~motion.bvh.Clip` on the content clip's skeleton, starting where it starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import CheckpointError, ConfigError, DataError
from common.io import load_checkpoint, save_checkpoint
from common.seeds import randn, sample_generators
from common.training import TrainerConfig, make_trainer

from .bvh import Clip, load_bvh
from .config import StylizerConfig
from .features import FeatureLayout, clip_to_features, features_to_clip
from .model import (
    ContentEncoder,
    Generator,
    GlobalMotionPredictor,
    MotionAutoencoder,
    StyleEncoder,
)
from .skeleton import SkeletonInfo, mirror
from .training import AutoencoderModule, StylizerModule, WindowPairs

KIND = "motion/genmostyle"


class Stylizer:
    """Latent motion stylizer: ``fit(clips)``, ``stylize(content, style)``, ``save``/``load``."""

    def __init__(self, config: StylizerConfig | None = None, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or StylizerConfig(), **overrides)
        for name, valid in (("label_code", ("near", "bank", "encode")),
                            ("style_prior", ("gaussian", "posterior", "diffusion")),
                            ("injection", ("blocks", "all"))):
            if getattr(self.config, name) not in valid:
                raise ConfigError(f"model.{name}={getattr(self.config, name)!r}; valid: "
                                  + ", ".join(valid))
        self.styles: list[str] = []
        self.template: Clip | None = None
        self.info: SkeletonInfo | None = None
        self.nets: dict[str, torch.nn.Module] = {}
        self.mean = self.std = None
        self.style_stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.style_bank: dict[str, np.ndarray] = {}     # posterior-mean codes of train windows
        self.prior: Any = None
        self.code_mean: np.ndarray | None = None       # aggregate posterior (ex-post Gaussian)
        self.code_chol: np.ndarray | None = None

    # data ----------------------------------------------------------------------------------
    def _check_clip(self, clip: Clip, purpose: str) -> None:
        where = clip.meta.get("file", clip.name)
        if self.template is not None and clip.skeleton_signature() != tuple(self.template.names):
            raise DataError(f"skeleton with joints {list(clip.names)[:6]}... is not the one the "
                            f"model was trained on", file=where, field="hierarchy",
                            expected=f"the {len(self.template.names)} joints "
                                     f"{list(self.template.names)[:6]}...")
        if abs(clip.fps - self.config.fps) > 0.5:
            raise DataError(f"{clip.fps:.1f} fps", file=where, field="Frame Time",
                            expected=f"{self.config.fps} fps (load with fps=...)")
        if clip.n_frames < self.config.window:
            raise DataError(f"{clip.n_frames} frames, shorter than one {purpose} window",
                            file=where, field="Frames",
                            expected=f">= {self.config.window} frames")

    def _as_clip(self, c: Clip | str | Path) -> Clip:
        return c if isinstance(c, Clip) else load_bvh(c, fps=self.config.fps)

    def _normalise(self, feats: np.ndarray) -> np.ndarray:
        return (feats - self.mean) / self.std

    # training --------------------------------------------------------------------------------
    def fit(self, clips: list[Clip | str | Path], trainer: TrainerConfig | None = None,
            checkpoint_dir: str | Path | None = None) -> Stylizer:
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
                                **self._rot6d_channels())
        self._run(stage2, loader, dataclasses.replace(tcfg, max_steps=cfg.stylizer_steps), ckpt,
                  "stylizer")
        for net in self.nets.values():
            net.eval().requires_grad_(False)
        self._style_statistics(normed, labels)
        return self

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

    def _build(self) -> None:
        cfg = self.config
        dim = FeatureLayout(len(self.template.names)).dim
        self.nets = {
            "ae": MotionAutoencoder(dim, cfg.hidden, cfg.latent, cfg.depth),
            "gmp": GlobalMotionPredictor(dim, max(cfg.hidden // 2, 16)),
            "content": ContentEncoder(cfg.latent, cfg.hidden, cfg.content, cfg.depth),
            "style": StyleEncoder(cfg.latent, cfg.hidden, cfg.style,
                                  len(self.styles) if cfg.supervised and cfg.style_label else 0),
            "generator": Generator(cfg.content, cfg.latent, cfg.hidden, cfg.style, cfg.depth,
                                   injection=cfg.injection),
        }

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for m in self.nets.values() for p in m.parameters())

    @torch.no_grad()
    def _style_statistics(self, normed: list[np.ndarray], labels: list[int]) -> None:
        mus: dict[int, list[np.ndarray]] = {}
        w = self.config.window
        for f, lab in zip(normed, labels):
            starts = range(0, len(f) - w + 1, max(w // 2, 1))
            x = torch.stack([torch.as_tensor(f[a:a + w].T) for a in starts])
            z = self.nets["ae"].encode(x)
            lab_t = torch.full((len(x),), lab) if self.config.supervised else None
            mus.setdefault(lab, []).append(self.nets["style"](z, lab_t)[0].numpy())
        self.style_stats, self.style_bank = {}, {}
        for lab, arrs in mus.items():
            a = np.concatenate(arrs)
            self.style_bank[self.styles[lab]] = a.astype(np.float32)
            self.style_stats[self.styles[lab]] = (a.mean(0), a.std(0) + 1e-3)
        allc = np.concatenate(list(self.style_bank.values())).astype(np.float64)
        cov = np.cov(allc, rowvar=False) + 1e-4 * np.eye(allc.shape[1])
        self.code_mean = allc.mean(0).astype(np.float32)
        self.code_chol = np.linalg.cholesky(cov).astype(np.float32)
        if self.config.style_prior == "diffusion":
            from .style_prior import DiffusionStylePrior

            codes = torch.as_tensor(np.concatenate([np.concatenate(v) for v in mus.values()]))
            labs = torch.as_tensor(np.concatenate([[k] * sum(len(a) for a in v)
                                                   for k, v in mus.items()]), dtype=torch.long)
            self.prior = DiffusionStylePrior(self.config.style, len(self.styles)).fit(
                codes.float(), labs, steps=self.config.prior_steps, seed=self.config.seed)

    # inference -------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.nets or self.template is None:
            raise CheckpointError("the Stylizer is not fitted; call fit() or Stylizer.load()")

    @torch.no_grad()
    def encode_style(self, reference: Clip | str | Path, n_samples: int = 1,
                     seed: int | None = None) -> torch.Tensor:
        """Style codes [n, S] of a reference clip (posterior mean when ``seed`` is None)."""
        self._require_fitted()
        ref = self._as_clip(reference)
        self._check_clip(ref, "style reference")
        x = torch.as_tensor(self._normalise(clip_to_features(ref, self.info)[0]).T[None])
        z = self.nets["ae"].encode(self._pad(x))
        label = ref.meta.get("style")
        lab = None
        if self.config.supervised and label in self.styles:
            lab = torch.tensor([self.styles.index(label)])
        mu, logvar = self.nets["style"](z, lab)
        if seed is None and n_samples == 1:
            return mu
        eps = randn((n_samples, mu.shape[1]), sample_generators(self._seeds(seed, n_samples)))
        return mu + eps * (0.5 * logvar).exp()

    @torch.no_grad()
    def style_code(self, style: str | Clip | str | Path | None, n_samples: int = 1,
                   seed: int | None = None) -> torch.Tensor:
        """Style codes [n, S] for a label, a reference clip (or its path) or the prior (None)."""
        self._require_fitted()
        s_dim = self.config.style
        gens = sample_generators(self._seeds(seed, n_samples))
        label = style if isinstance(style, str) and style in self.style_stats else None
        if self.prior is not None and (style is None or label is not None):
            idx = None if label is None else self.styles.index(label)
            return self.prior.sample(n_samples, idx, self._seeds(seed, n_samples))
        if style is None:
            eps = randn((n_samples, s_dim), gens)
            if self.config.style_prior == "posterior" and self.code_mean is not None:
                # ex-post density estimate (Ghosh et al. 2020, Sec. 4): a full-covariance
                # Gaussian fitted to the training windows' posterior means
                return (torch.as_tensor(self.code_mean)
                        + eps @ torch.as_tensor(self.code_chol).T)
            return eps
        if isinstance(style, str) and not (style.endswith(".bvh") or style.endswith(".gz")):
            if style not in self.style_stats:
                raise DataError(f"unknown style label {style!r}", field="style",
                                expected=f"one of {sorted(self.style_stats)} or a BVH path")
            return self._label_codes(style, n_samples, gens if seed is not None else None)
        return self.encode_style(style, n_samples, seed)

    def _label_codes(self, style: str, n: int, gens: list[torch.Generator] | None,
                     near: torch.Tensor | None = None, k_near: int = 5) -> torch.Tensor:
        """Codes [n, S] of training windows of ``style``.

        Without ``near``: the code nearest the label's mean (``gens`` None) or a seeded random
        one. With ``near`` (the content clip's own code): the label's code nearest to it, or a
        seeded draw among its ``k_near`` nearest; the code carries some motion-specific
        information, so an exemplar of similar motion keeps the content intact.
        """
        bank = self.style_bank.get(style)
        if bank is None:                                  # checkpoint without a bank
            bank = self.style_stats[style][0][None]
        bank_t = torch.as_tensor(bank, dtype=torch.float32)
        if near is not None:
            order = ((bank_t - near.reshape(1, -1)) ** 2).sum(1).argsort()[:k_near]
            if gens is None:
                return bank_t[order[0]].expand(n, -1).clone()
            return bank_t[[int(order[torch.randint(len(order), (1,), generator=g)])
                           for g in gens]]
        if gens is None:
            k = int(((bank_t - bank_t.mean(0)) ** 2).sum(1).argmin())
            return bank_t[k].expand(n, -1).clone()
        idx = [int(torch.randint(len(bank_t), (1,), generator=g)) for g in gens]
        return bank_t[idx]

    def _seeds(self, seed: int | None, n: int) -> list[int]:
        base = self.config.seed if seed is None else seed
        return [base * 1000 + k for k in range(n)]

    @staticmethod
    def _pad(x: torch.Tensor, multiple: int = 8) -> torch.Tensor:
        extra = (-x.shape[-1]) % multiple
        return torch.nn.functional.pad(x, (0, extra), mode="replicate") if extra else x

    @torch.no_grad()
    def stylize(self, content: Clip | str | Path, style: str | Path | Clip | None = None,
                n_samples: int = 1, seed: int | None = None, cleanup_feet: bool = False
                ) -> Clip | list[Clip]:
        """Re-render ``content`` in ``style``; one clip, or a list when ``n_samples > 1``."""
        self._require_fitted()
        clip = self._as_clip(content)
        self._check_clip(clip, "content")
        feats, start = clip_to_features(clip, self.info)
        x = torch.as_tensor(self._normalise(feats).T[None], dtype=torch.float32)
        t = x.shape[-1]
        xp = self._pad(x)
        zc = self.nets["ae"].encode(xp)
        c = self.nets["content"](zc)
        if (isinstance(style, str) and style in self.style_stats and self.prior is None):
            gens = None if seed is None else sample_generators(self._seeds(seed, n_samples))
            mode = self.config.label_code
            if mode == "encode" and self.nets["style"].label is not None:
                target = torch.tensor([self.styles.index(style)])
                s = self.nets["style"](zc, target)[0].expand(n_samples, -1)
            elif mode == "bank":
                s = self._label_codes(style, n_samples, gens)
            else:
                own = clip.meta.get("style")
                lab = (torch.tensor([self.styles.index(own)])
                       if self.config.supervised and own in self.styles else None)
                s = self._label_codes(style, n_samples, gens, near=self.nets["style"](zc, lab)[0])
        else:
            s = self.style_code(style, n_samples, seed)
        z = self.nets["generator"](c.expand(len(s), -1, -1), s)
        label = style if isinstance(style, str) else "ref" if style is not None else "prior"
        label = Path(label).name.split(".")[0] if isinstance(style, str) and "." in style else label
        outs = self._decode(z, xp, t, clip, start, label=label,
                            cleanup_feet=cleanup_feet)
        return outs[0] if n_samples == 1 else outs

    @torch.no_grad()
    def reconstruct(self, content: Clip | str | Path) -> Clip:
        """The clip passed through the motion autoencoder only (GenMoStyle Sec. 3.2): the upper
        bound on what any latent stylization can keep of a motion's style and detail."""
        self._require_fitted()
        clip = self._as_clip(content)
        self._check_clip(clip, "content")
        feats, start = clip_to_features(clip, self.info)
        x = torch.as_tensor(self._normalise(feats).T[None], dtype=torch.float32)
        xp = self._pad(x)
        out = self._decode(self.nets["ae"].encode(xp), xp, x.shape[-1], clip, start,
                           label=str(clip.meta.get("style", "rec")))[0]
        out.meta["style"] = clip.meta.get("style")
        return out

    def _decode(self, z: torch.Tensor, xp: torch.Tensor, t: int, clip: Clip, start: dict,
                label: str, cleanup_feet: bool = False) -> list[Clip]:
        """Latents [n, L, T/4] -> clips on ``clip``'s skeleton, starting where it starts."""
        y = self.nets["ae"].decode(z)
        # root speed follows the new style (global-motion predictor); the turning rate is the
        # content's, so the stylized clip follows the content's path
        y[:, 1:3] = self.nets["gmp"](y[:, 3:])[:, 1:3]
        y[:, 0] = xp[:, 0]
        y = y[..., :t].numpy().transpose(0, 2, 1) * self.std + self.mean
        outs = []
        for k, f in enumerate(y):
            f[:, -4:] = (f[:, -4:] > 0.5).astype(np.float32)
            out = features_to_clip(f, clip, start, name=f"{clip.name}_{label}_{k}")
            if cleanup_feet:
                from .ik import remove_foot_skating

                out = remove_foot_skating(out, f[:, -4:], self.info)
            out.meta = {**clip.meta, "style": label, "content_clip": clip.name, "sample": k}
            outs.append(out)
        return outs

    # persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One ``weights_only``-loadable checkpoint with config, skeleton, weights and stats."""
        self._require_fitted()
        t = self.template
        state = {
            "config": dataclasses.asdict(self.config), "styles": list(self.styles),
            "template": {"names": list(t.names), "parents": torch.as_tensor(t.parents),
                         "offsets": torch.as_tensor(t.offsets),
                         "rotations": torch.as_tensor(t.rotations),
                         "positions": torch.as_tensor(t.positions), "fps": float(t.fps),
                         "rot_order": [list(map(str, r)) for r in t.rot_order],
                         "channels": torch.as_tensor(t.channels),
                         "end_sites": torch.as_tensor(t.end_sites),
                         "end_sites_parents": torch.as_tensor(t.end_sites_parents)},
            "info": dataclasses.asdict(self.info),
            "prior": None if self.prior is None else self.prior.state_dict(),
            "weights": {k: m.state_dict() for k, m in self.nets.items()},
            "mean": torch.as_tensor(self.mean), "std": torch.as_tensor(self.std),
            "style_stats": {k: [torch.as_tensor(a), torch.as_tensor(b)]
                            for k, (a, b) in self.style_stats.items()},
            "style_bank": {k: torch.as_tensor(v) for k, v in self.style_bank.items()},
            "code_gaussian": None if self.code_mean is None else
            [torch.as_tensor(self.code_mean), torch.as_tensor(self.code_chol)],
        }
        return save_checkpoint(path, KIND, state)

    @classmethod
    def load(cls, path: str | Path) -> Stylizer:
        """Restore a stylizer written by :meth:`save`."""
        obj = load_checkpoint(path, KIND)
        # checkpoints written before an option was added were trained without it: before
        # ``injection`` with the GenMoStyle generator, before round 6 without its terms
        legacy = {"injection": "blocks", "w_style_adv": 0.0, "w_out_cls": 0.0, "w_fk": 0.0,
                  "w_rot_stats": 0.0}
        self = cls(StylizerConfig(**{**legacy, **obj["config"]}))
        self.styles = list(obj["styles"])
        t = obj["template"]
        self.template = Clip(names=list(t["names"]), parents=t["parents"].numpy(),
                             offsets=t["offsets"].numpy(), rotations=t["rotations"].numpy(),
                             positions=t["positions"].numpy(), fps=t["fps"],
                             rot_order=np.array(t["rot_order"]), channels=t["channels"].numpy(),
                             end_sites=t["end_sites"].numpy(),
                             end_sites_parents=t["end_sites_parents"].numpy(), name="template")
        self.info = SkeletonInfo(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                                    for k, v in obj["info"].items()})
        self._build()
        for k, m in self.nets.items():
            m.load_state_dict(obj["weights"][k])
            m.eval().requires_grad_(False)
        self.mean, self.std = obj["mean"].numpy(), obj["std"].numpy()
        self.style_stats = {k: (a.numpy(), b.numpy()) for k, (a, b) in obj["style_stats"].items()}
        self.style_bank = {k: v.numpy() for k, v in (obj.get("style_bank") or {}).items()}
        if obj.get("code_gaussian") is not None:
            self.code_mean, self.code_chol = (t.numpy() for t in obj["code_gaussian"])
        if obj.get("prior") is not None:
            from .style_prior import DiffusionStylePrior

            self.prior = DiffusionStylePrior(self.config.style, len(self.styles))
            self.prior.load_state_dict(obj["prior"])
            self.prior.eval().requires_grad_(False)
        return self
