"""Training windows of the stylizer (GenMoStyle, Guo et al. ICLR 2024, Sec. 3.3) and partners.

:class:`WindowPairs` draws, per item, two windows of one clip, a same-label swap partner from
another clip and a random other clip's window, deterministically from ``(seed, index)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class WindowPairs(Dataset):
    """Windows for the stylizer's terms (GenMoStyle Sec. 3.3): ``x1``, ``x2``, ``xs``, ``xn``.

    ``x1`` and ``x2`` are two windows of one clip (the pair KL); ``xs`` is the swap partner of
    ``x1``: in the supervised variant (``pair_by_label``) a window of a DIFFERENT clip with the
    same style label (so the two share the style but not the content), otherwise ``x2``; ``xn``
    is a window of a random other clip (the cycle's hetero-style partner). ``groups`` marks clips
    that share their content (a clip and its mirror image): partners never come from the same
    group. ``clip``, ``partner``, ``other`` are the clip indices, ``label``/``label_n`` the labels
    of ``x1``/``xn``; with ``contents`` (content/action label per clip) also ``content`` of ``x1``.
    """

    def __init__(self, feats: list[np.ndarray], labels: list[int], window: int, size: int,
                 seed: int = 0, groups: list[int] | None = None,
                 pair_by_label: bool = True, contents: list[int] | None = None) -> None:
        self.contents = contents
        self.feats = [torch.as_tensor(f.T, dtype=torch.float32) for f in feats]
        self.labels, self.window, self.size, self.seed = labels, window, size, seed
        self.groups = list(range(len(feats))) if groups is None else list(groups)
        if len(self.groups) != len(feats) or len(labels) != len(feats):
            raise ValueError("feats, labels and groups must have one entry per clip")
        ids = np.arange(len(feats))
        g, lab = np.asarray(self.groups), np.asarray(labels)
        self.others = [ids[g != g[k]] for k in ids]
        self.partners = [ids[(g != g[k]) & (lab == lab[k])] if pair_by_label else ids[:0]
                         for k in ids]

    def __len__(self) -> int:
        return self.size

    def _window(self, k: int, rng: np.random.Generator) -> torch.Tensor:
        f = self.feats[k]
        a = int(rng.integers(0, f.shape[1] - self.window + 1))
        return f[:, a:a + self.window]

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, i])
        k = int(rng.integers(len(self.feats)))
        x1, x2 = self._window(k, rng), self._window(k, rng)
        cand = self.partners[k]
        p = int(cand[rng.integers(len(cand))]) if len(cand) else k
        xs = self._window(p, rng) if p != k else x2
        pool = self.others[k]
        n = int(pool[rng.integers(len(pool))]) if len(pool) else k
        out = {"x1": x1, "x2": x2, "xs": xs, "xn": self._window(n, rng),
               "label": torch.tensor(self.labels[k]), "label_n": torch.tensor(self.labels[n]),
               "clip": k, "partner": p, "other": n}
        if self.contents is not None:
            out["content"] = torch.tensor(self.contents[k])
        return out
