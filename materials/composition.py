"""Composition stage of unconditional decoding: atom and element counts from the training data.

DiffCSP (Jiao et al., NeurIPS 2023, Sec. 4.3 "ab initio generation") and CDVAE first fix the
number of atoms N from the training distribution, then generate a crystal with N atoms. We take
the same step one level further for UniMat's periodic-table tensor: the number of distinct
elements k is drawn from its training distribution p(k | N) as well, the k element cells most
likely present (largest occupancy in any of their slots; slots are exchangeable, so the best slot
is the element's presence) are kept, and the N atoms are distributed over those cells by their
slot occupancies (each kept cell gets at least one atom; the rest go to the most occupied
remaining slots). When cheap (few allocations), the most occupied allocation that SMACT can
charge-balance is preferred.

Ranking cells by occupancy mass (sum over slots) instead favoured the anion cells (O, N, F, S:
several lukewarm slots each) and gave cation-free compositions such as NO3F (measured on Perov-5,
``benchmarks/results/materials.md``); ``rank="mass"`` keeps that variant for comparison.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

MAX_ALLOCATIONS = 200  # enumerate charge-balanced allocations only below this many


def cell_mass(score: np.ndarray) -> np.ndarray:
    """[9, 18] occupancy mass per element cell: sum over slots of the score clipped to [0, 1]."""
    s = np.where(np.isfinite(score), np.clip(score, 0.0, 1.0), 0.0)
    mass = s.sum(-1)
    mass[~np.isfinite(score).any(-1)] = -np.inf  # cells outside the trained elements
    return mass


def _allocations(n: int, k: int, cap: int) -> list[tuple[int, ...]]:
    """All ways to give ``k`` cells at least one of ``n`` atoms, each at most ``cap``."""
    out = []
    for cuts in itertools.combinations(range(1, n), k - 1):
        counts = np.diff((0, *cuts, n))
        if counts.max() <= cap:
            out.append(tuple(int(c) for c in counts))
    return out


def cell_presence(score: np.ndarray) -> np.ndarray:
    """[9, 18] how likely each element is present: its most occupied slot (-inf: forbidden)."""
    return np.max(score, axis=-1)


def composition_mask(score: np.ndarray, n_atoms: int, n_elements: int,
                     charge_balance: bool = True, rank: str = "presence") -> np.ndarray:
    """[9, 18, L] occupancy of ``n_atoms`` atoms over the ``n_elements`` most occupied cells.

    Analogue of DiffCSP's sampling of N from the training data (Jiao et al. 2023, Sec. 4.3),
    applied to the element count k as well (module docstring).

    Args:
        score: [9, 18, L] occupancy score of one draw (``UniMatEncoder.occupancy_score``; -inf
            in cells decoding may not use).
        n_atoms: atoms N to place.
        n_elements: distinct elements k (clipped to N, to the allowed cells and to N / L).
        charge_balance: prefer the most occupied allocation that SMACT charge-balances when
            there are at most ``MAX_ALLOCATIONS`` allocations.
        rank: "presence" (best slot per cell) or "mass" (sum of clipped slots) to pick cells.

    Returns:
        A 0/1 mask with the allocated atoms in the first slots of their cells (as CSP encodes a
        composition).
    """
    rows, cols, slots = score.shape
    mass = cell_mass(score) if rank == "mass" else cell_presence(score)
    allowed = int(np.isfinite(mass).sum())
    n_atoms = min(int(n_atoms), allowed * slots)
    k = max(1, min(int(n_elements), n_atoms, allowed))
    k = max(k, math.ceil(n_atoms / slots))  # L slots per cell: N atoms need N / L cells
    order = np.argsort(-mass.ravel(), kind="stable")[:k]
    cells = [divmod(int(i), cols) for i in order]
    # slot scores of the kept cells, best first: an allocation's value is its top-c_i sum
    ranked = [np.sort(np.where(np.isfinite(score[r, c]), score[r, c], 0.0))[::-1]
              for r, c in cells]
    cum = [np.concatenate([[0.0], np.cumsum(s)]) for s in ranked]
    if math.comb(n_atoms - 1, k - 1) > 20000:  # too many to enumerate: greedy
        allocs = [_greedy(ranked, n_atoms)]
    else:
        allocs = _allocations(n_atoms, k, slots)
    allocs.sort(key=lambda a: -sum(cum[i][a[i]] for i in range(k)))
    best = allocs[0]
    if charge_balance and len(allocs) <= MAX_ALLOCATIONS:
        best = _first_balanced(allocs, cells) or best
    mask = np.zeros(score.shape)
    for (r, c), m in zip(cells, best):
        mask[r, c, :m] = 1.0
    return mask


def _greedy(ranked: list[np.ndarray], n: int) -> tuple[int, ...]:
    """One atom per cell, the rest to the most occupied remaining slots of the kept cells."""
    counts = [1] * len(ranked)
    rest = [(-s[j], i) for i, s in enumerate(ranked) for j in range(1, len(s))]
    for _, i in sorted(rest)[: n - len(ranked)]:
        counts[i] += 1
    return tuple(counts)


def _first_balanced(allocs: list[tuple[int, ...]], cells: list[tuple[int, int]]
                    ) -> tuple[int, ...] | None:
    from pymatgen.core import Composition

    from .metrics import smact_validity
    from .representation import cell_element

    els = [cell_element(r, c) for r, c in cells]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in allocs:
            if smact_validity(Composition({el: m for el, m in zip(els, a)})):
                return a
    return None


__all__ = ["cell_mass", "cell_presence", "composition_mask", "MAX_ALLOCATIONS"]
