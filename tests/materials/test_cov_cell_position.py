"""Per-cell position information in the UniMat U-Net (round 5).

Known answer: with no information about x0 (large sigma, input 0), the optimal denoiser's
occupancy output at a cell is that cell's occupancy frequency in the data. Here every one of the
9 x 18 cells gets its own random frequency. The pre-round-5 backbone (``cell_position="none"``)
is shift-equivariant apart from zero-padding effects at the grid's edges, so after the same
training it barely beats a constant; the learned per-cell embedding reaches the frequencies.
Old checkpoints (saved before the setting existed) load with ``"none"``; weights that do not fit
the saved settings fail with a CheckpointError.
"""

from __future__ import annotations

import pytest
import torch
from pymatgen.core import Lattice, Structure

from common.denoiser import Preconditioned
from common.errors import CheckpointError
from common.io import load_checkpoint, save_checkpoint
from common.training import TrainerConfig
from materials.generator import CHECKPOINT_KIND, CrystalGenerator
from materials.model import UniMatUNet, cell_properties

ROWS, COLS, CHANNELS = 9, 18, 7  # 6 coordinates + occupancy, one slot per cell


def _batch(p: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    x = torch.zeros(n, CHANNELS, ROWS, COLS, 1)
    x[:, -1, :, :, 0] = (torch.rand(n, ROWS, COLS, generator=g) < p).float()
    return torch.cat([x.flatten(1), torch.zeros(n, 6)], 1)


def _fit_occupancy(cell_position: str, p: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """Train a tiny backbone; its occupancy output [9, 18] for input 0 at sigma = 5."""
    torch.manual_seed(0)
    net = UniMatUNet(1, 4, 8, heads=1, slot_channels=CHANNELS, cell_position=cell_position)
    model = Preconditioned(net, sigma_data=0.5, P_mean=0.5, P_std=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = model.loss(_batch(p, 16, g), generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        d = model(torch.zeros(1, ROWS * COLS * CHANNELS + 6), torch.full((1,), 5.0), None)
    return d[0, :-6].reshape(CHANNELS, ROWS, COLS)[-1]


def test_learned_cell_embedding_learns_per_cell_frequencies():
    torch.set_num_threads(1)
    p = torch.rand(ROWS, COLS, generator=torch.Generator().manual_seed(3))
    const_err = (p - p.mean()).abs().mean().item()  # best prediction without position
    err = {}
    for mode in ("none", "learned"):
        pred = _fit_occupancy(mode, p)
        err[mode] = (pred - p).abs().mean().item()
        if mode == "learned":
            assert torch.corrcoef(torch.stack([pred.flatten(), p.flatten()]))[0, 1] > 0.8
    # measured: none 0.229 (constant 0.260), learned 0.111
    assert err["learned"] < 0.6 * err["none"]
    assert err["learned"] < 0.5 * const_err


def test_cell_properties_are_the_elements():
    props = cell_properties()
    assert props.shape == (5, ROWS, COLS)
    assert int(props[0].sum()) == 118  # one cell per element
    torch.testing.assert_close(props[1:, 1, 15], torch.tensor([2 / 7, 16 / 18, 3.44 / 4, 0.08]))
    assert props[:, 0, 5].abs().sum() == 0  # no element in period 1, group 6
    with pytest.raises(ValueError, match="cell_position"):
        UniMatUNet(1, 4, 8, cell_position="sinusoidal")


def _tiny(cell_position: str) -> CrystalGenerator:
    s = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                  [[0.5] * 3, [0] * 3, [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    gen = CrystalGenerator(trainer=TrainerConfig(max_steps=1, ema_decay=None,
                                                 enable_progress_bar=False, accelerator="cpu"),
                           channels=4, emb_dim=8, batch_size=2, steps=2, min_batches_per_epoch=1,
                           cell_position=cell_position)
    return gen.fit([s, s.copy()])


def test_old_checkpoints_load_without_position_and_mismatches_fail_clearly(tmp_path):
    old = _tiny("none")
    path = old.save(tmp_path / "old.pt")
    state = load_checkpoint(path, CHECKPOINT_KIND)
    del state["config"]["cell_position"]  # as saved before round 5
    save_checkpoint(tmp_path / "r4.pt", CHECKPOINT_KIND, state)
    again = CrystalGenerator.load(tmp_path / "r4.pt")
    assert again.config.cell_position == "none"
    a, _ = old.sample_flat(1, composition="SrTiO3", seed=0, progress=False)
    b, _ = again.sample_flat(1, composition="SrTiO3", seed=0, progress=False)
    torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b))
    state["config"]["cell_position"] = "learned"  # weights without the embedding
    save_checkpoint(tmp_path / "bad.pt", CHECKPOINT_KIND, state)
    with pytest.raises(CheckpointError, match="bad.pt.*cell_position='learned'"):
        CrystalGenerator.load(tmp_path / "bad.pt")
    state["config"]["from_the_future"] = 1
    save_checkpoint(tmp_path / "new.pt", CHECKPOINT_KIND, state)
    with pytest.raises(CheckpointError, match="newer genpipes"):
        CrystalGenerator.load(tmp_path / "new.pt")


def test_new_models_have_the_learned_embedding_and_round_trip(tmp_path):
    gen = _tiny("learned")
    assert gen.config.cell_position == "learned"
    assert "backbone.cell_emb" in dict(gen.model.named_parameters())
    again = CrystalGenerator.load(gen.save(tmp_path / "g.pt"))
    torch.testing.assert_close(again.model.backbone.cell_emb2, gen.model.backbone.cell_emb2)
