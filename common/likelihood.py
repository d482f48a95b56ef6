"""Probability-flow ODE log-likelihood (Song et al. 2021, Eq. 39 / App. D.2; EDM Eq. 4).

Along the ODE dx/dt = f(x, t) the log-density obeys d/dt log p_t(x(t)) = -div f (instantaneous
change of variables, Chen et al. 2018), so

    log p_a(x_a) = log p_b(x_b) + int_a^b div f(x(t), t) dt,

integrated from the data end ``a`` (sigma_min) to the prior end ``b`` (sigma_max) with
torchdiffeq. In sigma-space we use log-sigma time u = ln sigma, where the drift is
dx/du = x - D(x, sigma). Through a :class:`~common.noise.Schedule` with scale s(t) and sigma(t),
the drift is EDM's Eq. 4 / Alg. 1, dx/dt = (s'/s) x + (sigma'/sigma)(x - s D(x/s, sigma)), and the
change of variables x = s x_hat adds d log s(t_min). Divergences are exact (d backward passes,
for small d) or Hutchinson's v^T (df/dx) v with one probe per solve (Grathwohl et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from .denoiser import Denoise
from .noise import Schedule
from .seeds import Generator, rand, randn

_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
PriorLogProb = Callable[[torch.Tensor], torch.Tensor]


def divergence_exact(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trace of df/dx per sample, one backward pass per dimension (``x`` requires grad)."""
    flat = f.flatten(1)
    div = flat.new_zeros(flat.shape[0])
    for i in range(flat.shape[1]):
        (g,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
        div = div + g.flatten(1)[:, i]
    return div


def divergence_hutchinson(f: torch.Tensor, x: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Hutchinson's unbiased estimate v^T (df/dx) v per sample (E[v v^T] = I)."""
    (g,) = torch.autograd.grad((f * probe).sum(), x)
    return (g * probe).flatten(1).sum(1)


def draw_probe(shape: tuple[int, ...], kind: str, generator: Generator, dtype: torch.dtype,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """A Rademacher (+-1) or standard Gaussian probe, per-sample generators allowed."""
    if kind == "gaussian":
        return randn(shape, generator, device=device, dtype=dtype)
    if kind == "rademacher":
        return torch.where(rand(shape, generator, device=device, dtype=dtype) < 0.5, -1.0, 1.0
                           ).to(dtype)
    raise ValueError(f"unknown probe {kind!r}; valid: 'rademacher', 'gaussian'")


def gaussian_prior_log_prob(x: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; 0, std^2 I) per sample: the prior at the noisy end of the ODE."""
    d = x[0].numel()
    return -0.5 * (x.flatten(1) ** 2).sum(1) / std**2 - d * math.log(std) - 0.5 * d * math.log(
        2 * math.pi)


def log_likelihood(
    denoise: Denoise,
    x: torch.Tensor,
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    schedule: Schedule | None = None,
    cond: Any = None,
    divergence: Literal["exact", "hutchinson"] = "exact",
    probe: Literal["rademacher", "gaussian"] = "rademacher",
    generator: Generator = None,
    prior_log_prob: PriorLogProb | None = None,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    dtype: torch.dtype | None = None,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """log p_{sigma_min}(x) in nats per sample, by the probability-flow ODE (Song et al. Eq. 39).

    Args:
        denoise: a sigma-space denoiser ``D(x, sigma, cond)``; samples must be independent in a
            batch (no batch statistics), as the divergence is taken per sample.
        x: data at noise level ``sigma_min`` in sigma-space (unscaled), shape [B, ...].
        sigma_min: the noise level whose density is returned (the ODE's data end).
        sigma_max: the prior end; p_{sigma_max} is taken as N(0, sigma_max^2 I) unless
            ``prior_log_prob`` (a function of the sigma-space x at sigma_max) is given.
        schedule: integrate in the schedule's own time t with scale s(t) (EDM Eq. 4) instead of
            log-sigma time; all schedules give the same answer up to the solver tolerance.
        cond: passed to the denoiser.
        divergence: ``"exact"`` (d backward passes per step; small d) or ``"hutchinson"``.
        probe: Hutchinson probe distribution, drawn once per solve from ``generator``.
        generator: a ``torch.Generator`` or one per sample (for the Hutchinson probe).
        prior_log_prob: log-density of the prior at sigma_max, per sample.
        method, rtol, atol, options: passed to ``torchdiffeq.odeint``.
        dtype: integrate in this dtype (e.g. ``torch.float64``); default: ``x.dtype``. The
            denoiser is still called in ``x``'s own dtype (a float32 network works), and its
            output is cast back to ``dtype``.

    Returns:
        A tensor [B] of log-densities in nats (divide by d ln 2 for bits per dimension).
    """
    from torchdiffeq import odeint

    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"unknown divergence {divergence!r}; valid: 'exact', 'hutchinson'")
    dtype, model_dtype = dtype or x.dtype, x.dtype
    x = x.detach().to(dtype)
    batch, dims = x.shape[0], x[0].numel()
    v = (draw_probe(tuple(x.shape), probe, generator, dtype, x.device)
         if divergence == "hutchinson" else None)
    model = _CastDenoiser(denoise, model_dtype)
    drift = _SigmaDrift(model, cond) if schedule is None else _ScheduleDrift(model, cond, schedule)
    t0, t1, s0, s1 = drift.limits(sigma_min, sigma_max)

    def rhs(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            xt = state[0].detach().requires_grad_(True)
            f = drift(t, xt)
            div = divergence_exact(f, xt) if v is None else divergence_hutchinson(f, xt, v)
        return f.detach(), div.detach()

    times = torch.tensor([t0, t1], dtype=dtype, device=x.device)
    if options is None and method in _ADAPTIVE:
        # torchdiffeq's automatic first step is h ~ |y| / |f|: unbounded where the drift
        # vanishes (VP on unit-variance data), which steps outside the schedule's domain
        options = {"first_step": 1e-3 * (t1 - t0)}
    start = (x * s0, x.new_zeros(batch))
    with torch.no_grad():
        xs, integral = odeint(rhs, start, times, method=method, rtol=rtol, atol=atol,
                              options=options)
    x_end, delta = xs[-1] / s1, integral[-1]
    prior = (gaussian_prior_log_prob(x_end, sigma_max) if prior_log_prob is None
             else prior_log_prob(x_end))
    # log p_t(x_t) = log p_sigma(x_t / s) - d log s at both ends; they cancel into:
    return prior + delta - dims * math.log(s1) + dims * math.log(s0)


def bits_per_dim(log_p: torch.Tensor, dims: int) -> torch.Tensor:
    """Negative log-likelihood in bits per dimension: -log p / (d ln 2)."""
    return -log_p / (dims * math.log(2))


class _CastDenoiser:
    """Call the denoiser in the model's dtype while the ODE state runs in another one."""

    def __init__(self, denoise: Denoise, dtype: torch.dtype) -> None:
        self.denoise, self.dtype = denoise, dtype

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        if x.dtype == self.dtype:
            return self.denoise(x, sigma, cond)
        return self.denoise(x.to(self.dtype), sigma.to(self.dtype), cond).to(x.dtype)


class _SigmaDrift:
    """dx/du = x - D(x, e^u) in log-sigma time u (s = 1)."""

    def __init__(self, denoise: Denoise, cond: Any) -> None:
        self.denoise, self.cond = denoise, cond

    def limits(self, sigma_min: float, sigma_max: float) -> tuple[float, float, float, float]:
        return math.log(sigma_min), math.log(sigma_max), 1.0, 1.0

    def __call__(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        sigma = u.exp().to(x.dtype) * x.new_ones(x.shape[0])
        return x - self.denoise(x, sigma, self.cond)


class _ScheduleDrift:
    """EDM Eq. 4 drift in time t: (s'/s) x + (sigma'/sigma)(x - s D(x/s, sigma)) (EDM Alg. 1, l. 4).

    EDM's ``grad_x log p(x/s; sigma)`` is the gradient in x of the composed function, i.e.
    (1/s) times the score at x/s; this follows from x = s x_hat with
    dx_hat/dsigma = (x_hat - D) / sigma.
    """

    def __init__(self, denoise: Denoise, cond: Any, schedule: Schedule) -> None:
        self.denoise, self.cond, self.schedule = denoise, cond, schedule

    def limits(self, sigma_min: float, sigma_max: float) -> tuple[float, float, float, float]:
        sch = self.schedule
        ts = sch.sigma_inv(torch.tensor([sigma_min, sigma_max], dtype=torch.float64))
        scales = sch.scale(ts)
        return float(ts[0]), float(ts[1]), float(scales[0]), float(scales[1])

    def _sigma_scale(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            sigma, scale = self.schedule.sigma(tt), self.schedule.scale(tt)
            (d_sigma,) = torch.autograd.grad(sigma, tt, retain_graph=True)
            d_scale = (torch.autograd.grad(scale, tt)[0] if scale.requires_grad
                       else torch.zeros_like(tt))
        return sigma.detach(), scale.detach(), d_sigma, d_scale

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        sigma, s, d_sigma, d_s = (c.to(x.dtype) for c in self._sigma_scale(t))
        denoised = self.denoise(x / s, sigma * x.new_ones(x.shape[0]), self.cond)
        return (d_s / s) * x + (d_sigma / sigma) * (x - s * denoised)


__all__ = ["log_likelihood", "divergence_exact", "divergence_hutchinson", "draw_probe",
           "gaussian_prior_log_prob", "bits_per_dim"]
