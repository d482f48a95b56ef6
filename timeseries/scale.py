"""Guidance scale chosen on validation windows (TSDiff Sec. 5 / App. B.3 tunes the scale s per
data set; here it is chosen per sampler on held-out windows instead of the test windows).

The validation window of a series is its last ``prediction_length`` steps: the forecaster sees
everything before it, as in the test protocol, so training series can serve (no test data used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from common.errors import ConfigError, DataError

from .dataset import validate_entries
from .evaluation import evaluate, truncate
from .guidance import GUIDANCE

CANDIDATES = (0.125, 0.25, 0.5, 1.0, 2.0)


def choose_scale(predictor: Any, dataset: Any, candidates: Sequence[float] = CANDIDATES,
                 sampler: str | None = None, steps: int | None = None, num_samples: int = 100,
                 max_series: int | None = None, apply: bool = True, guidance: str | None = None
                 ) -> tuple[float, dict[float, float]]:
    """Guidance scale with the lowest CRPS (GluonTS mean weighted quantile loss) on validation
    windows (TSDiff Eq. 8-9 guided forecasts, one per candidate scale).

    Args:
        predictor: a ``TSDiffPredictor``.
        dataset: series (GluonTS entries); each one's last ``prediction_length`` steps are its
            validation window, e.g. the training data.
        candidates: scales to try.
        sampler, steps: the guided sampler to tune (default: the predictor's).
        num_samples: samples per forecast.
        max_series: use every k-th series so that at most this many are forecast (cost).
        apply: store the winner as the predictor's default for ``sampler`` (``config.scale`` for
            DDPM, ``config.ode_scale`` for DDIM / DPM-Solver++) and ``guidance`` as its default
            guidance.
        guidance: "quantile" (TSDiff-Q) or "mse" (TSDiff-MS); default: the predictor's.

    Returns:
        The best scale and the validation CRPS of every candidate.
    """
    if not candidates or any(float(c) < 0 for c in candidates):
        raise ConfigError(f"candidates must be non-negative scales, got {list(candidates)}")
    c = predictor.config
    sampler = sampler or c.sampler
    guidance = guidance or c.guidance
    if guidance not in GUIDANCE:
        raise ConfigError(f"unknown guidance {guidance!r}; valid: {GUIDANCE}")
    entries = validate_entries(dataset)
    if max_series is not None and len(entries) > max_series:
        entries = entries[::-(-len(entries) // max_series)]
    for i, e in enumerate(entries):
        if len(np.asarray(e["target"])) <= c.prediction_length:
            raise DataError("series too short for a validation window",
                            file=f"item {e.get('item_id', i)!r}", field="target",
                            expected=f"more than prediction_length={c.prediction_length} steps")
    inputs = truncate(entries, c.prediction_length)
    crps = {}
    for s in candidates:
        fc = list(predictor.predict(inputs, num_samples=num_samples, sampler=sampler,
                                    steps=steps, scale=float(s), progress=False,
                                    guidance=guidance))
        crps[float(s)] = evaluate(fc, entries)["crps"]
    best = min(crps, key=crps.get)
    if apply:
        c.guidance = guidance
        if sampler == "ddpm":
            c.scale = best
        else:
            c.ode_scale = best
    return best, crps
