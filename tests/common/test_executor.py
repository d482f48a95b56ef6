"""The executor interface: same results, in input order, serial / process pool / Dask."""

from __future__ import annotations

import math

import pytest

from common.errors import ConfigError
from common.executor import get_executor


def slow_square(x: int) -> int:
    """Picklable work whose duration varies, so completion order differs from input order."""
    math.factorial(2000 * (x % 3))
    return x * x


@pytest.mark.parametrize("kind,n_workers,kwargs", [
    ("local", 1, {}),
    ("local", 2, {}),
    ("dask", 2, {"processes": False}),
])
def test_map_returns_results_in_input_order(kind, n_workers, kwargs):
    if kind == "dask":
        pytest.importorskip("distributed", reason="the dask executor needs genpipes[cluster]")
    items = list(range(12))
    with get_executor(kind, n_workers=n_workers, progress=False, **kwargs) as ex:
        assert ex.map(slow_square, items) == [x * x for x in items]
        assert ex.map(slow_square, []) == []


def test_bad_executor_config():
    with pytest.raises(ConfigError, match="valid: 'local', 'dask'"):
        get_executor("spark")
    with pytest.raises(ConfigError, match="n_workers"):
        get_executor("local", n_workers=0)
    with pytest.raises(ConfigError, match="kind='dask'"):
        get_executor("local", address="tcp://127.0.0.1:8786")
