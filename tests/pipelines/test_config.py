"""Typed config: defaults <- YAML <- overrides, coercion against field types, unknown-key errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import yaml

from common.errors import ConfigError
from common.training import TrainerConfig
from pipelines.config import apply_overrides, build_config, from_dict, to_dict
from pipelines.toy import ToyConfig


@dataclass
class Inner:
    rate: float = 0.1
    name: str = "heun"
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    shape: tuple[int, int] = (3, 4)
    maybe: int | None = None
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    steps: int = 10
    flag: bool = False
    anything: Any = "auto"
    table: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def test_override_precedence_defaults_yaml_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 20\ninner:\n  rate: 0.5\n  name: euler\n")
    cfg = build_config(Outer, config_file=f, overrides=["inner.rate=0.25"],
                       base={"steps": 15, "flag": True})
    assert cfg.steps == 20  # file beats base
    assert cfg.flag is True  # base beats defaults
    assert cfg.inner.rate == 0.25  # --set beats file
    assert cfg.inner.name == "euler"
    assert cfg.inner.sizes == [1, 2]  # untouched default


@pytest.mark.parametrize("text, key, expected", [
    ("steps=7", "steps", 7),
    ("inner.rate=1e-3", "inner.rate", 1e-3),  # YAML 1.1 reads 1e-3 as a string
    ("inner.rate=2", "inner.rate", 2.0),
    ("flag=true", "flag", True),
    ("inner.name=123", "inner.name", "123"),  # a string field keeps the text
    ("inner.name=yes", "inner.name", "yes"),
    ("inner.sizes=[4, 5, 6]", "inner.sizes", [4, 5, 6]),
    ("inner.shape=[7, 8]", "inner.shape", (7, 8)),
    ("inner.maybe=null", "inner.maybe", None),
    ("inner.maybe=3", "inner.maybe", 3),
    ("inner.mode=b", "inner.mode", "b"),
    ("anything=2", "anything", 2),
    ("anything=[0, 1]", "anything", [0, 1]),
    ("table={a: 1, b: 2.5}", "table", {"a": 1.0, "b": 2.5}),
    ("trainer.devices=2", "trainer.devices", 2),
    ("trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val", 1.0),
])
def test_set_values_are_coerced_to_field_types(text, key, expected):
    cfg = apply_overrides(Outer(), [text])
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text, words", [
    ("steps=abc", ["steps", "integer", "'abc'"]),
    ("steps=1.5", ["steps", "integer"]),
    ("flag=3", ["flag", "true or false"]),
    ("inner.sizes=[1, x]", ["inner.sizes[1]", "integer"]),
    ("inner.shape=[1, 2, 3]", ["inner.shape", "2 items"]),
    ("inner.mode=c", ["inner.mode", "one of"]),
    ("inner.rate=fast", ["inner.rate", "number"]),
    ("steps", ["KEY=VALUE"]),
    ("steps.sub=1", ["steps", "cannot set a sub-key"]),
])
def test_bad_values_name_the_key_and_the_expectation(text, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Outer(), [text])
    for w in words:
        assert w in str(err.value)


def test_unknown_key_names_closest_and_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        apply_overrides(Outer(), ["trainer.max_stepz=3"])
    msg = str(err.value)
    assert "'trainer.max_stepz'" in msg and "did you mean 'trainer.max_steps'" in msg
    assert "max_epochs" in msg and "devices" in msg and "under 'trainer'" in msg
    with pytest.raises(ConfigError) as err:
        apply_overrides(Outer(), ["inne.rate=3"])
    assert "'inne'" in str(err.value) and "did you mean 'inner'" in str(err.value)
    assert all(k in str(err.value) for k in ("steps", "flag", "table", "trainer"))


def test_unknown_key_in_yaml_file_names_file_and_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("inner:\n  rat: 0.5\n")
    with pytest.raises(ConfigError) as err:
        build_config(Outer, config_file=f)
    assert str(f) in str(err.value) and "'inner.rat'" in str(err.value)
    assert "did you mean 'inner.rate'" in str(err.value)


def test_malformed_or_missing_yaml_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("steps: 3\ninner: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml.*line \d+.*not valid YAML"):
        build_config(Outer, config_file=f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        build_config(Outer, config_file=f)
    with pytest.raises(ConfigError, match="not found"):
        build_config(Outer, config_file=tmp_path / "absent.yaml")


def test_round_trip_through_dict_and_yaml():
    cfg = apply_overrides(ToyConfig(), ["data.weights=[1, 2, 3, 4, 5, 6, 7, 8]",
                                        "sample.options={s_churn: 1.0}", "trainer.devices=2"])
    plain = to_dict(cfg)
    again = yaml.safe_load(yaml.safe_dump(plain, sort_keys=False))
    assert again == plain  # what RunDir compares to detect a different config
    assert from_dict(ToyConfig, again) == cfg
    assert to_dict(from_dict(Outer, to_dict(Outer()))) == to_dict(Outer())
    assert isinstance(to_dict(Outer())["inner"]["shape"], list)
