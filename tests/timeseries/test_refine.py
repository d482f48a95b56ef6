"""Refinement, ridge and the linear predictive score: closed forms and invariants."""

from __future__ import annotations

import numpy as np
import torch

from common.denoiser import EpsDenoiser
from common.noise import DiscreteSchedule, linear_betas
from timeseries.refine import linear_predictive_score, refine, ridge_fit, ridge_predict


def test_ridge_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    w = rng.normal(size=(5, 3))
    y = x @ w + 2.0
    coef = ridge_fit(x, y, alpha=1e-8)
    assert np.allclose(coef[:5], w, atol=1e-6) and np.allclose(coef[5], 2.0, atol=1e-6)
    assert np.allclose(ridge_predict(coef, x), y, atol=1e-6)


def test_linear_predictive_score_is_zero_for_exactly_linear_data() -> None:
    t = np.arange(40)
    windows = np.stack([np.sin(2 * np.pi * (t + s) / 10) + 2 for s in range(30)])
    assert linear_predictive_score(windows, windows, context=30, alpha=1e-9) < 1e-6
    noise = np.random.default_rng(1).normal(size=windows.shape)
    assert linear_predictive_score(noise, windows, context=30) > 0.1


class _Zero(torch.nn.Module):
    def forward(self, x, t, cond=None):
        return torch.zeros_like(x)


def _den() -> EpsDenoiser:
    return EpsDenoiser(_Zero(), DiscreteSchedule(linear_betas(100, 1e-4, 0.1)))


def test_refinement_without_model_signal_keeps_the_base_forecast() -> None:
    # eps_theta = 0 makes the denoising loss independent of y: only the regulariser acts,
    # and the base forecast is its minimum
    windows = torch.randn(2, 1, 20)
    mask = torch.ones_like(windows)
    base = torch.randn(2, 4, 5)
    out = refine(_den(), windows, mask, base, 5, steps=10, regularizer="mse", mode="ml")
    assert torch.allclose(out, base, atol=1e-6)


def test_ml_refinement_descends_the_energy() -> None:
    class Shrink(torch.nn.Module):  # eps_theta = x_t: the loss prefers small |y|
        def forward(self, x, t, cond=None):
            return x

    den = EpsDenoiser(Shrink(), DiscreteSchedule(linear_betas(100, 1e-4, 0.1)))
    windows = torch.zeros(1, 1, 10)
    mask = torch.zeros_like(windows)
    base = torch.full((1, 2, 4), 3.0)
    out = refine(den, windows, mask, base, 4, steps=30, lr=0.05, weight=0.1,
                 regularizer="mse", mode="ml")
    assert (out.abs() < base.abs()).all() and (out > 0).all()


def test_synthesis_with_the_exact_gaussian_denoiser_draws_the_prior(gaussian_denoiser) -> None:
    """Unconditional DDPM samples under the exact eps for N(0, I) data have unit variance."""
    from timeseries.refine import synthesize

    x = synthesize(gaussian_denoiser, n=64, channels=1, length=32, seed=0)
    assert x.shape == (64, 1, 32)
    n = x.numel()
    assert abs(x.mean().item()) < 4 / n**0.5
    assert abs(x.var().item() - 1.0) < 4 * (2 / n) ** 0.5


def test_ridge_base_forecaster_and_refine_forecasts() -> None:
    import pandas as pd

    from common.training import TrainerConfig
    from timeseries.estimator import TSDiffEstimator
    from timeseries.refine import refine_forecasts, ridge_forecasts

    t = np.arange(200)
    data = [{"item_id": i, "start": pd.Period("2021-01-01 00:00", freq="h"),
             "target": (10 + 3 * np.sin(2 * np.pi * t / 24 + i)).astype(np.float32)}
            for i in range(2)]
    inputs = [{**e, "target": e["target"][:-12]} for e in data]
    base = ridge_forecasts(inputs, inputs, context=48, prediction_length=12, num_samples=8)
    truth = np.stack([e["target"][-12:] for e in data])
    median = np.stack([np.median(f.samples, 0) for f in base])
    assert np.abs(median - truth).mean() < 0.05  # a sine is exactly linear-predictable
    assert base[0].start_date == inputs[0]["start"] + 188
    pred = TSDiffEstimator("h", 12, context_length=24, use_lags=False, hidden=8, blocks=1,
                           batch_size=8, num_batches_per_epoch=2,
                           trainer=TrainerConfig(max_steps=2, accelerator="cpu",
                                                 enable_progress_bar=False, ema_decay=None)
                           ).train(inputs)
    refined = refine_forecasts(pred, inputs, base, steps=0)  # zero steps: identity
    for r, b in zip(refined, base):
        assert np.allclose(r.samples, b.samples, rtol=1e-5, atol=1e-4)
    moved = refine_forecasts(pred, inputs, base, steps=3, mode="langevin")
    assert moved[0].samples.shape == (8, 12) and np.isfinite(moved[0].samples).all()


def test_langevin_refinement_has_the_closed_form_stationary_variance() -> None:
    # eps_theta = 0: the denoising loss does not depend on y, the energy is w ||y - base||^2 and
    # the unadjusted Langevin chain y' = y - lr 2 w (y - base) + sqrt(2 lr T) xi is an AR(1)
    # with stationary variance T / (2 w (1 - lr w)) around the base forecast
    lr, w, temp = 0.05, 1.0, 0.01
    windows = torch.zeros(2, 1, 20)
    mask = torch.ones_like(windows)
    base = torch.zeros(2, 50, 20)
    out = refine(_den(), windows, mask, base, 20, steps=300, lr=lr, weight=w, regularizer="mse",
                 mode="langevin", noise=temp, seed=0)
    var = temp / (2 * w * (1 - lr * w))
    n = out.numel()  # independent entries after 300 steps (autocorrelation 0.9^300)
    assert abs(out.mean().item()) < 4 * (var / n) ** 0.5
    assert abs(out.var().item() / var - 1) < 4 * (2 / n) ** 0.5
    hotter = refine(_den(), windows, mask, base, 20, steps=300, lr=lr, weight=w,
                    regularizer="mse", mode="langevin", noise=10 * temp, seed=0)
    assert abs(hotter.var().item() / (10 * var) - 1) < 4 * (2 / n) ** 0.5
