"""User-facing stylizer (GenMoStyle, Guo et al. ICLR 2024, Sec. 3.4 inference): fit, stylize, save.

``Stylizer(config).fit(clips)`` trains the motion autoencoder, then the latent stylizer;
``stylize(content, style=...)`` re-renders a clip in a style given by a label, by a reference clip
(a draw from the style encoder's posterior) or by ``None`` (a prior draw). A label picks a style
code as ``config.label_code`` says: ``near`` (default) the posterior code of the label's training
window nearest the content clip's own code (a seeded draw among the 5 nearest when ``seed`` is
given), ``bank`` a training code of the label, ``encode`` the content clip encoded with the
target label. Codes are taken from the training set, not drawn from a per-label Gaussian, since
such draws left the generator's training distribution (issue 7). ``style=None`` draws from an
EDM diffusion prior over the training codes (``style_prior="diffusion"``, the default), N(0, I)
(``"gaussian"``, the paper) or a Gaussian fitted to the training codes (``"posterior"``), and
aligns the draw's rotation channels with the statistics :mod:`motion.stats_head` predicts from
its code (``prior_stats_align``). The output is a
:class:`~motion.bvh.Clip` on the content clip's skeleton, starting where it starts. Training lives
in :mod:`motion.fitting`, the style banks and code selection in :mod:`motion.style_codes`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import CheckpointError, ConfigError, DataError
from common.io import load_checkpoint, save_checkpoint
from common.seeds import sample_generators

from .baselines import align_statistics
from .bvh import Clip, load_bvh
from .config import StylizerConfig
from .features import FeatureLayout, clip_to_features, features_to_clip
from .fitting import StylizerFitting
from .model import (
    ContentEncoder,
    Generator,
    GlobalMotionPredictor,
    MotionAutoencoder,
    StyleEncoder,
)
from .skeleton import SkeletonInfo
from .stats_head import StatsHead
from .style_codes import StyleCodes

KIND = "motion/genmostyle"


class Stylizer(StylizerFitting, StyleCodes):
    """Latent motion stylizer: ``fit(clips)``, ``stylize(content, style)``, ``save``/``load``."""

    def __init__(self, config: StylizerConfig | None = None, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or StylizerConfig(), **overrides)
        for name, valid in (("label_code", ("near", "bank", "encode")),
                            ("style_prior", ("gaussian", "posterior", "diffusion")),
                            ("injection", ("blocks", "all")),
                            ("stats_source", ("borrowed", "predicted")),
                            ("stats_target", ("label", "window"))):
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
        self.feature_stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # raw, per label
        self.prior: Any = None
        self.code_mean: np.ndarray | None = None       # aggregate posterior (ex-post Gaussian)
        self.code_chol: np.ndarray | None = None
        self.stats_head: StatsHead | None = None       # style code -> rotation statistics

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

    # inference -------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.nets or self.template is None:
            raise CheckpointError("the Stylizer is not fitted; call fit() or Stylizer.load()")

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
        if (isinstance(style, str) and style in self.style_stats
                and (self.prior is None or self.config.supervised)):
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
        outs = self._decode(z, xp, t, clip, start, label=label, cleanup_feet=cleanup_feet,
                            target=self._target_statistics(style, s))
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

    def _target_statistics(self, style: str | Path | Clip | None, codes: torch.Tensor
                           ) -> list[tuple[tuple[np.ndarray, np.ndarray], float]] | None:
        """Per sample, the raw feature (mean, std) the output's rotation channels are re-coloured
        with and the blend weight; None when nothing is aligned.

        A prior draw (``style=None``) takes the statistics head's prediction from its code
        (weight ``prior_stats_align``); a label or reference clip takes the label's (statistics
        transfer's) or the reference's own statistics, or with ``stats_source="predicted"`` the
        head's prediction from the code used (weight ``stats_align``). Without a head (models
        saved before it existed) prior draws are not aligned and labels borrow.
        """
        cfg, n = self.config, len(codes)
        has_head = self.stats_head is not None and self.stats_head.fitted
        if style is None:
            if not (cfg.prior_stats_align and has_head):
                return None
            return [(t, cfg.prior_stats_align) for t in self.predicted_statistics(codes)]
        if not cfg.stats_align:
            return None
        if cfg.stats_source == "predicted" and has_head:
            return [(t, cfg.stats_align) for t in self.predicted_statistics(codes)]
        if isinstance(style, str) and style in self.style_stats:
            target = self.feature_stats.get(style)        # None for pre-round-7 checkpoints
            return None if target is None else [(target, cfg.stats_align)] * n
        ref = clip_to_features(self._as_clip(style), self.info)[0]
        return [((ref.mean(0), ref.std(0)), cfg.stats_align)] * n

    def _decode(self, z: torch.Tensor, xp: torch.Tensor, t: int, clip: Clip, start: dict,
                label: str, cleanup_feet: bool = False,
                target: list[tuple[tuple[np.ndarray, np.ndarray], float]] | None = None
                ) -> list[Clip]:
        """Latents [n, L, T/4] -> clips on ``clip``'s skeleton, starting where it starts; with
        ``target`` (per sample: (mean, std), weight) the 6-D rotation channels are re-coloured
        (:meth:`_target_statistics`)."""
        y = self.nets["ae"].decode(z)
        # root speed follows the new style (global-motion predictor); the turning rate is the
        # content's, so the stylized clip follows the content's path
        y[:, 1:3] = self.nets["gmp"](y[:, 3:])[:, 1:3]
        y[:, 0] = xp[:, 0]
        y = y[..., :t].numpy().transpose(0, 2, 1) * self.std + self.mean
        outs = []
        for k, f in enumerate(y):
            f[:, -4:] = (f[:, -4:] > 0.5).astype(np.float32)
            if target is not None:
                (mu, sd), weight = target[k]
                f = align_statistics(f, mu, sd, self._rot_slice(), weight).astype(np.float32)
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
            "feature_stats": {k: [torch.as_tensor(a), torch.as_tensor(b)]
                              for k, (a, b) in self.feature_stats.items()},
            "stats_head": None if self.stats_head is None else self.stats_head.state_dict(),
            "code_gaussian": None if self.code_mean is None else
            [torch.as_tensor(self.code_mean), torch.as_tensor(self.code_chol)],
        }
        return save_checkpoint(path, KIND, state)

    @classmethod
    def load(cls, path: str | Path) -> Stylizer:
        """Restore a stylizer written by :meth:`save`."""
        obj = load_checkpoint(path, KIND)
        # checkpoints written before an option was added were trained without it: before
        # ``injection`` with the GenMoStyle generator, before round 6 without its terms,
        # before round 7 without the statistics alignment, before round 8 without it in training
        legacy = {"injection": "blocks", "w_style_adv": 0.0, "w_out_cls": 0.0, "w_fk": 0.0,
                  "w_rot_stats": 0.0, "stats_align": 0.0, "align_in_loop": 0.0}
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
        self.feature_stats = {k: (a.numpy(), b.numpy())
                              for k, (a, b) in (obj.get("feature_stats") or {}).items()}
        if obj.get("stats_head") is not None:
            self.stats_head = StatsHead.from_state_dict(obj["stats_head"])
        if obj.get("code_gaussian") is not None:
            self.code_mean, self.code_chol = (t.numpy() for t in obj["code_gaussian"])
        if obj.get("prior") is not None:
            from .style_prior import DiffusionStylePrior

            self.prior = DiffusionStylePrior(self.config.style, len(self.styles))
            self.prior.load_state_dict(obj["prior"])
            self.prior.eval().requires_grad_(False)
        return self
