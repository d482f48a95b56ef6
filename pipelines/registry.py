"""The verticals the CLI knows: each ``pipelines/<domain>.py`` defines ``VERTICAL``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.errors import ConfigError

STAGES = ("prepare", "train", "sample", "evaluate", "export")

# domain name -> module that defines VERTICAL; imported lazily so a missing extra only
# disables its own domain.
MODULES = {
    "toy": "pipelines.toy",
    "timeseries": "pipelines.timeseries",
    "materials": "pipelines.materials",
    "shapes": "pipelines.shapes",
    "motion": "pipelines.motion",
}

StageFn = Callable[[Any, Any], None]


@dataclass
class Command:
    """An extra domain command, e.g. ``genpipes motion stylize``: argparse setup + handler."""

    help: str
    add_arguments: Callable[[Any], None]
    handler: Callable[[Any], int | None]


@dataclass
class Vertical:
    """A domain's pipeline: a typed config, its stages, and overrides for the small demo budget."""

    name: str
    description: str
    config_cls: type
    stages: dict[str, StageFn]
    demo_overrides: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"{self.name}: unknown stages {sorted(unknown)}; valid: {STAGES}")


def load_vertical(name: str) -> Vertical:
    """Import ``pipelines.<name>``, return its ``VERTICAL``; clear error if unknown or missing."""
    if name not in MODULES:
        raise ConfigError(f"unknown domain {name!r}; valid: {', '.join(MODULES)}")
    try:
        module = importlib.import_module(MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("pipelines",) and MODULES[name].endswith(
                exc.name.split(".")[-1]):
            raise ConfigError(f"domain {name!r} is not implemented yet") from None
        raise ConfigError(
            f"domain {name!r} needs the optional dependency {exc.name!r}: "
            f"pip install 'genpipes[{name}]'"
        ) from exc
    except Exception as exc:  # a bug in the vertical's module: report it, do not crash `list`
        raise ConfigError(
            f"domain {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    vertical = getattr(module, "VERTICAL", None)
    if not isinstance(vertical, Vertical):
        raise ConfigError(f"domain {name!r} failed to import: {MODULES[name]} defines no VERTICAL")
    return vertical


def available_verticals(names: Sequence[str] | None = None) -> dict[str, Vertical | str]:
    """Each domain of ``names`` (default: all) mapped to its Vertical, or why it is unavailable."""
    out: dict[str, Vertical | str] = {}
    for name in MODULES if names is None else names:
        try:
            out[name] = load_vertical(name)
        except ConfigError as exc:
            out[name] = str(exc)
    return out
