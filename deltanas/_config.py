"""Frozen-dataclass configs that round-trip through JSON (``config.json`` of a run)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, TypeVar

from ._io import atomic_write_text
from .errors import ConfigError

__all__ = ["JsonConfig", "dataclass_from_dict"]

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Rebuild a (nested) frozen dataclass from JSON-like data, refusing unknown keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            value = dataclass_from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, list):  # a tuple field whose default is None
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class JsonConfig:
    """Mixin for frozen dataclasses: ``to_dict``/``from_dict``, ``save``/``load``, ``replace``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        return dataclass_from_dict(cls, data, "config")

    def save(self, path: "str | Path") -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: "str | Path"):
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: malformed JSON ({exc})") from None

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
