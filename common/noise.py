"""Noise schedules and kernels in sigma-space (EDM, Karras et al. 2022, Table 1; PFGM++ Sec. 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .seeds import Generator, rand, randn


def append_dims(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dims so ``x`` (e.g. per-sample sigma, shape [B]) broadcasts."""
    if x.ndim > ndim:
        raise ValueError(f"cannot broadcast a {x.ndim}-d tensor to {ndim} dims")
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def sigmas_karras(
    n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """EDM time steps (Karras et al. 2022, Eq. 5): ``n`` sigmas from max to min, then a final 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device)


def linear_betas(n: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear beta schedule (Ho et al. 2020, Sec. 4)."""
    return torch.linspace(beta_start, beta_end, n, dtype=torch.float64)


@dataclass(frozen=True)
class Schedule:
    """A diffusion ``x_t = s(t) (x0 + sigma(t) eps)`` with t in [t_min, t_max] (EDM Eq. 4)."""

    t_min: float = 0.0
    t_max: float = 1.0

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scale(self, t: torch.Tensor) -> torch.Tensor:
        """The scale s(t); 1 for variance-exploding schedules."""
        return torch.ones_like(t)

    def sigmas(self, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """The schedule's own discretisation: ``n`` sigmas uniform in t (max to min), then 0."""
        t = torch.linspace(self.t_max, self.t_min, n, dtype=torch.float64)
        return torch.cat([self.sigma(t), t.new_zeros(1)]).to(device)


@dataclass(frozen=True)
class VESchedule(Schedule):
    """Variance exploding (Song et al. 2021): sigma(t) = sigma_min (sigma_max/sigma_min)^t."""

    sigma_min: float = 0.02
    sigma_max: float = 100.0

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


@dataclass(frozen=True)
class VPSchedule(Schedule):
    """Variance preserving (EDM Table 1): sigma = sqrt(exp(b_d t^2/2 + b_min t) - 1)."""

    beta_min: float = 0.1
    beta_d: float = 19.9
    t_min: float = 1e-3

    def _integral(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.beta_d * t**2 + self.beta_min * t

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.expm1(self._integral(t)))

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        b = torch.log1p(sigma**2)
        return (torch.sqrt(self.beta_min**2 + 2 * self.beta_d * b) - self.beta_min) / self.beta_d

    def scale(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * self._integral(t))


@dataclass(frozen=True)
class SubVPSchedule(VPSchedule):
    """Sub-VP (Song et al. 2021, Eq. 29): std 1 - exp(-B(t)), the VP mean; sigma = std / mean."""

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        b = self._integral(t)
        return -torch.expm1(-b) * torch.exp(0.5 * b)

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        # sigma = 2 sinh(B/2)  =>  B = 2 asinh(sigma / 2)
        b = 2 * torch.asinh(sigma / 2)
        return (torch.sqrt(self.beta_min**2 + 2 * self.beta_d * b) - self.beta_min) / self.beta_d


@dataclass(frozen=True)
class EDMSchedule(Schedule):
    """EDM (Karras et al. 2022): sigma(t) = t, s(t) = 1, Karras time steps with exponent rho."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_min", self.sigma_min)
        object.__setattr__(self, "t_max", self.sigma_max)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma

    def sigmas(self, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
        return sigmas_karras(n, self.sigma_min, self.sigma_max, self.rho, device)


@dataclass(frozen=True)
class DiscreteSchedule:
    """A DDPM-style discrete schedule: sigma_i = sqrt((1 - abar_i) / abar_i) (Ho et al. 2020)."""

    betas: torch.Tensor

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas.double(), dim=0)

    @property
    def all_sigmas(self) -> torch.Tensor:
        ab = self.alphas_cumprod
        return torch.sqrt((1 - ab) / ab)

    def sigmas(self, n: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
        """``n`` training sigmas, evenly strided from the largest (all if ``n`` is None), then 0."""
        s = self.all_sigmas
        if n is None or n >= len(s):
            idx = torch.arange(len(s) - 1, -1, -1)
        else:
            idx = torch.linspace(len(s) - 1, 0, n).round().long()
        return torch.cat([s[idx], s.new_zeros(1)]).to(device)


class GaussianKernel:
    """The usual perturbation kernel: x_sigma = x0 + sigma * N(0, I)."""

    def perturb(self, shape: tuple[int, ...], sigma: torch.Tensor, generator: Generator = None,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
                ) -> torch.Tensor:
        n = randn(shape, generator, device=device, dtype=dtype)
        return n * append_dims(sigma.to(device, dtype), len(shape))


class PFGMKernel:
    """PFGM++ perturbation with D extra dims (Xu et al. 2023, Eq. 4, Sec. 4; r = sigma sqrt D).

    The norm R of the perturbation has density p(R) ~ R^(N-1) / (R^2 + r^2)^((N+D)/2), sampled
    as R = r sqrt(u / (1 - u)) with u ~ Beta(N/2, D/2); the direction is uniform on the sphere.
    D -> infinity recovers the Gaussian kernel with standard deviation sigma.
    """

    def __init__(self, D: int) -> None:
        if D <= 0:
            raise ValueError(f"PFGM++ needs D > 0, got {D}")
        self.D = D

    def perturb(self, shape: tuple[int, ...], sigma: torch.Tensor, generator: Generator = None,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
                ) -> torch.Tensor:
        n_dim = int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1
        r = sigma.double().to(device) * math.sqrt(self.D)
        # Beta(a, b) from two Gamma draws, inverted through uniforms for per-sample determinism
        a, b = n_dim / 2.0, self.D / 2.0
        u = _beta_sample(shape[0], a, b, generator, device)
        R = r * torch.sqrt(u / (1 - u))
        direction = randn(shape, generator, device=device, dtype=torch.float64)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(
            (-1,) + (1,) * (len(shape) - 1))
        return (direction * append_dims(R, len(shape))).to(dtype)


def _beta_sample(n: int, a: float, b: float, generator: Generator, device: str | torch.device
                 ) -> torch.Tensor:
    """Beta(a, b) draws via the inverse CDF of uniforms (scipy), one per sample."""
    from scipy.special import betaincinv

    u = rand((n,), generator, dtype=torch.float64)
    return torch.from_numpy(betaincinv(a, b, u.cpu().numpy())).to(device)
