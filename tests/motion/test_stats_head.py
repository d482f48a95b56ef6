"""Statistics head (ridge regression from style codes to window statistics): known answers."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import CheckpointError, DataError
from motion.stats_head import StatsHead, window_statistics


def _linear_data(n: int = 400, s: int = 6, c: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n, s))
    w_mean, w_log = rng.normal(size=(s, c)), 0.3 * rng.normal(size=(s, c))
    b_mean, b_log = rng.normal(size=c), rng.normal(size=c)
    return codes, codes @ w_mean + b_mean, np.exp(codes @ w_log + b_log), (w_mean, w_log,
                                                                          b_mean, b_log)


def test_ridge_recovers_a_linear_map():
    """Noise-free linear targets (mean, log std): a vanishing ridge recovers W and b exactly and
    predicts unseen codes inside the training range exactly."""
    codes, mean, std, (w_mean, w_log, b_mean, b_log) = _linear_data()
    head = StatsHead(ridge=1e-9).fit(codes, mean, std)
    np.testing.assert_allclose(head.weight, np.concatenate([w_mean, w_log], 1), atol=1e-8)
    np.testing.assert_allclose(head.bias, np.concatenate([b_mean, b_log]), atol=1e-8)
    new = 0.5 * np.random.default_rng(1).normal(size=(20, codes.shape[1]))
    pm, ps = head.predict(new)
    np.testing.assert_allclose(pm, new @ w_mean + b_mean, atol=1e-7)
    np.testing.assert_allclose(ps, np.exp(new @ w_log + b_log), rtol=1e-7)


def test_ridge_shrinks_towards_the_mean_and_clamps_to_the_training_range():
    codes, mean, std, _ = _linear_data()
    strong = StatsHead(ridge=1e12).fit(codes, mean, std)
    pm, ps = strong.predict(codes[:3])
    np.testing.assert_allclose(pm, np.broadcast_to(mean.mean(0), pm.shape), atol=1e-6)
    np.testing.assert_allclose(np.log(ps), np.broadcast_to(np.log(std).mean(0), ps.shape),
                               atol=1e-6)
    head = StatsHead(ridge=1e-6).fit(codes, mean, std)
    far_m, far_s = head.predict(100 * codes[:4])               # far outside the training codes
    assert (far_m >= mean.min(0) - 1e-9).all() and (far_m <= mean.max(0) + 1e-9).all()
    assert (far_s >= std.min(0) * (1 - 1e-9)).all() and (far_s <= std.max(0) * (1 + 1e-9)).all()


def test_state_dict_round_trip_and_errors():
    import torch

    codes, mean, std, _ = _linear_data()
    head = StatsHead(0.5).fit(codes, mean, std)
    again = StatsHead.from_state_dict({k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                       for k, v in head.state_dict().items()})
    assert again.ridge == 0.5
    for a, b in zip(head.predict(codes[:7]), again.predict(codes[:7])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="not fitted"):
        StatsHead().predict(codes)
    with pytest.raises(DataError, match="codes"):
        StatsHead().fit(codes, mean[:10], std[:10])


def test_window_statistics_match_numpy():
    f = np.random.default_rng(3).normal(size=(100, 7))
    mu, sd = window_statistics(f, 40, slice(2, 5))
    assert mu.shape == (4, 3)                                   # starts 0, 20, 40, 60
    np.testing.assert_allclose(mu[2], f[40:80, 2:5].mean(0))
    np.testing.assert_allclose(sd[3], f[60:100, 2:5].std(0))
