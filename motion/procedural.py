"""SYNTHETIC stylised locomotion: a procedural gait generator (sinusoidal joint-angle cycles).

This is the offline embedded default of the motion pipeline, NOT mocap. A 21-joint biped
(Bandai-Namco joint names, cm, Y up, facing +Z, left = +X) walks, runs or turns; each style
is a set of gait parameters (stride, cadence, bounce, arm swing, elbow bend, posture lean, head
pitch, lateral sway, knee lift, left/right asymmetry) in the spirit of parametric gait models
(Bruderlin & Calvert 1996). Every clip jitters its parameters and adds low-frequency noise, so a
classifier has to look at the whole gait, not one number.
"""

from __future__ import annotations

import numpy as np
import pymotion.rotations.quat_np as quat

from .bvh import Clip

JOINTS = [  # name, parent, offset (cm)
    ("Hips", -1, (0, 95, 0)), ("Spine", 0, (0, 12, 0)), ("Chest", 1, (0, 18, 0)),
    ("Neck", 2, (0, 22, 0)), ("Head", 3, (0, 10, 0)),
    ("Shoulder_L", 2, (4, 18, 0)), ("UpperArm_L", 5, (14, 0, 0)),
    ("LowerArm_L", 6, (0, -28, 0)), ("Hand_L", 7, (0, -25, 0)),
    ("Shoulder_R", 2, (-4, 18, 0)), ("UpperArm_R", 9, (-14, 0, 0)),
    ("LowerArm_R", 10, (0, -28, 0)), ("Hand_R", 11, (0, -25, 0)),
    ("UpperLeg_L", 0, (9, -5, 0)), ("LowerLeg_L", 13, (0, -43, 0)),
    ("Foot_L", 14, (0, -42, 0)), ("Toes_L", 15, (0, -5, 13)),
    ("UpperLeg_R", 0, (-9, -5, 0)), ("LowerLeg_R", 17, (0, -43, 0)),
    ("Foot_R", 18, (0, -42, 0)), ("Toes_R", 19, (0, -5, 13)),
]

# stride (rad), cadence (Hz), bounce (cm), arm (rad), elbow (rad), lean (rad, + forward),
# head (rad, + down), sway (rad), knee (rad), asym (fraction)
STYLES: dict[str, dict[str, float]] = {
    "neutral": dict(stride=0.42, cadence=0.95, bounce=2.0, arm=0.35, elbow=0.25, lean=0.04,
                    head=0.0, sway=0.03, knee=0.55, asym=0.0),
    "proud": dict(stride=0.48, cadence=0.85, bounce=2.5, arm=0.55, elbow=0.15, lean=-0.12,
                  head=-0.2, sway=0.06, knee=0.5, asym=0.0),
    "tired": dict(stride=0.25, cadence=0.7, bounce=1.0, arm=0.1, elbow=0.1, lean=0.35,
                  head=0.45, sway=0.08, knee=0.35, asym=0.1),
    "angry": dict(stride=0.5, cadence=1.2, bounce=3.0, arm=0.6, elbow=1.1, lean=0.18,
                  head=0.1, sway=0.02, knee=0.7, asym=0.0),
    "childlike": dict(stride=0.4, cadence=1.35, bounce=5.0, arm=0.8, elbow=0.4, lean=0.0,
                      head=-0.05, sway=0.15, knee=0.95, asym=0.25),
}
CONTENTS = ("walk", "run", "turn")


def skeleton_template(fps: float = 30.0) -> Clip:
    """A one-frame rest-pose clip of the synthetic skeleton (root 6 channels, joints 3)."""
    n = len(JOINTS)
    offsets = np.array([o for _, _, o in JOINTS], dtype=float)
    parents = np.array([max(p, 0) for _, p, _ in JOINTS])
    rot = np.tile([1.0, 0, 0, 0], (1, n, 1))
    pos = offsets[None].copy()
    leaves = [j for j in range(n) if j not in set(parents[1:])]
    ends = np.array([[0, 8, 0] if JOINTS[j][0] == "Head" else
                     [0, -8, 0] if "Hand" in JOINTS[j][0] else [0, 0, 5] for j in leaves], float)
    return Clip(names=[nm for nm, _, _ in JOINTS], parents=parents, offsets=offsets,
                rotations=rot, positions=pos, fps=fps,
                rot_order=np.tile(np.array(["z", "x", "y"]), (n, 1)),
                channels=np.array([6] + [3] * (n - 1)), end_sites=ends,
                end_sites_parents=np.array(leaves), name="rest")


def _rx(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return quat.from_angle_axis(a[..., None], np.array([1.0, 0, 0]))


def _ry(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return quat.from_angle_axis(a[..., None], np.array([0, 1.0, 0]))


def _rz(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return quat.from_angle_axis(a[..., None], np.array([0, 0, 1.0]))


def generate_clip(style: str, content: str, n_frames: int = 240, fps: float = 30.0,
                  seed: int = 0, jitter: float = 0.08) -> Clip:
    """One synthetic clip of ``content`` (walk/run/turn) in ``style``; labels in ``clip.meta``."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known: {sorted(STYLES)}")
    if content not in CONTENTS:
        raise ValueError(f"unknown content {content!r}; known: {CONTENTS}")
    rng = np.random.default_rng(seed)
    p = {k: v * (1 + jitter * rng.standard_normal()) for k, v in STYLES[style].items()}
    if content == "run":
        p.update(stride=p["stride"] * 1.3, cadence=p["cadence"] * 1.45, bounce=p["bounce"] * 2.2,
                 knee=p["knee"] * 1.8, elbow=p["elbow"] + 0.9, lean=p["lean"] + 0.12)
    t = np.arange(n_frames) / fps
    phase = 2 * np.pi * p["cadence"] * t + rng.uniform(0, 2 * np.pi)
    drift = lambda s: s * np.sin(2 * np.pi * 0.13 * t + rng.uniform(0, 6.3))  # noqa: E731
    tmpl = skeleton_template(fps)
    n = tmpl.n_joints
    idx = {nm: i for i, nm in enumerate(tmpl.names)}
    rot = np.tile([1.0, 0, 0, 0], (n_frames, n, 1))
    for side, sgn, amp in (("L", 0.0, 1.0 + p["asym"]), ("R", np.pi, 1.0 - p["asym"])):
        ph = phase + sgn
        hip = -p["stride"] * amp * np.sin(ph)                      # forward swing is -X
        knee = p["knee"] * amp * np.clip(np.sin(ph + 0.6), 0, None) + 0.05
        ankle = -0.25 * amp * np.sin(ph - 0.4)
        rot[:, idx[f"UpperLeg_{side}"]] = _rx(hip + drift(0.02))
        rot[:, idx[f"LowerLeg_{side}"]] = _rx(knee)
        rot[:, idx[f"Foot_{side}"]] = _rx(ankle)
        arm = p["arm"] * amp * np.sin(ph)                          # opposite to the leg
        lateral = 0.08 if side == "L" else -0.08
        rot[:, idx[f"UpperArm_{side}"]] = quat.mul(_rz(np.full_like(t, lateral)), _rx(arm))
        rot[:, idx[f"LowerArm_{side}"]] = _rx(-p["elbow"] - 0.2 * p["elbow"] * np.sin(ph))
        rot[:, idx[f"Shoulder_{side}"]] = _rz(np.full_like(t, 0.03 * p["asym"]))
    rot[:, idx["Spine"]] = quat.mul(_rx(0.5 * p["lean"] + drift(0.02)),
                                    _rz(p["sway"] * np.sin(phase)))
    rot[:, idx["Chest"]] = quat.mul(_rx(0.5 * p["lean"] + 0 * t),
                                    _ry(0.15 * p["arm"] * np.sin(phase)))
    rot[:, idx["Neck"]] = _rx(0.5 * p["head"] + drift(0.03))
    rot[:, idx["Head"]] = _rx(0.5 * p["head"] + 0 * t)
    leg = 85.0
    speed = 4 * leg * np.sin(p["stride"]) * p["cadence"]   # one stride per stance phase, cm/s
    yaw_rate = (0.6 if content == "turn" else 0.0) * (1 if rng.uniform() < 0.5 else -1)
    yaw = rng.uniform(-np.pi, np.pi) + yaw_rate * t + drift(0.05)
    rot[:, 0] = quat.mul(_ry(yaw), _rz(0.5 * p["sway"] * np.sin(phase)))
    step = speed / fps * np.stack([np.sin(yaw), np.zeros_like(t), np.cos(yaw)], -1)
    root = np.cumsum(step, axis=0)
    root[:, 1] = 95.0 - 6 * p["knee"] + p["bounce"] * np.cos(2 * phase)
    root[:, [0, 2]] += rng.uniform(-200, 200, 2)
    pos = np.broadcast_to(tmpl.offsets, (n_frames, n, 3)).copy()
    pos[:, 0] = root
    clip = tmpl.copy()
    clip.rotations, clip.positions = quat.normalize(rot), pos
    clip.name = f"synthetic_{content}_{style}_{seed:03d}"
    clip.meta = {"style": style, "content": content, "take": f"{seed:03d}", "synthetic": True}
    return clip


def generate_dataset(n_takes: int = 4, n_frames: int = 240, fps: float = 30.0, seed: int = 0,
                     styles: list[str] | None = None) -> list[Clip]:
    """``n_takes`` clips for every style x content pair, seeded deterministically."""
    clips = []
    for si, style in enumerate(styles or list(STYLES)):
        for ci, content in enumerate(CONTENTS):
            for k in range(n_takes):
                clips.append(generate_clip(style, content, n_frames, fps,
                                           seed=seed * 100_000 + si * 1000 + ci * 100 + k))
    return clips
