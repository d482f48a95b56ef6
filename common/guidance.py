"""Guidance as denoiser wrappers: a vertical supplies an energy or a condition, never a sampler.

Each function takes a denoiser ``D(x, sigma, cond)`` and returns another one, so every sampler in
``samplers.py`` works unchanged with every kind of guidance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .denoiser import Denoise
from .noise import append_dims

Energy = Callable[[torch.Tensor], torch.Tensor]
LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _grad(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d value / d x, zero where ``value`` does not depend on ``x`` (e.g. a constant denoiser)."""
    if not value.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def classifier_free(denoise: Denoise, w: float, uncond: Any = None) -> Denoise:
    """Classifier-free guidance (Ho & Salimans 2022, Eq. 6): D = (1 - w) D(x|null) + w D(x|c).

    ``w = 0`` is the unconditional model and ``w = 1`` the conditional one, each evaluated alone
    so both reproduce their plain samplers exactly; ``w > 1`` extrapolates.
    """

    def guided(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        if w == 0:
            return denoise(x, sigma, uncond)
        if w == 1:
            return denoise(x, sigma, cond)
        return (1 - w) * denoise(x, sigma, uncond) + w * denoise(x, sigma, cond)

    return guided


def score_guidance(denoise: Denoise, log_likelihood: LogLikelihood, scale: float = 1.0) -> Denoise:
    """Add ``scale * grad_x log p(y | x_sigma)`` to the score (Song et al. 2021, Eq. 14).

    D_guided = D + sigma^2 scale grad_x log p(y | x, sigma). With the exact noisy likelihood this
    samples the exact posterior; ``log_likelihood(x, sigma)`` returns one value per sample.
    """

    def guided(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            ll = log_likelihood(x_in, sigma).sum()
            grad = _grad(ll, x_in)
        with torch.no_grad():
            denoised = denoise(x, sigma, cond)
        return denoised + scale * append_dims(sigma, x.ndim) ** 2 * grad

    return guided


def reconstruction_guidance(denoise: Denoise, energy: Energy, scale: float = 1.0) -> Denoise:
    """Guidance from an energy of the one-step estimate x0_hat = D(x, sigma) (TSDiff Eq. 8; DPS).

    The gradient of ``E(D(x, sigma))`` flows back through the denoiser:
    D_guided = D - scale sigma^2 grad_x E(D(x, sigma)). ``energy`` returns one value per sample.
    """

    def guided(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            denoised = denoise(x_in, sigma, cond)
            grad = _grad(energy(denoised).sum(), x_in)
        return denoised.detach() - scale * append_dims(sigma, x.ndim) ** 2 * grad

    return guided


def replacement(denoise: Denoise, known: torch.Tensor, mask: torch.Tensor) -> Denoise:
    """Replacement conditioning (Song et al. 2021, App. I.2): observed entries of x0_hat = data.

    Where ``mask`` is 1 the estimate is replaced by ``known``, so the sampler's trajectory carries
    the observations at every noise level; unobserved entries follow the model.
    """
    mask = mask.to(known.dtype)

    def guided(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        denoised = denoise(x, sigma, cond)
        return mask * known + (1 - mask) * denoised

    return guided
