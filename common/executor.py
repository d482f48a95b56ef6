"""One executor interface for batch evaluation that outgrows a machine (DESIGN §7).

``get_executor("local", n_workers=1)`` runs serially; ``n_workers > 1`` uses a process pool
(``concurrent.futures``); ``get_executor("dask", address=...)`` submits to a Dask
``distributed`` cluster (a ``LocalCluster`` when no address is given). All share
``.map(fn, items) -> list`` (results in input order) with a progress bar, and are context
managers. ``fn`` and the items must be picklable for the process pool and for Dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

from tqdm.auto import tqdm

from .errors import ConfigError


class Executor(Protocol):
    """``map(fn, items) -> list`` in input order, with a progress bar; ``close()`` frees workers."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], desc: str | None = None
            ) -> list[Any]: ...

    def close(self) -> None: ...


class _Base:
    progress: bool = True

    def __enter__(self) -> _Base:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release workers (no-op for the serial executor)."""

    def _bar(self, total: int, desc: str | None) -> tqdm:
        return tqdm(total=total, desc=desc or "evaluating", disable=not self.progress,
                    leave=False)


class SerialExecutor(_Base):
    """Evaluate in this process, one item after another."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], desc: str | None = None
            ) -> list[Any]:
        items = list(items)
        out = []
        with self._bar(len(items), desc) as bar:
            for item in items:
                out.append(fn(item))
                bar.update(1)
        return out


class ProcessExecutor(_Base):
    """A local process pool (``concurrent.futures.ProcessPoolExecutor``)."""

    def __init__(self, n_workers: int, progress: bool = True) -> None:
        self.progress = progress
        self.pool = ProcessPoolExecutor(max_workers=n_workers)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], desc: str | None = None
            ) -> list[Any]:
        items = list(items)
        futures = {self.pool.submit(fn, item): i for i, item in enumerate(items)}
        out: list[Any] = [None] * len(items)
        with self._bar(len(items), desc) as bar:
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(_Base):
    """A Dask ``distributed.Client``: a running scheduler at ``address`` or a new LocalCluster."""

    def __init__(self, n_workers: int | None = None, address: str | None = None,
                 progress: bool = True, **cluster_kwargs: Any) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("the dask executor needs `pip install genpipes[cluster]` "
                              "(dask[distributed])") from exc
        self.progress = progress
        self.cluster = None
        if address is None:
            kwargs = {"n_workers": n_workers or os.cpu_count() or 1, "threads_per_worker": 1,
                      "dashboard_address": None, **cluster_kwargs}
            self.cluster = LocalCluster(**kwargs)
            self.client = Client(self.cluster)
        else:
            self.client = Client(address)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], desc: str | None = None
            ) -> list[Any]:
        from distributed import as_completed as dask_completed

        items = list(items)
        futures = self.client.map(fn, items, pure=False)
        index = {fut.key: i for i, fut in enumerate(futures)}
        out: list[Any] = [None] * len(items)
        with self._bar(len(items), desc) as bar:
            for fut in dask_completed(futures):
                out[index[fut.key]] = fut.result()
                bar.update(1)
        return out

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def get_executor(kind: str = "local", n_workers: int = 1, address: str | None = None,
                 progress: bool = True, **kwargs: Any) -> SerialExecutor | ProcessExecutor | \
        DaskExecutor:
    """An executor by name: ``"local"`` (serial for 1 worker, else processes) or ``"dask"``.

    Args:
        kind: ``"local"`` or ``"dask"``.
        n_workers: local processes, or workers of the LocalCluster Dask starts.
        address: a running Dask scheduler (``"tcp://host:8786"``); ``None`` starts a local one.
        progress: show a tqdm bar while mapping.
        **kwargs: passed to ``distributed.LocalCluster`` (e.g. ``processes=False``).
    """
    if n_workers < 1:
        raise ConfigError(f"n_workers must be >= 1, got {n_workers}")
    if kind == "local":
        if address is not None:
            raise ConfigError("a scheduler address needs kind='dask'")
        return SerialExecutor(progress) if n_workers == 1 else ProcessExecutor(n_workers,
                                                                               progress)
    if kind == "dask":
        return DaskExecutor(n_workers, address, progress, **kwargs)
    raise ConfigError(f"unknown executor {kind!r}; valid: 'local', 'dask'")


__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "get_executor"]
