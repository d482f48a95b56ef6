"""ShapeModel end to end on a tiny synthetic corpus: fit, sample, encode/decode, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from common.errors import ConfigError, DataError
from common.training import TrainerConfig
from shapes.model import ShapeModel

TINY = dict(resolution=24, latent_size=4, ae_width=16, unet_width=16, emb_dim=32, n_points=64,
            ae_steps=150, ae_lr=3e-3, batch_size=4, num_steps=4, condition="points")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rng = np.random.default_rng(0)  # chunky primitives: learnable in a few steps at 24^3
    shapes = [trimesh.creation.box(rng.uniform(0.3, 1.0, 3)) if i % 2 else
              trimesh.creation.icosphere(2, rng.uniform(0.5, 1.0)) for i in range(8)]
    model = ShapeModel(**TINY)
    ckpt = tmp_path_factory.mktemp("ckpt")
    model.fit(shapes, trainer=TrainerConfig(max_steps=40, enable_progress_bar=False,
                                            ema_decay=0.99), checkpoint_dir=ckpt)
    return model, shapes, ckpt


def test_fit_then_sample_gives_closed_meshes(fitted):
    model, _, ckpt = fitted
    assert (ckpt / "autoencoder.pt").is_file() and (ckpt / "diffusion" / "last.ckpt").is_file()
    meshes = model.sample(3, seed=0, progress=False)
    assert len(meshes) == 3
    nonempty = [m for m in meshes if len(m.faces)]
    assert nonempty, "every sample came out empty"
    for m in nonempty:
        assert np.isfinite(m.vertices).all()
        assert np.abs(m.vertices).max() <= 0.5 + 1e-6  # inside the unit cube
        edges = m.edges_sorted
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert (counts == 1).mean() < 0.05  # watertight-ish: few boundary edges


def test_sample_cleans_small_components_and_keeps_the_raw_output_available(fitted):
    from shapes.cleanup import component_sizes

    model = fitted[0]
    assert model.config.min_component_fraction == 0.01  # default on
    raw = model.sample(3, seed=0, min_component_fraction=0, progress=False)
    clean = model.sample(3, seed=0, progress=False)  # same latents, then the clean-up
    for r, c in zip(raw, clean):
        if len(r.faces):
            sizes = component_sizes(r)
            expect = sizes[sizes >= 0.01 * sizes.sum()].sum() if sizes.max() >= 0.01 * \
                sizes.sum() else sizes.max()
            assert c.area == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ConfigError, match="min_component_fraction"):
        ShapeModel(min_component_fraction=1.0)


def test_samples_do_not_depend_on_batch_size(fitted):
    model = fitted[0]
    a = model.sample_latents(3, seed=5, batch_size=3, progress=False)
    b = model.sample_latents(3, seed=5, batch_size=1, progress=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_point_condition_and_guidance(fitted):
    model, shapes = fitted[:2]
    cloud = shapes[0].sample(500, seed=0) * 7.0 + 3.0  # any frame
    init, model.config.refine_init = model.config.refine_init, "sample"  # the diffusion start
    try:
        z1 = model.sample_latents(2, cloud, seed=0, guidance=1.0, progress=False)
        z3 = model.sample_latents(2, cloud, seed=0, guidance=3.0, progress=False)
    finally:
        model.config.refine_init = init
    zu = model.sample_latents(2, None, seed=0, progress=False)
    assert z1.shape == zu.shape and not torch.allclose(z1, z3)
    with pytest.raises(DataError, match="NaN"):
        model.sample_latents(1, np.full((100, 3), np.nan), progress=False)
    with pytest.raises(DataError, match="point clouds for"):
        model.sample_latents(3, [cloud, cloud], progress=False)


def test_refinement_from_the_mean_latent_skips_the_sampler(fitted):
    from shapes.points import normalize_points, resample_points
    from shapes.refine import point_energy, refine_latents

    model, shapes = fitted[:2]
    c = model.config
    cloud = shapes[1].sample(300, seed=0)
    pts = torch.from_numpy(resample_points(normalize_points(cloud, c.padding), c.n_points, 0))
    pts = pts.float()[None]
    zero = torch.zeros((1, c.latent_channels) + (c.latent_size,) * 3)
    steps, init, udf = c.refine_steps, c.refine_init, c.refine_udf
    try:
        # without the unsigned-distance term the fit minimises the point energy alone, so that
        # energy must fall (with it, the point term alone may rise while the sum falls)
        c.refine_init, c.refine_steps, c.refine_udf = "mean", 5, 0.0
        z = model.sample_latents(1, cloud, seed=0, progress=False)
        torch.testing.assert_close(z, refine_latents(model, zero, pts, 5,
                                                     prior_weight=c.refine_prior,
                                                     udf_weight=c.refine_udf))
        assert point_energy(model, z, pts) < point_energy(model, zero, pts)
    finally:
        c.refine_init, c.refine_steps, c.refine_udf = init, steps, udf
    with pytest.raises(ConfigError, match="refine_init"):
        ShapeModel(refine_init="poisson")


def test_refinement_from_the_points_flood_fill_sdf(fitted):
    """``refine_init="points"`` starts from the encoding of ``points_to_sdf`` (no sampler)."""
    from shapes.point_sdf import points_to_sdf
    from shapes.points import normalize_points, resample_points
    from shapes.refine import refine_latents

    model, shapes = fitted[:2]
    c = model.config
    cloud = shapes[1].sample(300, seed=0)
    pts = torch.from_numpy(resample_points(normalize_points(cloud, c.padding), c.n_points, 0))
    pts = pts.float()[None]
    start = model.latents_from_points(pts)
    want = model.latents_from_dense(model.dense_parts(
        [points_to_sdf(pts[0].numpy(), c.resolution, c.truncation)[0]]))
    torch.testing.assert_close(start, want)
    steps, init = c.refine_steps, c.refine_init
    try:
        c.refine_init, c.refine_steps = "points", 5
        z = model.sample_latents(1, cloud, seed=0, progress=False)
        torch.testing.assert_close(z, refine_latents(model, start, pts, 5,
                                                     prior_weight=c.refine_prior,
                                                     udf_weight=c.refine_udf))
        c.refine_points = 200  # the fit and its start see more points than the condition
        many = torch.from_numpy(resample_points(normalize_points(cloud, c.padding), 200, 0))
        many = many.float()[None]
        z = model.sample_latents(1, cloud, seed=0, progress=False)
        torch.testing.assert_close(z, refine_latents(model, model.latents_from_points(many),
                                                     many, 5, prior_weight=c.refine_prior,
                                                     udf_weight=c.refine_udf))
    finally:
        c.refine_init, c.refine_steps, c.refine_points = init, steps, None
    with pytest.raises(ConfigError, match="refine_points"):
        ShapeModel(refine_points=3)


def test_encode_decode_and_save_load(fitted, tmp_path):
    model, shapes = fitted[:2]
    mesh = shapes[2]
    z = model.encode(mesh)
    assert z.shape == (4, 4, 4, 4)
    assert len(model.decode(z).faces) > 0
    path = model.save(tmp_path / "wala.pt")
    again = ShapeModel.load(path)
    torch.testing.assert_close(again.sample_latents(2, seed=1, progress=False),
                               model.sample_latents(2, seed=1, progress=False))


def test_bad_settings_and_unfitted_use():
    with pytest.raises(ConfigError, match="unknown ShapeModel settings"):
        ShapeModel(resolutoin=32)
    with pytest.raises(ConfigError, match="condition"):
        ShapeModel(condition="image")
    with pytest.raises(ConfigError, match="before fit"):
        ShapeModel(**TINY).sample(1)
    plain = ShapeModel(**{**TINY, "condition": "none"})
    plain.fitted = True
    with pytest.raises(ConfigError, match="without a condition"):
        plain.sample_latents(1, np.zeros((10, 3)), progress=False)


def test_autoencoder_sdf_loss_is_zero_at_the_input_and_grows_with_error():
    """The decoded-TSDF terms vanish for a perfect reconstruction and grow with its error."""
    from shapes.wavelet import synthesis_matrices

    model = ShapeModel(**TINY)
    ae = model.autoencoder
    lo, hi = synthesis_matrices(24, model.codec)
    assert torch.allclose(ae.synth_lo, torch.from_numpy(lo).float())
    x0 = torch.randn(2, *ae.embed.weight.shape[1:2], ae.dense_size, ae.dense_size, ae.dense_size)
    zero_kl = torch.zeros(2)
    # a perfect autoencoder: only the occupancy term's entropy remains
    ae.reconstruct = lambda x, g=None: (x, zero_kl)
    perfect = ae.loss(x0)
    ae.reconstruct = lambda x, g=None: (x + 0.3, zero_kl)
    worse = ae.loss(x0)
    assert (worse > perfect).all()
    ae.sdf_weight = ae.occupancy_weight = 0.0
    ae.reconstruct = lambda x, g=None: (x, zero_kl)
    torch.testing.assert_close(ae.loss(x0), torch.zeros(2))


def test_variational_kl_is_the_gaussian_closed_form():
    """KL(N(m, e^lv) || N(0, 1)) = (m^2 + e^lv - 1 - lv) / 2 per entry; zero at the prior."""
    model = ShapeModel(**{**TINY, "ae_kl_weight": 1.0})
    ae = model.autoencoder
    x = torch.randn(2, 8, ae.dense_size, ae.dense_size, ae.dense_size)
    shape = (2, ae.latent_channels) + (ae.latent_size,) * 3
    m, lv = torch.full(shape, 0.5), torch.full(shape, -1.0)
    ae.moments = lambda x: (m, lv)
    _, kl = ae.reconstruct(x, torch.Generator().manual_seed(0))
    expected = 0.5 * (0.25 + np.exp(-1.0) - 1 + 1.0)
    torch.testing.assert_close(kl, torch.full((2,), expected, dtype=torch.float32))
    ae.moments = lambda x: (torch.zeros(shape), torch.zeros(shape))
    torch.testing.assert_close(ae.reconstruct(x)[1], torch.zeros(2))
    assert ShapeModel(**TINY, ae_kl_weight=0.0).autoencoder.moments(x)[1] is None


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from shapes.training import CosineModule

    module = CosineModule(torch.nn.Linear(2, 2), lr=1.0, warmup_steps=10, total_steps=110)
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    f = sched.lr_lambdas[0]
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-12)


def test_point_occupancy_is_aligned_with_the_latent_grid():
    """A centred latent frame: mirrored clouds, mirrored occupancy; a point lands in its cell."""
    model = ShapeModel(**{**TINY, "resolution": 32, "levels": 1, "latent_size": 12})
    origin, cell = model.latent_frame()
    assert origin == pytest.approx(-12 * cell / 2) and cell == pytest.approx(0.125)
    net = model.denoiser.backbone
    pts = torch.from_numpy(np.random.default_rng(1).uniform(-0.45, 0.45, (2, 64, 3))).float()
    occ = net.point_occupancy(pts, 12)
    torch.testing.assert_close(net.point_occupancy(-pts, 12), occ.flip(2, 3, 4))
    one = net.point_occupancy(torch.tensor([[[0.01, -0.2, 0.3]]]), 12)[0, 0]
    assert one.sum() == 1 and one[6, 4, 8] == 1  # floor((p + 0.75) / 0.125)


def test_prepare_reports_a_failing_sdf_and_keeps_the_others(monkeypatch):
    """A mesh whose SDF raises, or has no inside on the grid, is rejected by name only."""
    import shapes.model as sm

    real = sm.cached_mesh_to_sdf

    def flaky(mesh, cfg, cache_dir):
        if len(mesh.faces) == 80:  # the icosphere: as if the distance library failed
            raise RuntimeError("igl: bad input")
        return real(mesh, cfg, cache_dir)

    monkeypatch.setattr(sm, "cached_mesh_to_sdf", flaky)
    model = ShapeModel(**{**TINY, "resolution": 16})
    sheet = trimesh.creation.box((1.0, 1.0, 1e-3))  # thinner than a cell: no node inside
    data = model.prepare({"box": trimesh.creation.box((0.5, 0.4, 0.3)),
                          "ball": trimesh.creation.icosphere(1), "sheet": sheet}, progress=False)
    assert data["names"] == ["box"] and data["sdf"].shape == (1, 16, 16, 16)
    assert "RuntimeError" in model.load_errors["ball"] and "ball" in model.load_errors["ball"]
    assert "no inside" in model.load_errors["sheet"] and "sheet" in model.load_errors["sheet"]
    with pytest.raises(DataError, match="no usable mesh"):
        model.prepare({"ball": trimesh.creation.icosphere(1)}, progress=False)


def test_prepare_from_a_folder_reports_the_bad_file(tmp_path):
    """``fit("folder/")`` reads every mesh format of a folder; a bad file is named, not fatal."""
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.box((0.5, 0.4, 0.3)).export(folder / "box.obj")
    trimesh.creation.icosphere(1).export(folder / "ball.ply")
    trimesh.creation.cylinder(0.3, 1.0).export(folder / "can.stl")
    (folder / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")  # truncated
    model = ShapeModel(**{**TINY, "resolution": 16})
    data = model.prepare(folder, progress=False)
    assert sorted(data["names"]) == ["ball.ply", "box.obj", "can.stl"]
    assert data["sdf"].shape == (3, 16, 16, 16) and data["points"].shape == (3, 4 * 64, 3)
    assert list(model.load_errors) == ["broken.off"] and "broken.off" in model.load_errors[
        "broken.off"]
