"""PF-ODE log-likelihood against the analytic density of a Gaussian mixture at sigma_min."""

from __future__ import annotations

import math

import pytest
import torch

from common.likelihood import bits_per_dim, log_likelihood
from common.noise import EDMSchedule, SubVPSchedule, VESchedule, VPSchedule
from common.seeds import sample_generators

TIGHT = dict(rtol=1e-7, atol=1e-9, dtype=torch.float64)


@pytest.fixture
def points(mixture):
    x, _ = mixture.sample(6, torch.Generator().manual_seed(3))
    return x


def test_exact_divergence_matches_analytic_density(mixture, points):
    sigma_min = 0.002
    exact = mixture.log_prob(points, sigma_min)
    # default prior N(0, sigma_max^2 I): its mismatch with p_sigma_max is O(|mean| / sigma_max)
    ll = log_likelihood(mixture, points, sigma_min=sigma_min, sigma_max=2000.0, **TIGHT)
    assert (ll - exact).abs().max() < 1e-2
    # with the exact prior, only the ODE solver's error remains
    ll_exact_prior = log_likelihood(mixture, points, sigma_min=sigma_min, sigma_max=50.0,
                                    prior_log_prob=lambda y: mixture.log_prob(y, 50.0), **TIGHT)
    assert (ll_exact_prior - exact).abs().max() < 1e-4


def test_schedules_agree(mixture, points):
    sigma_min, sigma_max = 0.01, 80.0
    exact = mixture.log_prob(points, sigma_min)
    prior = lambda y: mixture.log_prob(y, sigma_max)  # noqa: E731
    results = {}
    for schedule in (None, VESchedule(), VPSchedule(), SubVPSchedule(), EDMSchedule()):
        name = "log-sigma" if schedule is None else type(schedule).__name__
        results[name] = log_likelihood(mixture, points, sigma_min=sigma_min, sigma_max=sigma_max,
                                       schedule=schedule, prior_log_prob=prior, **TIGHT)
        assert (results[name] - exact).abs().max() < 1e-4, name
    ref = results["log-sigma"]
    for name, value in results.items():
        assert torch.allclose(value, ref, atol=1e-4), name


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(mixture, probe):
    m = 400
    x0, _ = mixture.sample(1, torch.Generator().manual_seed(5))
    x = x0.expand(m, -1).clone()
    kw = dict(sigma_min=0.01, sigma_max=100.0, rtol=1e-6, atol=1e-8, dtype=torch.float64)
    exact = log_likelihood(mixture, x0, **kw)
    est = log_likelihood(mixture, x, divergence="hutchinson", probe=probe,
                         generator=sample_generators(range(m)), **kw)
    se = est.std() / math.sqrt(m)
    assert est.std() > 1e-3  # the probes really vary
    assert abs(float(est.mean() - exact[0])) < 3 * float(se)


def test_hutchinson_probe_is_per_sample(mixture, points):
    kw = dict(sigma_min=0.01, sigma_max=100.0, divergence="hutchinson", **TIGHT)
    both = log_likelihood(mixture, points[:2], generator=sample_generators([7, 8]), **kw)
    one = log_likelihood(mixture, points[1:2], generator=sample_generators([8]), **kw)
    assert torch.allclose(both[1:], one, atol=1e-6)


def test_bits_per_dim_and_argument_checks(mixture, points):
    lp = torch.tensor([-2 * math.log(2)])
    assert torch.allclose(bits_per_dim(lp, 2), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="sigma_min"):
        log_likelihood(mixture, points, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(mixture, points, divergence="trace")


def test_float32_model_with_float64_state(mixture, points):
    def float32_model(x, sigma, cond=None):
        assert x.dtype == torch.float32
        return mixture(x.double(), sigma.double()).float()

    kw = dict(sigma_min=0.01, sigma_max=100.0, rtol=1e-6, atol=1e-8)
    ll32 = log_likelihood(float32_model, points.float(), dtype=torch.float64, **kw)
    assert ll32.dtype == torch.float64
    assert torch.allclose(ll32, log_likelihood(mixture, points, **kw), atol=1e-3)
