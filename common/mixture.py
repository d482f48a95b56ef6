"""Exact denoiser of Gaussian-mixture data: D(x, sigma) = x + sigma^2 grad log p_sigma (EDM Eq. 3).

For data ``sum_k w_k N(mu_k, S_k)`` the noisy marginal is ``p_sigma = sum_k w_k N(mu_k, S_k +
sigma^2 I)``, so the ideal denoiser, the score, the density at every noise level and (for one
component) the probability-flow ODE solution are closed forms. The core is tested against them,
the sampler benchmark uses them, and a user can check a new sampler or guidance with them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .seeds import Generator, rand, randn


class GaussianMixture:
    """A mixture ``sum_k w_k N(mu_k, S_k)`` in R^d with its exact sigma-space denoiser.

    Calling the object is the denoiser ``D(x, sigma, cond)``: with ``cond=None`` it denoises
    under the whole mixture; with ``cond`` a LongTensor [B] of component labels it denoises under
    each sample's own component (a conditional model for guidance tests). ``x`` has shape [B, d]
    or [B, ...] with d elements per sample.
    """

    def __init__(self, weights: Any, means: Any, covs: Any, dtype: torch.dtype = torch.float64):
        self.weights = torch.as_tensor(weights, dtype=dtype)
        self.means = torch.as_tensor(means, dtype=dtype)
        self.covs = torch.as_tensor(covs, dtype=dtype)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(
                f"weights {tuple(self.weights.shape)}, means {tuple(self.means.shape)}, covs "
                f"{tuple(self.covs.shape)}: expected (K,), (K, d), (K, d, d)")
        if not torch.isclose(self.weights.sum(), self.weights.new_tensor(1.0)):
            raise ValueError(f"mixture weights sum to {float(self.weights.sum())}, expected 1")
        self.log_weights = self.weights.log()
        self._eig = torch.linalg.eigh(self.covs)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def mean(self) -> torch.Tensor:
        """Mixture mean sum_k w_k mu_k."""
        return self.weights @ self.means

    def covariance(self, sigma: float = 0.0) -> torch.Tensor:
        """Covariance of p_sigma: sum_k w_k (S_k + mu_k mu_k^T) - mu mu^T + sigma^2 I."""
        m = self.mean()
        second = torch.einsum("k,kij->ij", self.weights, self.covs)
        second = second + torch.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        eye = torch.eye(self.dim, dtype=m.dtype)
        return second - torch.outer(m, m) + sigma**2 * eye

    def sample(self, n: int, generator: Generator = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact draws and their component labels (inverse-CDF on the weights)."""
        u = rand((n,), generator, dtype=self.weights.dtype)
        labels = torch.searchsorted(self.weights.cumsum(0), u, right=True)
        labels = labels.clamp(max=self.num_components - 1)
        z = randn((n, self.dim), generator, dtype=self.weights.dtype)
        chol = torch.linalg.cholesky(self.covs)[labels]
        return self.means[labels] + (chol @ z[..., None])[..., 0], labels

    def _components(self, x: torch.Tensor, sigma: Any) -> tuple[torch.Tensor, ...]:
        """log N_k(x; mu_k, S_k + sigma^2 I) [B, K] and (S_k + sigma^2 I)^-1 (x - mu_k).

        Uses the eigendecomposition S_k = U_k diag(lam_k) U_k^T, so per-sample sigmas cost no
        factorisation: (S_k + sigma^2 I)^-1 = U_k diag(1 / (lam_k + sigma^2)) U_k^T.
        """
        b, d = x.shape
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(b)
        lam, vecs = self._eig
        lam, vecs = lam.to(x), vecs.to(x)
        var = lam[None] + (sigma**2)[:, None, None]  # [B, K, d]
        diff = x[:, None, :] - self.means.to(x)[None]  # [B, K, d]
        z = (diff.transpose(0, 1) @ vecs).transpose(0, 1)  # coordinates in each eigenbasis
        sol = ((z / var).transpose(0, 1) @ vecs.transpose(1, 2)).transpose(0, 1)
        maha = (z**2 / var).sum(-1)
        log_n = -0.5 * (maha + var.log().sum(-1) + d * math.log(2 * math.pi))
        return log_n, sol

    def log_prob(self, x: torch.Tensor, sigma: Any = 0.0) -> torch.Tensor:
        """log p_sigma(x) per sample, in nats."""
        flat = x.flatten(1)
        log_n, _ = self._components(flat, sigma)
        return torch.logsumexp(self.log_weights.to(flat.dtype) + log_n, dim=1)

    def responsibilities(self, x: torch.Tensor, sigma: Any = 0.0) -> torch.Tensor:
        """Posterior component probabilities p(k | x_sigma) [B, K]."""
        log_n, _ = self._components(x.flatten(1), sigma)
        return torch.softmax(self.log_weights.to(log_n.dtype) + log_n, dim=1)

    def score(self, x: torch.Tensor, sigma: Any, cond: torch.Tensor | None = None) -> torch.Tensor:
        """grad_x log p_sigma(x) (or of the labelled component when ``cond`` is given)."""
        flat = x.flatten(1)
        log_n, sol = self._components(flat, sigma)
        if cond is None:
            resp = torch.softmax(self.log_weights.to(log_n.dtype) + log_n, dim=1)
        else:
            resp = torch.nn.functional.one_hot(cond.long(), self.num_components).to(flat.dtype)
        return -(resp[..., None] * sol).sum(1).reshape(x.shape)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """The ideal denoiser E[x0 | x_sigma] = x + sigma^2 score (Tweedie)."""
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(x.shape[0]) ** 2
        return x + s2.reshape((-1,) + (1,) * (x.ndim - 1)) * self.score(x, sigma, cond)

    def gaussian_ode_solution(self, x: torch.Tensor, sigma_from: float, sigma_to: float
                              ) -> torch.Tensor:
        """Exact PF-ODE map x(sigma_from) -> x(sigma_to) for one Gaussian (EDM Eq. 3, d=1 comp.).

        x(s) = mu + (S + s^2 I)^(1/2) (S + s0^2 I)^(-1/2) (x(s0) - mu), in S's eigenbasis.
        """
        if self.num_components != 1:
            raise ValueError("the closed-form ODE solution needs a single Gaussian")
        lam, u = torch.linalg.eigh(self.covs[0].to(x.dtype))
        factor = torch.sqrt((lam + sigma_to**2) / (lam + sigma_from**2))
        diff = (x - self.means[0].to(x.dtype)) @ u
        return self.means[0].to(x.dtype) + (diff * factor) @ u.T


__all__ = ["GaussianMixture"]
