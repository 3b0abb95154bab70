"""From a plain mapping (params.yaml, Hydra) to a typed config section, or an error naming the key.

`build(Cls, mapping)` rejects unknown keys, missing keys and wrong types with the dotted path of the
offending key, and values outside a field's range, before any model loads. A field states its range
and whether it changes the training trajectory once, where it is declared (`setting`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type; the message names its dotted path."""


def setting(
    *, low: float | None = None, high: float | None = None, trajectory: bool = True, **field_kwargs: Any
) -> Any:
    """A dataclass field with an inclusive numeric range [low, high] (None = unbounded), checked by
    `build`, and `trajectory=False` where the value changes how a run is kept or placed but not what it
    computes (a checkpoint stays valid across it). No default unless `field_kwargs` gives one: conf/
    is where values live."""
    return dataclasses.field(metadata={"range": (low, high), "trajectory": trajectory}, **field_kwargs)


def out_of_bounds(f: dataclasses.Field, value: Any) -> str | None:
    """Why `value` of field `f` lies outside its range, with the range; None if inside (or unbounded)."""
    low, high = f.metadata.get("range", (None, None))
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        return f"{value!r} is out of range; allowed values: {allowed}"
    return None


def affects_trajectory(f: dataclasses.Field) -> bool:
    """False for bookkeeping and placement fields (see `setting`)."""
    return bool(f.metadata.get("trajectory", True))


T = TypeVar("T")


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking keys, types and ranges; errors name the dotted path."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown key; allowed keys of {cls.__name__}: {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], _join(path, name))
            if problem := out_of_bounds(f, kwargs[name]):
                raise ConfigError(f"{_join(path, name)}: {problem}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: required key is missing")
    return cls(**kwargs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {args}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed values: {list(args)}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, _join(path, str(k))) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported config type {tp}")


def to_dict(cfg: Any) -> Any:
    """Plain (YAML/JSON-able) form of a config dataclass, tuples as lists."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [to_dict(v) for v in cfg]
    return cfg


def apply_override(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set tree[a][b][c] = value for key "a.b.c", creating sections; errors name the key."""
    node = tree
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    node[parts[-1]] = value
