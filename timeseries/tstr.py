"""Train-on-synthetic, test-on-real with GluonTS DeepAR (TSDiff Sec. 5.3; Esteban et al. 2017).

The synthetic windows from :func:`timeseries.refine.synthesize` become a training set of short
series; a DeepAR model trained only on them forecasts the real test inputs, and its CRPS against
the real future says how useful the synthetic data is (the ridge variant is
:func:`timeseries.refine.linear_predictive_score`).
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from common.errors import DataError


def synthetic_dataset(synthetic: np.ndarray, freq: str, start: str = "2000-01-01"
                      ) -> list[dict[str, Any]]:
    """GluonTS entries (``start``, ``target``, ``item_id``) from synthetic windows [n, length]."""
    arr = np.asarray(synthetic, dtype=np.float32)
    if arr.ndim != 2:
        raise DataError(f"synthetic windows have shape {arr.shape}", file="synthetic",
                        field="shape", expected="[n_windows, length]")
    bad = np.flatnonzero(~np.isfinite(arr).all(1))
    if len(bad):
        raise DataError(f"synthetic window {int(bad[0])} has non-finite values",
                        file=f"synthetic window {int(bad[0])}", field="target",
                        expected="finite numbers")
    import pandas as pd

    first = pd.Period(start, freq=freq)
    return [{"start": first, "target": row, "item_id": f"synthetic_{i}"}
            for i, row in enumerate(arr)]


def window_lags(freq: str, length: int, prediction_length: int, context_length: int
                ) -> tuple[int, list[int]]:
    """DeepAR's ``(context_length, lags_seq)`` for training on windows of ``length`` steps.

    DeepAR reads ``context + max(lags)`` steps before each prediction range; a window has only
    ``length - prediction_length``, and GluonTS zero-pads the rest, so with its default lags (up
    to ~30 days for hourly data) the model learns from padding that real histories never show.
    Keep GluonTS' lags for ``freq`` up to half the window's history (at least lag 1) and shorten
    the context to what is left (at most ``context_length``): every lag is real in training.
    """
    from gluonts.time_feature import get_lags_for_frequency

    history = length - prediction_length
    lags = [lag for lag in get_lags_for_frequency(freq) if lag <= history // 2] or [1]
    return max(1, min(context_length, history - max(lags))), lags


def tstr_deepar(synthetic: np.ndarray, inputs: list[dict[str, Any]], freq: str,
                prediction_length: int, context_length: int, max_steps: int = 200,
                num_samples: int = 100, seed: int = 0, batch_size: int = 64,
                lags_seq: list[int] | None = None) -> list[Any]:
    """Train GluonTS DeepAR on ``synthetic`` windows and forecast the real ``inputs`` with it.

    Args:
        synthetic: synthetic (scaled) target windows [n, length], length >= context + horizon.
        inputs: real test inputs (GluonTS entries, history only).
        freq: pandas frequency of the real data (used for DeepAR's time features).
        prediction_length: forecast horizon.
        context_length: DeepAR's longest context; with the default lags it is shortened so
            that context + largest lag fits in a window (``window_lags``).
        max_steps: DeepAR training steps.
        num_samples: samples per forecast.
        seed: seed of Lightning and the forecast sampling.
        batch_size: DeepAR batch size.
        lags_seq: DeepAR's lags (default ``window_lags``: GluonTS' lags for ``freq`` that fit
            in a window; an explicit list keeps ``context_length`` and may reach before a
            window's start, where GluonTS zero-pads).

    Returns:
        One ``SampleForecast`` per input, from a model that saw only synthetic data.
    """
    import lightning.pytorch as pl
    from gluonts.torch import DeepAREstimator

    data = synthetic_dataset(synthetic, freq)
    length = len(data[0]["target"])
    if length < context_length + prediction_length:
        raise DataError(f"synthetic windows have length {length}", file="synthetic",
                        field="length", expected=f">= context {context_length} + horizon "
                        f"{prediction_length}")
    if lags_seq is None:
        context_length, lags_seq = window_lags(freq, length, prediction_length, context_length)
    pl.seed_everything(seed, verbose=False)
    est = DeepAREstimator(freq=freq, prediction_length=prediction_length,
                          context_length=context_length, batch_size=batch_size,
                          num_batches_per_epoch=50, lags_seq=lags_seq,
                          trainer_kwargs={"max_steps": max_steps, "accelerator": "cpu",
                                          "enable_progress_bar": False, "logger": False,
                                          "enable_model_summary": False,
                                          "default_root_dir": tempfile.mkdtemp()})
    predictor = est.train(data)
    return list(predictor.predict(inputs, num_samples=num_samples))
