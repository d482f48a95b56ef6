"""Stick-figure previews (matplotlib Agg): frame strips of a content clip and its stylizations."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .bvh import Clip  # noqa: E402


def _side_view(pos: np.ndarray) -> np.ndarray:
    """Project [F, J, 3] onto (travel direction, up); the travel axis is the root's main one."""
    root = pos[:, 0]
    d = root[-1] - root[0]
    d[1] = 0
    n = np.linalg.norm(d)
    axis = d / n if n > 1e-6 else np.array([0.0, 0, 1])
    return np.stack([pos @ axis, pos[..., 1]], -1)


def frame_strip(clips: list[Clip], titles: list[str], path: str | Path, n_frames: int = 8
                ) -> Path:
    """One row per clip: ``n_frames`` evenly spaced stick figures seen from the side."""
    path = Path(path)
    fig, axes = plt.subplots(len(clips), 1, figsize=(12, 2.2 * len(clips)), squeeze=False)
    for ax, clip, title in zip(axes[:, 0], clips, titles):
        pos = _side_view(clip.global_positions())
        idx = np.linspace(0, clip.n_frames - 1, n_frames).astype(int)
        height = np.ptp(pos[..., 1]) or 1.0
        for k, f in enumerate(idx):
            p = pos[f].copy()
            p[:, 0] += k * 0.8 * height - p[0, 0]
            for j, par in enumerate(clip.parents):
                if j > 0:
                    ax.plot(*p[[par, j]].T, color=plt.cm.viridis(k / max(n_frames - 1, 1)),
                            lw=1.5)
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path
