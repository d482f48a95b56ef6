"""Series as GluonTS data entries (``{"item_id", "start": pd.Period, "target"}``) and their
validation; conversion from pandas long (item_id, timestamp, target) or wide frames.

Every problem raises ``DataError`` naming the item and what was expected (DESIGN §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from common.errors import DataError


def check_freq(freq: str | None, where: str = "freq") -> str:
    """A valid pandas frequency string, or a DataError."""
    if not freq:
        raise DataError("no frequency given and none could be inferred", field=where,
                        expected="a pandas frequency such as 'h', 'D', 'B'")
    try:
        pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise DataError(f"unknown frequency {freq!r}", field=where,
                        expected="a pandas frequency such as 'h', 'D', 'B', '15min'") from None
    return freq


def entry_arrays(entry: dict[str, Any], index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values float64 with NaN, observed 0/1) of a data entry; DataError if unusable."""
    item = entry.get("item_id", index)
    if "target" not in entry:
        raise DataError("entry has no target", file=f"item {item!r}", field="target")
    raw = entry["target"]
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        bad = next((v for v in np.ravel(np.asarray(raw, dtype=object))
                    if not _is_number(v)), None)
        raise DataError(f"non-numeric target value {bad!r}", file=f"item {item!r}",
                        field="target", expected="numbers (NaN for missing)") from None
    if values.ndim != 1:
        raise DataError(f"target has shape {values.shape}", file=f"item {item!r}",
                        field="target", expected="a 1-d (univariate) series")
    observed = np.isfinite(values)
    if len(values) == 0 or not observed.any():
        raise DataError("series is empty or all values are missing", file=f"item {item!r}",
                        field="target", expected="at least one observed value")
    return values, observed.astype(np.float32)


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (ValueError, TypeError):
        return False


def validate_entries(data: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Materialise a GluonTS-style dataset, checking each entry; returns the entries."""
    entries = []
    for i, entry in enumerate(data):
        entry_arrays(entry, i)
        entries.append(entry)
    if not entries:
        raise DataError("dataset is empty", expected="at least one series")
    return entries


def _infer_freq(stamps: pd.DatetimeIndex, item: Any) -> str | None:
    if len(stamps) < 3:
        return None
    return pd.infer_freq(stamps)


def frame_to_entries(df: pd.DataFrame, freq: str | None = None, item_col: str = "item_id",
                     time_col: str = "timestamp", target_col: str = "target"
                     ) -> tuple[list[dict[str, Any]], str]:
    """Long (item_id, timestamp, target) or wide (DatetimeIndex x one column per series) -> entries.

    Timestamps must be unique and increasing per item; gaps on the frequency grid become NaN
    (missing). The frequency is inferred when not given.
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise DataError("expected a non-empty pandas DataFrame", field="df")
    if time_col in df.columns and target_col in df.columns:
        long = df
        if item_col not in long.columns:
            long = long.assign(**{item_col: "series"})
    else:  # wide: index = timestamps, columns = series
        if not isinstance(df.index, (pd.DatetimeIndex, pd.PeriodIndex)):
            try:
                index = pd.DatetimeIndex(pd.to_datetime(df.index))
            except (ValueError, TypeError):
                raise DataError(
                    "frame is neither long (columns item_id, timestamp, target) nor wide "
                    "(a DatetimeIndex and one column per series)", field="index") from None
            df = df.set_axis(index)
        long = df.rename_axis(time_col).reset_index().melt(
            id_vars=time_col, var_name=item_col, value_name=target_col)
    entries: list[dict[str, Any]] = []
    freqs = set()
    for item, g in long.groupby(item_col, sort=False):
        stamps = pd.DatetimeIndex(pd.to_datetime(g[time_col].to_numpy()))
        if stamps.has_duplicates:
            dup = stamps[stamps.duplicated()][0]
            raise DataError(f"duplicate timestamp {dup}", file=f"item {item!r}",
                            field=time_col, expected="one row per timestamp")
        if not stamps.is_monotonic_increasing:
            pos = int(np.argmax(np.diff(stamps.asi8) < 0)) + 1
            raise DataError(f"timestamps not increasing at row {pos} ({stamps[pos]})",
                            file=f"item {item!r}", field=time_col,
                            expected="timestamps sorted in increasing order")
        values = pd.to_numeric(g[target_col], errors="coerce").to_numpy(dtype=np.float64)
        bad = g[target_col][np.isnan(values) & g[target_col].notna().to_numpy()]
        if len(bad):
            raise DataError(f"non-numeric target value {bad.iloc[0]!r}", file=f"item {item!r}",
                            field=target_col, expected="numbers (NaN for missing)")
        f = freq or _infer_freq(stamps, item)
        if f is None:
            raise DataError("cannot infer the frequency from the timestamps",
                            file=f"item {item!r}", field=time_col,
                            expected="regular timestamps, or pass freq=")
        check_freq(f)
        freqs.add(f)
        grid = pd.date_range(stamps[0], stamps[-1], freq=f)
        if not stamps.isin(grid).all():
            off = stamps[~stamps.isin(grid)][0]
            raise DataError(f"timestamp {off} is off the {f!r} grid", file=f"item {item!r}",
                            field=time_col, expected=f"timestamps on a regular {f!r} grid")
        series = pd.Series(values, index=stamps).reindex(grid)
        entry = {"item_id": item, "start": pd.Period(grid[0], freq=f),
                 "target": series.to_numpy(dtype=np.float32)}
        entry_arrays(entry)
        entries.append(entry)
    if len(freqs) > 1:
        raise DataError(f"items have different frequencies {sorted(freqs)}", field=time_col,
                        expected="one frequency for all items (or pass freq=)")
    return entries, freqs.pop()


def entries_to_frame(entries: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Entries -> long frame (item_id, timestamp, target)."""
    parts = []
    for i, e in enumerate(entries):
        t = np.asarray(e["target"], dtype=np.float64)
        idx = pd.period_range(e["start"], periods=len(t)).to_timestamp()
        parts.append(pd.DataFrame({"item_id": e.get("item_id", i), "timestamp": idx,
                                   "target": t}))
    return pd.concat(parts, ignore_index=True)
