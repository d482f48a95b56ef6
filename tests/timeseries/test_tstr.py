"""Train-on-synthetic, test-on-real with DeepAR: data checks and an end-to-end tiny run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError
from timeseries.tstr import synthetic_dataset, tstr_deepar


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
    fc = tstr_deepar(synthetic, inputs, "h", 12, 48, max_steps=3, num_samples=5, lags_seq=[1])
    assert [f.item_id for f in fc] == ["r0", "r1", "r2"]
    assert all(f.samples.shape == (5, 12) and np.isfinite(f.samples).all() for f in fc)
    assert fc[0].start_date == pd.Period("2020-01-01", freq="h") + 96
