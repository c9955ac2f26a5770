"""A condensed set on disk: ``condensed.json`` (what it is for) beside ``condensed.safetensors`` (its tensors).

Two methods of storage, one format: ``distill`` holds the learned memories (uint8 key frames, codes, the
generator's weights) and renders its groups when loaded; ``random`` and ``kcenter`` hold real groups of
footage as uint8 frames. The JSON names the teacher, the input size and the key-frame interval the set was
made for, and the SHA-256 of the tensors file, so a set that does not fit a run, or a damaged one, is refused
in one line rather than silently calibrating on the wrong frames.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from .._io import atomic_write, atomic_write_text
from ..errors import ConfigError
from ._memory import GeneratorSpec, SyntheticGroups

__all__ = ["CONDENSED_FORMAT", "CONDENSED_VERSION", "CONDENSE_METHODS", "CondensedSet", "is_condensed",
           "load_condensed", "save_condensed"]

CONDENSED_FORMAT = "deltanas-condensed"
CONDENSED_VERSION = 1
CONDENSE_METHODS = ("distill", "random", "kcenter")
META_FILE = "condensed.json"
TENSORS_FILE = "condensed.safetensors"


@dataclass
class CondensedSet:
    """N groups of K frames at ``size`` for ``teacher``: ``tensors`` as stored (see the module doc), ``info``
    the method's own record (where the groups came from, the statistic distance, seconds)."""

    method: str
    teacher: str
    size: tuple[int, int]
    keyframe_interval: int
    tensors: dict[str, torch.Tensor]
    generator: GeneratorSpec | None = None
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.method not in CONDENSE_METHODS:
            raise ConfigError(f"unknown condense method {self.method!r}; known: {', '.join(CONDENSE_METHODS)}")
        self._check_tensors(str(self.path or "condensed set"))

    @property
    def groups(self) -> int:
        key = "static" if self.method == "distill" else "frames"
        return int(self.tensors[key].shape[0])

    @property
    def storage_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def frames(self) -> torch.Tensor:
        """uint8 (N, K, 3, H, W): the groups, key frame first (rendered by the generator for ``distill``)."""
        if self.method != "distill":
            return self.tensors["frames"]
        return SyntheticGroups.from_tensors(self.tensors, self.keyframe_interval, self.generator).frames()

    def check(self, *, teacher: str | None = None, keyframe_interval: int | None = None,
              size: tuple[int, int] | None = None) -> "CondensedSet":
        """``self`` when it was made for this teacher, key-frame interval and input size (those given), else
        :class:`ConfigError` naming what differs and what to do."""
        where = self.path or "condensed set"
        asked = [("teacher", teacher, self.teacher, "--teacher"),
                 ("key-frame interval", keyframe_interval, self.keyframe_interval, "-K"),
                 ("input size", None if size is None else tuple(size), tuple(self.size), "--size")]
        for what, wanted, held, option in asked:
            if wanted is not None and wanted != held:
                show = (lambda v: f"{v[0]}x{v[1]}") if what == "input size" else str
                raise ConfigError(f"{where}: condensed for {what} {show(held)}, but this run uses {show(wanted)}; "
                                  f"condense the footage again with {option} {show(wanted)}")
        return self

    def meta(self) -> dict[str, Any]:
        return {"format": CONDENSED_FORMAT, "version": CONDENSED_VERSION, "method": self.method,
                "teacher": self.teacher, "input_size": list(self.size), "keyframe_interval": self.keyframe_interval,
                "groups": self.groups, "generator": None if self.generator is None else self.generator.as_dict(),
                "storage_bytes": self.storage_bytes, "info": self.info}

    def _check_tensors(self, where: str) -> None:
        """The tensors' names, dtypes and shapes are those of the method, N groups of K frames at ``size``."""
        k, (h, w) = self.keyframe_interval, self.size
        t = self.tensors
        if self.method == "distill":
            if self.generator is None:
                raise ConfigError(f"{where}: a distilled set needs its generator's shape")
            expected = SyntheticGroups(torch.zeros(1, 3, h, w, dtype=torch.uint8), k, self.generator,
                                       torch.Generator().manual_seed(0)).tensors()
            n = t["static"].shape[0] if "static" in t else 0
            shapes = {name: ((n,) + tuple(v.shape[1:]) if name in ("static", "codes") else tuple(v.shape), v.dtype)
                      for name, v in expected.items()}
        else:
            n = t["frames"].shape[0] if "frames" in t else 0
            shapes = {"frames": ((n, k, 3, h, w), torch.uint8)}
        missing, unexpected = sorted(set(shapes) - set(t)), sorted(set(t) - set(shapes))
        wrong = [name for name, (shape, dtype) in shapes.items()
                 if name in t and (tuple(t[name].shape) != shape or t[name].dtype != dtype)]
        if missing or unexpected or wrong or n < 1:
            detail = "; ".join(s for s in (missing and f"missing {missing[:3]}", unexpected and
                                           f"unexpected {unexpected[:3]}", wrong and f"wrong shape or dtype "
                                           f"{wrong[:3]}", n < 1 and "no groups") if s)
            raise ConfigError(f"{where}: tensors do not fit a {self.method} set of K={k} at {h}x{w} ({detail})")


def is_condensed(path: "str | Path") -> bool:
    return (Path(path) / META_FILE).is_file()


def save_condensed(condensed: CondensedSet, folder: "str | Path") -> Path:
    """Write the set into ``folder`` (tensors first, the JSON last, each atomically: a folder with a JSON holds a
    whole set); returns the folder."""
    folder = Path(folder)
    tensors = {k: v.contiguous() for k, v in condensed.tensors.items()}
    atomic_write(folder / TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp), metadata={"format": CONDENSED_FORMAT}))
    meta = condensed.meta()
    meta["sha256"] = _sha256(folder / TENSORS_FILE)
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2) + "\n")
    condensed.path = folder
    return folder


def load_condensed(folder: "str | Path") -> CondensedSet:
    """The set in ``folder``; a missing, damaged or foreign one is a :class:`ConfigError` of one line."""
    folder = Path(folder)
    meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.is_file():
        raise ConfigError(f"{folder}: not a condensed set (no {META_FILE}); make one with deltanas condense")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: cannot read ({exc.__class__.__name__}): a damaged condensed set") from None
    meta = _check_meta(meta, str(meta_path))
    if not tensors_path.is_file():
        raise ConfigError(f"{folder}: {TENSORS_FILE} is missing: a damaged condensed set")
    if _sha256(tensors_path) != meta["sha256"]:
        raise ConfigError(f"{tensors_path}: does not match the checksum in {META_FILE}: a damaged condensed set")
    try:
        tensors = load_file(str(tensors_path))
    except Exception as exc:  # a foreign file of the right checksum: unlikely, still one line
        raise ConfigError(f"{tensors_path}: not a readable safetensors file ({exc.__class__.__name__})") from None
    generator = None
    if meta["generator"] is not None:
        try:
            generator = GeneratorSpec(**meta["generator"])
        except TypeError:
            raise ConfigError(f"{meta_path}: generator {meta['generator']!r} is not one this deltanas builds") from None
    return CondensedSet(meta["method"], meta["teacher"], tuple(meta["input_size"]), meta["keyframe_interval"],
                        tensors, generator, dict(meta.get("info") or {}), folder)


def _check_meta(meta: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != CONDENSED_FORMAT:
        raise ConfigError(f"{where}: not a condensed set's JSON (format is not {CONDENSED_FORMAT!r})")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CONDENSED_VERSION:
        raise ConfigError(f"{where}: condensed-set version {version!r} is not one this deltanas reads "
                          f"(up to {CONDENSED_VERSION})")
    size, k = meta.get("input_size"), meta.get("keyframe_interval")
    checks = [("method", meta.get("method") in CONDENSE_METHODS),
              ("teacher", isinstance(meta.get("teacher"), str) and bool(meta.get("teacher"))),
              ("input_size", isinstance(size, list) and len(size) == 2 and all(_positive(v) for v in size)),
              ("keyframe_interval", _positive(k) and k >= 2),
              ("generator", meta.get("generator") is None or isinstance(meta.get("generator"), dict)),
              ("sha256", isinstance(meta.get("sha256"), str))]
    bad = [name for name, ok in checks if not ok]
    if bad:
        raise ConfigError(f"{where}: malformed condensed-set JSON ({', '.join(bad)})")
    return meta


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
