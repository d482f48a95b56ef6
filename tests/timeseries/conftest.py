"""Fixtures of the time-series tests: an exact denoiser for Gaussian data."""

from __future__ import annotations

import pytest
import torch

from common.denoiser import EpsDenoiser
from common.noise import DiscreteSchedule, linear_betas


class _GaussianEps(torch.nn.Module):
    """The exact eps_theta for data x0 ~ N(0, I): E[eps | x_t] = sqrt(1 - abar_t) x_t."""

    def __init__(self, schedule: DiscreteSchedule) -> None:
        super().__init__()
        self.abar = schedule.alphas_cumprod.float()

    def forward(self, x, t, cond=None):
        lo = t.floor().long().clamp(0, len(self.abar) - 1)
        hi = (lo + 1).clamp(max=len(self.abar) - 1)
        w = (t - lo.float()).reshape(-1, *([1] * (x.ndim - 1)))
        ab = (1 - w) * self.abar[lo].reshape(w.shape) + w * self.abar[hi].reshape(w.shape)
        return (1 - ab).sqrt() * x


@pytest.fixture
def gaussian_denoiser() -> EpsDenoiser:
    """TSDiff's schedule around the exact eps_theta of N(0, I) data."""
    sched = DiscreteSchedule(linear_betas(100, 1e-4, 0.1))
    return EpsDenoiser(_GaussianEps(sched), sched)
