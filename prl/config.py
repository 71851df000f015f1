"""Typed, documented config dataclasses: field help, validation and overrides from text."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from prl.errors import ConfigError


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a one-line ``help`` shown by ``prl run ALGO --help``."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(
            default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kwargs
        )
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def alias(canonical: str, help: str = "") -> Any:
    """A config field that is another name of field ``canonical`` (e.g. TRL's ``beta``).

    It defaults to None; a value given under the alias moves to ``canonical`` when the config is
    built (:func:`resolve_aliases`, called by :func:`build_config` and by the config's
    ``__post_init__``), so old config files and CLI flags keep working.
    """
    text = help or f"alias of {canonical}"
    return dataclasses.field(default=None, metadata={"help": text, "alias_of": canonical})


def aliases_of(cls: Any) -> dict[str, str]:
    """alias field name → canonical field name of a config dataclass (or instance)."""
    return {
        f.name: f.metadata["alias_of"] for f in dataclasses.fields(cls) if "alias_of" in f.metadata
    }


def resolve_aliases(cfg: Any) -> Any:
    """Move values given under alias fields to their canonical fields (in place); returns cfg.

    Giving both names with different values raises ConfigError.
    """
    defaults = {f.name: f for f in dataclasses.fields(cfg)}
    for name, canonical in aliases_of(cfg).items():
        value = getattr(cfg, name)
        if value is None:
            continue
        f = defaults[canonical]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        current = getattr(cfg, canonical)
        if current != default and current != value:
            raise ConfigError(
                f"{name} is another name of {canonical}: give one of them, not both "
                f"({name}={value!r}, {canonical}={current!r})"
            )
        setattr(cfg, canonical, value)
        setattr(cfg, name, None)
    return cfg


def field_help(cls: type, name: str) -> str:
    """The help text of one config field."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    return ""


def _resolved_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - unresolvable annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert ``value`` (often a string from the command line) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{name}: cannot parse {value!r}")
    if origin is typing.Literal:
        if isinstance(value, str):
            for a in args:
                if str(a) == value:
                    return a
        if value in args:
            return value
        raise ConfigError(f"{name} must be one of {list(args)}, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            parsed = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
            value = [v for v in parsed] if isinstance(parsed, list) else [parsed]
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        items = [coerce(v, inner, name) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any or tp is typing.Any:
        return yaml.safe_load(value) if isinstance(value, str) else value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name} must be a boolean (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise ConfigError(f"{name} must be an integer, got {value!r}") from None
            if f.is_integer():
                return int(f)
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def build_config(cls: type, overrides: dict[str, Any] | None = None) -> Any:
    """Instantiate config ``cls`` with ``overrides`` coerced to the field types, then validate."""
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(
            f"unknown config field(s) {', '.join(unknown)} for {cls.__name__} "
            f"(known: {', '.join(sorted(names))})"
        )
    hints = _resolved_types(cls)
    kwargs = {k: coerce(v, hints.get(k, Any), k) for k, v in overrides.items()}
    cfg = resolve_aliases(cls(**kwargs))
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict of a config dataclass."""
    out = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``cond``: the one-liner used by ``validate`` methods."""
    if not cond:
        raise ConfigError(message)
