"""Observation self-guidance for forecasting (TSDiff, Kollovieh et al. 2023, Sec. 3.1, Eq. 8-9).

The unconditional model is steered by the gradient of an energy of its one-step estimate x0_hat
against the observed part of the window (context and lags): mean squared error (TSDiff-MS, a
Gaussian observation model) or the pinball loss with a quantile level q_i = i / (n + 1) per sample
(TSDiff-Q, an asymmetric Laplace model). The energy goes through the core's
``reconstruction_guidance``; the samplers are the core's DDPM (all 100 training steps) and DDIM.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from common.errors import ConfigError
from common.guidance import reconstruction_guidance
from common.samplers import sample_ddim, sample_ddpm
from common.seeds import randn, sample_generators

GUIDANCE = ("quantile", "mse", "none")
MISSING_SCENARIOS = ("none", "RM", "BM-B", "BM-E")
# guidance scale s of TSDiff's configs (quantile guidance, DDPM), by dataset
PAPER_SCALES = {"solar_nips": 8.0, "electricity_nips": 4.0, "traffic_nips": 4.0,
                "exchange_rate_nips": 8.0, "m4_hourly": 2.0, "uber_tlc_hourly": 2.0,
                "kdd_cup_2018_without_missing": 1.0, "wiki2000_nips": 2.0}


def quantile_levels(num_samples: int) -> torch.Tensor:
    """TSDiff-Q's per-sample quantile levels q_i = i / (n + 1), i = 1..n."""
    return torch.arange(1, num_samples + 1, dtype=torch.float32) / (num_samples + 1)


def mse_energy(obs: torch.Tensor, mask: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """E(x0) = sum over observed entries of (x0 - y)^2 (TSDiff-MS), one value per sample."""

    def energy(x0: torch.Tensor) -> torch.Tensor:
        return ((x0 - obs) ** 2 * mask).flatten(1).sum(1)

    return energy


def quantile_energy(obs: torch.Tensor, mask: torch.Tensor, q: torch.Tensor
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """E(x0) = sum over observed entries of the pinball loss rho_q(y - x0) (TSDiff-Q, Eq. 9).

    ``q`` holds one quantile level per sample (shape [B]).
    """
    q = q.reshape(-1, *([1] * (obs.ndim - 1))).to(obs)

    def energy(x0: torch.Tensor) -> torch.Tensor:
        e = obs - x0
        return (torch.maximum(q * e, (q - 1) * e) * mask).flatten(1).sum(1)

    return energy


def missing_mask(length: int, context: int, scenario: str, fraction: float = 0.5,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """TSDiff's missing-value scenarios over the context (Sec. 5.1): 1 = keep, 0 = drop.

    ``RM`` drops a random ``fraction`` of context steps, ``BM-B`` a block at the context's start,
    ``BM-E`` a block at its end; the prediction range is untouched.
    """
    if scenario not in MISSING_SCENARIOS:
        raise ConfigError(f"unknown missing scenario {scenario!r}; valid: {MISSING_SCENARIOS}")
    keep = np.ones(length, dtype=np.float32)
    n_drop = int(round(fraction * context))
    start = length - context
    if scenario == "RM":
        rng = rng or np.random.default_rng(0)
        keep[start + rng.choice(context, n_drop, replace=False)] = 0
    elif scenario == "BM-B":
        keep[start:start + n_drop] = 0
    elif scenario == "BM-E":
        keep[length - n_drop:] = 0
    return keep


@torch.no_grad()
def guided_forecast(denoiser: torch.nn.Module, obs: torch.Tensor, mask: torch.Tensor,
                    num_samples: int = 100, guidance: str = "quantile", scale: float = 2.0,
                    sampler: str = "ddpm", steps: int | None = None, seeds: list[int] | None = None,
                    chunk: int = 400) -> torch.Tensor:
    """Self-guided samples of whole windows for scaled observations (TSDiff Alg. 1).

    Args:
        denoiser: a sigma-space ``EpsDenoiser`` trained unconditionally on windows [C, L].
        obs: observed windows [S, C, L] (zeros where unobserved), already scaled.
        mask: 1 where ``obs`` is observed, [S, C, L].
        num_samples: samples per window; sample i of a window uses quantile q_i.
        guidance: ``"quantile"`` (TSDiff-Q), ``"mse"`` (TSDiff-MS) or ``"none"`` (unconditional).
        scale: guidance scale s.
        sampler: ``"ddpm"`` (ancestral, on ``steps`` of the training sigmas) or ``"ddim"``.
        steps: sampling steps; default all training steps for DDPM, 10 for DDIM.
        seeds: one seed per window (sample j of window k draws from seed*1000003 + j).
        chunk: rows (windows x samples) denoised together.

    Returns:
        Samples [S, num_samples, C, L].
    """
    if guidance not in GUIDANCE:
        raise ConfigError(f"unknown guidance {guidance!r}; valid: {GUIDANCE}")
    if sampler not in ("ddpm", "ddim"):
        raise ConfigError(f"unknown forecast sampler {sampler!r}; valid: ddpm, ddim")
    steps = steps or (denoiser.num_steps if sampler == "ddpm" else 10)
    # float32 sigmas: the core samplers promote x to the sigmas' dtype (append_dims makes them
    # non-scalar), and the backbone runs in float32
    sigmas = denoiser.sigmas(steps).to(obs.device, torch.float32)
    seeds = list(range(obs.shape[0])) if seeds is None else seeds
    q_all = quantile_levels(num_samples).repeat(obs.shape[0])
    obs_rows = obs.repeat_interleave(num_samples, 0)
    mask_rows = mask.repeat_interleave(num_samples, 0)
    row_seeds = [int(s) * 1000003 + j for s in seeds for j in range(num_samples)]
    out = []
    for lo in range(0, obs_rows.shape[0], chunk):
        sl = slice(lo, lo + chunk)
        o, m, q = obs_rows[sl], mask_rows[sl], q_all[sl].to(obs.device)
        gens = sample_generators(row_seeds[sl])
        x = randn(o.shape, gens, device=obs.device) * sigmas[0]
        if guidance == "none" or scale == 0:
            denoise = denoiser
        else:
            energy = quantile_energy(o, m, q) if guidance == "quantile" else mse_energy(o, m)
            denoise = reconstruction_guidance(denoiser, energy, scale)
        if sampler == "ddpm":
            out.append(sample_ddpm(denoise, x, sigmas, generator=gens))
        else:
            out.append(sample_ddim(denoise, x, sigmas, generator=gens, eta=0.0))
    return torch.cat(out).reshape(obs.shape[0], num_samples, *obs.shape[1:])
