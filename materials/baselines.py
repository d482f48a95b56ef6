"""Baseline crystal generators a materials scientist would try first (the issue's comparisons).

PyXtal random symmetric crystals of a given composition (Fredericks et al. 2021: a random space
group, Wyckoff positions filled at random), the structure-free baseline for CSP and generation.
"""

from __future__ import annotations

import warnings

import numpy as np
from pymatgen.core import Composition, Structure


def random_symmetric_crystals(comp: Composition, n: int, rng: np.random.Generator,
                              tries_per_crystal: int = 40) -> list[Structure | None]:
    """``n`` PyXtal random symmetric crystals of ``comp`` (cell counts), space groups 2-230.

    Failed draws are retried with a new space group, at most ``tries_per_crystal * n`` draws in
    all; missing crystals are returned as ``None`` so the list always has ``n`` entries.
    """
    from pyxtal import pyxtal

    species = [el.symbol for el in comp]
    nums = [int(round(comp[el])) for el in comp]
    out: list[Structure | None] = []
    tries = 0
    while len(out) < n and tries < tries_per_crystal * n:
        tries += 1
        c = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c.from_random(3, int(rng.integers(2, 231)), species, nums)
            if c.valid:
                out.append(c.to_pymatgen())
        except Exception:  # PyXtal raises many kinds for infeasible Wyckoff combinations
            continue
    return out + [None] * (n - len(out))


def spacegroup_label(s: Structure) -> str:
    """International symbol and number, e.g. ``"Pm-3m (221)"`` (spglib, symprec 0.1); "" if none."""
    try:
        sym, num = s.get_space_group_info(symprec=0.1)
        return f"{sym} ({num})"
    except Exception:  # spglib fails on degenerate cells
        return ""
