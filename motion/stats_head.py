"""Statistics head: style code -> window feature mean/std (ridge, Hoerl & Kennard 1970, Eq. 2.2).

``stats_align`` re-colours a stylized clip's 6-D rotation channels with target statistics (AdaIN
on features, Huang & Belongie 2017, Eq. 8). A label borrows its training clips' statistics and a
reference clip its own, but a prior draw (``style=None``) has none. :class:`StatsHead` predicts
them FROM THE STYLE CODE: a closed-form ridge regression ``[mean, log std] = W^T s + b``, fitted
on the frozen style encoder's posterior-mean codes of the training windows against those
windows' raw feature statistics. Predictions are clamped to the range seen in training, so a
code far from the training codes cannot ask for statistics no training window had.
"""

from __future__ import annotations

import numpy as np
import torch

from common.errors import CheckpointError, DataError


def window_starts(n_frames: int, window: int) -> range:
    """First frames of the half-overlapping windows of a clip (the style bank's windows)."""
    return range(0, n_frames - window + 1, max(window // 2, 1))


def window_statistics(feats: np.ndarray, window: int, channels: slice
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-window mean and std over time [n_windows, C] of ``feats[:, channels]``."""
    f = feats[:, channels]
    wins = np.stack([f[a:a + window] for a in window_starts(len(f), window)])
    return wins.mean(1), wins.std(1)


class StatsHead:
    """Ridge map from style codes [N, S] to per-channel (mean, std) [N, C] of some channels."""

    def __init__(self, ridge: float = 1.0) -> None:
        self.ridge = float(ridge)
        self.weight: np.ndarray | None = None     # [S, 2C]
        self.bias: np.ndarray | None = None       # [2C]
        self.low: np.ndarray | None = None        # [2C] training range of the targets
        self.high: np.ndarray | None = None

    def fit(self, codes: np.ndarray, mean: np.ndarray, std: np.ndarray) -> StatsHead:
        """Closed-form ridge on centred data: ``W = (X^T X + ridge I)^-1 X^T Y``.

        Args:
            codes: style codes [N, S]; mean, std: the windows' channel statistics [N, C].
        """
        codes, mean, std = (np.asarray(a, dtype=np.float64) for a in (codes, mean, std))
        if codes.ndim != 2 or mean.shape != std.shape or len(codes) != len(mean):
            raise DataError(f"codes {codes.shape}, mean {mean.shape}, std {std.shape}",
                            field="statistics head", expected="codes [N, S], mean/std [N, C]")
        y = np.concatenate([mean, np.log(np.maximum(std, 1e-6))], 1)
        xm, ym = codes.mean(0), y.mean(0)
        xc, yc = codes - xm, y - ym
        gram = xc.T @ xc + self.ridge * np.eye(codes.shape[1])
        self.weight = np.linalg.solve(gram, xc.T @ yc)
        self.bias = ym - xm @ self.weight
        self.low, self.high = y.min(0), y.max(0)
        return self

    @property
    def fitted(self) -> bool:
        return self.weight is not None

    def predict(self, codes: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (mean, std) [N, C] for codes [N, S], clamped to the training range."""
        if not self.fitted:
            raise CheckpointError("the statistics head is not fitted")
        c = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes,
                       dtype=np.float64)
        y = np.clip(c @ self.weight + self.bias, self.low, self.high)
        half = y.shape[1] // 2
        return y[:, :half], np.exp(y[:, half:])

    def state_dict(self) -> dict[str, torch.Tensor | float]:
        """Tensors for a ``weights_only`` checkpoint."""
        if not self.fitted:
            raise CheckpointError("the statistics head is not fitted")
        return {"ridge": self.ridge, **{k: torch.as_tensor(getattr(self, k))
                                        for k in ("weight", "bias", "low", "high")}}

    @classmethod
    def from_state_dict(cls, state: dict) -> StatsHead:
        """Inverse of :meth:`state_dict`."""
        head = cls(float(state["ridge"]))
        for k in ("weight", "bias", "low", "high"):
            setattr(head, k, state[k].numpy().astype(np.float64))
        return head
