"""Per-cell loss weights of the unconditional rows (``cell_weight_power``, round 8 lever probe).

A weighted MSE sum_i w_e (d_e - x_ie)^2 is minimised entry by entry by the weighted mean
sum_i w_ie x_ie / sum_i w_ie: the plain (posterior) mean when w depends on the entry alone, a
tilted mean when it depends on x0. The per-cell weights f_cell^-power are functions of the cell
index (training-set statistics), so they must leave the optimum where it is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from common.training import TrainerConfig
from materials.generator import CrystalGenerator, GeneratorConfig
from materials.representation import element_cell
from materials.training_batches import cell_frequency, cell_weights, loss_weights

SHAPE = (7, 9, 18, 2)


def _random_occ(rng: np.random.Generator, b: int) -> np.ndarray:
    occ = np.zeros((b, 9, 18, 2))
    for r, c, p in [(1, 15, 0.9), (4, 3, 0.05), (5, 1, 0.2)]:
        occ[:, r, c, 0] = rng.random(b) < p
    return occ


def test_cell_weights_follow_the_inverse_frequency() -> None:
    freq = np.zeros((9, 18))
    freq[1, 15], freq[4, 3], freq[5, 1] = 1.0, 0.04, 0.001
    w = cell_weights(freq, SHAPE, power=1.0).reshape(SHAPE)
    assert w.mean() == pytest.approx(1.0)
    assert w[0, 4, 3, 0] / w[0, 1, 15, 0] == pytest.approx(25.0)  # (0.04 / 1)^-1
    assert w[3, 5, 1, 1] / w[0, 1, 15, 0] == pytest.approx(100.0)  # floored at 1 %
    assert w[0, 0, 0, 0] == w[0, 1, 15, 0]  # never occupied: as f = 1
    half = cell_weights(freq, SHAPE, power=0.5).reshape(SHAPE)
    assert half[0, 4, 3, 0] / half[0, 1, 15, 0] == pytest.approx(5.0)
    assert np.all(np.ptp(w, axis=(0, 3)) == 0)  # one weight per cell (channels and slots alike)


def test_unconditional_optimum_stays_the_mean_with_cell_weights() -> None:
    """Weighted least-squares optimum per entry: the plain mean with cell weights, tilted without
    them under the x0-dependent "shares" weights (the control that shows the check can fail)."""
    rng = np.random.default_rng(0)
    occ = _random_occ(rng, 4000)
    x = np.broadcast_to(occ[:, None], (len(occ), *SHAPE)).reshape(len(occ), -1)
    freq = cell_frequency(occ)
    cw = cell_weights(freq, SHAPE, power=1.0)
    keep = np.zeros(len(occ))
    cfg = GeneratorConfig(cell_weight_power=1.0)
    w = loss_weights(occ, SHAPE, cfg, keep, cw)[:, :-6]
    assert np.allclose(w, w[:1])  # identical for every row, whatever its x0
    opt = (w * x).sum(0) / w.sum(0)
    assert np.allclose(opt, x.mean(0))
    ref = loss_weights(occ, SHAPE, cfg, keep)  # same total loss as without cell weights
    assert loss_weights(occ, SHAPE, cfg, keep, cw).sum() == pytest.approx(ref.sum())
    tilted = loss_weights(occ, SHAPE, GeneratorConfig(uncond_loss="shares"), keep)[:, :-6]
    e = np.ravel_multi_index((6, 4, 3, 0), SHAPE)  # the rare cell's occupancy entry
    assert (tilted[:, e] * x[:, e]).sum() / tilted[:, e].sum() > 5 * x[:, e].mean()
    cond = loss_weights(occ, SHAPE, cfg, np.ones(len(occ)), cw)  # CSP rows: unchanged
    assert np.allclose(cond, loss_weights(occ, SHAPE, cfg, np.ones(len(occ))))


def test_training_batches_weight_rare_cells_up() -> None:
    structs = [Structure(Lattice.cubic(a), [x, y, "O", "O", "O"],
                         [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
               for x, y, a in [("Sr", "Ti", 3.9), ("Ba", "Ti", 4.0), ("Ca", "Zr", 4.1)]]
    gen = CrystalGenerator(channels=4, emb_dim=8, batch_size=3, min_batches_per_epoch=10,
                           p_uncond=0.5, cell_weight_power=1.0,
                           trainer=TrainerConfig(max_steps=1, enable_progress_bar=False))
    _, loader = gen.training_objects(structs, seed=0)
    shape = gen.encoder.grid_shape
    seen = 0
    for batch in loader:
        for cond, mask in zip(batch["cond"], batch["mask"]):
            if cond[1].max() > 0:  # composition given: CSP shares, not cell weights
                continue
            m = mask[:-6].reshape(shape)
            o, sr, ti = (m[0][element_cell(e)][0] for e in ("O", "Sr", "Ti"))
            assert float(sr / o) == pytest.approx(3.0, rel=1e-5)  # f = 1/3 vs 1
            assert float(ti / o) == pytest.approx(1.5, rel=1e-5)  # f = 2/3
            seen += 1
    assert seen > 0
    assert torch.isfinite(batch["mask"]).all()
