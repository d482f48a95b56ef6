"""The time-series pipeline end to end on the embedded default with a tiny budget."""

from __future__ import annotations

import json

import pandas as pd

from pipelines.config import build_config
from pipelines.runner import open_run, run_stages
from pipelines.timeseries import VERTICAL

TINY = {"trainer.max_steps": 3, "trainer.enable_progress_bar": False,
        "trainer.accelerator": "cpu", "train.batch_size": 8, "train.num_batches_per_epoch": 2,
        "model.hidden": 8, "model.blocks": 1, "model.use_lags": False,
        "model.context_length": 24, "sample.num_samples": 4, "sample.sampler": "ddim",
        "sample.steps": 2, "data.max_windows": 1}


def test_pipeline_run_writes_forecasts_metrics_plots(tmp_path) -> None:
    cfg = build_config(VERTICAL.config_cls, base=TINY)
    run = open_run(VERTICAL, cfg, tmp_path / "run")
    run_stages(VERTICAL, cfg, run, "run")
    metrics = json.loads((run.path / "metrics.json").read_text())
    for method in ("tsdiff", "seasonal_naive"):
        assert {"crps", "ND", "NRMSE", "MASE"} <= set(metrics["evaluate"][method])
        frame = pd.read_csv(run.samples / f"forecasts_{method}.csv")
        assert len(frame) == 3 * 24  # 3 airports x one window of 24 hours
        assert (frame["q0.1"] <= frame["q0.9"]).all()
        assert (run.plots / f"forecasts_{method}.png").stat().st_size > 1000
    assert metrics["data"]["num_series"] == 3
    assert "TSDiff forecasts" in (run.path / "report.md").read_text()
    # a second train call resumes from last.ckpt instead of starting over
    from pipelines.timeseries import train

    train(cfg, run)
    again = json.loads((run.path / "metrics.json").read_text())["train"]
    assert again["resumed_from"] is not None and again["global_step"] == 3


def test_sample_stage_uses_its_sampler_and_the_per_sampler_default_scale(tmp_path) -> None:
    from pipelines.timeseries import sample
    from timeseries.guidance import ODE_SCALE_FRACTION

    cfg = build_config(VERTICAL.config_cls, base=TINY)
    run = open_run(VERTICAL, cfg, tmp_path / "run")
    run_stages(VERTICAL, cfg, run, "sample")
    got = json.loads((run.path / "metrics.json").read_text())["sample"]
    # nycflights13 has no paper scale: DDPM 2, few-step DDIM 2 * ODE_SCALE_FRACTION
    assert (got["sampler"], got["scale"]) == ("ddim", 2.0 * ODE_SCALE_FRACTION)
    # a later sample call with another sampler uses it (not the one stored at training)
    cfg2 = build_config(VERTICAL.config_cls, base={**TINY, "sample.sampler": "ddpm",
                                                   "sample.steps": 3, "sample.scale": 1.5})
    sample(cfg2, run)
    got = json.loads((run.path / "metrics.json").read_text())["sample"]
    assert (got["sampler"], got["steps"], got["scale"]) == ("ddpm", 3, 1.5)
    # TSDiff-MS at sample time (trained with Q): MS's own few-step default, 2 * 1/20
    from timeseries.guidance import MSE_ODE_SCALE_FRACTION

    sample(build_config(VERTICAL.config_cls, base={**TINY, "sample.guidance": "mse"}), run)
    got = json.loads((run.path / "metrics.json").read_text())["sample"]
    assert (got["guidance"], got["scale"]) == ("mse", 2.0 * MSE_ODE_SCALE_FRACTION)
