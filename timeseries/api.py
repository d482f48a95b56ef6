"""pandas front end of TSDiff (Kollovieh et al. 2023): ``TSDiff(...).fit(df)``,
``.predict(df) -> quantile DataFrame``, ``save``/``load``, and ``plot_forecasts``.

Frames are long (``item_id``, ``timestamp``, ``target``) or wide (a DatetimeIndex and one
column per series); both are checked (duplicate or unsorted timestamps, non-numeric targets,
all-missing series, unknown frequency) with errors naming the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError

from .dataset import entries_to_frame, frame_to_entries
from .estimator import TSDiffEstimator, TSDiffPredictor


class TSDiff:
    """Self-guided diffusion forecaster on pandas frames.

    Args:
        prediction_length: horizon the model is trained for.
        freq: pandas frequency; inferred from the timestamps when None.
        **kwargs: any ``TSDiffEstimator`` option (context_length, guidance, scale, trainer, ...).
    """

    def __init__(self, prediction_length: int, freq: str | None = None, **kwargs: Any) -> None:
        self.prediction_length, self.freq, self.kwargs = prediction_length, freq, kwargs
        self.predictor: TSDiffPredictor | None = None

    def fit(self, df: pd.DataFrame) -> TSDiff:
        """Train on every series of ``df``."""
        entries, freq = frame_to_entries(df, self.freq)
        self.freq = freq
        est = TSDiffEstimator(freq, self.prediction_length, **self.kwargs)
        self.predictor = est.train(entries)
        return self

    def _need_model(self) -> TSDiffPredictor:
        if self.predictor is None:
            raise ConfigError("TSDiff is not fitted: call fit(df) or TSDiff.load(path) first")
        return self.predictor

    def predict(self, df: pd.DataFrame, horizon: int | None = None,
                quantiles: Sequence[float] = (0.1, 0.5, 0.9), return_samples: bool = False,
                num_samples: int = 100, **kwargs: Any) -> pd.DataFrame | tuple[pd.DataFrame,
                                                                                 np.ndarray]:
        """Forecast ``horizon`` (<= prediction_length) steps after each series' end.

        Returns a long DataFrame (item_id, timestamp, mean, one column per quantile) and, when
        ``return_samples``, also the samples [items, num_samples, horizon].
        """
        pred = self._need_model()
        horizon = horizon or self.prediction_length
        if not 0 < horizon <= self.prediction_length:
            raise ConfigError(f"horizon {horizon} must be in 1..{self.prediction_length} (the "
                              "trained prediction_length)")
        if any(not 0 < q < 1 for q in quantiles):
            raise ConfigError(f"quantiles must lie in (0, 1), got {list(quantiles)}")
        entries, _ = frame_to_entries(df, self.freq)
        rows, samples = [], []
        for e, f in zip(entries, pred.predict(entries, num_samples=num_samples, **kwargs)):
            s = f.samples[:, :horizon]
            samples.append(s)
            stamps = pd.period_range(f.start_date, periods=horizon).to_timestamp()
            out = {"item_id": e["item_id"], "timestamp": stamps, "mean": s.mean(0)}
            qs = np.quantile(s, list(quantiles), axis=0)
            out.update({f"q{q:g}": v for q, v in zip(quantiles, qs)})
            rows.append(pd.DataFrame(out))
        frame = pd.concat(rows, ignore_index=True)
        return (frame, np.stack(samples)) if return_samples else frame

    def save(self, path: str | Path) -> Path:
        """Write the trained model to a folder (gluonts serialize format)."""
        path = Path(path)
        self._need_model().serialize(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TSDiff:
        """Load a model written by ``save``."""
        pred = TSDiffPredictor.deserialize(Path(path))
        model = cls(pred.prediction_length, pred.freq)
        model.predictor = pred
        return model


def plot_forecasts(history: pd.DataFrame | list[dict[str, Any]], forecast: pd.DataFrame,
                   path: str | Path | None = None, items: Sequence[Any] | None = None,
                   history_length: int | None = None, actual: pd.DataFrame | None = None,
                   title: str = "TSDiff forecasts") -> Any:
    """History, median and prediction intervals (outermost and inner quantile pairs) per item.

    ``forecast`` is the frame of ``TSDiff.predict`` (or the pipeline's quantile CSV);
    ``actual`` (long frame) overlays the realised values. Saves a PNG when ``path`` is given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = history if isinstance(history, pd.DataFrame) else entries_to_frame(history)
    if "timestamp" not in hist.columns:
        hist = hist.rename_axis("timestamp").reset_index().melt(
            id_vars="timestamp", var_name="item_id", value_name="target")
    items = list(items) if items is not None else list(forecast["item_id"].unique())[:6]
    qcols = sorted((c for c in forecast.columns if c.startswith("q")), key=lambda c: float(c[1:]))
    if not qcols:
        raise DataError("forecast frame has no quantile columns", field="forecast",
                        expected="columns q0.1, q0.5, ...")
    fig, axes = plt.subplots(len(items), 1, figsize=(10, 2.6 * len(items)), squeeze=False)
    for ax, item in zip(axes[:, 0], items):
        h = hist[hist["item_id"] == item]
        f = forecast[forecast["item_id"] == item]
        n = history_length or 4 * len(f)
        ax.plot(pd.to_datetime(h["timestamp"]).iloc[-n:], h["target"].iloc[-n:], "k-", lw=1,
                label="history")
        t = pd.to_datetime(f["timestamp"])
        for k, alpha in zip(range(len(qcols) // 2), (0.25, 0.45, 0.6)):
            lo, hi = qcols[k], qcols[-1 - k]
            ax.fill_between(t, f[lo], f[hi], color="C0", alpha=alpha, lw=0,
                            label=f"{float(lo[1:]):g}-{float(hi[1:]):g}")
        mid = min(qcols, key=lambda c: abs(float(c[1:]) - 0.5))
        ax.plot(t, f[mid], "C0-", lw=1.5, label="median")
        if actual is not None:
            a = actual[(actual["item_id"] == item)
                       & (pd.to_datetime(actual["timestamp"]) >= t.min())]
            ax.plot(pd.to_datetime(a["timestamp"]), a["target"], "k--", lw=1, label="actual")
        ax.set_title(str(item), fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig
