"""Observation self-guidance for forecasting (TSDiff, Kollovieh et al. 2023, Sec. 3.1, Eq. 8-9).

The unconditional model is steered by the gradient of an energy of its one-step estimate x0_hat
against the observed part of the window (context and lags): mean squared error (TSDiff-MS, a
Gaussian observation model) or the pinball loss with a quantile level q_i = i / (n + 1) per sample
(TSDiff-Q, an asymmetric Laplace model). The energy goes through the core's
``reconstruction_guidance``; the samplers are the core's DDPM (all 100 training steps), DDIM
and DPM-Solver++(2M).

Scale convention. The paper's guided DDIM step (Eq. 9) is eps_hat = eps - s sqrt(1 - abar_t)
grad_{x_t} log p(y | x_t) in the VP space x_t = sqrt(abar_t) x; the core's
``reconstruction_guidance`` returns D - c sigma^2 grad_x E(D) in sigma-space x = x_t / sqrt(abar_t).
With grad_x = sqrt(abar_t) grad_{x_t} and sigma^2 abar_t = 1 - abar_t this is exactly Eq. 9 with
c = s. The paper's guided DDPM step (Eq. 8) shifts the posterior mean by s tilde_beta_t grad log p,
whereas a shift c of x0_hat moves it by c sqrt(abar_{t-1}) beta_t / (1 - abar_t) sigma_t^2
sqrt(abar_t) = c beta_t / sqrt(alpha_t); hence c = s sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t),
which is 0 at the last step and ~0.08 s at t = 1 (``ddpm_scale_factor``). Both energies sum over
the observed entries (context and lags), as the reference implementation does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from common.denoiser import Denoise
from common.errors import ConfigError
from common.guidance import reconstruction_guidance
from common.samplers import sample_ddim, sample_ddpm, sample_dpmpp_2m
from common.seeds import randn, sample_generators

GUIDANCE = ("quantile", "mse", "none")
SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")
MISSING_SCENARIOS = ("none", "RM", "BM-B", "BM-E")
# guidance scale s of TSDiff's configs (quantile guidance, DDPM), by dataset
PAPER_SCALES = {"solar_nips": 8.0, "electricity_nips": 4.0, "traffic_nips": 4.0,
                "exchange_rate_nips": 8.0, "m4_hourly": 2.0, "uber_tlc_hourly": 2.0,
                "kdd_cup_2018_without_missing": 1.0, "wiki2000_nips": 2.0}
# Few-step ODE samplers (DDIM, DPM-Solver++(2M)) take the whole guided x0 estimate at every large
# step, so the paper's DDPM scale makes TSDiff-Q's extreme-quantile samples overshoot. Their
# default scale is the DDPM scale times a fraction per guidance, measured on M4 hourly (trained on
# all 414 series, 1000 steps, DDIM-10, 100 samples; benchmarks/results/timeseries_m4.md).
# TSDiff-Q: validation-window CRPS 0.0380 / 0.0412 / 0.0570 at scale 0.25 / 0.5 / 1 (4 series),
# test CRPS 0.6713 at the paper's 2 vs 0.0273 at 0.25. TSDiff-MS (its MSE gradient is unbounded,
# the pinball's is not): validation CRPS 0.0482 / 0.0470 / 0.0833 at 0.05 / 0.1 / 0.25 (14
# series), so 0.1 = 2 x 0.05. ``choose_scale`` picks one on validation windows.
ODE_SCALE_FRACTION = 0.125  # TSDiff-Q (and unguided)
MSE_ODE_SCALE_FRACTION = 0.05  # TSDiff-MS
ODE_SCALE_FRACTIONS = {"quantile": ODE_SCALE_FRACTION, "mse": MSE_ODE_SCALE_FRACTION,
                       "none": ODE_SCALE_FRACTION}


def default_scale(sampler: str, ddpm_scale: float, guidance: str = "quantile") -> float:
    """The default guidance scale of ``sampler`` given the paper's DDPM scale s (TSDiff Eq. 8-9).

    DDPM: s itself (the paper's per-dataset value). DDIM / DPM-Solver++(2M): s times the
    guidance's fraction in ``ODE_SCALE_FRACTIONS`` (M4's s = 2: 0.25 for TSDiff-Q, 0.1 for
    TSDiff-MS), see the measurement above.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown forecast sampler {sampler!r}; valid: {SAMPLERS}")
    if guidance not in GUIDANCE:
        raise ConfigError(f"unknown guidance {guidance!r}; valid: {GUIDANCE}")
    if sampler == "ddpm":
        return float(ddpm_scale)
    return float(ddpm_scale) * ODE_SCALE_FRACTIONS[guidance]


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


def ddpm_scale_factor(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """c / s for the paper's guided DDPM step (TSDiff Eq. 8) from sigma_t to sigma_{t-1}.

    c / s = sqrt(abar_t / abar_{t-1}) (1 - abar_{t-1}) / (1 - abar_t) with abar = 1 / (1 + sigma^2)
    (strided steps use the same formula with t-1 the next sampled step); 0 when sigma_next = 0.
    """
    ab, ab_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
    return (ab / ab_next).sqrt() * (1 - ab_next) / (1 - ab)


def self_guidance(denoiser: Denoise, energy: Callable[[torch.Tensor], torch.Tensor], scale: float,
                  sigmas: torch.Tensor, sampler: str = "ddpm") -> Denoise:
    """Wrap ``denoiser`` so the core sampler on ``sigmas`` takes TSDiff's guided steps (Eq. 8-9).

    ``scale`` is the paper's s. For ``"ddim"`` the core scale equals s; for ``"ddpm"`` each call
    looks its sigma up in the grid and weights the energy by ``ddpm_scale_factor`` (the gradient is
    linear in the energy, so this is the per-step scale of Eq. 8).
    """
    if sampler in ("ddim", "dpmpp_2m"):  # x0-space ODE steps: the core scale is s (Eq. 9)
        return reconstruction_guidance(denoiser, energy, scale)
    grid = sigmas[:-1].detach()
    factors = ddpm_scale_factor(grid.double(), sigmas[1:].detach().double()).to(grid.dtype)

    def guided(x: torch.Tensor, sigma: torch.Tensor, cond: object = None) -> torch.Tensor:
        sig = torch.as_tensor(sigma, dtype=grid.dtype, device=x.device).reshape(-1)
        sig = sig.expand(x.shape[0]) if sig.numel() == 1 else sig
        k = factors.to(x.device)[(sig[:, None] - grid.to(x.device)[None]).abs().argmin(1)]

        def weighted(x0: torch.Tensor) -> torch.Tensor:
            return k.to(x0.dtype) * energy(x0)

        return reconstruction_guidance(denoiser, weighted, scale)(x, sig, cond)

    return guided


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
                    chunk: int = 64, precision: str = "32") -> torch.Tensor:
    """Self-guided samples of whole windows for scaled observations (TSDiff Alg. 1).

    Args:
        denoiser: a sigma-space ``EpsDenoiser`` trained unconditionally on windows [C, L].
        obs: observed windows [S, C, L] (zeros where unobserved), already scaled.
        mask: 1 where ``obs`` is observed, [S, C, L].
        num_samples: samples per window; sample i of a window uses quantile q_i.
        guidance: ``"quantile"`` (TSDiff-Q), ``"mse"`` (TSDiff-MS) or ``"none"`` (unconditional).
        scale: the paper's guidance scale s (see the module docstring for the mapping).
        sampler: ``"ddpm"`` (ancestral, on ``steps`` of the training sigmas), ``"ddim"`` or
            ``"dpmpp_2m"`` (the core's DPM-Solver++(2M), guided as DDIM: both step on x0_hat).
        steps: sampling steps; default all training steps for DDPM, 10 for DDIM.
        seeds: one seed per window (sample j of window k draws from seed*1000003 + j).
        chunk: rows (windows x samples) denoised together. Rows are independent (per-row
            generators and energies), so this only sets speed: on one CPU thread a guided call
            costs ~3.8 ms per row at 64 rows and ~11 ms per row at 400 (cache), so keep it small.
        precision: ``"32"`` or ``"bf16"`` (the backbone's dense layers under bfloat16 autocast;
            FFTs, norms, sampler state and guidance energies stay float32).

    Returns:
        Samples [S, num_samples, C, L].
    """
    if guidance not in GUIDANCE:
        raise ConfigError(f"unknown guidance {guidance!r}; valid: {GUIDANCE}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown forecast sampler {sampler!r}; valid: {SAMPLERS}")
    if precision not in ("32", "bf16"):
        raise ConfigError(f"unknown forecast precision {precision!r}; valid: 32, bf16")
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
            denoise = self_guidance(denoiser, energy, scale, sigmas, sampler)
        with torch.autocast(obs.device.type, torch.bfloat16, enabled=precision == "bf16"):
            if sampler == "ddpm":
                out.append(sample_ddpm(denoise, x, sigmas, generator=gens))
            elif sampler == "dpmpp_2m":
                out.append(sample_dpmpp_2m(denoise, x, sigmas, generator=gens))
            else:
                out.append(sample_ddim(denoise, x, sigmas, generator=gens, eta=0.0))
    return torch.cat(out).reshape(obs.shape[0], num_samples, *obs.shape[1:])
