"""Samplers over a sigma-space denoiser: plain functions with no hidden state (k-diffusion style).

Every sampler has the signature ``sample_<name>(denoise, x, sigmas, *, cond, generator, callback)``:
``x`` is the starting noise already scaled by ``sigmas[0]``, ``sigmas`` decreases to 0, and the
result is the final sample. ``generator`` is a ``torch.Generator`` or one per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .denoiser import Denoise
from .noise import append_dims
from .seeds import Generator, randn_like

Callback = Callable[[dict[str, Any]], None] | None


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """Probability-flow ODE slope dx/dsigma = (x - D) / sigma (EDM Eq. 3 with s = 1).

    ``sigma`` is cast to ``x``'s dtype and device: a float64 sigma reshaped to [1, 1] would
    otherwise promote a float32 state to float64 (and then fail in a float32 network).
    """
    sigma = torch.as_tensor(sigma).to(x)
    return (x - denoised) / append_dims(sigma, x.ndim)


def _call(denoise: Denoise, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor:
    return denoise(x, sigma.to(x.dtype) * x.new_ones(x.shape[0]), cond)


def _notify(callback: Callback, **info: Any) -> None:
    if callback is not None:
        callback(info)


def get_ancestral_step(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float = 1.0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_down, sigma_up) of an ancestral step; eta=1 is DDPM's posterior (DDIM Eq. 16)."""
    if eta == 0 or sigma_next == 0:
        return sigma_next, sigma_next * 0
    sigma_up = torch.minimum(
        sigma_next,
        eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).clamp_min(0).sqrt(),
    )
    sigma_down = (sigma_next**2 - sigma_up**2).clamp_min(0).sqrt()
    return sigma_down, sigma_up


@torch.no_grad()
def sample_euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Any = None,
                 generator: Generator = None, callback: Callback = None) -> torch.Tensor:
    """Euler's method on the probability-flow ODE (EDM Alg. 1 without the Heun correction)."""
    for i in range(len(sigmas) - 1):
        denoised = _call(denoise, x, sigmas[i], cond)
        _notify(callback, x=x, i=i, sigma=sigmas[i], denoised=denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_heun(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Any = None,
                generator: Generator = None, callback: Callback = None, s_churn: float = 0.0,
                s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0
                ) -> torch.Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Alg. 2); ``s_churn=0``: Heun's ODE solver."""
    n = len(sigmas) - 1
    for i in range(n):
        sigma = sigmas[i]
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= float(sigma) <= s_tmax else 0.0
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            eps = randn_like(x, generator) * s_noise
            x = x + eps * (sigma_hat**2 - sigma**2).sqrt()
        denoised = _call(denoise, x, sigma_hat, cond)
        _notify(callback, x=x, i=i, sigma=sigma, sigma_hat=sigma_hat, denoised=denoised)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], _call(denoise, x_2, sigmas[i + 1], cond))
            x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_euler_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *,
                           cond: Any = None, generator: Generator = None, callback: Callback = None,
                           eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    """Ancestral sampling: an Euler step to sigma_down, then fresh noise of size sigma_up."""
    for i in range(len(sigmas) - 1):
        denoised = _call(denoise, x, sigmas[i], cond)
        _notify(callback, x=x, i=i, sigma=sigmas[i], denoised=denoised)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0 and sigma_up > 0:
            x = x + randn_like(x, generator) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_ddim(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Any = None,
                generator: Generator = None, callback: Callback = None, eta: float = 0.0
                ) -> torch.Tensor:
    """DDIM (Song et al. 2021, Eq. 12) in sigma-space; eta=0 is deterministic, eta=1 is DDPM."""
    return sample_euler_ancestral(denoise, x, sigmas, cond=cond, generator=generator,
                                  callback=callback, eta=eta)


def sample_ddpm(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Any = None,
                generator: Generator = None, callback: Callback = None) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2) = DDIM with eta=1 on the training sigmas."""
    return sample_ddim(denoise, x, sigmas, cond=cond, generator=generator, callback=callback,
                       eta=1.0)


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Any = None,
                    generator: Generator = None, callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), multistep in t = -log(sigma)."""
    old_denoised = None
    h_last = None
    for i in range(len(sigmas) - 1):
        denoised = _call(denoise, x, sigmas[i], cond)
        _notify(callback, x=x, i=i, sigma=sigmas[i], denoised=denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            break
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old_denoised is None:
            d = denoised
        else:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigmas[i + 1] / sigmas[i]) * x - torch.expm1(-h) * d
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_pc(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Any = None,
              generator: Generator = None, callback: Callback = None, n_corrector: int = 1,
              snr: float = 0.16) -> torch.Tensor:
    """Predictor-corrector (Song et al. 2021, Alg. 1-2): Langevin corrector + ancestral predictor.

    The corrector step is eps = 2 snr^2 sigma^2, score_sde's rule eps = 2 (snr ||z|| / ||score||)^2
    with the norms replaced by their expectation at noise level sigma (||z||^2 / ||score||^2 ~
    sigma^2); unlike the batch-averaged norms of score_sde this keeps samples independent of the
    batch they are drawn in.
    """
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        for _ in range(n_corrector):
            denoised = _call(denoise, x, sigma, cond)
            score = (denoised - x) / sigma**2
            step = 2 * (snr * sigma) ** 2
            x = x + step * score + (2 * step).sqrt() * randn_like(x, generator)
        denoised = _call(denoise, x, sigma, cond)
        _notify(callback, x=x, i=i, sigma=sigma, denoised=denoised)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigmas[i + 1], 1.0)
        x = x + to_d(x, sigma, denoised) * (sigma_down - sigma)
        if sigmas[i + 1] > 0:
            x = x + randn_like(x, generator) * sigma_up
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "euler_ancestral": sample_euler_ancestral,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp_2m": sample_dpmpp_2m,
    "pc": sample_pc,
}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """Look a sampler up by name; the error lists the valid names."""
    try:
        return SAMPLERS[name]
    except KeyError:
        from .errors import ConfigError

        raise ConfigError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}") from None


def function_evaluations(name: str, steps: int) -> int:
    """Denoiser calls a sampler makes for ``steps`` sigmas (excluding the final 0)."""
    return {"heun": 2 * steps - 1, "pc": 2 * steps}.get(name, steps)
