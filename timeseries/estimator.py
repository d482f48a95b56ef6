"""GluonTS-native TSDiff: ``TSDiffEstimator.train(dataset) -> TSDiffPredictor`` (the gluonts
Estimator/Predictor contract), training the unconditional model of TSDiff (Kollovieh et al. 2023,
Sec. 3, Eq. 3: DDPM's eps loss on random windows) and forecasting by self-guidance (Eq. 8-9).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor
from tqdm.auto import tqdm

from common.errors import CheckpointError, ConfigError
from common.io import load_checkpoint, save_checkpoint
from common.seeds import resolve_device
from common.training import DiffusionModule, TrainerConfig, make_trainer

from .dataset import check_freq, entry_arrays, validate_entries
from .guidance import PAPER_SCALES, SAMPLERS, default_scale, guided_forecast, missing_mask
from .module import compile_backbone, tsdiff_denoiser
from .windows import default_lags, forecast_window, mean_scale, sample_training_windows

KIND = "timeseries/tsdiff"
DEFAULT_CONTEXT = {"H": 336, "B": 360, "D": 360}


@dataclass
class TSDiffConfig:
    """Everything that defines a trained TSDiff model and its default forecasting settings."""

    freq: str
    prediction_length: int
    context_length: int
    lags: list[int] = field(default_factory=list)
    hidden: int = 64
    blocks: int = 3
    state: int = 32
    step_emb: int = 128
    init_skip: bool = False
    dropout: float = 0.0
    diffusion_steps: int = 100
    beta_start: float = 1e-4
    beta_end: float = 0.1
    guidance: str = "quantile"
    scale: float = 2.0  # the DDPM guidance scale (the paper's per-dataset s)
    ode_scale: float | None = None  # DDIM / DPM-Solver++ scale; None: default_scale(...)
    sampler: str = "ddpm"
    sampling_steps: int | None = None
    precision: str = "32"
    compile: bool = False

    @property
    def length(self) -> int:
        return self.context_length + self.prediction_length

    def scale_for(self, sampler: str, guidance: str | None = None) -> float:
        """The guidance scale ``sampler`` uses by default with ``guidance`` (default: the
        config's): ``scale`` for DDPM; ``ode_scale`` (else ``default_scale``, a fraction of
        ``scale`` measured per guidance) for DDIM / DPM-Solver++."""
        if sampler != "ddpm" and self.ode_scale is not None:
            return float(self.ode_scale)
        return default_scale(sampler, self.scale, guidance or self.guidance)

    def build(self) -> torch.nn.Module:
        """A fresh denoiser; with ``compile`` its backbone runs through ``torch.compile``."""
        den = tsdiff_denoiser(1 + len(self.lags), self.hidden, self.blocks,
                              self.diffusion_steps, self.beta_start, self.beta_end,
                              step_emb=self.step_emb, state=self.state,
                              init_skip=self.init_skip, dropout=self.dropout)
        if self.compile:
            compile_backbone(den.backbone)
        return den


class WindowBatches(torch.utils.data.Dataset):
    """``num_batches`` random scaled training windows per epoch; item i is a whole batch."""

    def __init__(self, series: list[tuple[np.ndarray, np.ndarray]], cfg: TSDiffConfig,
                 batch_size: int, num_batches: int, seed: int | list[int] = 0) -> None:
        self.series, self.cfg = series, cfg
        self.batch_size, self.num_batches = batch_size, num_batches
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        x, m = sample_training_windows(self.series, self.batch_size, c.context_length,
                                       c.prediction_length, c.lags, self.rng)
        s = mean_scale(x, m, c.context_length)
        return {"x": torch.from_numpy(x / s[:, None, None]), "mask": torch.from_numpy(m)}


class TSDiffEstimator:
    """Train TSDiff on a GluonTS dataset (an iterable of ``{"start", "target", ...}`` entries).

    Args:
        freq: pandas frequency of the series ("H", "B", ...).
        prediction_length: forecast horizon.
        context_length: observed steps the guidance conditions on (default 336 hourly, 360 daily).
        use_lags: add TSDiff's lagged copies of the target as channels.
        lags: explicit lags (overrides ``use_lags``' frequency defaults).
        dataset_name: picks the paper's guidance scale when ``scale`` is None.
        guidance: "quantile" (TSDiff-Q), "mse" (TSDiff-MS) or "none".
        scale: guidance scale for every sampler. None (default): per sampler, the paper's
            per-dataset value for DDPM (else 2) and a fraction of it for the few-step DDIM /
            DPM-Solver++, which take the whole guided x0 estimate at each large step: 1/8 for
            TSDiff-Q, 1/20 for TSDiff-MS (M4 trained on all series, DDIM-10: 0.25 and 0.1 best
            on validation windows, the paper's 2 diverges; ``guidance.default_scale``).
            ``timeseries.choose_scale`` picks one on validation windows; ``predict(scale=...)``
            overrides.
        ode_scale: explicit scale for DDIM / DPM-Solver++ only (with ``scale`` None).
        sampler: "ddpm" (100 steps), "ddim" or "dpmpp_2m" (the core's DPM-Solver++(2M); 10
            steps by default for both); ``sampling_steps`` overrides the step count.
        lr, batch_size, num_batches_per_epoch, gradient_clip_val: TSDiff's training settings.
        trainer: Lightning settings (``max_steps``, devices, ...).
        checkpoint_dir: where ``last.ckpt`` lives; training resumes from it.
        seed: training seed.
        **model: backbone sizes (``hidden``, ``blocks``, ``state``, ``init_skip``, ``dropout``),
            ``precision`` ("32" or "bf16" forecasts) and ``compile`` (torch.compile, eager
            fallback).
    """

    def __init__(self, freq: str, prediction_length: int, context_length: int | None = None,
                 use_lags: bool = True, lags: list[int] | None = None,
                 dataset_name: str | None = None, guidance: str = "quantile",
                 scale: float | None = None, ode_scale: float | None = None,
                 sampler: str = "ddpm",
                 sampling_steps: int | None = None, lr: float = 1e-3, batch_size: int = 64,
                 num_batches_per_epoch: int = 128, gradient_clip_val: float = 0.5,
                 trainer: TrainerConfig | None = None, checkpoint_dir: str | Path | None = None,
                 seed: int = 0, **model: Any) -> None:
        check_freq(freq)
        if prediction_length <= 0:
            raise ConfigError(f"prediction_length must be positive, got {prediction_length}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"unknown forecast sampler {sampler!r}; valid: {SAMPLERS}")
        name = pd.tseries.frequencies.to_offset(freq).name.upper()
        context_length = context_length or DEFAULT_CONTEXT.get(name, 10 * prediction_length)
        lags = list(lags) if lags is not None else (default_lags(freq) if use_lags else [])
        if scale is not None:  # an explicit scale holds for every sampler
            ode_scale = scale if ode_scale is None else ode_scale
        else:
            scale = PAPER_SCALES.get(dataset_name or "", 2.0)
        unknown = set(model) - {f.name for f in dataclasses.fields(TSDiffConfig)}
        if unknown:
            raise ConfigError(f"unknown TSDiff model options {sorted(unknown)}")
        self.config = TSDiffConfig(freq=freq, prediction_length=prediction_length,
                                   context_length=context_length, lags=lags, guidance=guidance,
                                   scale=float(scale), sampler=sampler,
                                   ode_scale=None if ode_scale is None else float(ode_scale),
                                   sampling_steps=sampling_steps, **model)
        self.lr, self.batch_size = lr, batch_size
        self.num_batches_per_epoch = num_batches_per_epoch
        self.trainer_config = trainer or TrainerConfig(max_steps=2000, gradient_clip_val=None)
        self.gradient_clip_val = gradient_clip_val
        self.checkpoint_dir = checkpoint_dir
        self.seed = seed

    def create_module(self) -> DiffusionModule:
        """The LightningModule (core ``DiffusionModule``) around a fresh TSDiff denoiser."""
        return DiffusionModule(self.config.build(), lr=self.lr, grad_clip=self.gradient_clip_val)

    def create_loader(self, training_data: Any, start_step: int = 0
                      ) -> torch.utils.data.DataLoader:
        """Batches of random scaled windows (each epoch ``num_batches_per_epoch`` batches).

        ``start_step`` > 0 (a resumed run) seeds the window stream with (seed, start_step), so a
        resumed run draws new windows instead of replaying those of steps 0, 1, ...
        """
        entries = validate_entries(training_data)
        series = [entry_arrays(e, i) for i, e in enumerate(entries)]
        seed = [self.seed, start_step] if start_step else self.seed
        return torch.utils.data.DataLoader(
            WindowBatches(series, self.config, self.batch_size, self.num_batches_per_epoch,
                          seed), batch_size=None, shuffle=False)

    def create_predictor(self, module: DiffusionModule) -> TSDiffPredictor:
        """A predictor from a trained module."""
        return TSDiffPredictor(module.model.cpu(), self.config, seed=self.seed)

    def train(self, training_data: Any, validation_data: Any = None,
              callbacks: list[Any] | None = None, **kwargs: Any) -> TSDiffPredictor:
        """Fit the unconditional model on random windows; resumes from ``checkpoint_dir``.

        ``callbacks`` are extra Lightning callbacks (run before the EMA callback).
        """
        import lightning.pytorch as pl

        pl.seed_everything(self.seed, workers=True, verbose=False)
        ckpt, start = None, 0
        if self.checkpoint_dir is not None and (Path(self.checkpoint_dir) / "last.ckpt").exists():
            ckpt = str(Path(self.checkpoint_dir) / "last.ckpt")
            start = _global_step(ckpt)
        loader = self.create_loader(training_data, start)
        module = self.create_module()
        trainer = make_trainer(self.trainer_config, self.checkpoint_dir, callbacks)
        trainer.fit(module, loader, ckpt_path=ckpt)
        return self.create_predictor(module)


def _global_step(path: str) -> int:
    """The training step stored in a Lightning checkpoint (``CheckpointError`` if unreadable)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear error
        raise CheckpointError(f"cannot resume from {path}: not a readable Lightning checkpoint "
                              f"with a global_step ({type(err).__name__}: {err})") from err


class TSDiffPredictor(Predictor):
    """A gluonts ``Predictor``: ``predict(dataset, num_samples=100)`` yields ``SampleForecast``s."""

    def __init__(self, denoiser: torch.nn.Module, config: TSDiffConfig, seed: int = 0,
                 batch_size: int = 4, device: str = "auto") -> None:
        super().__init__(prediction_length=config.prediction_length)
        self.denoiser = denoiser.eval().requires_grad_(False)
        self.config, self.seed, self.batch_size = config, seed, batch_size
        self.device = resolve_device(device)
        self.freq = config.freq

    def predict(self, dataset: Any, num_samples: int = 100, guidance: str | None = None,
                scale: float | None = None, sampler: str | None = None,
                steps: int | None = None, missing_scenario: str = "none",
                progress: bool = True, precision: str | None = None, **kwargs: Any
                ) -> Iterator[SampleForecast]:
        """Self-guided forecasts of the ``prediction_length`` steps after each series' end.

        ``scale`` None: the sampler's default (``TSDiffConfig.scale_for``).
        ``missing_scenario`` ("RM", "BM-B", "BM-E") hides half of each context as in TSDiff's
        missing-value experiments. Forecasts are reproducible: series k uses seed ``seed + k``.
        ``precision="bf16"`` runs the backbone's dense layers under bfloat16 autocast (faster on
        CPUs with AVX512-BF16; see ``guided_forecast``).
        """
        c = self.config
        guidance = guidance or c.guidance
        sampler = sampler or c.sampler
        scale = c.scale_for(sampler, guidance) if scale is None else scale
        steps = steps or c.sampling_steps
        precision = precision or c.precision
        den = self.denoiser.to(self.device)
        entries = validate_entries(dataset)
        bar = tqdm(total=len(entries), desc="TSDiff forecast", unit="series",
                   disable=not progress, leave=False)
        for lo in range(0, len(entries), self.batch_size):
            batch = entries[lo:lo + self.batch_size]
            obs, masks = [], []
            for k, e in enumerate(batch):
                values, observed = entry_arrays(e, lo + k)
                if missing_scenario != "none":
                    keep = missing_mask(len(values), min(c.context_length, len(values)),
                                        missing_scenario, rng=np.random.default_rng(lo + k))
                    observed = observed * keep
                x, m = forecast_window(values, observed, c.context_length,
                                       c.prediction_length, c.lags)
                obs.append(x)
                masks.append(m)
            obs_a, mask_a = np.stack(obs), np.stack(masks)
            sc = mean_scale(obs_a, mask_a, c.context_length)
            obs_t = torch.from_numpy(obs_a / sc[:, None, None]).to(self.device)
            samples = guided_forecast(den, obs_t, torch.from_numpy(mask_a).to(self.device),
                                      num_samples, guidance, scale, sampler, steps,
                                      seeds=[self.seed + lo + k for k in range(len(batch))],
                                      precision=precision)
            future = samples[:, :, 0, -c.prediction_length:].cpu().numpy() * sc[:, None, None]
            for k, e in enumerate(batch):
                start = pd.Period(e["start"], freq=c.freq) + len(np.asarray(e["target"]))
                yield SampleForecast(samples=future[k], start_date=start,
                                     item_id=e.get("item_id"))
            bar.update(len(batch))
        bar.close()

    def serialize(self, path: Path) -> None:
        """Write gluonts' type file and a ``weights_only``-safe checkpoint (weights + config)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        super().serialize(path)
        save_checkpoint(path / "tsdiff.pt", KIND, {
            "state_dict": self.denoiser.state_dict(), "config": json.dumps(
                dataclasses.asdict(self.config)), "seed": self.seed})

    @classmethod
    def deserialize(cls, path: Path, device: str = "auto", **kwargs: Any) -> TSDiffPredictor:
        """Load a predictor written by ``serialize``."""
        state = load_checkpoint(Path(path) / "tsdiff.pt", KIND)
        config = TSDiffConfig(**json.loads(state["config"]))
        denoiser = config.build()
        denoiser.load_state_dict(state["state_dict"])
        return cls(denoiser, config, seed=int(state["seed"]), device=device)
