"""The autoencoder's sub-grid TSDF loss (``ae_grid_rows``): exact on its nodes, zero at a
perfect reconstruction, an unbiased estimate of the full-grid loss, and the same ranking."""

from __future__ import annotations

import numpy as np
import torch

from shapes.model import ShapeModel
from shapes.wavelet import dense_to_grid

RES = 40


def _sphere_dense(model: ShapeModel, radii: list[float]) -> torch.Tensor:
    g = np.linspace(-0.5, 0.5, RES)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    r = np.sqrt(x ** 2 + (1.3 * y) ** 2 + z ** 2)
    return model.dense_parts([np.clip(r - rad, -0.1, 0.1).astype(np.float32) for rad in radii])


def _model(rows: int | None, **kw) -> ShapeModel:
    return ShapeModel(resolution=RES, levels=2, latent_size=4, ae_width=8, unet_width=8,
                      emb_dim=16, ae_kl_weight=0.0, ae_grid_rows=rows, **kw)


def _loss_of(ae, target: torch.Tensor, recon: torch.Tensor, seed: int) -> torch.Tensor:
    """``ae.loss`` of a fixed reconstruction (the networks bypassed), in standardised units."""
    ae.reconstruct = lambda x, g=None: (ae.standardize(recon), torch.zeros(len(x)))
    return ae.loss(ae.standardize(target), generator=torch.Generator().manual_seed(seed))


def test_sub_grid_decode_equals_the_full_grid_at_its_nodes():
    model = _model(None)
    ae = model.autoencoder
    dense = torch.randn(2, 8, ae.dense_size, ae.dense_size, ae.dense_size, dtype=torch.float64)
    lo, hi = ae.synth_lo.double(), ae.synth_hi.double()
    full = dense_to_grid(dense, lo, hi)
    rows = tuple(torch.tensor(r) for r in ([0, 5, 39], [3, 4, 20, 31], [7, 38]))
    sub = dense_to_grid(dense, lo, hi, rows)
    assert sub.shape == (2, 3, 4, 2)
    torch.testing.assert_close(sub, full[:, rows[0]][:, :, rows[1]][:, :, :, rows[2]])


def test_sub_grid_rows_are_sorted_distinct_and_full_grid_when_large():
    ae = _model(8).autoencoder
    rows = ae.sample_rows(torch.Generator().manual_seed(0))
    for r in rows:
        assert len(r) == 8 and len(set(r.tolist())) == 8 and (r.diff() > 0).all()
        assert 0 <= int(r.min()) and int(r.max()) < RES
    assert _model(RES).autoencoder.sample_rows() is None
    assert _model(None).autoencoder.sample_rows() is None


def test_sub_grid_loss_is_zero_when_perfect_and_unbiased():
    """With only the TSDF term on: exactly zero for a perfect reconstruction; the mean over
    random sub-grids equals the full-grid loss within 4 standard errors (fixed seeds)."""
    sub_model = _model(8, ae_occupancy_weight=0.0)
    full_model = _model(None, ae_occupancy_weight=0.0)
    target = _sphere_dense(sub_model, [0.30, 0.25])
    recon = _sphere_dense(sub_model, [0.33, 0.22])
    for m in (sub_model, full_model):
        m.autoencoder.set_normalization(target)
    sub, full = sub_model.autoencoder, full_model.autoencoder
    full.load_state_dict(sub.state_dict())
    torch.testing.assert_close(_loss_of(sub, target, target, 0), torch.zeros(2))
    exact = _loss_of(full, target, recon, 0)
    assert (exact > 0.01).all()
    draws = torch.stack([_loss_of(sub, target, recon, s) for s in range(200)])
    se = draws.std(0) / np.sqrt(len(draws))
    assert (draws.std(0) > 0).all()  # the estimate really is random
    assert ((draws.mean(0) - exact).abs() < 4 * se).all(), (draws.mean(0), exact, se)


def test_sub_grid_loss_ranks_reconstructions_like_the_full_grid():
    """Three reconstructions of one shape, worse and worse: the full loss (TSDF + occupancy
    terms) and the sub-grid loss (one fixed draw of 12 of 40 rows per axis) order them alike."""
    sub_model, full_model = _model(12), _model(None)
    target = _sphere_dense(sub_model, [0.30])
    recons = [_sphere_dense(sub_model, [0.30 + d]) for d in (0.01, 0.03, 0.08)]
    for m in (sub_model, full_model):
        m.autoencoder.set_normalization(target)
    full = [float(_loss_of(full_model.autoencoder, target, r, 0)) for r in recons]
    sub = [float(_loss_of(sub_model.autoencoder, target, r, 1)) for r in recons]
    assert full == sorted(full) and sub == sorted(sub)
    assert full[0] < full[1] < full[2] and sub[0] < sub[1] < sub[2]
