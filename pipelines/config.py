"""Typed run configs: dataclass defaults <- YAML file <- ``--set key.sub=value`` overrides.

Values from YAML or the command line are coerced and validated against the dataclass field types
(int, float, bool, str, None, list, dict, tuple, ``Optional[...]``/``X | None``, ``Literal``,
nested dataclasses; ``Any`` is taken as is). An unknown key raises ``ConfigError`` naming the key,
the valid keys at that level and the closest match (difflib), like OmegaConf's structured configs.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError

_MISSING = object()


# ------------------------------------------------------------------------------------------------
# dataclass <-> plain dict
# ------------------------------------------------------------------------------------------------
def to_dict(obj: Any) -> Any:
    """A YAML-safe plain structure: dataclasses -> dicts, tuples -> lists, Paths -> str."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def from_dict(cls: type, data: Mapping[str, Any] | None, *, where: str = "") -> Any:
    """Build the dataclass ``cls`` from ``data`` (missing keys keep their defaults).

    Args:
        cls: a dataclass type.
        data: a (nested) mapping of field values.
        where: dotted prefix of this level, used in error messages.

    Raises:
        ConfigError: an unknown key or a value that does not fit its field's type.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {_show(data)}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in names:
            raise unknown_key_error(key, names, where)
    kwargs = {k: coerce(v, hints[k], f"{where}{k}") for k, v in data.items()}
    return cls(**kwargs)


def unknown_key_error(key: Any, valid: Iterable[str], where: str = "") -> ConfigError:
    """A ``ConfigError`` naming ``key``, the closest valid key and every valid key at that level."""
    valid = list(valid)
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    hint = f"; did you mean {where + close[0]!r}?" if close else ""
    level = f" under {where.rstrip('.')!r}" if where else ""
    return ConfigError(
        f"unknown config key {where + str(key)!r}{hint} (valid keys{level}: {', '.join(valid)})"
    )


# ------------------------------------------------------------------------------------------------
# type coercion
# ------------------------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable forward refs: fall back to the raw annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def coerce(value: Any, tp: Any, key: str, raw: str | None = None) -> Any:
    """Check/convert ``value`` to the type hint ``tp``; ``raw`` is the command-line text, if any.

    Raises:
        ConfigError: naming ``key``, the expected type and the value given.
    """
    if tp is Any or tp is object or isinstance(tp, (str, typing.TypeVar)):
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (types.UnionType is not None and origin is types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        # try str last so that "2" -> 2 for `int | str`
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):
            try:
                return coerce(value, arg, key, raw)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_name(tp)}, got {_show(value)}")
    if origin is typing.Literal:
        if value in args:
            return value
        if raw is not None and raw in args:
            return raw
        raise ConfigError(f"{key}: expected one of {list(args)}, got {_show(value)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where=f"{key}.")
    if origin in (list, typing.List) or tp is list:  # noqa: UP006
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {_show(value)}")
        item = args[0] if args else Any
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, typing.Tuple) or tp is tuple:  # noqa: UP006
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list (tuple), got {_show(value)}")
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args else Any
            return tuple(coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, typing.Dict) or tp is dict or origin is Mapping:  # noqa: UP006
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {_show(value)}")
        kt, vt = args if args else (Any, Any)
        return {coerce(k, kt, f"{key}"): coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {_show(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {_show(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {_show(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        if raw is not None:  # `--set name=123` means the string "123"
            return raw
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {_show(value)}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return str(value)
        raise ConfigError(f"{key}: expected a path, got {_show(value)}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{key}: expected {tp.__name__}, got {_show(value)}")
    return value


def _name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or (types.UnionType is not None and origin is types.UnionType):
        return " or ".join(_name(a) for a in args)
    return str(tp).replace("typing.", "")


# ------------------------------------------------------------------------------------------------
# overrides and loading
# ------------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, str]:
    """Split ``key.sub=value`` into key and raw value text."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. trainer.max_steps=200")
    return key, value


def set_dotted(cfg: Any, key: str, value: Any, raw: str | None = None) -> None:
    """Set ``cfg.<key>`` (dotted) to ``value`` coerced to the field's type; in place.

    Raises:
        ConfigError: an unknown key (with the valid keys at that level) or a wrong-typed value.
    """
    parts = key.split(".")
    node, where = cfg, ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(node):
            names = [f.name for f in dataclasses.fields(node)]
            if part not in names:
                raise unknown_key_error(part, names, where)
            if last:
                tp = _hints(type(node))[part]
                setattr(node, part, coerce(value, tp, f"{where}{part}", raw))
                return
            node = getattr(node, part)
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            raise ConfigError(
                f"{where}{part}: cannot set a sub-key of {where.rstrip('.')!r}, "
                f"which holds {_show(node)}"
            )
        where += f"{part}."


def apply_overrides(cfg: Any, overrides: Mapping[str, Any] | Iterable[str]) -> Any:
    """Apply ``{"a.b": value}`` or ``["a.b=value", ...]`` (values parsed as YAML) to ``cfg``."""
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            set_dotted(cfg, key, value)
        return cfg
    for text in overrides:
        key, raw = parse_override(text)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        set_dotted(cfg, key, value, raw=raw)
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (a mapping); clear errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def build_config(cls: type, *, config_file: str | Path | None = None,
                 overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None) -> Any:
    """Defaults <- ``base`` (e.g. demo overrides) <- YAML ``config_file`` <- ``overrides``.

    Args:
        cls: the vertical's config dataclass.
        config_file: optional YAML file with a (partial) nested mapping.
        overrides: ``"key.sub=value"`` strings, applied in order.
        base: dotted key -> value overrides applied before the file (the demo budget).
    """
    cfg = cls()
    if base:
        apply_overrides(cfg, base)
    if config_file is not None:
        data = load_yaml(config_file)
        try:
            merged = _merge(to_dict(cfg), data)
            cfg = from_dict(cls, merged)
        except ConfigError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None
    apply_overrides(cfg, list(overrides))
    return cfg


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


__all__ = ["to_dict", "from_dict", "coerce", "set_dotted", "apply_overrides", "parse_override",
           "load_yaml", "build_config", "unknown_key_error"]
