"""BVH clips through upc-pymotion: load/save, dummy-root removal, resampling and mirroring.

A :class:`Clip` holds one animation in pymotion's convention (local unit quaternions
``(w, x, y, z)``, local positions, parents, offsets) plus the BVH-only details needed to write
it back on the same skeleton (rotation orders, channel counts, end sites). The BVH text is
checked first (balanced braces, 3 or 6 channels per joint, one row per declared frame, each with
as many values as channels), so a broken file raises :class:`~common.errors.DataError` naming
the file and the problem instead of a traceback from inside the parser.
"""

from __future__ import annotations

import copy
import gzip
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymotion.io.bvh import BVH
from pymotion.ops import skeleton as pm_skeleton

from common.errors import DataError
from common.io import atomic_write_text

_MIRROR_PATTERNS = (("Left", "Right"), ("left", "right"), ("_L", "_R"), ("_l", "_r"),
                    ("L_", "R_"), ("l_", "r_"))


@dataclass
class Clip:
    """One BVH animation: local quaternions ``rotations`` [F, J, 4] and ``positions`` [F, J, 3]."""

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    rotations: np.ndarray
    positions: np.ndarray
    fps: float
    rot_order: np.ndarray
    channels: np.ndarray
    end_sites: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    end_sites_parents: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    name: str = "clip"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def n_joints(self) -> int:
        return len(self.names)

    @property
    def root_position(self) -> np.ndarray:
        """Global root translation [F, 3]."""
        return self.positions[:, 0]

    def copy(self) -> Clip:
        return copy.deepcopy(self)

    def fk(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions [F, J, 3] and rotation matrices [F, J, 3, 3] (pymotion FK).

        Joints with position channels use them (per frame) instead of their OFFSET.
        """
        local = np.where((np.asarray(self.channels) == 6)[None, :, None], self.positions,
                         self.offsets[None])
        return pm_skeleton.fk(self.rotations, self.positions[:, 0], local, self.parents)

    def global_positions(self) -> np.ndarray:
        """World joint positions [F, J, 3] by forward kinematics."""
        return self.fk()[0]

    def slice(self, start: int, stop: int) -> Clip:
        out = self.copy()
        out.rotations = self.rotations[start:stop].copy()
        out.positions = self.positions[start:stop].copy()
        return out

    def skeleton_signature(self) -> tuple[str, ...]:
        """Joint names in order: what a trained model checks before accepting a clip."""
        return tuple(self.names)

    # pymotion bridge ----------------------------------------------------------------------
    def to_pymotion(self) -> BVH:
        bvh = BVH()
        bvh.data = {
            "filename": self.name, "names": np.array(self.names), "offsets": self.offsets.copy(),
            "end_sites": self.end_sites.copy(), "end_sites_parents": self.end_sites_parents.copy(),
            "parents": self.parents.copy(), "rot_order": self.rot_order.copy(),
            "channels": self.channels.copy(), "positions": None, "rotations": None,
            "frame_time": 1.0 / self.fps,
        }
        bvh.set_data(self.rotations, self.positions.copy())
        return bvh

    @classmethod
    def from_pymotion(cls, bvh: BVH, name: str = "clip", meta: dict | None = None) -> Clip:
        rots, pos, parents, offsets, end_sites, end_parents = bvh.get_data()
        d = bvh.data
        return cls(names=[str(n) for n in d["names"]], parents=np.asarray(parents, dtype=int),
                   offsets=np.asarray(offsets, dtype=float), rotations=rots,
                   positions=np.asarray(pos, dtype=float), fps=1.0 / float(d["frame_time"]),
                   rot_order=np.asarray(d["rot_order"]), channels=np.asarray(d["channels"]),
                   end_sites=np.asarray(end_sites, dtype=float).reshape(-1, 3),
                   end_sites_parents=np.asarray(end_parents, dtype=int).reshape(-1),
                   name=name, meta=dict(meta or {}))


# ------------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as fh:
                return fh.read()
        return path.read_text()
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read the file ({exc})", file=path,
                        expected="a BVH text file, optionally gzip-compressed") from None


def validate_bvh_text(text: str, file: str | Path = "<bvh>") -> dict[str, Any]:
    """Check a BVH's structure (Meredith & Maddock 2001 format) before parsing; return a summary.

    Raises:
        DataError: naming the file and the first problem (line number, field, expectation).
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "HIERARCHY":
        raise DataError("does not start with HIERARCHY", file=file, field="header",
                        expected="a BVH file")
    depth, joints, channels, in_end, i = 0, [], [], False, 1
    while i < len(lines):
        words = lines[i].split()
        i += 1
        if not words:
            continue
        key = words[0]
        if key in ("ROOT", "JOINT"):
            if key == "ROOT" and joints:
                raise DataError(f"line {i}: a second ROOT", file=file, field="hierarchy",
                                expected="one skeleton tree")
            if len(words) < 2:
                raise DataError(f"line {i}: {key} without a name", file=file, field="hierarchy")
            joints.append(words[1])
            channels.append(None)
        elif key == "End":
            in_end = True
        elif key == "{":
            depth += 1
        elif key == "}":
            depth -= 1
            in_end = False
            if depth < 0:
                raise DataError(f"line {i}: unmatched '}}'", file=file, field="hierarchy",
                                expected="balanced braces")
        elif key == "CHANNELS":
            if in_end or not joints:
                raise DataError(f"line {i}: CHANNELS outside a joint", file=file,
                                field="hierarchy")
            try:
                n = int(words[1])
            except (IndexError, ValueError):
                raise DataError(f"line {i}: bad CHANNELS count", file=file,
                                field="CHANNELS") from None
            if n not in (3, 6) or len(words) - 2 != n:
                raise DataError(f"line {i}: joint {joints[-1]!r} declares {n} channels and "
                                f"lists {len(words) - 2}", file=file, field="CHANNELS",
                                expected="3 rotations or 3 positions + 3 rotations")
            channels[-1] = n
        elif key == "MOTION":
            break
    else:
        raise DataError("no MOTION section", file=file, field="MOTION")
    if depth != 0:
        raise DataError(f"hierarchy braces do not balance (depth {depth} at MOTION)", file=file,
                        field="hierarchy", expected="balanced braces")
    if not joints:
        raise DataError("no joints in the hierarchy", file=file, field="hierarchy")
    missing = [j for j, c in zip(joints, channels) if c is None]
    if missing:
        raise DataError(f"joints without CHANNELS: {missing[:5]}", file=file, field="CHANNELS")
    try:
        n_frames = int(lines[i].split(":")[1])
        frame_time = float(lines[i + 1].split(":")[1])
    except (IndexError, ValueError):
        raise DataError("bad 'Frames:' / 'Frame Time:' lines after MOTION", file=file,
                        field="MOTION") from None
    rows = [ln for ln in lines[i + 2:] if ln.strip()]
    if len(rows) != n_frames:
        raise DataError(f"declares {n_frames} frames but holds {len(rows)}", file=file,
                        field="Frames")
    total = sum(channels)
    for k, row in enumerate(rows):
        if len(row.split()) != total:
            raise DataError(f"frame {k} (line {i + 3 + k}) has {len(row.split())} values",
                            file=file, field="channels", expected=f"{total} (sum of CHANNELS)")
    if frame_time <= 0:
        raise DataError(f"Frame Time {frame_time}", file=file, field="Frame Time",
                        expected="a positive number of seconds")
    return {"joints": joints, "channels": channels, "frames": n_frames, "frame_time": frame_time}


def is_dummy_root(clip: Clip, tol: float = 1e-6) -> bool:
    """A root that never moves or turns and has a single child that carries the motion."""
    children = [j for j in range(1, clip.n_joints) if clip.parents[j] == 0]
    if len(children) != 1 or clip.n_joints < 2:
        return False
    pos, rot = clip.positions[:, 0], clip.rotations[:, 0]
    static = np.abs(pos - pos[:1]).max() < tol and np.abs(np.abs(rot[:, 0]) - 1).max() < tol
    child = children[0]
    moves = clip.channels[child] == 6 and np.abs(clip.positions[:, child]
                                                  - clip.positions[:1, child]).max() > tol
    return bool(static and (moves or clip.n_frames == 1))


def drop_root(clip: Clip) -> Clip:
    """Remove joint 0 (pymotion ``remove_root_joint``); its single child becomes the root."""
    bvh = clip.to_pymotion()
    bvh.remove_root_joint()
    # pymotion 0.3.4 leaves data["channels"] one joint too long after remove_joints.
    bvh.data["channels"] = np.asarray(clip.channels[1:])
    bvh.data["channels"][0] = 6
    return Clip.from_pymotion(bvh, clip.name, clip.meta)


def load_bvh(path: str | Path, *, drop_dummy_root: bool = True, fps: float | None = None,
             meta: dict | None = None) -> Clip:
    """Read a BVH (``.bvh`` or ``.bvh.gz``) with pymotion; optionally resample to ``fps``."""
    path = Path(path)
    text = _read_text(path)
    validate_bvh_text(text, path)
    fd, tmp = tempfile.mkstemp(suffix=".bvh")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        bvh = BVH()
        try:
            bvh.load(tmp)
        except Exception as exc:  # the structure was checked; this is a value-level problem
            raise DataError(f"pymotion could not parse it ({type(exc).__name__}: {exc})",
                            file=path, expected="a valid BVH") from None
    finally:
        os.unlink(tmp)
    name = path.name.removesuffix(".gz").removesuffix(".bvh")
    clip = Clip.from_pymotion(bvh, name, {"file": str(path), **(meta or {})})
    if not np.isfinite(clip.rotations).all() or not np.isfinite(clip.positions).all():
        raise DataError("non-finite channel values", file=path, field="MOTION")
    if drop_dummy_root and is_dummy_root(clip):
        clip = drop_root(clip)
        clip.meta["dropped_root"] = True
    if fps is not None and abs(fps - clip.fps) > 1e-3:
        clip = resample(clip, fps)
    return clip


def save_bvh(clip: Clip, path: str | Path) -> Path:
    """Write ``clip`` as BVH text via pymotion, atomically (temp file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".bvh")
    os.close(fd)
    try:
        clip.to_pymotion().save(tmp)
        text = Path(tmp).read_text()
    finally:
        os.unlink(tmp)
    if path.suffix == ".gz":
        from common.io import atomic_write_bytes

        return atomic_write_bytes(path, gzip.compress(text.encode()))
    return atomic_write_text(path, text)


def resample(clip: Clip, fps: float) -> Clip:
    """Resample to ``fps`` with pymotion (2x decimation when exact, else interpolation)."""
    if fps <= 0:
        raise DataError(f"target fps {fps}", file=clip.name, field="fps", expected="> 0")
    bvh = clip.to_pymotion()
    bvh.resample(target_fps=fps)
    out = Clip.from_pymotion(bvh, clip.name, clip.meta)
    out.fps = float(fps)
    return out


def mirror_map(names: list[str]) -> np.ndarray:
    """Left/right joint permutation from the names (``Left``/``Right``, ``_L``/``_R`` ...)."""
    index = {n: i for i, n in enumerate(names)}
    mapping = np.arange(len(names))
    for i, name in enumerate(names):
        for left, right in _MIRROR_PATTERNS:
            for a, b in ((left, right), (right, left)):
                if a in name and name.replace(a, b) in index:
                    mapping[i] = index[name.replace(a, b)]
                    break
            if mapping[i] != i:
                break
        if mapping[i] == i and len(name) > 1 and name[0] in "LR" and name[1].isupper():
            other = {"L": "R", "R": "L"}[name[0]] + name[1:]     # CMU: LHipJoint / RHipJoint
            mapping[i] = index.get(other, i)
    return mapping
