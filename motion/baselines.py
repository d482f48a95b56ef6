"""Stylization baselines: the unchanged content clip, and per-style feature statistics transfer.

Statistics transfer is AdaIN applied directly to the motion features (Huang & Belongie 2017,
Eq. 8, per feature channel over time): each channel of the content clip's features is whitened
by its own temporal mean and standard deviation and re-coloured with the target style's mean and
standard deviation (averaged over that style's training clips). Foot contacts are kept from the
content clip.
"""

from __future__ import annotations

import numpy as np

from .bvh import Clip
from .features import clip_to_features, features_to_clip
from .skeleton import SkeletonInfo


class StatisticsTransfer:
    """Per-style channel statistics from training clips; ``stylize(content, style)``."""

    def __init__(self, info: SkeletonInfo) -> None:
        self.info = info
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, clips: list[Clip]) -> StatisticsTransfer:
        per: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for c in clips:
            f = clip_to_features(c, self.info)[0]
            per.setdefault(str(c.meta["style"]), []).append((f.mean(0), f.std(0)))
        self.stats = {s: (np.mean([m for m, _ in v], 0), np.mean([d for _, d in v], 0))
                      for s, v in per.items()}
        return self

    def stylize(self, content: Clip, style: str) -> Clip:
        feats, start = clip_to_features(content, self.info)
        mu, sd = self.stats[style]
        out = align_statistics(feats, mu, sd, slice(0, feats.shape[1] - 4))
        clip = features_to_clip(out.astype(np.float32), content, start,
                                name=f"{content.name}_stats_{style}")
        clip.meta = {**content.meta, "style": style}
        return clip


def align_statistics(feats: np.ndarray, mean: np.ndarray, std: np.ndarray, channels: slice,
                     alpha: float = 1.0) -> np.ndarray:
    """AdaIN over time on feature ``channels`` (Huang & Belongie 2017, Eq. 8), blended.

    Args:
        feats: features [F, D]; mean, std: target per-channel statistics [D].
        channels: the channels to re-colour (the others are returned unchanged).
        alpha: 1 = the target statistics exactly, 0 = ``feats`` unchanged, in between a blend.

    Returns:
        A new array [F, D].
    """
    out = feats.copy()
    f = feats[:, channels]
    moved = (f - f.mean(0)) / np.maximum(f.std(0), 1e-6) * std[channels] + mean[channels]
    out[:, channels] = (1 - alpha) * f + alpha * moved
    return out


def identity(content: Clip, style: str) -> Clip:
    """The unchanged content clip (the lower bound for style, upper bound for content)."""
    return content
