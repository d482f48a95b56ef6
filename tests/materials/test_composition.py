"""Composition stage of unconditional decoding: element count from the data, top-k cells."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from common.training import TrainerConfig
from materials.composition import cell_mass, composition_mask
from materials.generator import CrystalGenerator
from materials.metrics import smact_validity
from materials.representation import GRID_COLS, GRID_ROWS, UniMatEncoder, element_cell


def _score(slot_scores: dict[str, list[float]], slots: int = 3) -> np.ndarray:
    s = np.zeros((GRID_ROWS, GRID_COLS, slots))
    for el, vals in slot_scores.items():
        r, c = element_cell(el)
        s[r, c, : len(vals)] = vals
    return s


def _comp(mask: np.ndarray) -> Composition:
    from materials.representation import cell_element

    return Composition({cell_element(r, c): int(mask[r, c].sum())
                        for r, c in zip(*np.nonzero(mask.sum(-1)))})


def test_cell_mass_sums_clipped_slots_and_excludes_forbidden_cells():
    s = _score({"Sr": [0.9, 1.4, -0.2], "O": [0.3, 0.3, 0.3]})
    s[element_cell("Ba")] = -np.inf
    m = cell_mass(s)
    assert m[element_cell("Sr")] == pytest.approx(1.9)
    assert m[element_cell("O")] == pytest.approx(0.9)
    assert m[element_cell("Ba")] == -np.inf


def test_keeps_the_k_most_present_cells_not_the_top_slots():
    s = _score({"O": [0.9, 0.8, 0.7], "N": [0.85, 0.84], "Sr": [0.7], "Ti": [0.6, 0.6, 0.6]})
    # the 5 most occupied slots of the table hold only O and N ...
    free = np.zeros(s.size)
    free[np.argsort(-s.ravel(), kind="stable")[:5]] = 1
    assert _comp(free.reshape(s.shape)).chemical_system == "N-O"
    # ... k = 3 keeps the three cells whose best slot is highest (O, N, Sr) and gives the two
    # spare atoms to the best remaining slots (O 0.8 + N 0.84 beats O 0.8 + O 0.7)
    mask = composition_mask(s, n_atoms=5, n_elements=3, charge_balance=False)
    assert _comp(mask) == Composition("SrN2O2")
    assert mask.sum() == 5
    # ranked by occupancy mass instead, Ti's three lukewarm slots (1.8) beat Sr (0.7)
    by_mass = composition_mask(s, n_atoms=5, n_elements=3, charge_balance=False, rank="mass")
    assert _comp(by_mass).chemical_system == "N-O-Ti"


def test_prefers_a_charge_balanced_allocation():
    s = _score({"K": [0.9, 0.8], "Mg": [0.9], "F": [0.9, 0.7, 0.1]})
    greedy = composition_mask(s, n_atoms=5, n_elements=3, charge_balance=False)
    assert _comp(greedy) == Composition("K2MgF2")  # most occupied, not balanced
    assert not smact_validity(Composition("K2MgF2"))
    balanced = composition_mask(s, n_atoms=5, n_elements=3)
    assert _comp(balanced) == Composition("KMgF3")
    # atoms sit in the first slots of their cells, as CSP encodes a composition
    assert balanced[element_cell("F")].tolist() == [1.0, 1.0, 1.0]


def test_element_count_is_clipped_to_atoms_and_slots():
    s = _score({"Sr": [0.9, 0.8, 0.7], "O": [0.5, 0.5, 0.5], "Ti": [0.1]})
    assert _comp(composition_mask(s, 2, 3)).num_atoms == 2  # k <= N
    assert len(_comp(composition_mask(s, 2, 3)).elements) == 2
    # 6 atoms with L = 3 slots need two cells even when k = 1 is asked
    assert len(_comp(composition_mask(s, 6, 1, charge_balance=False)).elements) == 2


def _memorised() -> list[Structure]:
    return [Structure(Lattice.cubic(a), [x, "Ti", "O", "O", "O"],
                      [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
            for x, a in [("Sr", 3.9), ("Ba", 4.0), ("Ca", 3.8)]]


def test_encoder_records_the_element_count_distribution():
    enc = UniMatEncoder.fit(_memorised() + [Structure(Lattice.cubic(3), ["Na", "Cl"],
                                                      [[0, 0, 0], [0.5, 0.5, 0.5]])])
    assert enc.element_counts == {"5": {"3": 1.0}, "2": {"2": 1.0}}
    assert UniMatEncoder.from_dict(enc.as_dict()).element_counts == enc.element_counts
    rng = np.random.default_rng(0)
    assert {enc.draw_element_count(5, rng) for _ in range(20)} == {3}
    assert enc.draw_element_count(7, rng) is None  # atom count never seen


@pytest.mark.parametrize("mode, expect_three", [("data", True), ("free", False)])
def test_decoded_element_count_follows_the_data(mode, expect_three):
    # an untrained model's occupancies are noise spread over all trained cells (Sr Ba Ca Ti O):
    # "data" keeps the data's 3 elements per 5-atom crystal, "free" spreads over more cells
    gen = CrystalGenerator(trainer=TrainerConfig(max_steps=1, ema_decay=None,
                                                 enable_progress_bar=False, accelerator="cpu"),
                           channels=8, emb_dim=32, batch_size=3, steps=3, min_batches_per_epoch=1,
                           element_count=mode, unconditional="joint", repulsion=0.0)
    gen.training_objects(_memorised())  # builds the encoder and an untrained model
    out = gen.sample(8, seed=0, return_invalid=True, progress=False)
    counts = [len(s.composition.elements) for s in out if s is not None]
    assert len(counts) >= 6
    assert all(len(s) == 5 for s in out if s is not None)
    if expect_three:
        assert counts == [3] * len(counts)
    else:
        assert np.mean(counts) > 3
