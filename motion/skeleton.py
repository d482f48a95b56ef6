"""Skeleton roles from joint names (hips, shoulders, feet); mirroring for any local frames.

Mirroring: the world motion is reflected across the plane normal to the lateral axis ``M`` and
left/right joints swap. With global rotations ``G`` the mirrored rotation of joint ``j`` is
``G'_j = M G_{m(j)} C_j`` where ``C_j`` is a fixed improper orthogonal map of the rest frame,
chosen so that ``C_j`` sends the bone offsets of ``j``'s children onto those of ``m(j)``'s
(orthogonal Procrustes for branching joints, a reflection for centre joints, the parent's map
corrected by the smallest rotation for chains). ``C_{m(j)} = C_j^T``, so mirroring twice is the
identity. This works for mocap skeletons whose local axes are not mirror images (Bandai-Namco),
where pymotion's ``symmetry`` mode assumes a symmetric rest pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymotion.rotations.quat_np as quat
from pymotion.ops import skeleton as pm_skeleton

from common.errors import DataError

from .bvh import Clip, mirror_map

_LEFT_TAGS = ("Left", "left", "_L", "_l", "L_", "l_")


def _is_left(name: str) -> bool:
    return any(t in name for t in _LEFT_TAGS) or (len(name) > 1 and name[0] == "L"
                                                  and name[1].isupper())


def _children(parents: np.ndarray, j: int) -> list[int]:
    return [c for c in range(1, len(parents)) if parents[c] == j]


@dataclass(frozen=True)
class SkeletonInfo:
    """Joint roles used by the features: feet for contacts, hips/shoulders for the heading."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    mirror: tuple[int, ...]
    feet: tuple[int, int, int, int]      # left ankle, left toe, right ankle, right toe
    hips: tuple[int, int]                # left, right
    shoulders: tuple[int, int]           # left, right
    leg_length: float                    # hip-to-ankle rest length (sets contact thresholds)

    @classmethod
    def from_clip(cls, clip: Clip) -> SkeletonInfo:
        """Find the roles from names and the first frame; ``DataError`` if not a biped."""
        names, parents = clip.names, clip.parents
        m = mirror_map(names)
        pos = clip.global_positions()[: min(clip.n_frames, 60)].mean(0)
        left = [j for j in range(len(names)) if m[j] != j and _is_left(names[j])]
        if len(left) < 4:
            raise DataError(f"found {len(left)} left/right joint pairs in {names}",
                            file=clip.meta.get("file", clip.name), field="joint names",
                            expected="a biped with Left/Right or _L/_R joint names")

        def chain_top(j: int) -> int:
            while parents[j] != j and m[parents[j]] != parents[j] and parents[j] != 0:
                j = parents[j]
            return j

        toe_l = min(left, key=lambda j: pos[j, 1])
        ankle_l = int(parents[toe_l])
        hip_l = chain_top(toe_l)
        tops = {chain_top(j) for j in left} - {hip_l}
        if not tops:
            raise DataError("no arm chain found", file=clip.meta.get("file", clip.name),
                            field="joint names", expected="left/right arms and legs")
        sho_l = max(tops, key=lambda j: pos[j, 1])
        leg = float(np.linalg.norm(pos[hip_l] - pos[ankle_l]))
        return cls(names=tuple(names), parents=tuple(int(p) for p in parents),
                   mirror=tuple(int(i) for i in m),
                   feet=(int(ankle_l), int(toe_l), int(m[ankle_l]), int(m[toe_l])),
                   hips=(int(hip_l), int(m[hip_l])), shoulders=(int(sho_l), int(m[sho_l])),
                   leg_length=max(leg, 1e-6))


def _reflection(n: np.ndarray) -> np.ndarray:
    n = n / np.linalg.norm(n)
    return np.eye(3) - 2 * np.outer(n, n)


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction ``a`` to direction ``b`` (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if np.linalg.norm(v) < 1e-9:
        if c > 0:
            return np.eye(3)
        axis = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        return 2 * np.outer(axis, axis) / (axis @ axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def rest_mirror_maps(offsets: np.ndarray, parents: np.ndarray, m: np.ndarray,
                     reference: np.ndarray | None = None) -> np.ndarray:
    """The per-joint improper maps ``C_j`` [J, 3, 3] described in the module docstring.

    ``reference`` [J, 3, 3]: local rotation matrices of a reference pose (e.g. a clip's first
    frame). A centre joint whose children do not fix its mirror plane (one child on the bone
    axis, like a spine segment) takes its parent's plane carried into its own frame by that
    rotation, so its mirrored rotation stays on the same branch as the original's (without it,
    the Bandai-Namco chest of a mirrored clip is twisted 180 degrees about the spine, an
    equivalent pose with the shoulders' rotations compensating).
    """
    n_j = len(parents)
    maps = np.zeros((n_j, 3, 3))
    done = np.zeros(n_j, bool)
    for j in range(n_j):                       # BVH order: parents come before children
        if done[j]:
            continue
        kids = [c for c in _children(parents, j) if np.linalg.norm(offsets[c]) > 1e-9]
        par = maps[parents[j]] if j > 0 else _reflection(np.array([1.0, 0, 0]))
        if m[j] == j:                          # centre joint: a reflection H(n)
            d = sum((offsets[c] - offsets[m[c]] for c in kids if m[c] > c), np.zeros(3))
            if np.linalg.norm(d) < 1e-9:
                n = np.linalg.eigh(np.eye(3) - par)[1][:, -1]   # the parent's normal
                if reference is not None:                        # ... in this joint's frame
                    n = reference[j].T @ n
                for c in kids:
                    u = offsets[c] / np.linalg.norm(offsets[c])
                    n = n - (n @ u) * u
                d = n if np.linalg.norm(n) > 1e-9 else np.array([1.0, 0, 0])
            maps[j] = _reflection(d)
        else:                                  # a left/right pair: C_j, C_{m(j)} = C_j^T
            src = np.stack([offsets[c] for c in kids]) if kids else np.zeros((0, 3))
            dst = np.stack([offsets[m[c]] for c in kids]) if kids else np.zeros((0, 3))
            if len(kids) >= 2 and np.linalg.matrix_rank(src, 1e-6) >= 2:
                u, _, vt = np.linalg.svd(dst.T @ src)
                d = np.diag([1.0, 1.0, -np.linalg.det(u @ vt)])
                c_j = u @ d @ vt
            elif len(kids) >= 1:
                c_j = _min_rotation(par @ src[0], dst[0]) @ par
            else:
                c_j = par
            maps[j], maps[m[j]] = c_j, c_j.T
            done[m[j]] = True
        done[j] = True
    return maps


def mirror(clip: Clip, axis: int = 0) -> Clip:
    """Mirror a clip across the world plane normal to ``axis`` (default X, the lateral axis)."""
    m = mirror_map(clip.names)
    world = np.eye(3)
    world[axis, axis] = -1
    # the first frame's local rotations: unchanged by mirroring, so mirroring twice is the identity
    maps = rest_mirror_maps(clip.offsets, clip.parents, m, quat.to_matrix(clip.rotations[0]))
    _, g = clip.fk()
    g2 = world @ g[:, m] @ maps                 # [F, J, 3, 3]
    glob = quat.from_matrix(g2)
    local = pm_skeleton.from_global_rotations(glob, clip.parents)
    out = clip.copy()
    out.rotations = quat.normalize(quat.unroll(local, axis=0))
    out.positions = clip.positions.copy()
    out.positions[:, 0] = clip.positions[:, 0] @ world
    out.meta = {**clip.meta, "mirrored": not clip.meta.get("mirrored", False)}
    return out
