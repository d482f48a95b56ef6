"""Preconditioning (EDM Table 1), eps/v adapters with exact Gaussian backbones, PFGM++ kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from common.denoiser import EpsDenoiser, Preconditioned, VDenoiser, masked_mean
from common.mixture import GaussianMixture
from common.noise import DiscreteSchedule, PFGMKernel, linear_betas


class Zero(nn.Module):
    def forward(self, x, c_noise, cond=None):
        return torch.zeros_like(x)


SIGMAS = torch.tensor([0.002, 0.05, 0.3, 1.0, 4.0, 80.0], dtype=torch.float64)


def test_preconditioning_matches_table_1_and_unit_variance():
    sd = 0.7
    pre = Preconditioned(Zero(), sigma_data=sd)
    c_skip, c_out, c_in, c_noise = pre.coefficients(SIGMAS)
    s2 = SIGMAS**2
    assert torch.allclose(c_skip, sd**2 / (s2 + sd**2))
    assert torch.allclose(c_out, SIGMAS * sd / (s2 + sd**2).sqrt())
    assert torch.allclose(c_in, 1 / (s2 + sd**2).sqrt())
    assert torch.allclose(c_noise, SIGMAS.log() / 4)
    # network input and effective training target have unit variance at every sigma
    assert torch.allclose(c_in**2 * (sd**2 + s2), torch.ones_like(s2))
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * s2) / c_out**2
    assert torch.allclose(target_var, torch.ones_like(s2))
    weight = (s2 + sd**2) / (SIGMAS * sd) ** 2  # lambda(sigma), EDM Table 1
    assert torch.allclose(weight * c_out**2, torch.ones_like(s2))


def test_loss_at_the_optimum_is_one_per_element():
    # N(0, sd^2) data: the ideal denoiser is c_skip x, i.e. a zero backbone; its weighted loss
    # lambda * Var(x0 | x) = 1 exactly at every sigma, so the per-sample loss averages to 1.
    sd, n, d = 0.5, 20000, 4
    pre = Preconditioned(Zero(), sigma_data=sd)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64) * sd
    loss = pre.loss(x0, generator=g)
    assert loss.shape == (n,)
    assert abs(float(loss.mean()) - 1.0) < 4 * float(loss.std()) / math.sqrt(n)


def test_loss_mask_ignores_masked_entries():
    pre = Preconditioned(Zero(), sigma_data=0.5)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([1.0, 1.0, 0.0]).expand(8, 3)
    a = pre.loss(x0, mask=mask, generator=torch.Generator().manual_seed(2))
    x0b = x0.clone()
    x0b[:, 2] += 100.0
    b = pre.loss(x0b, mask=mask, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(a, b)
    v = torch.arange(6.0).reshape(2, 3)
    assert torch.allclose(masked_mean(v, torch.tensor([[1.0, 0, 1], [0, 0, 1]])),
                          torch.tensor([1.0, 5.0]))


class ExactBackbone(nn.Module):
    """Returns the exact eps or v of a Gaussian given DDPM inputs (x_t, fractional step t)."""

    def __init__(self, gaussian: GaussianMixture, denoiser: EpsDenoiser, kind: str) -> None:
        super().__init__()
        self.gaussian, self.denoiser, self.kind = gaussian, denoiser, kind

    def forward(self, x_t, t, cond=None):
        sigma = self.denoiser.t_to_sigma(t).double()
        a = 1 / torch.sqrt(1 + sigma**2)[:, None]  # sqrt(abar)
        x = x_t / a
        x0 = self.gaussian(x, sigma)
        eps = (x - x0) / sigma[:, None]
        return eps if self.kind == "eps" else a * eps - torch.sqrt(1 - a**2) * x0


@pytest.mark.parametrize("cls,kind", [(EpsDenoiser, "eps"), (VDenoiser, "v")])
def test_eps_and_v_adapters_give_the_exact_denoiser(gaussian, cls, kind):
    schedule = DiscreteSchedule(linear_betas(1000))
    den = cls(nn.Identity(), schedule)
    den.backbone = ExactBackbone(gaussian, den, kind)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    table = schedule.all_sigmas
    for sigma in (float(table[10]), float(table[500]), 0.37, 3.0, float(table[-1])):
        s = torch.full((16,), sigma, dtype=torch.float64)
        expected = gaussian(x, s)
        # float32 sigma<->t tables: relative precision ~1e-6 of sigma
        assert torch.allclose(den(x, s), expected, atol=1e-4 * (1 + sigma), rtol=1e-4)
    # the sigma <-> t maps are inverse to each other
    t = torch.tensor([0.0, 10.5, 999.0])
    assert torch.allclose(den.sigma_to_t(den.t_to_sigma(t)), t, atol=1e-3)


def _pfgm_radial_cdf(n: int, D: int, r: float):
    """CDF of p(R) ~ R^(n-1) / (R^2 + r^2)^((n + D) / 2) (PFGM++ Eq. 4) by quadrature."""
    dens = lambda R: R ** (n - 1) / (R**2 + r**2) ** ((n + D) / 2)  # noqa: E731
    total = integrate.quad(dens, 0, np.inf)[0]
    return lambda R: integrate.quad(dens, 0, R)[0] / total


def test_pfgm_radial_law_matches_formula_for_small_D():
    n, D, sigma = 3, 4, 0.8
    kernel = PFGMKernel(D)
    pert = kernel.perturb((3000, n), torch.full((3000,), sigma), torch.Generator().manual_seed(0),
                          dtype=torch.float64)
    radii = pert.norm(dim=1).numpy()
    cdf = _pfgm_radial_cdf(n, D, sigma * math.sqrt(D))
    assert stats.kstest(radii, np.vectorize(cdf)).pvalue > 1e-3


def test_pfgm_approaches_gaussian_as_D_grows():
    n, sigma, m = 3, 1.3, 4000
    chi = stats.chi(n, scale=sigma).cdf
    ks = []
    for D in (2, 50, 10**6):
        pert = PFGMKernel(D).perturb((m, n), torch.full((m,), sigma),
                                     torch.Generator().manual_seed(D), dtype=torch.float64)
        ks.append(stats.kstest(pert.norm(dim=1).numpy(), chi).statistic)
    assert ks[0] > ks[1] > ks[2], ks
    assert ks[0] > 0.2 and ks[2] < 1.63 / math.sqrt(m)  # large D: within the 1% KS band
    with pytest.raises(ValueError):
        PFGMKernel(0)
