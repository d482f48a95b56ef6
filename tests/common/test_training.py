"""DiffusionModule batch handling: tensor, list and dict batches; per-sample weights and masks."""

from __future__ import annotations

import torch
from torch import nn

from common.training import DiffusionModule


class Recorder(nn.Module):
    """A 'denoiser' whose per-sample loss is the row sum of x0 (times the mask if given)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.seen = None

    def loss(self, x0, cond=None, mask=None):
        self.seen = cond
        return (x0 if mask is None else x0 * mask).sum(1) + self.p


def test_batches_weights_and_masks():
    module = DiffusionModule(Recorder())
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.allclose(module._loss(x), torch.tensor(5.0))
    assert torch.allclose(module._loss([x]), torch.tensor(5.0))
    w = torch.tensor([3.0, 1.0])
    assert torch.allclose(module._loss({"x": x, "weight": w}), torch.tensor((3 * 3 + 7) / 4))
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert torch.allclose(module._loss({"x": x, "mask": mask, "cond": "c"}), torch.tensor(2.0))
    assert module.model.seen == "c"
