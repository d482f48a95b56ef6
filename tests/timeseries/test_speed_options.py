"""Speed options of the backbone: torch.compile with an eager fallback, bf16 forecasts."""

from __future__ import annotations

import pytest
import torch

from timeseries.guidance import guided_forecast
from timeseries.module import compile_backbone, tsdiff_denoiser


def test_compile_falls_back_to_eager_when_the_compiler_fails(seed: int, monkeypatch) -> None:
    den = tsdiff_denoiser(1, hidden=8, blocks=1, step_emb=8, state=4)
    x, t = torch.randn(2, 1, 12), torch.tensor([3.0, 50.0])
    expected = den.backbone(x, t)

    def broken(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    keys = set(den.state_dict())
    compile_backbone(den.backbone)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = den.backbone(x, t)
    assert torch.equal(got, expected)
    assert torch.equal(den.backbone(x, t), expected)  # eager from then on, no second warning
    assert set(den.state_dict()) == keys  # checkpoints unchanged


@pytest.mark.slow
def test_compiled_backbone_matches_eager(seed: int) -> None:
    den = tsdiff_denoiser(1, hidden=8, blocks=1, step_emb=8, state=4)
    x, t = torch.randn(2, 1, 12), torch.tensor([3.0, 50.0])
    expected = den.backbone(x, t)
    compile_backbone(den.backbone)
    assert torch.allclose(den.backbone(x, t), expected, atol=1e-5)


def test_bf16_forecast_stays_close_to_float32(seed: int) -> None:
    den = tsdiff_denoiser(1, hidden=16, blocks=2, step_emb=16, state=8).requires_grad_(False)
    obs = torch.randn(2, 1, 30).cumsum(-1) / 5
    mask = torch.ones_like(obs)
    mask[..., -6:] = 0
    args = dict(num_samples=8, guidance="quantile", scale=2.0, sampler="ddim", steps=5)
    f32 = guided_forecast(den, obs, mask, **args)
    bf16 = guided_forecast(den, obs, mask, precision="bf16", **args)
    assert f32.dtype == bf16.dtype == torch.float32
    # same seeds and trajectories: bf16 dense layers perturb the samples by a fraction of their
    # spread, never by a shift of their scale
    err = (bf16 - f32).abs().mean() / f32.std()
    assert 0 < err < 0.05


def test_bf16_mixed_training_and_precision_survive_serialization(seed: int, tmp_path) -> None:
    import numpy as np

    from common.training import TrainerConfig
    from timeseries.estimator import TSDiffEstimator, TSDiffPredictor

    data = [{"start": "2020-01-01 00:00", "target": 10 + np.sin(np.arange(120) / 4) + i}
            for i in range(2)]
    trainer = TrainerConfig(max_steps=3, accelerator="cpu", enable_progress_bar=False,
                            precision="bf16-mixed", ema_decay=None)
    est = TSDiffEstimator("h", 12, context_length=24, use_lags=False, hidden=8, blocks=1,
                          batch_size=8, num_batches_per_epoch=3, trainer=trainer,
                          precision="bf16")
    pred = est.train(data)
    assert all(torch.isfinite(p).all() for p in pred.denoiser.parameters())
    assert all(p.dtype == torch.float32 for p in pred.denoiser.parameters())  # fp32 master
    pred.serialize(tmp_path / "p")
    loaded = TSDiffPredictor.deserialize(tmp_path / "p")
    assert loaded.config.precision == "bf16"
    fc = next(iter(loaded.predict(data, num_samples=4, sampler="ddim", steps=3,
                                  progress=False)))
    assert fc.samples.shape == (4, 12) and np.isfinite(fc.samples).all()


def test_forecast_does_not_depend_on_the_row_chunk(seed: int) -> None:
    den = tsdiff_denoiser(1, hidden=8, blocks=1, step_emb=8, state=4).requires_grad_(False)
    obs = torch.randn(3, 1, 20)
    mask = torch.ones_like(obs)
    mask[..., -5:] = 0
    args = dict(num_samples=5, guidance="quantile", scale=2.0, sampler="ddpm", steps=6)
    small = guided_forecast(den, obs, mask, chunk=4, **args)
    large = guided_forecast(den, obs, mask, chunk=400, **args)
    assert torch.allclose(small, large, atol=1e-5)
