"""GluonTS estimator/predictor and pandas API end to end on tiny data (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.training import TrainerConfig
from timeseries.api import TSDiff, plot_forecasts
from timeseries.estimator import TSDiffEstimator, TSDiffPredictor
from timeseries.evaluation import evaluate, truncate

FAST = dict(sampler="ddim", steps=10)


def _trainer(steps: int, ema: float | None = None) -> TrainerConfig:
    return TrainerConfig(max_steps=steps, accelerator="cpu", enable_progress_bar=False,
                         ema_decay=ema, seed=0)


def _sine(n_series: int = 3, length: int = 24 * 12) -> list[dict]:
    t = np.arange(length)
    return [{"item_id": f"s{i}", "start": pd.Period("2021-01-01 00:00", freq="h"),
             "target": (10 + 3 * np.sin(2 * np.pi * t / 24 + i)).astype(np.float32)}
            for i in range(n_series)]


@pytest.fixture(scope="module")
def tiny_predictor() -> TSDiffPredictor:
    est = TSDiffEstimator("h", 12, context_length=24, lags=[24], hidden=8, blocks=1,
                          batch_size=8, num_batches_per_epoch=4, trainer=_trainer(4))
    return est.train(_sine(2, 100))


def test_serialize_round_trip_gives_identical_forecasts(tiny_predictor, tmp_path) -> None:
    from gluonts.model.predictor import Predictor

    data = truncate(_sine(2, 100), 12)
    a = list(tiny_predictor.predict(data, num_samples=4, progress=False, **FAST))
    tiny_predictor.serialize(tmp_path)
    loaded = Predictor.deserialize(tmp_path)  # gluonts dispatches to TSDiffPredictor
    assert isinstance(loaded, TSDiffPredictor)
    b = list(loaded.predict(data, num_samples=4, progress=False, **FAST))
    for fa, fb in zip(a, b):
        assert fa.samples.shape == (4, 12)
        assert np.array_equal(fa.samples, fb.samples)
        assert fa.start_date == fb.start_date == data[0]["start"] + 88


def test_short_series_is_left_padded(tiny_predictor) -> None:
    short = [{"item_id": "short", "start": pd.Period("2021-01-01 00:00", freq="h"),
              "target": np.array([1.0, np.nan, 2.0, 3.0], dtype=np.float32)}]
    (f,) = tiny_predictor.predict(short, num_samples=3, progress=False, **FAST)
    assert f.samples.shape == (3, 12) and np.isfinite(f.samples).all()


def test_gluonts_evaluation_protocol(tiny_predictor) -> None:
    from gluonts.dataset.split import split  # noqa: F401  (gluonts evaluation stack imports)
    from gluonts.evaluation import make_evaluation_predictions

    test = _sine(2, 100)
    fc_it, ts_it = make_evaluation_predictions(test, tiny_predictor, num_samples=4)
    fcs = list(fc_it)
    assert len(fcs) == 2 and fcs[0].samples.shape == (4, 12)
    metrics = evaluate(fcs, test)
    assert {"crps", "ND", "NRMSE", "MASE"} <= set(metrics) and metrics["crps"] > 0


def test_pandas_fit_predict_save_load(tmp_path) -> None:
    idx = pd.date_range("2021-01-01", periods=24 * 5, freq="h")
    wide = pd.DataFrame({k: 5 + np.sin(2 * np.pi * np.arange(len(idx)) / 24 + ph)
                         for k, ph in (("a", 0.0), ("b", 1.0))}, index=idx)
    model = TSDiff(12, context_length=24, use_lags=False, hidden=8, blocks=1, batch_size=8,
                   num_batches_per_epoch=3, trainer=_trainer(3)).fit(wide)
    frame, samples = model.predict(wide, horizon=6, quantiles=(0.1, 0.5, 0.9), num_samples=8,
                                   return_samples=True, progress=False, **FAST)
    assert samples.shape == (2, 8, 6)
    assert len(frame) == 12 and list(frame.columns) == ["item_id", "timestamp", "mean", "q0.1",
                                                         "q0.5", "q0.9"]
    assert (frame["q0.1"] <= frame["q0.5"]).all() and (frame["q0.5"] <= frame["q0.9"]).all()
    assert frame["timestamp"].iloc[0] == idx[-1] + pd.Timedelta(hours=1)
    model.save(tmp_path / "m")
    again = TSDiff.load(tmp_path / "m").predict(wide, horizon=6, num_samples=8, progress=False,
                                                **FAST)
    assert np.allclose(again["q0.5"], frame["q0.5"])
    plot_forecasts(wide, frame, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_long_frame_bad_horizon(tmp_path) -> None:
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="not fitted"):
        TSDiff(12).predict(pd.DataFrame({"timestamp": [], "target": []}))


def test_tiny_training_learns_a_sine() -> None:
    """A small model trained briefly forecasts a pure sine far better than a wrong-period naive."""
    data = _sine(3, 24 * 12)
    est = TSDiffEstimator("h", 24, context_length=48, use_lags=False, hidden=32, blocks=2,
                          batch_size=32, num_batches_per_epoch=25,
                          trainer=_trainer(200, ema=0.99))
    pred = est.train(truncate(data, 24))
    inputs = truncate(data, 24)
    fc = list(pred.predict(inputs, num_samples=16, progress=False, sampler="ddpm", steps=50))
    crps = evaluate(fc, data)["crps"]
    wrong = evaluate(_naive(inputs, 12), data)["crps"]  # anti-phase seasonal naive
    assert crps < 0.05, crps  # amplitude 3 on level 10: a flat forecast scores ~0.19
    assert crps < 0.2 * wrong


def _naive(inputs, season):
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    return list(SeasonalNaivePredictor(prediction_length=24, season_length=season)
                .predict(inputs))


def test_unknown_sampler_is_rejected_at_construction() -> None:
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown forecast sampler 'euler'.*dpmpp_2m"):
        TSDiffEstimator("h", 24, sampler="euler")
    assert TSDiffEstimator("h", 24, sampler="dpmpp_2m").config.sampler == "dpmpp_2m"


def test_resumed_training_draws_new_windows_and_a_bad_checkpoint_is_named(tmp_path) -> None:
    from common.errors import CheckpointError

    est = TSDiffEstimator("h", 12, context_length=24, use_lags=False, hidden=8, blocks=1,
                          batch_size=8, num_batches_per_epoch=2, trainer=_trainer(2),
                          checkpoint_dir=tmp_path)
    data = _sine(2, 100)

    def first(start: int) -> np.ndarray:
        return next(iter(est.create_loader(data, start)))["x"].numpy()

    assert np.array_equal(first(0), first(0))  # a fresh run is reproducible
    assert np.array_equal(first(500), first(500))  # so is a resumed one
    assert not np.allclose(first(0), first(500))  # but it does not replay steps 0, 1, ...
    est.train(data)  # writes last.ckpt at step 2; a second call resumes from it
    from timeseries.estimator import _global_step

    assert _global_step(str(tmp_path / "last.ckpt")) == 2
    (tmp_path / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.ckpt"):
        est.train(data)
