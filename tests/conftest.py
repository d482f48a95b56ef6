"""Shared fixtures: one thread per test process, and the real benchmark data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """``$GENPIPES_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("GENPIPES_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests that need it skip, with the reason, when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"shared benchmark data not found at {root} (set GENPIPES_SHARED_DATA)")
    return root


@pytest.fixture
def seed() -> int:
    """A fixed seed: every test that draws random numbers starts from it."""
    torch.manual_seed(0)
    return 0
