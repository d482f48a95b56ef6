"""A small MLP trained through DiffusionModule + make_trainer learns a 2-D Gaussian mixture."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common.denoiser import Preconditioned
from common.noise import sigmas_karras
from common.samplers import sample_heun
from common.training import DiffusionModule, TrainerConfig, load_ema_weights, make_trainer


class MLP(nn.Module):
    """x and random Fourier features of c_noise -> 3 hidden SiLU layers -> F(x, sigma)."""

    def __init__(self, d: int = 2, hidden: int = 128, features: int = 16) -> None:
        super().__init__()
        freqs = torch.randn(features, generator=torch.Generator().manual_seed(0)) * 4
        self.register_buffer("freqs", freqs)
        self.net = nn.Sequential(
            nn.Linear(d + 2 * features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, d))

    def forward(self, x, c_noise, cond=None):
        angles = c_noise[:, None] * self.freqs
        return self.net(torch.cat([x, angles.sin(), angles.cos()], 1))


def test_trained_mlp_reproduces_mixture_moments_and_weights(mixture, tmp_path):
    torch.manual_seed(0)
    data, _ = mixture.sample(20000, torch.Generator().manual_seed(0))
    data = data.float()
    model = Preconditioned(MLP(), sigma_data=float(data.std()))
    module = DiffusionModule(model, lr=3e-3, warmup_steps=50)
    cfg = TrainerConfig(max_steps=1500, accelerator="cpu", devices=1, ema_decay=0.995,
                        enable_progress_bar=False)
    loader = DataLoader(TensorDataset(data), batch_size=512, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    make_trainer(cfg, checkpoint_dir=tmp_path).fit(module, loader)
    assert (tmp_path / "last.ckpt").is_file()
    # the EMA weights (applied to the model at the end) can be restored from last.ckpt
    fresh = DiffusionModule(Preconditioned(MLP(), sigma_data=float(data.std())))
    assert load_ema_weights(fresh, tmp_path / "last.ckpt")
    for (k, a), b in zip(module.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k

    model.eval()
    sigmas = sigmas_karras(32, 0.002, 80.0)
    noise = torch.randn(8000, 2, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    out = sample_heun(model, noise, sigmas).double()
    cov = mixture.covariance()
    std = torch.diag(cov).sqrt()
    # tolerances: ~3x what this budget reaches (mean 0.03 std, cov 5%, weights 0.01)
    assert ((out.mean(0) - mixture.mean()).abs() / std).max() < 0.1
    assert ((torch.cov(out.T) - cov).abs() / torch.outer(std, std)).max() < 0.15
    assert (mixture.responsibilities(out).mean(0) - mixture.weights).abs().max() < 0.04
