"""Per-sampler default guidance scales and the validation-window scale chooser."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError
from timeseries.estimator import TSDiffConfig, TSDiffEstimator, TSDiffPredictor
from timeseries.evaluation import evaluate, truncate
from timeseries.guidance import ODE_SCALE_FRACTION, PAPER_SCALES, default_scale
from timeseries.scale import choose_scale


def _series(n: int = 3, length: int = 60) -> list[dict]:
    t = np.arange(length)
    return [{"item_id": f"s{i}", "start": pd.Period("2021-01-01 00:00", freq="h"),
             "target": (5 + np.sin(2 * np.pi * t / 12 + i)).astype(np.float32)}
            for i in range(n)]


@pytest.fixture(scope="module")
def untrained() -> TSDiffPredictor:
    cfg = TSDiffConfig(freq="h", prediction_length=6, context_length=18, hidden=8, blocks=1,
                       state=8, step_emb=16, scale=2.0)
    return TSDiffPredictor(cfg.build(), cfg, seed=3)


def test_defaults_per_sampler_follow_the_paper_for_ddpm() -> None:
    for name, s in (("m4_hourly", 2.0), ("exchange_rate_nips", 8.0), ("unknown", 2.0)):
        cfg = TSDiffEstimator("h", 24, dataset_name=name).config
        assert cfg.scale_for("ddpm") == s == PAPER_SCALES.get(name, 2.0)
        assert cfg.scale_for("ddim") == cfg.scale_for("dpmpp_2m") == s * ODE_SCALE_FRACTION
    assert TSDiffEstimator("h", 24, dataset_name="m4_hourly").config.scale_for("ddim") == 0.25
    # an explicit scale holds for every sampler; ode_scale only for the few-step ones
    cfg = TSDiffEstimator("h", 24, dataset_name="m4_hourly", scale=0.7).config
    assert cfg.scale_for("ddpm") == cfg.scale_for("ddim") == 0.7
    cfg = TSDiffEstimator("h", 24, dataset_name="m4_hourly", ode_scale=0.3).config
    assert (cfg.scale_for("ddpm"), cfg.scale_for("ddim")) == (2.0, 0.3)
    with pytest.raises(ConfigError, match="unknown forecast sampler"):
        default_scale("euler", 2.0)
    # configs serialized before ode_scale existed load with the per-sampler default
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "ode_scale"}
    assert TSDiffConfig(**old).scale_for("ddim") == 0.25


def test_predict_without_scale_uses_the_samplers_default(untrained) -> None:
    data = truncate(_series(2), 6)

    def run(**kw) -> np.ndarray:
        fc = untrained.predict(data, num_samples=3, sampler="ddim", steps=4, progress=False, **kw)
        return np.stack([f.samples for f in fc])

    default = run()
    assert np.array_equal(default, run(scale=2.0 * ODE_SCALE_FRACTION))
    assert not np.allclose(default, run(scale=2.0))


def test_choose_scale_returns_the_validation_argmin_and_applies_it(untrained) -> None:
    series = _series(4)
    cand = (0.0, 0.5, 4.0)
    best, crps = choose_scale(untrained, series, cand, sampler="ddim", steps=3, num_samples=4,
                              max_series=2, apply=False)
    assert set(crps) == set(cand) and best == min(crps, key=crps.get)
    assert len(set(crps.values())) == 3  # the scale changes the forecasts
    # every-other series (max_series=2) of the last 6 steps: recompute one candidate directly
    val = series[::2]
    fc = untrained.predict(truncate(val, 6), num_samples=4, sampler="ddim", steps=3,
                           scale=0.5, progress=False)
    assert crps[0.5] == pytest.approx(evaluate(list(fc), val)["crps"], rel=1e-12)
    assert untrained.config.ode_scale is None
    choose_scale(untrained, series, cand, sampler="ddim", steps=3, num_samples=4, max_series=2)
    try:
        assert untrained.config.scale_for("ddim") == best
        assert untrained.config.scale_for("ddpm") == 2.0
    finally:
        untrained.config.ode_scale = None


def test_choose_scale_bad_input(untrained) -> None:
    with pytest.raises(ConfigError, match="candidates"):
        choose_scale(untrained, _series(1), ())
    short = [{"item_id": "tiny", "start": pd.Period("2021-01-01", freq="h"),
              "target": np.ones(5, dtype=np.float32)}]
    with pytest.raises(DataError, match="tiny.*prediction_length=6"):
        choose_scale(untrained, short, (1.0,))
