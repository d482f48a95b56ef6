"""GenMoStyle per-frame motion features (Guo et al. ICLR 2024, Sec. 4; HumanML3D layout) and back.

Per frame, with the root heading ``theta`` (yaw of ``cross(across, up)``, ``across`` from the
right to the left hip plus shoulder) and ``R = R_y(-theta)``:

==============  ==========  ====================================================================
slice           size        content
==============  ==========  ====================================================================
``ang_vel``     1           ``theta[t+1] - theta[t]`` (wrapped), radians per frame
``lin_vel``     2           ``R (p[t+1] - p[t])`` in the root frame, x and z
``height``      1           root height ``p_y``
``ric``         3 (J-1)     joint positions minus the root position, in the root frame
``rot6d``       6 J         local 6-D rotations (Zhou et al. 2019); the root's with heading removed
``vel``         3 J         ``R (P[t+1] - P[t])`` joint velocities in the root frame
``contact``     4           left ankle, left toe, right ankle, right toe on the ground (0/1)
==============  ==========  ====================================================================

The last frame repeats the previous velocities. :func:`features_to_clip` integrates the heading
and the root velocity from a start pose, and converts the 6-D rotations back to quaternions,
so a clip written from features lands on the template clip's skeleton.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymotion.rotations.ortho6d_np as ortho6d
import pymotion.rotations.quat_np as quat

from common.errors import DataError

from .bvh import Clip
from .skeleton import SkeletonInfo

UP = 1  # Y-up, as in BVH mocap (Bandai-Namco, CMU)


@dataclass(frozen=True)
class FeatureLayout:
    """Slices of the feature vector for a skeleton with ``n_joints`` joints."""

    n_joints: int

    @property
    def dim(self) -> int:
        return 4 + 3 * (self.n_joints - 1) + 9 * self.n_joints + 4

    def _bounds(self) -> dict[str, tuple[int, int]]:
        j, out, i = self.n_joints, {}, 0
        for name, size in (("ang_vel", 1), ("lin_vel", 2), ("height", 1), ("ric", 3 * (j - 1)),
                           ("rot6d", 6 * j), ("vel", 3 * j), ("contact", 4)):
            out[name] = (i, i + size)
            i += size
        return out

    def slice(self, name: str) -> slice:
        a, b = self._bounds()[name]
        return slice(a, b)


def _yaw_matrix(theta: np.ndarray) -> np.ndarray:
    """Rotation about +Y by ``theta`` [..] -> [.., 3, 3]."""
    c, s = np.cos(theta), np.sin(theta)
    m = np.zeros(theta.shape + (3, 3))
    m[..., 0, 0], m[..., 0, 2], m[..., 1, 1], m[..., 2, 0], m[..., 2, 2] = c, s, 1, -s, c
    return m


def heading(positions: np.ndarray, info: SkeletonInfo) -> np.ndarray:
    """Yaw [F] of the facing direction ``cross(across, up)``; ``across`` = hips + shoulders."""
    (hl, hr), (sl, sr) = info.hips, info.shoulders
    across = positions[:, hl] - positions[:, hr] + positions[:, sl] - positions[:, sr]
    fwd = np.cross(across, np.array([0.0, 1.0, 0.0]))
    return np.unwrap(np.arctan2(fwd[:, 0], fwd[:, 2]))


def foot_contacts(positions: np.ndarray, fps: float, info: SkeletonInfo,
                  vel_scale: float = 0.5, height_scale: float = 0.08) -> np.ndarray:
    """Contacts [F, 4]: foot speed < ``vel_scale`` legs/s and height within ``height_scale`` legs.

    The ground is the clip's 5th height percentile of each foot joint (mocap floors vary).
    """
    feet = positions[:, list(info.feet)]
    speed = np.linalg.norm(np.diff(feet, axis=0, append=feet[-1:] * 2 - feet[-2:-1]), axis=-1)
    speed = speed * fps / info.leg_length
    h = feet[..., UP]
    h = (h - np.percentile(h, 5, axis=0)) / info.leg_length
    return ((speed < vel_scale) & (h < height_scale)).astype(np.float64)


def clip_to_features(clip: Clip, info: SkeletonInfo | None = None) -> tuple[np.ndarray, dict]:
    """Features [F, D] of ``clip`` and its start pose ``{"theta0", "root0"}`` (for inversion)."""
    if clip.n_frames < 2:
        raise DataError(f"{clip.n_frames} frame(s)", file=clip.meta.get("file", clip.name),
                        field="Frames", expected="at least 2 frames")
    info = info or SkeletonInfo.from_clip(clip)
    pos, gmat = _fk(clip)
    theta = heading(pos, info)
    r_inv = _yaw_matrix(-theta)                                   # [F, 3, 3]
    root = pos[:, 0]
    d_root = np.diff(root, axis=0, append=root[-1:] * 2 - root[-2:-1])
    ang = np.diff(theta, append=2 * theta[-1] - theta[-2])
    lin = np.einsum("fij,fj->fi", r_inv, d_root)[:, [0, 2]]
    ric = np.einsum("fij,fkj->fki", r_inv, pos[:, 1:] - root[:, None])
    rots = clip.rotations.copy()
    root_local = np.einsum("fij,fjk->fik", r_inv, gmat[:, 0])
    rot6 = ortho6d.from_quat(rots)                                # [F, J, 3, 2]
    rot6[:, 0] = root_local[..., :2]
    d_pos = np.diff(pos, axis=0, append=pos[-1:] * 2 - pos[-2:-1])
    vel = np.einsum("fij,fkj->fki", r_inv, d_pos)
    con = foot_contacts(pos, clip.fps, info)
    f = clip.n_frames
    feats = np.concatenate([ang[:, None], lin, root[:, UP:UP + 1], ric.reshape(f, -1),
                            rot6.reshape(f, -1), vel.reshape(f, -1), con], axis=1)
    start = {"theta0": float(theta[0]), "root0": root[0].copy()}
    return feats.astype(np.float32), start


def _fk(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    return clip.fk()


def integrate_root(feats: np.ndarray, theta0: float, root0: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Heading [F] and root position [F, 3] by integrating the velocity channels."""
    f = feats.shape[0]
    theta = theta0 + np.concatenate([[0.0], np.cumsum(feats[:-1, 0].astype(np.float64))])
    r = _yaw_matrix(theta)
    d = np.zeros((f, 3))
    d[:, 0], d[:, 2] = feats[:, 1], feats[:, 2]
    step = np.einsum("fij,fj->fi", r, d)
    root = np.zeros((f, 3))
    root[:, [0, 2]] = root0[[0, 2]] + np.concatenate([np.zeros((1, 2)),
                                                      np.cumsum(step[:-1, [0, 2]], axis=0)])
    root[:, UP] = feats[:, 3]
    return theta, root


def features_to_clip(feats: np.ndarray, template: Clip, start: dict | None = None,
                     name: str | None = None) -> Clip:
    """Rebuild a clip on ``template``'s skeleton from features [F, D] and a start pose."""
    layout = FeatureLayout(template.n_joints)
    if feats.ndim != 2 or feats.shape[1] != layout.dim:
        raise DataError(f"feature array of shape {feats.shape}", file=name or template.name,
                        field="features", expected=f"[frames, {layout.dim}]")
    start = start or {"theta0": 0.0, "root0": np.zeros(3)}
    f, j = feats.shape[0], template.n_joints
    theta, root = integrate_root(feats, start["theta0"], np.asarray(start["root0"], float))
    rot6 = feats[:, layout.slice("rot6d")].astype(np.float64).reshape(f, j, 3, 2)
    mats = ortho6d.to_matrix(rot6)                                 # Gram-Schmidt inside
    mats[:, 0] = np.einsum("fij,fjk->fik", _yaw_matrix(theta), mats[:, 0])
    q = quat.normalize(quat.unroll(quat.from_matrix(mats), axis=0))
    out = template.copy()
    out.rotations = q
    out.positions = np.broadcast_to(template.offsets, (f, j, 3)).copy()
    out.positions[:, 0] = root
    out.name = name or f"{template.name}_from_features"
    return out


def positions_from_features(feats: np.ndarray, n_joints: int, start: dict | None = None
                            ) -> np.ndarray:
    """World joint positions [F, J, 3] from the ``ric`` channels and the integrated root."""
    layout = FeatureLayout(n_joints)
    start = start or {"theta0": 0.0, "root0": np.zeros(3)}
    theta, root = integrate_root(feats, start["theta0"], np.asarray(start["root0"], float))
    ric = feats[:, layout.slice("ric")].reshape(len(feats), n_joints - 1, 3)
    world = np.einsum("fij,fkj->fki", _yaw_matrix(theta), ric) + root[:, None]
    return np.concatenate([root[:, None], world], axis=1)
