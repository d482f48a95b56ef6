"""Schedules as value objects: inverses, endpoints, scales, discretisations."""

from __future__ import annotations

import pytest
import torch

from common.noise import (
    DiscreteSchedule,
    EDMSchedule,
    SubVPSchedule,
    VESchedule,
    VPSchedule,
    append_dims,
    linear_betas,
    sigmas_karras,
)


@pytest.mark.parametrize("schedule", [VESchedule(), VPSchedule(), SubVPSchedule(), EDMSchedule()])
def test_sigma_inverse_and_discretisation(schedule):
    t = torch.linspace(schedule.t_min, schedule.t_max, 17, dtype=torch.float64)
    assert torch.allclose(schedule.sigma_inv(schedule.sigma(t)), t, rtol=1e-9, atol=1e-12)
    sig = schedule.sigmas(10)
    assert len(sig) == 11 and sig[-1] == 0
    assert torch.all(sig[:-2] > sig[1:-1])
    assert torch.isclose(sig[0], schedule.sigma(torch.tensor(schedule.t_max, dtype=torch.float64)))


def test_vp_and_subvp_scales_and_variances():
    t = torch.linspace(1e-3, 1, 9, dtype=torch.float64)
    vp, sub = VPSchedule(), SubVPSchedule()
    integral = 0.5 * vp.beta_d * t**2 + vp.beta_min * t
    s = vp.scale(t)
    # VP: total variance s^2 (1 + sigma^2) = 1 for unit-variance data
    assert torch.allclose(s**2 * (1 + vp.sigma(t) ** 2), torch.ones_like(t))
    # sub-VP: std of the noise s * sigma = 1 - exp(-B(t)) (Song et al. Eq. 29)
    assert torch.allclose(sub.scale(t) * sub.sigma(t), 1 - torch.exp(-integral))
    assert torch.allclose(VESchedule().scale(t), torch.ones_like(t))


def test_karras_and_discrete_sigmas():
    sig = sigmas_karras(5, 0.002, 80.0, rho=7.0)
    assert torch.allclose(sig[[0, 4, 5]], torch.tensor([80.0, 0.002, 0.0], dtype=torch.float64))
    mid = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7  # EDM Eq. 5 at i = (N-1)/2
    assert torch.isclose(sig[2], torch.tensor(mid, dtype=torch.float64))
    ddpm = DiscreteSchedule(linear_betas(1000))
    ab = torch.cumprod(1 - linear_betas(1000), 0)
    assert torch.allclose(ddpm.all_sigmas, ((1 - ab) / ab).sqrt())
    strided = ddpm.sigmas(10)
    assert len(strided) == 11 and strided[0] == ddpm.all_sigmas[-1]
    assert strided[-2] == ddpm.all_sigmas[0] and strided[-1] == 0
    assert len(ddpm.sigmas()) == 1001


def test_append_dims():
    assert append_dims(torch.ones(3), 4).shape == (3, 1, 1, 1)
    with pytest.raises(ValueError):
        append_dims(torch.ones(3, 2), 1)


def test_per_sample_generators():
    from common.seeds import rand, randn, sample_generators

    a = randn((3, 2), sample_generators([1, 2, 3]))
    b = randn((1, 2), sample_generators([2]))
    assert torch.equal(a[1:2], b)
    two, one = rand((2,), sample_generators([5, 6])), rand((1,), sample_generators([6]))
    assert torch.equal(two[1:], one)
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        rand((3,), sample_generators([1, 2]))
