"""The sigma-space denoiser D(x, sigma, cond) -> x0_hat and its training losses.

``Preconditioned`` is EDM's network preconditioning (Karras et al. 2022, Table 1 and Eq. 7-8);
``EpsDenoiser`` / ``VDenoiser`` expose DDPM-style eps- or v-prediction backbones (Ho et al. 2020;
Salimans & Ho 2022) through the same interface, as k-diffusion's ``DiscreteEpsDDPMDenoiser``.
Derived quantities: score = (D - x) / sigma^2, eps = (x - D) / sigma, ODE slope = (x - D) / sigma.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from .noise import DiscreteSchedule, GaussianKernel, append_dims
from .seeds import Generator, rand, randn


class Denoise(Protocol):
    """Anything callable as ``D(x, sigma, cond) -> x0_hat``, per-sample ``sigma`` of shape [B]."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor: ...


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-sample mean of ``values`` over non-batch dims, counting only where ``mask`` is 1."""
    if mask is None:
        return values.flatten(1).mean(1)
    mask = mask.to(values.dtype).expand_as(values)
    return (values * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)


class Preconditioned(nn.Module):
    """EDM preconditioning around a backbone ``F(c_in x, c_noise, cond)`` (Karras et al. Eq. 7).

    Training draws ln(sigma) ~ N(P_mean, P_std^2) and weights by lambda(sigma) (EDM Table 1), so
    the effective per-element target has unit variance at every sigma.
    """

    def __init__(self, backbone: nn.Module, sigma_data: float = 0.5, P_mean: float = -1.2,
                 P_std: float = 1.2, kernel: Any = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.sigma_data = float(sigma_data)
        self.P_mean, self.P_std = float(P_mean), float(P_std)
        self.kernel = kernel or GaussianKernel()

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """c_skip, c_out, c_in, c_noise of EDM Table 1."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / torch.sqrt(sigma**2 + sd2)
        c_in = 1 / torch.sqrt(sigma**2 + sd2)
        c_noise = torch.log(sigma.clamp_min(1e-20)) / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        sigma = _as_batch(sigma, x)
        c_skip, c_out, c_in, c_noise = (append_dims(c, x.ndim) for c in self.coefficients(sigma))
        out = self.backbone(c_in * x, c_noise.flatten(), cond)
        return c_skip * x + c_out * out.to(x.dtype)

    def loss(self, x0: torch.Tensor, cond: Any = None, mask: torch.Tensor | None = None,
             generator: Generator = None) -> torch.Tensor:
        """Per-sample EDM loss (Karras et al. Eq. 8), averaged over the observed entries of mask."""
        ln_sigma = self.P_mean + self.P_std * randn((x0.shape[0],), generator, device=x0.device)
        sigma = ln_sigma.exp().to(x0.dtype)
        noise = self.kernel.perturb(tuple(x0.shape), sigma, generator, x0.device, x0.dtype)
        denoised = self(x0 + noise, sigma, cond)
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        weight = append_dims(weight, x0.ndim)
        return masked_mean(weight * (denoised - x0) ** 2, mask)


class _DiscreteDenoiser(nn.Module):
    """Shared machinery for DDPM-trained backbones ``F(x_t, t, cond)`` with integer steps t."""

    def __init__(self, backbone: nn.Module, schedule: DiscreteSchedule) -> None:
        super().__init__()
        self.backbone = backbone
        self.schedule = schedule
        sig = schedule.all_sigmas
        self.register_buffer("sigmas_table", sig.float(), persistent=False)
        self.register_buffer("log_sigmas", sig.log().float(), persistent=False)

    @property
    def num_steps(self) -> int:
        return len(self.sigmas_table)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas_table[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas_table[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional step index for ``sigma`` by linear interpolation in log-sigma."""
        log_sigma = sigma.clamp_min(1e-20).log().float()
        ls = self.log_sigmas.to(sigma.device)
        idx = torch.searchsorted(ls, log_sigma.contiguous()).clamp(1, len(ls) - 1)
        lo, hi = ls[idx - 1], ls[idx]
        w = ((log_sigma - lo) / (hi - lo)).clamp(0, 1)
        return (idx - 1).float() + w

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        lo = t.floor().long().clamp(0, self.num_steps - 1)
        hi = (lo + 1).clamp(max=self.num_steps - 1)
        w = t - lo.float()
        ls = self.log_sigmas.to(t.device)
        return ((1 - w) * ls[lo] + w * ls[hi]).exp()

    def sigmas(self, n: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
        return self.schedule.sigmas(n, device)

    def _noisy_batch(self, x0: torch.Tensor, generator: Generator):
        t = (rand((x0.shape[0],), generator, device=x0.device) * self.num_steps).long()
        t = t.clamp(max=self.num_steps - 1)
        noise = randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
        ab = append_dims(self.schedule.alphas_cumprod.to(x0.device, x0.dtype)[t], x0.ndim)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        return t, noise, ab, x_t


class EpsDenoiser(_DiscreteDenoiser):
    """An eps-prediction DDPM backbone in sigma-space: D = x - sigma eps(x / sqrt(1 + sigma^2))."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        sigma = _as_batch(sigma, x)
        c_in = append_dims(1 / torch.sqrt(sigma**2 + 1), x.ndim)
        eps = self.backbone(c_in * x, self.sigma_to_t(sigma), cond)
        return x - append_dims(sigma, x.ndim) * eps.to(x.dtype)

    def loss(self, x0: torch.Tensor, cond: Any = None, mask: torch.Tensor | None = None,
             generator: Generator = None) -> torch.Tensor:
        """DDPM's simple loss ||eps - eps_theta(x_t, t)||^2 (Ho et al. 2020, Eq. 14), per sample."""
        t, noise, _, x_t = self._noisy_batch(x0, generator)
        eps = self.backbone(x_t, t.float(), cond)
        return masked_mean((eps - noise) ** 2, mask)


class VDenoiser(_DiscreteDenoiser):
    """A v-prediction backbone (Salimans & Ho 2022): x0 = a x_t - b v with a^2 + b^2 = 1."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        sigma = _as_batch(sigma, x)
        s = append_dims(sigma, x.ndim)
        v = self.backbone(x / torch.sqrt(s**2 + 1), self.sigma_to_t(sigma), cond)
        return x / (s**2 + 1) - s / torch.sqrt(s**2 + 1) * v.to(x.dtype)

    def loss(self, x0: torch.Tensor, cond: Any = None, mask: torch.Tensor | None = None,
             generator: Generator = None) -> torch.Tensor:
        """||v - v_theta(x_t, t)||^2 with v = sqrt(abar) eps - sqrt(1 - abar) x0, per sample."""
        t, noise, ab, x_t = self._noisy_batch(x0, generator)
        target = ab.sqrt() * noise - (1 - ab).sqrt() * x0
        v = self.backbone(x_t, t.float(), cond)
        return masked_mean((v - target) ** 2, mask)


def _as_batch(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Per-sample sigma of shape [B] from a scalar or a [B] tensor."""
    sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma.reshape(x.shape[0])


def score_from_denoiser(denoised: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor
                        ) -> torch.Tensor:
    """Score of p_sigma at x: (D - x) / sigma^2 (EDM Eq. 3)."""
    return (denoised - x) / append_dims(sigma, x.ndim) ** 2


def eps_from_denoiser(denoised: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Noise estimate (x - D) / sigma."""
    return (x - denoised) / append_dims(sigma, x.ndim)


__all__ = ["Denoise", "Preconditioned", "EpsDenoiser", "VDenoiser", "masked_mean",
           "score_from_denoiser", "eps_from_denoiser"]
