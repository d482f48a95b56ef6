"""Forward-kinematics consistency of decoded features (HumanML3D-style redundant features).

The GenMoStyle / HumanML3D frame (``motion.features``) holds the same pose twice: the root-relative
joint positions ``ric`` (in the heading-free root frame) and the local 6-D rotations ``rot6d``
(Zhou et al. 2019), whose root entry has the heading removed. Forward kinematics of the rotations
on the skeleton's offsets, with the root at the origin, gives ``ric`` exactly for real motion:

    ric_j = FK(R_0^local, R_1, ..., R_J; offsets)_j - FK(...)_0.

A stylized clip is written from its rotations only (``features_to_clip``), so positions that carry
the new style while the rotations do not are lost; :func:`fk_consistency` penalises the gap.
"""

from __future__ import annotations

import numpy as np
import torch
from pymotion.ops import skeleton_torch
from pymotion.rotations import ortho6d_torch


def ric_from_rot6d(rot6d: torch.Tensor, offsets: torch.Tensor, parents: torch.Tensor
                   ) -> torch.Tensor:
    """Root-relative joint positions [..., J-1, 3] from 6-D rotations [..., J, 3, 2].

    Gram-Schmidt (pymotion's ``ortho6d.to_matrix``) then pymotion's torch forward kinematics with
    the root at the origin; the root rotation is the heading-free one of the features.
    """
    mats = ortho6d_torch.to_matrix(rot6d)
    zero = torch.zeros(mats.shape[:-3] + (3,), dtype=mats.dtype, device=mats.device)
    pos = skeleton_torch.fk(mats, zero, offsets, parents)[0]
    return pos[..., 1:, :] - pos[..., :1, :]


def fk_consistency(y: torch.Tensor, rot6d: tuple[int, int], ric: tuple[int, int],
                   norm: torch.Tensor, offsets: torch.Tensor, parents: torch.Tensor
                   ) -> torch.Tensor:
    """L1 between decoded ``ric`` and FK of decoded ``rot6d``, in normalised ``ric`` units.

    Args:
        y: normalised features [B, D, T].
        rot6d, ric: channel bounds of the two groups.
        norm: [2, D] feature mean and std (to denormalise).
        offsets: [J, 3] local joint offsets; parents: [J] parent indices (pymotion's layout).

    Returns:
        The mean absolute gap divided by the ``ric`` channels' std (a scalar).
    """
    feats = (y * norm[1][:, None] + norm[0][:, None]).transpose(1, 2)     # [B, T, D]
    b, t = feats.shape[:2]
    r6 = feats[..., rot6d[0]:rot6d[1]].reshape(b, t, -1, 3, 2)
    fk = ric_from_rot6d(r6, offsets, parents).reshape(b, t, -1)
    std = norm[1][ric[0]:ric[1]]
    return ((fk - feats[..., ric[0]:ric[1]]) / std).abs().mean()


def skeleton_tensors(offsets: np.ndarray, parents: np.ndarray) -> dict[str, torch.Tensor]:
    """Float offsets [J, 3] and long parents [J] for :func:`fk_consistency`."""
    return {"offsets": torch.as_tensor(np.asarray(offsets), dtype=torch.float32),
            "parents": torch.as_tensor(np.asarray(parents), dtype=torch.long)}
