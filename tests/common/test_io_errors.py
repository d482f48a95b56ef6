"""Atomic writes, safe checkpoint loading, the DataError message, and the EMA callback's math."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from torch import nn

from common.errors import CheckpointError, ConfigError, DataError, GenpipesError
from common.io import atomic_write_json, atomic_write_text, load_checkpoint, save_checkpoint
from common.training import EMA, DiffusionModule


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    atomic_write_json(path, {"a": 1, "b": torch.tensor(2.5)})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    atomic_write_text(path, "old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new and half-written")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_checkpoint_round_trip_and_kind(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, "toy/mlp", {"state_dict": {"w": torch.arange(3.0)}, "step": 7})
    obj = load_checkpoint(path, "toy/mlp")
    assert torch.equal(obj["state_dict"]["w"], torch.arange(3.0)) and obj["step"] == 7
    with pytest.raises(CheckpointError, match="holds a 'toy/mlp' model, expected 'other'"):
        load_checkpoint(path, "other")


class Foreign:
    pass


@pytest.mark.parametrize("content", ["garbage", "plain_dict", "pickle_object", "future", "missing"])
def test_bad_checkpoints_get_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content == "garbage":
        path.write_bytes(b"\x00not a checkpoint at all")
        match = "not a readable genpipes checkpoint"
    elif content == "plain_dict":
        torch.save({"weights": torch.zeros(2)}, path)
        match = "no 'genpipes_format' key"
    elif content == "pickle_object":  # arbitrary objects are refused by weights_only=True
        path.write_bytes(pickle.dumps(Foreign()))
        match = "not a readable genpipes checkpoint"
    elif content == "future":
        torch.save({"genpipes_format": 99, "kind": "x"}, path)
        match = "newer than this genpipes"
    else:
        match = "checkpoint not found"
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_data_error_names_file_field_and_expectation():
    err = DataError("value is NaN", file="data/train.csv", field="target", expected="a float")
    assert str(err) == "data/train.csv: field 'target': value is NaN (expected a float)"
    assert (err.file, err.field, err.expected) == ("data/train.csv", "target", "a float")
    assert str(DataError("empty")) == "empty"
    assert isinstance(err, GenpipesError) and isinstance(err, ValueError)
    assert issubclass(ConfigError, GenpipesError)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def loss(self, x0, cond=None, mask=None):
        return (self.lin(x0) ** 2).mean(1)


def test_ema_callback_follows_the_recursion():
    module = DiffusionModule(Tiny())
    ema = EMA(decay=0.9, warmup=True)
    ema.on_fit_start(None, module)
    w = module.model.lin.weight.detach().clone()
    expected = w.clone()
    for n in range(1, 30):
        with torch.no_grad():
            module.model.lin.weight.add_(torch.full_like(w, 0.1 * n))
        ema.on_train_batch_end(None, module)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * module.model.lin.weight.detach()
    assert torch.allclose(ema.shadow["model.lin.weight"], expected, atol=1e-6)
    state = ema.state_dict()
    fresh = EMA(decay=0.9)
    fresh.load_state_dict(state)
    assert fresh.num_updates == 29
    fresh.copy_to(module)
    assert torch.allclose(module.model.lin.weight, expected, atol=1e-6)
