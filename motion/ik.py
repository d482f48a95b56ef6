"""Foot-skating clean-up: pin feet on predicted contacts by analytic two-bone IK (written here).

The two-bone solve is the classic law-of-cosines construction (as in D. Holden's "Simple Two
Joint IK" note): bend the knee so that the hip-ankle distance equals the hip-target distance,
then swing the hip so that the ankle points at the target. pymotion 0.3 has no IK solver, so this
small version lives here. Each contact run of an ankle is pinned to the ankle's horizontal
position at the run's first frame (its height is kept); nothing is blended at run boundaries.
"""

from __future__ import annotations

import numpy as np
import pymotion.rotations.quat_np as quat

from .bvh import Clip
from .skeleton import SkeletonInfo


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((_unit(a) * _unit(b)).sum(-1), -1.0, 1.0))


def two_bone_ik(clip: Clip, hip: int, knee: int, ankle: int, target: np.ndarray,
                frames: np.ndarray) -> Clip:
    """Rotate ``hip`` and ``knee`` so that ``ankle`` reaches ``target`` [F, 3] on ``frames``."""
    out = clip.copy()
    if not frames.any():
        return out
    pos, rot = out.fk()
    gq = quat.from_matrix(rot)
    a, b, c, t = pos[frames, hip], pos[frames, knee], pos[frames, ankle], target[frames]
    lab, lcb = np.linalg.norm(b - a, axis=-1), np.linalg.norm(b - c, axis=-1)
    lat = np.clip(np.linalg.norm(t - a, axis=-1), 1e-6, lab + lcb - 1e-6)
    ac_ab_0, ba_bc_0 = _angle(c - a, b - a), _angle(a - b, c - b)
    ac_ab_1 = np.arccos(np.clip((lcb ** 2 - lab ** 2 - lat ** 2) / (-2 * lab * lat), -1, 1))
    ba_bc_1 = np.arccos(np.clip((lat ** 2 - lab ** 2 - lcb ** 2) / (-2 * lab * lcb), -1, 1))
    axis0 = _unit(np.cross(c - a, b - a))
    a_inv, b_inv = quat.inverse(gq[frames, hip]), quat.inverse(gq[frames, knee])
    r0 = quat.from_angle_axis((ac_ab_1 - ac_ab_0)[:, None], _unit(quat.mul_vec(a_inv, axis0)))
    r1 = quat.from_angle_axis((ba_bc_1 - ba_bc_0)[:, None], _unit(quat.mul_vec(b_inv, axis0)))
    out.rotations[frames, hip] = quat.mul(out.rotations[frames, hip], r0)
    out.rotations[frames, knee] = quat.mul(out.rotations[frames, knee], r1)
    pos, rot = out.fk()                                   # now swing the hip onto the target
    a_inv = quat.inverse(quat.from_matrix(rot[frames, hip]))
    c = pos[frames, ankle]
    r2 = quat.from_to(quat.mul_vec(a_inv, c - pos[frames, hip]),
                      quat.mul_vec(a_inv, t - pos[frames, hip]))
    out.rotations[frames, hip] = quat.normalize(quat.mul(out.rotations[frames, hip], r2))
    return out


def remove_foot_skating(clip: Clip, contacts: np.ndarray, info: SkeletonInfo) -> Clip:
    """Pin each ankle during its contact runs (``contacts`` [F, 4], ankle channels 0 and 2)."""
    out = clip
    for col, ankle in ((0, info.feet[0]), (2, info.feet[2])):
        knee = int(info.parents[ankle])
        hip = int(info.parents[knee])
        on = contacts[:, col] > 0.5
        if not on.any():
            continue
        pos = out.global_positions()
        target = pos[:, ankle].copy()
        starts = np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))
        for s in starts:
            e = s
            while e + 1 < len(on) and on[e + 1]:
                e += 1
            target[s:e + 1, [0, 2]] = pos[s, ankle, [0, 2]]
        out = two_bone_ik(out, hip, knee, ankle, target, on)
    return out
