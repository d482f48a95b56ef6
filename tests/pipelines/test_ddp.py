"""DDP via the real entry point: 2 CPU processes (gloo) train disjoint shards to equal weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
N_TRAIN, BATCH, WORLD = 512, 32, 2
STEPS = N_TRAIN // (BATCH * WORLD)  # exactly one epoch per rank


@pytest.mark.ddp
@pytest.mark.timeout(300)
def test_two_process_ddp_disjoint_shards_identical_weights(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "pipelines.cli", "toy", "train", "--out", str(out),
           "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
           "--set", "train.audit=true", "--set", f"data.n_train={N_TRAIN}",
           "--set", f"train.batch_size={BATCH}", "--set", f"trainer.max_steps={STEPS}",
           "--set", "model.hidden=32", "--set", "trainer.enable_progress_bar=false"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / "ddp" / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == WORLD and r["global_step"] == STEPS for r in ranks)
    shards = [set(r["indices"]["0"]) for r in ranks]
    assert all(len(r["indices"]["0"]) == N_TRAIN // WORLD for r in ranks)  # no repeats
    assert not shards[0] & shards[1]  # disjoint
    assert shards[0] | shards[1] == set(range(N_TRAIN))  # covering
    assert ranks[0]["digest"] == ranks[1]["digest"]  # identical weights after all-reduce
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["world_size"] == WORLD and metrics["train"]["global_step"] == STEPS
    assert json.loads((out / "state.json").read_text())["done"] == ["prepare", "train"]
    assert ranks[0]["digest"] != _initial_digest()  # ... and they did train


def _initial_digest() -> str:
    """Digest of the toy module as ``train`` initialises it (same seed, same config)."""
    import lightning.pytorch as pl

    from common.training import DiffusionModule
    from pipelines.fit import parameter_digest
    from pipelines.toy import ModelConfig, build_model

    pl.seed_everything(0, verbose=False)
    return parameter_digest(DiffusionModule(build_model(ModelConfig(hidden=32), 1.0)))


@pytest.mark.ddp
@pytest.mark.timeout(300)
def test_torchrun_launch_runs_every_stage_once(tmp_path):
    """torchrun starts both ranks on ``run``: rank 0 prepares, both train, rank 0 finishes."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "pipelines.cli", "toy", "run", "--out", str(out),
           "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
           "--set", "train.audit=true", "--set", f"data.n_train={N_TRAIN}",
           "--set", f"train.batch_size={BATCH}", "--set", f"trainer.max_steps={STEPS}",
           "--set", "model.hidden=32", "--set", "sample.n=256", "--set", "sample.steps=4",
           "--set", "trainer.enable_progress_bar=false"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / "ddp" / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0]["digest"] == ranks[1]["digest"] and ranks[0]["world_size"] == WORLD
    assert not set(ranks[0]["indices"]["0"]) & set(ranks[1]["indices"]["0"])
    state = json.loads((out / "state.json").read_text())["done"]
    assert state == ["prepare", "train", "sample", "evaluate", "export"]
    assert proc.stderr.count("toy: sample done") == 1  # only rank 0 ran the later stages
    assert proc.stderr.count("toy: prepare done") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing moved aside or duplicated
