"""Stylization metrics (GenMoStyle, Guo et al. ICLR 2024, Sec. 5.1): classifiers, style FID, etc.

* Style and content recognition accuracy by 1-D convolutional classifiers trained here on real
  (training-split) clips; a clip is classified by averaging logits over sliding windows.
* Style FID: Frechet distance (Heusel et al. 2017, Eq. 6) between the style classifier's
  penultimate features of stylized clips and of real clips of the target styles.
* Geodesic distance ``2 arccos |<q1, q2>|`` between the local joint rotations of the stylized
  clip and of its content clip (root excluded), averaged over frames and joints.
* Diversity: mean pairwise distance of the style features of several prior samples.
* Style FID by channel group (:class:`ChannelStyleFID`): the same, with a style classifier that
  reads only some feature channels, e.g. root/joint positions and velocities vs 6-D rotations.
* Foot skating: mean horizontal speed of feet while they are at ground height (the lowest
  5th percentile of each foot plus 0.05 leg lengths), in skeleton units per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch
from torch import nn

from .bvh import Clip
from .features import FeatureLayout, clip_to_features
from .skeleton import SkeletonInfo


class MotionClassifier(nn.Module):
    """Conv1d classifier over features [B, D, T]; ``embed`` gives the penultimate features."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(dim, hidden, 5, padding=2), nn.LeakyReLU(0.2), nn.Dropout(0.2),
            nn.Conv1d(hidden, hidden, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 4, 2, 1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _windows(f: np.ndarray, w: int) -> torch.Tensor:
    starts = list(range(0, max(len(f) - w, 0) + 1, max(w // 2, 1)))
    return torch.stack([torch.as_tensor(f[a:a + w].T, dtype=torch.float32) for a in starts])


@dataclass
class ClipClassifier:
    """A trained classifier with its label names and feature normalisation."""

    model: MotionClassifier
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    window: int

    @torch.no_grad()
    def logits_and_embedding(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _windows((feats - self.mean) / self.std, self.window)
        self.model.eval()
        emb = self.model.embed(x)
        return self.model.head(emb).mean(0).numpy(), emb.mean(0).numpy()

    def predict(self, feats: np.ndarray) -> str:
        return self.classes[int(np.argmax(self.logits_and_embedding(feats)[0]))]


def train_classifier(feats: list[np.ndarray], labels: list[str], window: int = 64,
                     steps: int = 300, hidden: int = 128, seed: int = 0,
                     batch_size: int = 64, lr: float = 1e-3) -> ClipClassifier:
    """Adam on random windows of the clips' features (cross-entropy)."""
    classes = sorted(set(labels))
    y_all = np.array([classes.index(lab) for lab in labels])
    allf = np.concatenate(feats)
    mean, std = allf.mean(0), np.maximum(allf.std(0), 1e-3)
    normed = [torch.as_tensor(((f - mean) / std).T, dtype=torch.float32) for f in feats]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MotionClassifier(allf.shape[1], len(classes), hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        idx = rng.integers(len(normed), size=batch_size)
        xs = []
        for i in idx:
            n = normed[i].shape[1]
            a = int(rng.integers(0, max(n - window, 0) + 1))
            xs.append(normed[i][:, a:a + window])
        loss = nn.functional.cross_entropy(model(torch.stack(xs)), torch.as_tensor(y_all[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ClipClassifier(model.eval(), classes, mean, std, window)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` [N, K] and ``b`` [M, K]."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = (covmean[0] if isinstance(covmean, tuple) else covmean).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def geodesic_distance(a: Clip, b: Clip) -> float:
    """Mean rotation angle (radians) between the local joint rotations of two clips (no root)."""
    n = min(a.n_frames, b.n_frames)
    import pymotion.rotations.quat_np as quat

    r = quat.mul(quat.inverse(a.rotations[:n, 1:]), b.rotations[:n, 1:])
    # 2 atan2(|v|, |w|) is accurate near zero, where 2 arccos|<q1, q2>| is not
    return float((2 * np.arctan2(np.linalg.norm(r[..., 1:], axis=-1), np.abs(r[..., 0]))).mean())


def foot_skating(clip: Clip, info: SkeletonInfo, height_scale: float = 0.05) -> float:
    """Mean horizontal foot speed (units/s) over frames with the foot at ground height."""
    pos = clip.global_positions()[:, list(info.feet)]
    h = pos[..., 1]
    ground = np.percentile(h, 5, axis=0)
    near = (h[:-1] - ground) < height_scale * info.leg_length
    speed = np.linalg.norm(np.diff(pos[..., [0, 2]], axis=0), axis=-1) * clip.fps
    return float(speed[near].mean()) if near.any() else 0.0


def diversity(embeddings: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between rows (0 for fewer than two)."""
    if len(embeddings) < 2:
        return 0.0
    d = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    return float(d.sum() / (len(d) * (len(d) - 1)))


@dataclass
class MotionEvaluator:
    """Style and content classifiers trained on real clips, and the stylization metrics."""

    info: SkeletonInfo
    window: int = 64
    steps: int = 300
    seed: int = 0
    style_clf: ClipClassifier | None = None
    content_clf: ClipClassifier | None = None
    real_style_embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(self, clips: list[Clip]) -> MotionEvaluator:
        clips = [c for c in clips if c.n_frames >= self.window]      # whole windows only
        feats = [clip_to_features(c, self.info)[0] for c in clips]
        styles = [str(c.meta["style"]) for c in clips]
        contents = [str(c.meta["content"]) for c in clips]
        self.style_clf = train_classifier(feats, styles, self.window, self.steps, seed=self.seed)
        self.content_clf = train_classifier(feats, contents, self.window, self.steps,
                                            seed=self.seed + 1)
        emb: dict[str, list[np.ndarray]] = {}
        for f, s in zip(feats, styles):
            emb.setdefault(s, []).append(self.style_clf.logits_and_embedding(f)[1])
        self.real_style_embeddings = {k: np.stack(v) for k, v in emb.items()}
        return self

    def accuracy(self, clips: list[Clip]) -> dict[str, float]:
        """Held-out style and content accuracy on labelled real clips (>= one window long)."""
        clips = [c for c in clips if c.n_frames >= self.window]
        feats = [clip_to_features(c, self.info)[0] for c in clips]
        s = np.mean([self.style_clf.predict(f) == c.meta["style"] for f, c in zip(feats, clips)])
        k = np.mean([self.content_clf.predict(f) == c.meta["content"]
                     for f, c in zip(feats, clips)])
        return {"style_acc": float(s), "content_acc": float(k)}

    def stylized(self, outputs: list[Clip], targets: list[str], contents: list[Clip],
                 reference: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """Metrics of stylized ``outputs`` for target styles and their content clips."""
        s_ok, c_ok, embs, geo, skate = [], [], [], [], []
        for out, tgt, src in zip(outputs, targets, contents):
            f = clip_to_features(out, self.info)[0]
            logits, e = self.style_clf.logits_and_embedding(f)
            s_ok.append(self.style_clf.classes[int(np.argmax(logits))] == tgt)
            c_ok.append(self.content_clf.predict(f) == src.meta.get("content"))
            embs.append(e)
            geo.append(geodesic_distance(out, src))
            skate.append(foot_skating(out, self.info))
        ref = reference or self.real_style_embeddings
        real = np.concatenate([ref[t] for t in sorted(set(targets)) if t in ref])
        return {"style_acc": float(np.mean(s_ok)), "content_acc": float(np.mean(c_ok)),
                "style_fid": frechet_distance(np.stack(embs), real) if len(embs) > 1 else 0.0,
                "geodesic": float(np.mean(geo)), "foot_skating": float(np.mean(skate))}

    def style_embedding(self, clip: Clip) -> np.ndarray:
        return self.style_clf.logits_and_embedding(clip_to_features(clip, self.info)[0])[1]


POSITION_GROUPS = ("ang_vel", "lin_vel", "height", "ric", "vel")
ROTATION_GROUPS = ("rot6d",)


@dataclass
class ChannelStyleFID:
    """Style accuracy and FID (Heusel et al. 2017, Eq. 6) seen through ONE group of channels.

    A style classifier like :class:`MotionEvaluator`'s (same network, steps and seed) is trained
    on the training clips' feature columns of ``groups`` only (e.g. :data:`POSITION_GROUPS`, the
    root motion and root-relative joint positions and velocities, or :data:`ROTATION_GROUPS`);
    its penultimate features give an FID that says which channels separate outputs from real
    clips.
    """

    info: SkeletonInfo
    groups: tuple[str, ...]
    window: int = 64
    steps: int = 300
    seed: int = 0
    clf: ClipClassifier | None = None
    real: dict[str, np.ndarray] = field(default_factory=dict)

    def _cols(self, feats: np.ndarray) -> np.ndarray:
        lay = FeatureLayout(len(self.info.parents))
        idx = np.concatenate([np.arange(lay.dim)[lay.slice(g)] for g in self.groups])
        return feats[:, idx]

    def _feats(self, clip: Clip) -> np.ndarray:
        return self._cols(clip_to_features(clip, self.info)[0])

    def fit(self, clips: list[Clip]) -> ChannelStyleFID:
        clips = [c for c in clips if c.n_frames >= self.window]
        feats = [self._feats(c) for c in clips]
        styles = [str(c.meta["style"]) for c in clips]
        self.clf = train_classifier(feats, styles, self.window, self.steps, seed=self.seed)
        emb: dict[str, list[np.ndarray]] = {}
        for f, s in zip(feats, styles):
            emb.setdefault(s, []).append(self.clf.logits_and_embedding(f)[1])
        self.real = {k: np.stack(v) for k, v in emb.items()}
        return self

    def scores(self, outputs: list[Clip], targets: list[str]) -> dict[str, float]:
        """``style_acc`` and ``style_fid`` of clips for their target styles (real clips: their
        own labels) in this channel group."""
        hits, embs = [], []
        for out, tgt in zip(outputs, targets):
            logits, e = self.clf.logits_and_embedding(self._feats(out))
            hits.append(self.clf.classes[int(np.argmax(logits))] == tgt)
            embs.append(e)
        real = np.concatenate([self.real[t] for t in sorted(set(targets)) if t in self.real])
        return {"style_acc": float(np.mean(hits)),
                "style_fid": frechet_distance(np.stack(embs), real) if len(embs) > 1 else 0.0}
