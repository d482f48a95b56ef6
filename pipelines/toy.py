"""The toy vertical: EDM (Karras et al. 2022, Eq. 7-8) on a 2-D Gaussian mixture, end to end.

It exercises the whole runner with the shared core: ``prepare`` writes a mixture dataset,
``train`` fits an MLP through ``Preconditioned`` + ``DiffusionModule`` (Lightning, resumable, DDP
ready), ``sample`` runs a core sampler chosen by config with per-sample seeds, ``evaluate``
compares moments and mixture-component weights with the data, ``export`` writes a CSV, a scatter
plot and the report.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from common.denoiser import Preconditioned
from common.errors import DataError
from common.io import atomic_write_bytes, atomic_write_text, load_checkpoint, save_checkpoint
from common.training import TrainerConfig

from .registry import Vertical
from .rundir import RunDir

KIND = "toy/mlp"


@dataclass
class DataConfig:
    """A ring of ``components`` isotropic Gaussians of radius ``radius`` and std ``std``."""

    n_train: int = 4096
    n_test: int = 4096
    components: int = 8
    radius: float = 2.0
    std: float = 0.15
    weights: list[float] | None = None  # mixture weights (normalised); uniform when null
    seed: int = 0


@dataclass
class ModelConfig:
    hidden: int = 128
    layers: int = 3
    frequencies: int = 4  # sinusoidal features of c_noise


@dataclass
class TrainConfig:
    batch_size: int = 1024  # per process under DDP
    lr: float = 1e-2
    audit: bool = False  # per-rank sample indices + final weight digest in <run>/ddp/ (DDP test)


@dataclass
class SampleConfig:
    n: int = 4096
    sampler: str = "heun"  # any name of common.samplers.SAMPLERS
    steps: int = 32
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    seed: int = 0  # sample i uses seed + i (independent of batch size)
    batch_size: int = 1024
    options: dict[str, Any] = field(default_factory=dict)  # sampler kwargs, e.g. s_churn


@dataclass
class ToyConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=2000))


# ------------------------------------------------------------------------------------------------
# data and model
# ------------------------------------------------------------------------------------------------
def mixture(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Centres [K, 2] on a circle and normalised weights [K] of the mixture."""
    if cfg.components < 1:
        raise DataError("must be at least 1", field="data.components", expected="an integer >= 1")
    angles = 2 * math.pi * np.arange(cfg.components) / cfg.components
    centres = cfg.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    w = np.ones(cfg.components) if cfg.weights is None else np.asarray(cfg.weights, float)
    if w.shape != (cfg.components,) or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"got {cfg.weights}", field="data.weights",
                        expected=f"{cfg.components} non-negative numbers with a positive sum")
    return centres, w / w.sum()


def draw(cfg: DataConfig, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of the mixture and their component labels."""
    centres, w = mixture(cfg)
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(w), size=n, p=w)
    return centres[labels] + cfg.std * rng.standard_normal((n, 2)), labels


class PointsDataset(torch.utils.data.Dataset):
    """Rows of an [N, 2] array as ``{"x": row, "index": i}`` (the index feeds the DDP audit)."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = torch.as_tensor(points, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.points[i], "index": i}


class ToyMLP(nn.Module):
    """MLP backbone F(c_in x, c_noise) for EDM preconditioning; sinusoidal noise features."""

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, frequencies: int = 8
                 ) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(frequencies) / 4,
                             persistent=False)
        width = dim + 1 + 2 * frequencies
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Any = None) -> torch.Tensor:
        dtype = self.net[0].weight.dtype  # samplers may hand float64 state to a float32 net
        h, c = x.to(dtype), c_noise[:, None].to(dtype)
        arg = c * self.freqs.to(dtype)
        return self.net(torch.cat([h, c, arg.sin(), arg.cos()], 1)).to(x.dtype)


def build_model(cfg: ModelConfig, sigma_data: float) -> Preconditioned:
    """EDM-preconditioned toy denoiser."""
    backbone = ToyMLP(2, cfg.hidden, cfg.layers, cfg.frequencies)
    return Preconditioned(backbone, sigma_data=sigma_data)


def load_model(run: RunDir) -> tuple[Preconditioned, dict[str, Any]]:
    """The trained model from ``checkpoints/model.pt`` (a genpipes checkpoint of kind toy/mlp)."""
    ckpt = load_checkpoint(run.checkpoints / "model.pt", kind=KIND)
    from .config import from_dict

    model = build_model(from_dict(ModelConfig, ckpt["model_config"]), ckpt["sigma_data"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def _save_npy(path: Any, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _load_npy(path: Any, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"missing; run the earlier stage first ({what})", file=path) from None
    except ValueError as exc:
        raise DataError(f"unreadable ({exc})", file=path, expected="a .npy array") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise DataError(f"shape {arr.shape}", file=path, expected="a finite [N, 2] array")
    return arr


# ------------------------------------------------------------------------------------------------
# stages
# ------------------------------------------------------------------------------------------------
def prepare(cfg: ToyConfig, run: RunDir) -> None:
    """Write train/test points of the mixture into ``<run>/data``."""
    from common.samplers import get_sampler

    get_sampler(cfg.sample.sampler)  # a misspelt sampler fails now, not after training
    train_x, _ = draw(cfg.data, cfg.data.n_train, cfg.data.seed)
    test_x, _ = draw(cfg.data, cfg.data.n_test, cfg.data.seed + 1)
    _save_npy(run.path / "data" / "train.npy", train_x)
    _save_npy(run.path / "data" / "test.npy", test_x)


def train(cfg: ToyConfig, run: RunDir) -> None:
    """Fit with Lightning; resumes from ``checkpoints/last.ckpt``; DDP via ``trainer.*``."""
    import lightning.pytorch as pl

    from common.training import DiffusionModule, make_trainer

    from .fit import ShardAudit, StepRecorder, fit_resumable

    points = _load_npy(run.path / "data" / "train.npy", "genpipes toy prepare")
    sigma_data = float(np.sqrt(points.var(0).mean() + (points.mean(0) ** 2).mean()))
    pl.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = DiffusionModule(build_model(cfg.model, sigma_data), lr=cfg.train.lr)
    loader = torch.utils.data.DataLoader(
        PointsDataset(points), batch_size=cfg.train.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(cfg.trainer.seed))
    callbacks: list[pl.Callback] = [StepRecorder()]
    if cfg.train.audit:
        callbacks.append(ShardAudit(run.path / "ddp"))
    trainer = make_trainer(cfg.trainer, run.checkpoints, callbacks)
    info = fit_resumable(trainer, module, loader, run.checkpoints)
    if trainer.is_global_zero:
        save_checkpoint(run.checkpoints / "model.pt", KIND, {
            "state_dict": module.model.state_dict(), "sigma_data": sigma_data,
            "model_config": {"hidden": cfg.model.hidden, "layers": cfg.model.layers,
                             "frequencies": cfg.model.frequencies},
        })
        run.write_metrics({**info, "world_size": trainer.world_size}, section="train")


def sample(cfg: ToyConfig, run: RunDir) -> None:
    """Draw ``sample.n`` points with the configured core sampler (tqdm), per-sample seeds."""
    from tqdm.auto import tqdm

    from common.noise import sigmas_karras
    from common.samplers import get_sampler
    from common.seeds import randn, sample_generators

    sampler = get_sampler(cfg.sample.sampler)
    model, _ = load_model(run)
    sigmas = sigmas_karras(cfg.sample.steps, cfg.sample.sigma_min, cfg.sample.sigma_max,
                           cfg.sample.rho)
    n, bs = cfg.sample.n, max(1, cfg.sample.batch_size)
    out = []
    with tqdm(total=n, desc=f"sampling ({cfg.sample.sampler}, {cfg.sample.steps} steps)",
              unit="sample") as bar:
        for start in range(0, n, bs):
            seeds = range(cfg.sample.seed + start, cfg.sample.seed + min(n, start + bs))
            gens = sample_generators(seeds)
            x = sigmas[0].float() * randn((len(gens), 2), gens)
            out.append(sampler(model, x, sigmas, generator=gens, **cfg.sample.options))
            bar.update(len(gens))
    _save_npy(run.samples / "samples.npy", torch.cat(out).numpy().astype(np.float64))


def mixture_metrics(points: np.ndarray, cfg: DataConfig) -> dict[str, Any]:
    """Mean, covariance and nearest-centre component weights of ``points`` vs the true mixture."""
    centres, w = mixture(cfg)
    true_mean = w @ centres
    dev = centres - true_mean
    true_cov = (w[:, None, None] * dev[:, :, None] * dev[:, None, :]).sum(0)
    true_cov += cfg.std**2 * np.eye(2)
    n = len(points)
    mean, cov = points.mean(0), np.cov(points.T)
    se = np.sqrt(np.diag(true_cov) / n)
    d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
    labels = d2.argmin(1)
    weights = np.bincount(labels, minlength=len(w)) / n
    far = np.sqrt(d2.min(1)) > 4 * cfg.std
    return {
        "n": n,
        "mean_error_se": float(np.abs(mean - true_mean).max() / se.max()),
        "cov_rel_error": float(np.linalg.norm(cov - true_cov) / np.linalg.norm(true_cov)),
        "weights": [round(float(v), 4) for v in weights],
        "weight_max_error": float(np.abs(weights - w).max()),
        "weight_tv": float(0.5 * np.abs(weights - w).sum()),
        "outlier_fraction": float(far.mean()),
    }


def evaluate(cfg: ToyConfig, run: RunDir) -> None:
    """Sample moments and component weights vs the mixture; the held-out data gives the scale."""
    samples = _load_npy(run.samples / "samples.npy", "genpipes toy sample")
    test = _load_npy(run.path / "data" / "test.npy", "genpipes toy prepare")
    run.write_metrics({"samples": mixture_metrics(samples, cfg.data),
                       "test_data": mixture_metrics(test, cfg.data),
                       "true_weights": [round(float(v), 4) for v in mixture(cfg.data)[1]]},
                      section="evaluate")


def export(cfg: ToyConfig, run: RunDir) -> None:
    """``samples/samples.csv``, ``plots/samples.png`` (data vs samples) and ``report.md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    samples = _load_npy(run.samples / "samples.npy", "genpipes toy sample")
    test = _load_npy(run.path / "data" / "test.npy", "genpipes toy prepare")
    atomic_write_text(run.samples / "samples.csv",
                      pd.DataFrame(samples, columns=["x", "y"]).to_csv(index=False))
    centres, _ = mixture(cfg.data)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for ax, pts, title in ((axes[0], test, "held-out data"),
                           (axes[1], samples, f"samples ({cfg.sample.sampler}, "
                                              f"{cfg.sample.steps} steps)")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", c="k", s=30)
        ax.set_title(title)
        ax.set_aspect("equal")
    lim = cfg.data.radius + 5 * cfg.data.std
    axes[0].set_xlim(-lim, lim)
    axes[0].set_ylim(-lim, lim)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    png = atomic_write_bytes(run.plots / "samples.png", buf.getvalue())
    ev = run.metrics().get("evaluate", {})
    rows = ["| metric | samples | held-out data |", "|---|---|---|"]
    for key in ("mean_error_se", "cov_rel_error", "weight_max_error", "weight_tv",
                "outlier_fraction"):
        a, b = ev.get("samples", {}).get(key), ev.get("test_data", {}).get(key)
        rows.append(f"| {key} | {_fmt(a)} | {_fmt(b)} |")
    steps = run.metrics().get("train", {}).get("global_step")
    text = (f"EDM on a ring of {cfg.data.components} Gaussians, {steps} training steps; "
            f"{len(samples)} samples with `{cfg.sample.sampler}` ({cfg.sample.steps} steps). "
            "Samples as CSV: `samples/samples.csv`.\n\n" + "\n".join(rows))
    run.add_report("Toy 2-D Gaussian mixture", text, images=[png])


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


VERTICAL = Vertical(
    name="toy",
    description="2-D Gaussian mixture with EDM: a smoke test of the whole runner",
    config_cls=ToyConfig,
    stages={"prepare": prepare, "train": train, "sample": sample, "evaluate": evaluate,
            "export": export},
    demo_overrides={"trainer.max_steps": 300, "data.n_train": 2048, "data.n_test": 2048,
                    "sample.n": 2048, "sample.steps": 18},
)
