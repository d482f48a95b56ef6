"""A synthetic furniture family for the offline default: CSG unions of boxes and cylinders.

SYNTHETIC DATA, generated here (no download): tables, chairs, stools and shelves with random
proportions, leg styles (square / round) and optional parts (chair arms, table stretchers,
shelf counts). Each shape is a watertight union computed with Manifold (manifold3d through
``trimesh.boolean.union``), Y up like ShapeNet. It is a stand-in with enough variety to train
and check a generative model end to end; it is not a benchmark corpus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import trimesh

CATEGORIES = ("table", "chair", "stool", "shelf")


def _box(size: tuple[float, float, float], center: tuple[float, float, float]
         ) -> trimesh.Trimesh:
    import trimesh as tm

    return tm.creation.box(extents=size, transform=tm.transformations.translation_matrix(center))


def _rod(radius: float, height: float, center: tuple[float, float, float], sections: int = 16
         ) -> trimesh.Trimesh:
    """A vertical (Y-axis) cylinder."""
    import trimesh as tm

    rot = tm.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    m = tm.creation.cylinder(radius=radius, height=height, sections=sections, transform=rot)
    m.apply_translation(center)
    return m


def _leg(round_legs: bool, t: float, h: float, xz: tuple[float, float]) -> trimesh.Trimesh:
    c = (xz[0], h / 2, xz[1])
    return _rod(t / 2, h, c) if round_legs else _box((t, h, t), c)


def _legs(rng: np.random.Generator, w: float, d: float, h: float, t: float, inset: float
          ) -> list:
    round_legs = bool(rng.random() < 0.5)
    x, z = w / 2 - inset - t / 2, d / 2 - inset - t / 2
    return [_leg(round_legs, t, h, (sx * x, sz * z)) for sx in (-1, 1) for sz in (-1, 1)]


def make_table(rng: np.random.Generator) -> list:
    """A top on four legs, with optional stretchers between the legs."""
    w, d = rng.uniform(0.8, 1.4), rng.uniform(0.5, 0.9)
    h, top, t = rng.uniform(0.5, 0.8), rng.uniform(0.05, 0.1), rng.uniform(0.07, 0.12)
    parts = [_box((w, top, d), (0, h + top / 2, 0))] + _legs(rng, w, d, h + 0.01, t, 0.02)
    if rng.random() < 0.5:
        y = rng.uniform(0.1, 0.3) * h
        parts.append(_box((w - 0.06, t * 0.6, t * 0.6), (0, y, d / 2 - 0.02 - t / 2)))
        parts.append(_box((w - 0.06, t * 0.6, t * 0.6), (0, y, -(d / 2 - 0.02 - t / 2))))
    return parts


def make_chair(rng: np.random.Generator) -> list:
    """Seat, four legs, a back rest and optional arm rests."""
    w, d = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    h, seat, t = rng.uniform(0.35, 0.5), rng.uniform(0.05, 0.09), rng.uniform(0.045, 0.07)
    back_h, back_t = rng.uniform(0.3, 0.6), rng.uniform(0.045, 0.07)
    parts = [_box((w, seat, d), (0, h + seat / 2, 0))] + _legs(rng, w, d, h + 0.01, t, 0.0)
    parts.append(_box((w, back_h, back_t), (0, h + seat + back_h / 2 - 0.01, -d / 2 + back_t / 2)))
    if rng.random() < 0.4:
        for sx in (-1, 1):
            parts.append(_box((0.04, 0.04, d * 0.9), (sx * (w / 2 - 0.02), h + seat + 0.2, 0)))
            post = (sx * (w / 2 - 0.02), h + seat + 0.1, d / 2 - 0.05)
            parts.append(_box((0.04, 0.21, 0.04), post))
    return parts


def make_stool(rng: np.random.Generator) -> list:
    """A round or square seat on three or four legs."""
    r, h = rng.uniform(0.18, 0.3), rng.uniform(0.4, 0.75)
    seat, t = rng.uniform(0.05, 0.1), rng.uniform(0.045, 0.07)
    parts = [_rod(r, seat, (0, h + seat / 2, 0), 32) if rng.random() < 0.6
             else _box((2 * r, seat, 2 * r), (0, h + seat / 2, 0))]
    n = int(rng.integers(3, 5))
    for k in range(n):
        a = 2 * np.pi * k / n + np.pi / 4
        parts.append(_rod(t / 2, h + 0.01, (0.75 * r * np.cos(a), (h + 0.01) / 2,
                                            0.75 * r * np.sin(a))))
    return parts


def make_shelf(rng: np.random.Generator) -> list:
    """Two side panels, three to five boards and an optional back panel."""
    w, d, h = rng.uniform(0.5, 1.0), rng.uniform(0.25, 0.4), rng.uniform(0.6, 1.4)
    t = rng.uniform(0.045, 0.07)
    parts = [_box((t, h, d), (sx * (w / 2 - t / 2), h / 2, 0)) for sx in (-1, 1)]
    n = int(rng.integers(3, 6))
    for y in np.linspace(t / 2, h - t / 2, n):
        parts.append(_box((w - 0.01, t, d), (0, y, 0)))
    if rng.random() < 0.5:
        parts.append(_box((w, h, t / 2), (0, h / 2, -d / 2 + t / 4)))
    return parts


MAKERS = {"table": make_table, "chair": make_chair, "stool": make_stool, "shelf": make_shelf}


def make_shape(category: str, seed: int) -> trimesh.Trimesh:
    """One watertight synthetic shape of ``category`` (see ``CATEGORIES``) from ``seed``."""
    import trimesh as tm

    if category not in MAKERS:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORIES)}")
    rng = np.random.default_rng(seed)
    mesh = tm.boolean.union(MAKERS[category](rng), engine="manifold")
    mesh.metadata["category"] = category
    mesh.metadata["synthetic_seed"] = int(seed)
    return mesh


def furniture_dataset(n: int, seed: int = 0, categories: tuple[str, ...] = CATEGORIES
                      ) -> dict[str, trimesh.Trimesh]:
    """``n`` synthetic shapes cycling through ``categories``; names like ``chair_0007``."""
    out = {}
    for i in range(int(n)):
        cat = categories[i % len(categories)]
        out[f"{cat}_{i:04d}"] = make_shape(cat, seed * 100_003 + i)
    return out


__all__ = ["CATEGORIES", "make_shape", "furniture_dataset"]
