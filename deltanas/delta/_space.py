"""Search spaces: the candidate student operators of every layer, read from YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ArchError, ConfigError
from ._layers import LayerInfo
from ._ops import StudentOp, make_op

__all__ = ["SearchSpace", "builtin_search_spaces"]

_KINDS = ("dense", "spatial", "depthwise")


def _builtin_dir() -> Path:
    # One copy: the YAML files are package data in deltanas/search_spaces/ (so a wheel carries them), and
    # the checkout's top-level search_spaces/, where users read and edit them, is a symbolic link to that
    # folder (tests/test_packaging.py checks both). Any other file works through SearchSpace.load(path).
    return Path(__file__).resolve().parents[1] / "search_spaces"


def builtin_search_spaces() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_builtin_dir().glob("*.yaml"))}


@dataclass(frozen=True)
class SearchSpace:
    """Candidate op specs per layer kind: ``dense`` (all non-depthwise convs), ``spatial`` (added
    for k x k convs) and ``depthwise``."""

    name: str
    dense: tuple[str, ...]
    spatial: tuple[str, ...] = ()
    depthwise: tuple[str, ...] = ("full", "zero")

    @classmethod
    def from_dict(cls, data: object, origin: str = "search space") -> "SearchSpace":
        if not isinstance(data, dict) or not isinstance(data.get("candidates"), dict):
            raise ConfigError(f"{origin}: expected a mapping with a 'candidates' mapping")
        cands = data["candidates"]
        unknown = sorted(set(cands) - set(_KINDS))
        if unknown:
            raise ConfigError(f"{origin}: unknown candidate kind(s) {unknown}; use {list(_KINDS)}")
        lists: dict[str, tuple[str, ...]] = {}
        for kind in _KINDS:
            specs = cands.get(kind) or []
            if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
                raise ConfigError(f"{origin}: candidates.{kind} must be a list of operator strings")
            try:
                ops = [make_op(s) for s in specs]
            except ArchError as exc:
                raise ConfigError(f"{origin}: {exc}") from None
            running = [str(op.spec) for op in ops if getattr(op, "running", False)]
            if running:
                raise ConfigError(f"{origin}: {running[0]} is no supernet candidate (a running reference runs the "
                                  f"frames in order); the search calibrates one to the budget by itself")
            lists[kind] = tuple(dict.fromkeys(str(op.spec) for op in ops))
        if not lists["dense"]:
            raise ConfigError(f"{origin}: the search space is empty (candidates.dense has no operator)")
        return cls(name=str(data.get("name", origin)), dense=lists["dense"], spatial=lists["spatial"],
                   depthwise=lists["depthwise"] or ("full",))

    @classmethod
    def load(cls, name_or_path: "str | Path" = "default") -> "SearchSpace":
        builtin = builtin_search_spaces()
        path = builtin.get(str(name_or_path), Path(name_or_path))
        if not path.is_file():
            raise ConfigError(f"no search space {str(name_or_path)!r}: not a file, and the built-in ones are "
                              f"{', '.join(builtin) or 'missing'}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: malformed YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_dict(data, origin=str(path))

    def candidates(self, layer: LayerInfo) -> list[StudentOp]:
        """The ops offered to ``layer``, those that do not fit it left out (``full`` always kept)."""
        if layer.is_depthwise:
            specs = self.depthwise
        else:
            specs = self.dense + (self.spatial if not layer.is_pointwise else ())
        ops = [make_op(s) for s in dict.fromkeys(("full",) + specs)]
        return [op for op in ops if op.unfit_reason(layer) is None]
