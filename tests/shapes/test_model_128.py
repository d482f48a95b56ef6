"""ShapeModel at 128^3 (3 wavelet levels, WaLa's depth): fit, sample, save/load with a tiny net."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from common.training import TrainerConfig
from shapes.model import ShapeModel

TINY128 = dict(resolution=128, levels=3, latent_size=4, ae_width=8, unet_width=8, emb_dim=16,
               ae_steps=3, batch_size=2, num_steps=2, ae_grid_rows=32)


def test_fit_sample_save_load_at_128(tmp_path):
    shapes = [trimesh.creation.box((0.6, 1.0, 0.8)), trimesh.creation.icosphere(1, 0.5)]
    model = ShapeModel(**TINY128).fit(
        shapes, trainer=TrainerConfig(max_steps=3, enable_progress_bar=False),
        checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "autoencoder.pt").is_file()
    assert model.autoencoder.dense_size == 30  # the 128^3 tree's dense part: 8 x 30^3
    z = model.sample_latents(2, seed=3, progress=False)
    assert z.shape == (2, 4, 4, 4, 4) and torch.isfinite(z).all()
    grids = model.decode_sdf(z)
    assert grids.shape == (2, 128, 128, 128) and np.isfinite(grids).all()
    meshes = model.sample(1, seed=3, progress=False)
    assert len(meshes) == 1 and isinstance(meshes[0], trimesh.Trimesh)
    again = ShapeModel.load(model.save(tmp_path / "wala128.pt"))
    assert again.config.resolution == 128 and again.config.levels == 3
    torch.testing.assert_close(again.sample_latents(2, seed=3, progress=False), z)
    torch.testing.assert_close(again.encode(shapes[0]), model.encode(shapes[0]))
