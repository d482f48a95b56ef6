"""Bad series give a DataError naming the item and the problem; short series are padded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError
from timeseries.dataset import check_freq, entry_arrays, frame_to_entries, validate_entries


def _long(item="a", n=10, values=None, stamps=None):
    stamps = stamps if stamps is not None else pd.date_range("2020-01-01", periods=n, freq="h")
    values = values if values is not None else np.arange(len(stamps), dtype=float)
    return pd.DataFrame({"item_id": item, "timestamp": stamps, "target": values})


def test_all_missing_series_names_the_item() -> None:
    df = pd.concat([_long("ok"), _long("empty", values=np.full(10, np.nan))])
    with pytest.raises(DataError, match="'empty'.*all values are missing"):
        frame_to_entries(df)


def test_duplicate_timestamps() -> None:
    stamps = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 01:00",
                               "2020-01-01 02:00"])
    with pytest.raises(DataError, match="'a'.*duplicate timestamp"):
        frame_to_entries(_long(stamps=stamps))


def test_non_monotonic_timestamps() -> None:
    stamps = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 02:00", "2020-01-01 01:00",
                               "2020-01-01 03:00"])
    with pytest.raises(DataError, match="'a'.*not increasing"):
        frame_to_entries(_long(stamps=stamps))


def test_unknown_frequency() -> None:
    with pytest.raises(DataError, match="unknown frequency 'fortnightly'"):
        check_freq("fortnightly")
    with pytest.raises(DataError, match="unknown frequency"):
        frame_to_entries(_long(), freq="xyz")


def test_irregular_timestamps_without_freq() -> None:
    stamps = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 05:00",
                               "2020-01-01 06:30"])
    with pytest.raises(DataError, match="'a'.*infer the frequency"):
        frame_to_entries(_long(stamps=stamps))


def test_non_numeric_target() -> None:
    values = np.array([1.0, 2.0, "n/a", 4.0], dtype=object)
    with pytest.raises(DataError, match="'a'.*non-numeric target value 'n/a'"):
        frame_to_entries(_long(n=4, values=values))
    with pytest.raises(DataError, match="item 'x'.*non-numeric"):
        entry_arrays({"item_id": "x", "target": ["1", "two"]})


def test_gaps_become_missing_values() -> None:
    stamps = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 03:00",
                               "2020-01-01 04:00"])
    entries, freq = frame_to_entries(_long(stamps=stamps), freq="h")
    values, observed = entry_arrays(entries[0])
    assert freq == "h" and len(values) == 5 and observed.tolist() == [1, 1, 0, 1, 1]


def test_wide_frame() -> None:
    idx = pd.date_range("2020-01-01", periods=6, freq="D")
    entries, freq = frame_to_entries(pd.DataFrame({"x": range(6), "y": range(6)}, index=idx))
    assert freq == "D" and [e["item_id"] for e in entries] == ["x", "y"]


def test_empty_dataset() -> None:
    with pytest.raises(DataError, match="empty"):
        validate_entries([])
