"""Every sampler against the closed-form Gaussian mixture: ODE order, moments, weights, seeds."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from common import samplers as S
from common.guidance import classifier_free
from common.noise import DiscreteSchedule, linear_betas, sigmas_karras
from common.seeds import randn, sample_generators

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
DDPM = DiscreteSchedule(linear_betas(1000))

# (sampler, steps): steps chosen so each converges to well under 3% covariance error here;
# first-order stochastic samplers need many more steps than the second-order ODE solvers.
MOMENT_CASES = {
    "euler": (S.sample_euler, 256),
    "heun": (S.sample_heun, 64),
    "heun_churn": (functools.partial(S.sample_heun, s_churn=40, s_tmin=0.05, s_tmax=50), 128),
    "euler_ancestral": (S.sample_euler_ancestral, 512),
    "ddpm": (S.sample_ddpm, 500),
    "dpmpp_2m": (S.sample_dpmpp_2m, 64),
    "pc": (S.sample_pc, 256),
}


def sigmas_for(name: str, steps: int) -> torch.Tensor:
    return DDPM.sigmas(steps) if name == "ddpm" else sigmas_karras(steps, SIGMA_MIN, SIGMA_MAX)


def run(fn, denoise, sigmas, n, seed, cond=None, per_sample=False):
    gen = sample_generators(range(seed, seed + n)) if per_sample else torch.Generator().manual_seed(
        seed)
    x = randn((n, 2), gen, dtype=torch.float64) * sigmas[0]
    return fn(denoise, x, sigmas, cond=cond, generator=gen)


@pytest.mark.parametrize("name", list(MOMENT_CASES))
def test_sample_moments_and_weights_match_mixture(mixture, name):
    fn, steps = MOMENT_CASES[name]
    n = 16000
    out = run(fn, mixture, sigmas_for(name, steps), n, seed=11)
    cov = mixture.covariance()
    se_mean = (torch.diag(cov) / n).sqrt()
    assert ((out.mean(0) - mixture.mean()).abs() / se_mean).max() < 4
    scale = torch.sqrt(torch.outer(torch.diag(cov), torch.diag(cov)))
    assert ((torch.cov(out.T) - cov).abs() / scale).max() < 0.03
    # E[p(k | x)] = w_k exactly under the mixture: no hard-assignment bias
    weights = mixture.responsibilities(out).mean(0)
    assert (weights - mixture.weights).abs().max() < 0.02


def test_ddim_is_euler_and_euler_ancestral(mixture):
    sig = sigmas_karras(12, SIGMA_MIN, SIGMA_MAX)
    ddim0 = run(functools.partial(S.sample_ddim, eta=0.0), mixture, sig, 64, seed=2)
    assert torch.equal(ddim0, run(S.sample_euler, mixture, sig, 64, seed=2))
    ddim1 = run(functools.partial(S.sample_ddim, eta=1.0), mixture, sig, 64, seed=2)
    assert torch.equal(ddim1, run(S.sample_euler_ancestral, mixture, sig, 64, seed=2))
    assert not torch.allclose(ddim0, ddim1)


def test_ancestral_step_is_ddpm_posterior():
    ab = DDPM.alphas_cumprod
    t = 500
    sig, sig_next = DDPM.all_sigmas[t], DDPM.all_sigmas[t - 1]
    down, up = S.get_ancestral_step(sig, sig_next, 1.0)
    beta_tilde = (1 - ab[t - 1]) / (1 - ab[t]) * (1 - ab[t] / ab[t - 1])
    # DDPM's posterior variance (Ho et al. Eq. 7) in sigma-space is beta_tilde / abar_{t-1}
    assert torch.allclose(up**2, beta_tilde / ab[t - 1], rtol=1e-10)
    assert torch.allclose(down**2 + up**2, sig_next**2, rtol=1e-12)


def _convergence_slope(fn, denoise, exact, x0, steps_list):
    errors = []
    for n in steps_list:
        sig = sigmas_karras(n, 0.05, 20.0)[:-1]  # end at sigma_min: no final jump to 0
        out = fn(denoise, x0 * sig[0] / 20.0, sig)
        errors.append(float((out - exact).norm(dim=1).max()))
    return np.polyfit(np.log(steps_list), np.log(errors), 1)[0], errors


@pytest.mark.parametrize("name,order", [("euler", 1), ("heun", 2)])
def test_ode_order_against_closed_form_gaussian(gaussian, name, order):
    fn = getattr(S, f"sample_{name}")
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 20
    exact = gaussian.gaussian_ode_solution(x0, 20.0, 0.05)
    slope, errors = _convergence_slope(fn, gaussian, exact, x0, [16, 32, 64, 128])
    assert abs(slope + order) < 0.3, errors


@pytest.mark.parametrize("name,order", [("euler", 1), ("heun", 2)])
def test_ode_order_against_reference_solve_mixture(mixture, name, order):
    fn = getattr(S, f"sample_{name}")
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 20

    def slope_fn(u, x):  # dx/du = x - D(x, e^u) in log-sigma time
        return x - mixture(x, u.exp() * x.new_ones(x.shape[0]))

    times = torch.tensor([math.log(20.0), math.log(0.05)], dtype=torch.float64)
    exact = odeint(slope_fn, x0, times, method="dopri5", rtol=1e-11, atol=1e-11)[-1]
    slope, errors = _convergence_slope(fn, mixture, exact, x0, [16, 32, 64, 128])
    assert abs(slope + order) < 0.3, errors


ALL = {
    "euler": S.sample_euler, "heun": S.sample_heun,
    "heun_churn": functools.partial(S.sample_heun, s_churn=10),
    "euler_ancestral": S.sample_euler_ancestral, "ddim": functools.partial(S.sample_ddim, eta=0.5),
    "ddpm": S.sample_ddpm, "dpmpp_2m": S.sample_dpmpp_2m, "pc": S.sample_pc,
}


@pytest.mark.parametrize("name", list(ALL))
def test_sample_does_not_depend_on_batch(mixture, name):
    sig = sigmas_for(name, 8)
    big = run(ALL[name], mixture, sig, 6, seed=100, per_sample=True)
    small = torch.cat([run(ALL[name], mixture, sig, 2, seed=100 + i, per_sample=True)
                       for i in (0, 2, 4)])
    assert torch.allclose(big, small, rtol=0, atol=1e-12)
    assert not torch.allclose(big[0], big[1])


@pytest.mark.parametrize("name", list(ALL))
def test_cfg_endpoints_reproduce_plain_samplers(mixture, name):
    sig = sigmas_for(name, 10)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    uncond = run(ALL[name], mixture, sig, 6, seed=5, per_sample=True)
    cond = run(ALL[name], mixture, sig, 6, seed=5, cond=labels, per_sample=True)
    assert torch.equal(run(ALL[name], classifier_free(mixture, 0.0), sig, 6, seed=5, cond=labels,
                           per_sample=True), uncond)
    assert torch.equal(run(ALL[name], classifier_free(mixture, 1.0), sig, 6, seed=5, cond=labels,
                           per_sample=True), cond)
    guided = classifier_free(mixture, 3.0)
    x, s = torch.randn(6, 2, dtype=torch.float64), torch.full((6,), 0.7, dtype=torch.float64)
    assert torch.allclose(guided(x, s, labels), -2 * mixture(x, s) + 3 * mixture(x, s, labels))


def test_function_evaluations_counts_calls(mixture):
    for name in ("euler", "heun", "dpmpp_2m", "pc", "euler_ancestral"):
        calls = []

        def counting(x, sigma, cond=None, calls=calls):
            calls.append(1)
            return mixture(x, sigma, cond)

        run(S.get_sampler(name), counting, sigmas_karras(7, SIGMA_MIN, SIGMA_MAX), 2, seed=0)
        assert len(calls) == S.function_evaluations(name, 7), name


def test_unknown_sampler_names_the_valid_ones():
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="valid: euler, heun"):
        S.get_sampler("rk45")


@pytest.mark.parametrize("name", list(ALL))
def test_float32_state_stays_float32_with_float64_sigmas(mixture, name):
    seen = []

    def float32_model(x, sigma, cond=None):
        seen.append(x.dtype)
        return mixture(x.double(), sigma.double(), cond).float()

    sig = sigmas_for(name, 6)  # float64, as sigmas_karras and DiscreteSchedule return
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)) * sig[0].float()
    out = ALL[name](float32_model, x, sig, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.float32 and set(seen) == {torch.float32}
