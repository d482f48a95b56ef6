"""genpipes' shared diffusion core: one sigma-space denoiser contract, samplers, guidance, training.

Knows no domain. See DESIGN §2: ``D(x, sigma, cond) -> x0_hat`` and everything derived from it.
"""

from __future__ import annotations

from .denoiser import EpsDenoiser, Preconditioned, VDenoiser
from .errors import CheckpointError, ConfigError, DataError, GenpipesError, RunDirError
from .executor import get_executor
from .likelihood import log_likelihood
from .mixture import GaussianMixture
from .noise import (
    DiscreteSchedule,
    EDMSchedule,
    GaussianKernel,
    PFGMKernel,
    SubVPSchedule,
    VESchedule,
    VPSchedule,
    append_dims,
    linear_betas,
    sigmas_karras,
)
from .samplers import SAMPLERS, get_sampler
from .seeds import randn, randn_like, resolve_device, sample_generators

__all__ = [
    "Preconditioned", "EpsDenoiser", "VDenoiser", "GenpipesError", "ConfigError", "DataError",
    "CheckpointError", "RunDirError", "DiscreteSchedule", "EDMSchedule", "VESchedule",
    "VPSchedule", "SubVPSchedule", "GaussianKernel", "PFGMKernel", "append_dims", "linear_betas",
    "sigmas_karras", "SAMPLERS", "get_sampler", "randn", "randn_like", "resolve_device",
    "sample_generators", "log_likelihood", "get_executor", "GaussianMixture",
]
