"""Time series: TSDiff, self-guided diffusion forecasting (Kollovieh et al., NeurIPS 2023).

GluonTS-native ``TSDiffEstimator``/``TSDiffPredictor``, the pandas front end ``TSDiff`` with
``plot_forecasts``, benchmark loaders (``load_dataset``), refinement and synthesis. Heavy
dependencies (gluonts) load on first use of the names below.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "TSDiff": "api", "plot_forecasts": "api",
    "TSDiffEstimator": "estimator", "TSDiffPredictor": "estimator", "TSDiffConfig": "estimator",
    "load_dataset": "datasets", "SplitDataset": "datasets",
    "guided_forecast": "guidance", "refine": "refine", "synthesize": "refine",
    "linear_predictive_score": "refine", "refine_forecasts": "refine",
    "ridge_forecasts": "refine", "TSDiffBackbone": "module", "tstr_deepar": "tstr",
    "choose_scale": "scale",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
