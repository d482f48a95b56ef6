"""Closed-form fixtures for the core's tests: Gaussian and Gaussian-mixture data in float64."""

from __future__ import annotations

import pytest

from common.mixture import GaussianMixture


@pytest.fixture
def mixture() -> GaussianMixture:
    """Three well-separated, correlated 2-D components with unequal weights."""
    return GaussianMixture(
        [0.5, 0.3, 0.2],
        [[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]],
        [[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.8]], [[0.6, 0.0], [0.0, 0.3]]],
    )


@pytest.fixture
def gaussian() -> GaussianMixture:
    """One correlated 2-D Gaussian (its PF-ODE solution is a closed form)."""
    return GaussianMixture([1.0], [[0.5, -1.0]], [[[1.5, 0.6], [0.6, 0.8]]])
