"""Windows of a series with lags as extra channels and mean scaling (TSDiff Sec. 3, App. B.1).

A window ending at ``end`` (exclusive) has L = context + prediction steps; channel 0 is the target
y[end - L : end], channel 1 + j the lagged target y[end - L - lag_j : end - lag_j]. Values outside
the series (left padding, or the future during forecasting) are 0 with observed-mask 0, as
GluonTS's ``AddObservedValuesIndicator`` + left padding do. Scaling divides by the mean absolute
observed value of the context part of the target (GluonTS ``MeanScaler``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pandas.tseries.frequencies import to_offset

# TSDiff's get_lags_for_freq (hourly: 1-7, 14, 21, 28 days; daily/business-daily: 30-day steps)
HOURLY_LAGS = [24 * i for i in (1, 2, 3, 4, 5, 6, 7, 14, 21, 28)]
DAILY_LAGS = [30 * i for i in range(1, 13)]
MIN_SCALE = 1e-5


def default_lags(freq: str) -> list[int]:
    """TSDiff's lags for a pandas frequency string (hourly or (business-)daily; else none)."""
    name = to_offset(freq).name.upper()
    if name == "H":
        return list(HOURLY_LAGS)
    if name in ("D", "B"):
        return list(DAILY_LAGS)
    return []


def window_index(ends: np.ndarray, length: int, lags: Sequence[int]) -> np.ndarray:
    """Integer positions [n, C, L] into the series for windows ending at ``ends`` (exclusive)."""
    shifts = np.asarray([0, *lags], dtype=np.int64)
    pos = np.arange(length, dtype=np.int64) - length
    ends = np.asarray(ends, dtype=np.int64)[:, None, None]
    return ends + pos[None, None, :] - shifts[None, :, None]


def gather_windows(values: np.ndarray, observed: np.ndarray, ends: np.ndarray, length: int,
                   lags: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Windows (x, mask), each [n, 1 + len(lags), length], from one series (NaN = missing)."""
    idx = window_index(ends, length, lags)
    inside = (idx >= 0) & (idx < len(values))
    safe = np.clip(idx, 0, max(len(values) - 1, 0))
    mask = inside & observed[safe].astype(bool)
    x = np.where(mask, np.nan_to_num(values[safe]), 0.0)
    return x.astype(np.float32), mask.astype(np.float32)


def mean_scale(x: np.ndarray, mask: np.ndarray, context: int) -> np.ndarray:
    """Per-window scale [n]: mean |y| over the observed context (GluonTS MeanScaler), >= MIN_SCALE.

    Windows with no observed non-zero context value fall back to the batch's mean scale, then 1.
    """
    ctx, m = np.abs(x[:, 0, :context]), mask[:, 0, :context]
    num, den = (ctx * m).sum(1), m.sum(1)
    scale = np.where(den > 0, num / np.maximum(den, 1), 0.0)
    good = scale > MIN_SCALE
    fallback = scale[good].mean() if good.any() else 1.0
    return np.where(good, scale, fallback).astype(np.float32)


def forecast_window(values: np.ndarray, observed: np.ndarray, context: int, prediction: int,
                    lags: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The window (x, mask) [C, L] whose last ``prediction`` target steps follow the series' end."""
    x, m = gather_windows(values, observed, np.array([len(values) + prediction]),
                          context + prediction, lags)
    return x[0], m[0]


def sample_training_windows(series: Sequence[tuple[np.ndarray, np.ndarray]], n: int, context: int,
                            prediction: int, lags: Sequence[int], rng: np.random.Generator
                            ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random training windows: a series uniformly, then an end point uniformly.

    The end lies in [min_end, len] where a window keeps at least one observed context step; the
    rest is left-padded with mask 0.
    """
    length = context + prediction
    which = rng.integers(0, len(series), size=n)
    xs, ms = [], []
    for k in np.unique(which):
        values, observed = series[k]
        count = int((which == k).sum())
        lo = min(prediction + 1, len(values))
        ends = rng.integers(lo, len(values) + 1, size=count)
        x, m = gather_windows(values, observed, ends, length, lags)
        xs.append(x)
        ms.append(m)
    order = rng.permutation(n)
    return np.concatenate(xs)[order], np.concatenate(ms)[order]
