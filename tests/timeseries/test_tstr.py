"""Train-on-synthetic, test-on-real with DeepAR: data checks and an end-to-end tiny run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError
from timeseries.tstr import synthetic_dataset, tstr_deepar, window_lags


def _sines(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length)
    return 1 + 0.5 * np.sin(2 * np.pi * (t[None] + rng.integers(0, 24, (n, 1))) / 24)


def test_synthetic_dataset_rejects_bad_windows() -> None:
    with pytest.raises(DataError, match="shape"):
        synthetic_dataset(np.zeros(10), "h")
    bad = np.ones((3, 8))
    bad[2, 4] = np.nan
    with pytest.raises(DataError, match="synthetic window 2"):
        synthetic_dataset(bad, "h")
    entries = synthetic_dataset(np.ones((2, 8)), "h")
    assert [e["item_id"] for e in entries] == ["synthetic_0", "synthetic_1"]
    assert entries[0]["start"] == pd.Period("2000-01-01", freq="h")


def test_tstr_deepar_forecasts_every_real_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    synthetic = _sines(32, 60, rng)
    real = 10 * _sines(3, 96, rng)
    inputs = [{"start": pd.Period("2020-01-01", freq="h"), "target": r, "item_id": f"r{i}"}
              for i, r in enumerate(real)]
    with pytest.raises(DataError, match="length 60"):
        tstr_deepar(synthetic, inputs, "h", 24, 48, max_steps=1)
    fc = tstr_deepar(synthetic, inputs, "h", 12, 48, max_steps=3, num_samples=5)
    assert [f.item_id for f in fc] == ["r0", "r1", "r2"]
    assert all(f.samples.shape == (5, 12) and np.isfinite(f.samples).all() for f in fc)
    assert fc[0].start_date == pd.Period("2020-01-01", freq="h") + 96


def test_window_lags_fit_inside_a_window() -> None:
    """M4 hourly windows (312 + 48): GluonTS' hourly lags up to 156 steps (half the history),
    DeepAR context 312 - 145; every lag of every training target is real, not padding."""
    context, lags = window_lags("h", 360, 48, 312)
    assert lags == [1, 2, 3, 4, 5, 6, 7, 23, 24, 25, 47, 48, 49, 71, 72, 73, 95, 96, 97, 119,
                    120, 121, 143, 144, 145]
    assert context == 312 - 145 and context + max(lags) == 360 - 48
    assert window_lags("h", 60, 12, 48) == (24, [1, 2, 3, 4, 5, 6, 7, 23, 24])
    assert window_lags("h", 30, 24, 100) == (3, [1, 2, 3])  # tiny windows keep short lags
    assert window_lags("D", 10, 8, 10)[1] == [1]
