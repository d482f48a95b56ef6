"""Guidance wrappers against closed forms: exact posterior, reconstruction, replacement."""

from __future__ import annotations

import math

import torch

from common import samplers as S
from common.guidance import reconstruction_guidance, replacement, score_guidance
from common.mixture import GaussianMixture
from common.noise import sigmas_karras

SIG = sigmas_karras(32, 0.002, 80.0)


def _noisy_gaussian_likelihood(prior: GaussianMixture, A: torch.Tensor, y: torch.Tensor,
                               r2: float):
    """log p(y | x_sigma) for y = A x0 + N(0, r2 I) and a Gaussian prior: exact at every sigma.

    x0 | x_sigma ~ N(D(x_sigma), V) with V = S - S (S + sigma^2 I)^-1 S, so
    y | x_sigma ~ N(A D(x_sigma), A V A^T + r2 I).
    """
    cov = prior.covs[0]
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)

    def log_lik(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s2 = sigma.reshape(-1, 1, 1) ** 2
        post_cov = cov - cov @ torch.linalg.solve(cov + s2 * eye, cov.expand(len(x), -1, -1))
        m = A @ post_cov @ A.T + r2 * torch.eye(A.shape[0], dtype=cov.dtype)
        resid = y - prior(x, sigma) @ A.T
        return torch.distributions.MultivariateNormal(torch.zeros_like(resid), m).log_prob(resid)

    return log_lik


def test_score_guidance_with_exact_likelihood_is_the_posterior(gaussian):
    A = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    y, r2 = torch.tensor([2.0], dtype=torch.float64), 0.25
    prior_cov, mu = gaussian.covs[0], gaussian.means[0]
    post_cov = torch.linalg.inv(torch.linalg.inv(prior_cov) + A.T @ A / r2)
    post_mean = post_cov @ (torch.linalg.solve(prior_cov, mu) + A.T @ y / r2)
    posterior = GaussianMixture([1.0], post_mean[None], post_cov[None])
    guided = score_guidance(gaussian, _noisy_gaussian_likelihood(gaussian, A, y, r2))
    # the guided denoiser IS the posterior's exact denoiser, at every noise level
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    for sigma in (0.01, 0.3, 1.0, 7.0, 60.0):
        s = torch.full((32,), sigma, dtype=torch.float64)
        assert torch.allclose(guided(x, s), posterior(x, s), atol=1e-9)
    # and sampling with it reproduces the posterior's moments
    n = 8000
    g = torch.Generator().manual_seed(1)
    out = S.sample_heun(guided, torch.randn(n, 2, generator=g, dtype=torch.float64) * SIG[0], SIG)
    se = (torch.diag(post_cov) / n).sqrt()
    assert ((out.mean(0) - post_mean).abs() / se).max() < 4
    scale = torch.sqrt(torch.outer(torch.diag(post_cov), torch.diag(post_cov)))
    assert ((torch.cov(out.T) - post_cov).abs() / scale).max() < 0.06  # 4 SE at n = 8000


def test_reconstruction_guidance_residual_and_unobserved_marginal():
    # independent prior dims: coordinate 0 is observed, coordinate 1 is not
    prior = GaussianMixture([1.0], [[0.0, 1.0]], [[[1.0, 0.0], [0.0, 0.5]]])
    y = 2.5

    def energy(x0: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x0[:, 0] - y) ** 2

    n = 4000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    residuals, outs = [], []
    for scale in (0.0, 0.25, 0.5, 1.0, 2.0):
        out = S.sample_heun(reconstruction_guidance(prior, energy, scale), noise * SIG[0], SIG)
        residuals.append(float((out[:, 0] - y).abs().mean()))
        outs.append(out)
    assert all(a > b for a, b in zip(residuals, residuals[1:])), residuals
    for out in outs:  # unobserved coordinate: untouched by the guidance, so the prior marginal
        assert torch.allclose(out[:, 1], outs[0][:, 1], atol=1e-12)
    var = prior.covs[0, 1, 1]
    assert abs(float(outs[0][:, 1].mean()) - 1.0) < 4 * math.sqrt(var / n)
    assert abs(float(outs[0][:, 1].var()) - var) < 4 * var * math.sqrt(2 / (n - 1))


def test_replacement_keeps_observed_entries(mixture):
    known = torch.tensor([[1.5, 0.0]], dtype=torch.float64).expand(64, -1)
    mask = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(64, -1)
    guided = replacement(mixture, known, mask)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = S.sample_heun(guided, x * SIG[0], SIG)
    assert torch.allclose(out[:, 0], known[:, 0], atol=1e-9)
    assert out[:, 1].std() > 0.1  # the unobserved coordinate is still sampled


def test_guidance_of_a_denoiser_that_ignores_its_input_is_a_no_op():
    """A constant denoiser (an untrained stub) has zero guidance gradient, not an autograd error."""
    x, sigma = torch.randn(3, 2), torch.full((3,), 0.7)
    const = torch.tensor([[1.0, -2.0]]).expand(3, 2)

    def ignore_x(x, sigma, cond=None):
        return const

    guided = reconstruction_guidance(ignore_x, lambda x0: (x0**2).sum(1), scale=5.0)
    assert torch.equal(guided(x, sigma), const)
    guided = score_guidance(ignore_x, lambda x, sigma: torch.zeros(len(x)), scale=5.0)
    assert torch.equal(guided(x, sigma), const)
