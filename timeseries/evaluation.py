"""Forecast evaluation with GluonTS (CRPS as mean weighted quantile loss over 0.05..0.95, ND,
NRMSE, MASE; as TSDiff Sec. 5 reports) and the seasonal-naive baseline with GluonTS seasonality.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from gluonts.model.forecast import SampleForecast

QUANTILES = tuple(np.round(np.arange(1, 20) / 20, 2))


def to_pandas_series(entry: dict[str, Any]) -> pd.DataFrame:
    """A data entry as the one-column frame GluonTS' ``Evaluator`` expects."""
    idx = pd.period_range(entry["start"], periods=len(entry["target"]))
    return pd.DataFrame(np.asarray(entry["target"], dtype=np.float64), index=idx)


def evaluate(forecasts: Iterable[SampleForecast], test: Iterable[dict[str, Any]],
             freq: str | None = None) -> dict[str, float]:
    """GluonTS ``Evaluator`` metrics: crps (mean_wQuantileLoss), ND, NRMSE, MASE, MSE."""
    from gluonts.evaluation import Evaluator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = Evaluator(quantiles=QUANTILES, num_workers=0)
        agg, _ = ev((to_pandas_series(e) for e in test), iter(list(forecasts)))
    return {"crps": float(agg["mean_wQuantileLoss"]), "ND": float(agg["ND"]),
            "NRMSE": float(agg["NRMSE"]), "MASE": float(agg["MASE"]), "MSE": float(agg["MSE"])}


def season_length(freq: str) -> int:
    """GluonTS' seasonality for a frequency (24 hourly, 5 business-daily, 7 daily, ...)."""
    from gluonts.time_feature import get_seasonality

    return int(get_seasonality(freq))


def truncate(test: Iterable[dict[str, Any]], prediction_length: int) -> list[dict[str, Any]]:
    """Inputs of the forecasters: each test entry without its last ``prediction_length`` steps."""
    return [{**e, "target": np.asarray(e["target"])[:-prediction_length]} for e in test]


def seasonal_naive(inputs: Iterable[dict[str, Any]], prediction_length: int, freq: str
                   ) -> list[SampleForecast]:
    """GluonTS' ``SeasonalNaivePredictor`` with GluonTS' seasonality for ``freq``."""
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    pred = SeasonalNaivePredictor(prediction_length=prediction_length,
                                  season_length=season_length(freq))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(pred.predict(list(inputs)))
