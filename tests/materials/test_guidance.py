"""Pair-repulsion guidance energy: differentiable lattice and distances against pymatgen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from materials.guidance import PairRepulsion, lattice_matrix
from materials.representation import UniMatEncoder


@pytest.mark.parametrize("params", [(4.0, 4.0, 4.0, 90, 90, 90), (3.1, 4.7, 5.3, 80, 95, 110)])
def test_lattice_matrix_has_pymatgens_metric(params):
    """Same cell up to a rotation: equal metric tensors L L^T (distances do not see rotations)."""
    ours = lattice_matrix(torch.tensor([params], dtype=torch.float64))[0].numpy()
    ref = Lattice.from_parameters(*params).matrix
    np.testing.assert_allclose(ours @ ours.T, ref @ ref.T, atol=1e-9)


def _pair(d: float) -> tuple[UniMatEncoder, Structure]:
    s = Structure(Lattice.orthorhombic(4.0, 5.0, 6.0), ["Sr", "Ti", "O"],
                  [[0.1, 0.2, 0.3], [0.1 + d / 4.0, 0.2, 0.3], [0.6, 0.7, 0.8]])
    return UniMatEncoder.fit([s]), s


@pytest.mark.parametrize("d", [0.3, 0.8, 1.5])
def test_distances_and_energy_match_the_closed_form(d):
    enc, s = _pair(d)
    x0 = torch.tensor(enc.encode(s))[None]
    energy = PairRepulsion(enc, radius=1.0)
    energy.masks = torch.tensor(enc.occupancy(s.composition))[None]
    dist, w = energy.cartesian_distances(x0, energy.masks)
    assert w.sum() == 3
    ours = np.sort(dist[0].numpy()[~np.eye(3, dtype=bool)])
    np.testing.assert_allclose(ours, np.sort(s.distance_matrix[~np.eye(3, dtype=bool)]),
                               atol=1e-6)
    # only the Sr-Ti pair is closer than 1 A: E = 1/2 * 2 orders * (1 - d)^2
    expected = max(1.0 - d, 0.0) ** 2
    assert float(energy(x0)) == pytest.approx(expected, abs=1e-9)


def test_a_step_down_the_gradient_separates_the_close_pair():
    enc, s = _pair(0.3)
    x0 = torch.tensor(enc.encode(s))[None].requires_grad_(True)
    energy = PairRepulsion(enc, radius=1.0)
    energy.masks = torch.tensor(enc.occupancy(s.composition))[None]
    e0 = energy(x0)
    (grad,) = torch.autograd.grad(e0.sum(), x0)
    x1 = (x0 - 0.05 * grad).detach()
    assert float(energy(x1)) < float(e0.detach())
    off = ~torch.eye(3, dtype=torch.bool)
    before = energy.cartesian_distances(x0.detach(), energy.masks)[0][0][off].min()
    after = energy.cartesian_distances(x1, energy.masks)[0][0][off].min()
    assert after > before
