"""Repulsion guidance restricted to the low-noise end (``repulsion_sigma_max``)."""

from __future__ import annotations

import torch
from pymatgen.core import Lattice, Structure

from materials.guidance import repulsion_guided
from materials.representation import UniMatEncoder


def _setup() -> tuple[UniMatEncoder, torch.Tensor, torch.Tensor]:
    """Sr and Ti 0.3 A apart (inside r0 = 1 A): the energy has a non-zero gradient."""
    s = Structure(Lattice.orthorhombic(4.0, 5.0, 6.0), ["Sr", "Ti", "O"],
                  [[0.1, 0.2, 0.3], [0.175, 0.2, 0.3], [0.6, 0.7, 0.8]])
    enc = UniMatEncoder.fit([s])
    x = torch.tensor(enc.encode(s))[None].repeat(2, 1)
    occ = torch.tensor(enc.occupancy(s.composition))[None].repeat(2, 1, 1, 1)
    return enc, x, torch.stack([occ, torch.ones_like(occ)], 1)


def _identity(x: torch.Tensor, sigma: torch.Tensor, cond: object = None) -> torch.Tensor:
    return x * 1.0


def test_guidance_runs_only_below_sigma_max() -> None:
    enc, x, cond = _setup()
    gated = repulsion_guided(_identity, enc, scale=10.0, sigma_max=1.0)
    always = repulsion_guided(_identity, enc, scale=10.0)
    high, low = torch.full((2,), 5.0), torch.full((2,), 0.5)
    assert torch.equal(gated(x, high, cond), x)  # above sigma_max: the plain denoiser
    assert not torch.allclose(always(x, high, cond), x)
    torch.testing.assert_close(gated(x, low, cond), always(x, low, cond))
    assert not torch.allclose(gated(x, low, cond), x)
    mixed = gated(x, torch.tensor([5.0, 0.5]), cond)  # per-sample noise levels
    assert torch.equal(mixed[0], x[0])
    torch.testing.assert_close(mixed[1], always(x, low, cond)[1])
