"""Every vertical that loads honours the pipeline contract (cheap checks, no training)."""

from __future__ import annotations

import pytest
import yaml

from common.errors import ConfigError
from pipelines.config import build_config, from_dict, to_dict
from pipelines.registry import MODULES, STAGES, Vertical, load_vertical
from pipelines.runner import is_rank_zero, plan


@pytest.mark.parametrize("name", list(MODULES))
def test_vertical_contract(name):
    vertical = load_vertical(name)  # the test command installs every extra: no vertical may fail
    assert isinstance(vertical, Vertical) and vertical.name == name
    assert set(vertical.stages) <= set(STAGES) and vertical.description
    cfg = build_config(vertical.config_cls, base=vertical.demo_overrides)  # keys must exist
    plain = to_dict(cfg)
    assert yaml.safe_load(yaml.safe_dump(plain, sort_keys=False)) == plain
    assert from_dict(vertical.config_cls, plain) == cfg
    assert not set(vertical.commands) & {*STAGES, "run"}


def test_unknown_domain():
    with pytest.raises(ConfigError, match="unknown domain 'nope'"):
        load_vertical("nope")


class _FakeRun:
    def __init__(self, done):
        self.done = done

    def is_done(self, stage):
        return stage in self.done


def test_plan_runs_missing_earlier_stages_and_skips_done_ones():
    assert plan("run", _FakeRun({"prepare", "train"})) == ["sample", "evaluate", "export"]
    assert plan("run", _FakeRun(set(STAGES))) == []
    assert plan("sample", _FakeRun({"prepare"})) == ["train", "sample"]
    assert plan("train", _FakeRun(set(STAGES))) == ["train"]  # an explicit stage always runs
    with pytest.raises(ConfigError, match="unknown stage"):
        plan("fit", _FakeRun(set()))


@pytest.mark.parametrize("env, zero", [
    ({}, True), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True), ({"LOCAL_RANK": "1"}, False),
    ({"RANK": "3"}, False), ({"SLURM_PROCID": "0"}, True), ({"SLURM_PROCID": "2"}, False),
    ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
])
def test_rank_zero_from_launcher_environment(monkeypatch, env, zero):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert is_rank_zero() is zero


def test_extra_domain_command_is_dispatched(capsys):
    from dataclasses import dataclass

    from pipelines.cli import run_domain
    from pipelines.registry import Command

    seen = {}

    def add_arguments(parser):
        parser.add_argument("--name", required=True)

    def handler(args):
        seen.update(name=args.name, domain=args.domain)
        return 3

    @dataclass
    class Cfg:
        x: int = 1

    vertical = Vertical(name="fake", description="d", config_cls=Cfg, stages={},
                        commands={"hello": Command("say hello", add_arguments, handler)})
    assert run_domain(vertical, ["hello", "--name", "ada"]) == 3
    assert seen == {"name": "ada", "domain": "fake"}
    with pytest.raises(SystemExit):
        run_domain(vertical, ["hello"])  # its own required argument is enforced
    assert "--name" in capsys.readouterr().err
