"""Architectures: which student operator each teacher layer gets, as plain JSON (``arch.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import ArchError
from .._io import atomic_write_text
from ._layers import LayerInfo
from ._ops import StudentOp, make_op
from ._spec import parse_op

__all__ = ["Arch", "ARCH_FORMAT", "ARCH_FORMS", "ARCH_VERSION"]

ARCH_FORMAT = "deltanas-arch"
ARCH_FORMS = ("compact", "fields")  # how to_dict writes each operator: its spec string, or named fields
ARCH_VERSION = 1


@dataclass(frozen=True)
class Arch:
    """``layers`` maps layer names to op specs; every other layer gets ``default`` where it fits
    and ``full`` where it does not (so ``uniform:lowrank:0.25`` leaves depthwise convs exact).
    """

    layers: Mapping[str, str] = field(default_factory=dict)
    default: str = "full"
    teacher: str | None = None
    teacher_weights: str | None = None  # the state-dict file of a ``module:function`` teacher

    def __post_init__(self) -> None:
        # Canonicalise (and validate) every spec once, without mutating the caller's mapping.
        object.__setattr__(self, "layers", {k: str(make_op(v).spec) for k, v in dict(self.layers).items()})
        object.__setattr__(self, "default", str(make_op(self.default).spec))

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def uniform(cls, op: str, teacher: str | None = None) -> "Arch":
        return cls(default=op, teacher=teacher)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Arch":
        if not isinstance(data, Mapping):
            raise ArchError("an architecture must be a JSON object")
        if data.get("format", ARCH_FORMAT) != ARCH_FORMAT:
            raise ArchError(f"not an architecture file (format {data.get('format')!r})")
        version = data.get("version", ARCH_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ArchError(f"architecture version must be an integer, got {version!r}")
        if version > ARCH_VERSION:
            raise ArchError(f"architecture version {data['version']} is newer than this deltanas reads")
        layers = data.get("layers", {})
        if not isinstance(layers, Mapping) or not all(isinstance(v, (str, Mapping)) for v in layers.values()):
            raise ArchError("'layers' must map layer names to operators (strings, or objects with named fields)")
        weights = data.get("teacher_weights")
        if weights is not None and not isinstance(weights, str):
            raise ArchError(f"'teacher_weights' must be the path of a weights file, got {weights!r}")
        return cls(layers=layers, default=data.get("default", "full"), teacher=data.get("teacher"),
                   teacher_weights=weights)

    def to_dict(self, form: str = "compact") -> dict:
        """The JSON of ``arch.json``; ``form="fields"`` writes each operator as an object with named fields
        (``OpSpec.to_fields``) instead of its compact string. :meth:`from_dict` reads either, per layer."""
        data = {"format": ARCH_FORMAT, "version": ARCH_VERSION, "teacher": self.teacher,
                "default": self.default, "layers": dict(self.layers)}
        if self.teacher_weights is not None:  # written only when set: other files stay as they were
            data["teacher_weights"] = self.teacher_weights
        if form not in ARCH_FORMS:
            raise ArchError(f"unknown architecture form {form!r}; choose from {', '.join(ARCH_FORMS)}")
        if form == "fields":
            data["default"] = parse_op(self.default).to_fields()
            data["layers"] = {name: parse_op(spec).to_fields() for name, spec in self.layers.items()}
        return data

    @classmethod
    def load(cls, path: "str | Path") -> "Arch":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ArchError(f"{path}: no such architecture file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArchError(f"{path}: malformed JSON ({exc})") from None
        return cls.from_dict(data)

    def save(self, path: "str | Path", form: str = "compact") -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(form), indent=2) + "\n")

    @classmethod
    def parse(cls, text: str, teacher: str | None = None) -> "Arch":
        """A command-line value: ``uniform:OP``, a bare OP (same), or the path of an arch.json."""
        if text.endswith(".json") or Path(text).is_file():
            return cls.load(text)
        op = text[len("uniform:"):] if text.startswith("uniform:") else text
        return cls.uniform(op, teacher=teacher)

    # -- resolution against a teacher -----------------------------------------------------------
    def resolve(self, layers: Iterable[LayerInfo]) -> dict[str, StudentOp]:
        """The op of every layer; refuses unknown layer names and ops that do not fit their layer."""
        layers = list(layers)
        by_name = {layer.name: layer for layer in layers}
        unknown = sorted(set(self.layers) - set(by_name))
        if unknown:
            sample = ", ".join(list(by_name)[:4])
            raise ArchError(f"architecture names layers the teacher does not have: {', '.join(unknown[:5])}"
                            f" (the teacher's layers look like: {sample}, ...; see `deltanas info`)")
        default, full = make_op(self.default), make_op("full")
        resolved: dict[str, StudentOp] = {}
        for layer in layers:
            if layer.name in self.layers:
                op = make_op(self.layers[layer.name])
                reason = op.unfit_reason(layer)
                if reason:
                    raise ArchError(f"layer {layer.name}: operator {op} does not fit: {reason}")
            else:
                op = default if default.unfit_reason(layer) is None else full
            resolved[layer.name] = op
        return resolved

    def explicit(self, ops: Mapping[str, StudentOp]) -> "Arch":
        """The same choice written out layer by layer (what search and export save)."""
        return Arch(layers={name: str(op) for name, op in ops.items()}, default="full", teacher=self.teacher,
                    teacher_weights=self.teacher_weights)
