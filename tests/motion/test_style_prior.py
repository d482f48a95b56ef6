"""The optional diffusion prior over style codes: label-conditional modes and seeds."""

from __future__ import annotations

import torch

from motion.style_prior import DiffusionStylePrior


def test_conditional_samples_find_their_label_mode():
    g = torch.Generator().manual_seed(0)
    n = 400
    labels = torch.arange(2).repeat_interleave(n)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 1.0]])
    codes = centres[labels] + 0.3 * torch.randn(2 * n, 2, generator=g)
    prior = DiffusionStylePrior(2, 2, hidden=64).fit(codes, labels, steps=400, seed=0)
    for k in range(2):
        s = prior.sample(64, label=k, seeds=list(range(64)))
        assert (s.mean(0) - centres[k]).norm() < 0.6, (k, s.mean(0))
    un = prior.sample(64, seeds=list(range(100, 164)))
    assert (un[:, 0] > 0).float().mean().item() > 0.15 and (un[:, 0] < 0).float().mean() > 0.15
    # per-sample seeds: a sample does not depend on the batch it is drawn in
    a = prior.sample(3, label=0, seeds=[5, 6, 7])
    b = prior.sample(1, label=0, seeds=[6])
    torch.testing.assert_close(a[1:2], b, atol=1e-5, rtol=0)
