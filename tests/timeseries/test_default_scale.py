"""Per-sampler default guidance scales and the validation-window scale chooser."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError
from timeseries.estimator import TSDiffConfig, TSDiffEstimator, TSDiffPredictor
from timeseries.evaluation import evaluate, truncate
from timeseries.guidance import (
    MSE_ODE_SCALE_FRACTION,
    ODE_SCALE_FRACTION,
    PAPER_SCALES,
    default_scale,
)
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


def test_mse_guidance_has_its_own_few_step_default() -> None:
    # TSDiff-MS: 1/20 of the DDPM scale (M4: 0.1, chosen on validation windows), Q keeps 1/8
    assert MSE_ODE_SCALE_FRACTION < ODE_SCALE_FRACTION
    for name, s in (("m4_hourly", 2.0), ("exchange_rate_nips", 8.0)):
        q = TSDiffEstimator("h", 24, dataset_name=name).config
        ms = TSDiffEstimator("h", 24, dataset_name=name, guidance="mse").config
        for sampler in ("ddim", "dpmpp_2m"):
            assert q.scale_for(sampler) == s * ODE_SCALE_FRACTION
            assert ms.scale_for(sampler) == q.scale_for(sampler, "mse")
            assert ms.scale_for(sampler) == pytest.approx(s * MSE_ODE_SCALE_FRACTION, rel=1e-12)
            assert ms.scale_for(sampler, "quantile") == q.scale_for(sampler)
        assert ms.scale_for("ddpm") == q.scale_for("ddpm") == s  # DDPM: the paper's s for both
    assert TSDiffEstimator("h", 24, dataset_name="m4_hourly", guidance="mse").config.scale_for(
        "ddim") == pytest.approx(0.1, rel=1e-12)
    # explicit scales hold for either guidance
    for kw in ({"scale": 0.7}, {"ode_scale": 0.7}):
        cfg = TSDiffEstimator("h", 24, dataset_name="m4_hourly", **kw).config
        assert cfg.scale_for("ddim", "mse") == cfg.scale_for("ddim", "quantile") == 0.7
    with pytest.raises(ConfigError, match="unknown guidance"):
        default_scale("ddim", 2.0, "l1")


def test_predict_without_scale_uses_the_samplers_default(untrained) -> None:
    data = truncate(_series(2), 6)

    def run(**kw) -> np.ndarray:
        fc = untrained.predict(data, num_samples=3, sampler="ddim", steps=4, progress=False, **kw)
        return np.stack([f.samples for f in fc])

    default = run()
    assert np.array_equal(default, run(scale=2.0 * ODE_SCALE_FRACTION))
    assert not np.allclose(default, run(scale=2.0))
    # predict(guidance="mse") without a scale takes MS's own default, not the config's Q one
    ms = run(guidance="mse")
    assert np.array_equal(ms, run(guidance="mse", scale=2.0 * MSE_ODE_SCALE_FRACTION))
    assert not np.allclose(ms, run(guidance="mse", scale=2.0 * ODE_SCALE_FRACTION))


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
    # guidance="mse": tuned with MS forecasts, stored together with MS as the default guidance
    best, crps = choose_scale(untrained, series, cand, sampler="ddim", steps=3, num_samples=4,
                              max_series=2, guidance="mse")
    try:
        fc = untrained.predict(truncate(val, 6), num_samples=4, sampler="ddim", steps=3,
                               scale=0.5, progress=False, guidance="mse")
        assert crps[0.5] == pytest.approx(evaluate(list(fc), val)["crps"], rel=1e-12)
        assert untrained.config.guidance == "mse" and untrained.config.scale_for("ddim") == best
    finally:
        untrained.config.ode_scale, untrained.config.guidance = None, "quantile"


def test_choose_scale_bad_input(untrained) -> None:
    with pytest.raises(ConfigError, match="candidates"):
        choose_scale(untrained, _series(1), ())
    with pytest.raises(ConfigError, match="unknown guidance"):
        choose_scale(untrained, _series(1), (1.0,), guidance="l1")
    short = [{"item_id": "tiny", "start": pd.Period("2021-01-01", freq="h"),
              "target": np.ones(5, dtype=np.float32)}]
    with pytest.raises(DataError, match="tiny.*prediction_length=6"):
        choose_scale(untrained, short, (1.0,))
