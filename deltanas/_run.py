"""A run folder ``runs/<name>/``: config, log, metrics CSV, checkpoint, weights, summary.

The writing side, below every package that writes runs (training, search, sweep); the public face,
with the readers of run folders, is :mod:`deltanas.runs`.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import torch

from ._io import atomic_write, atomic_write_text
from .errors import ConfigError, DeltaNASError

__all__ = ["RunDir", "RunSummary", "RUN_KINDS", "SUMMARY_VERSION", "default_runs_root"]

RUN_KINDS = ("train", "search", "baselines", "sweep")
SUMMARY_VERSION = 1


def default_runs_root() -> Path:
    return Path("runs")


@dataclass
class RunDir:
    path: Path

    @classmethod
    def create(cls, name: str, root: "str | Path | None" = None, *, resume: bool = False) -> "RunDir":
        """A new run folder; an existing one is refused unless resuming (nothing is overwritten)."""
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"bad run name {name!r}: use letters, digits, '-' and '_'")
        run = cls(Path(root or default_runs_root()) / name)
        if resume:
            if not run.config.is_file():
                raise ConfigError(f"{run.path}: no run to resume here (no config.json)")
        elif run.path.exists() and any(run.path.iterdir()):
            raise ConfigError(f"{run.path} exists already: pass --resume to continue it, or another --name")
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    # fixed file names
    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def arch(self) -> Path:
        return self.path / "arch.json"

    @property
    def weights(self) -> Path:
        return self.path / "students.safetensors"

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.path / "log.txt", "a") as f:
                f.write(f"{stamp} {message}\n")
        except OSError as exc:
            raise DeltaNASError(f"{self.path / 'log.txt'}: cannot write ({exc.strerror})") from None

    # checkpoints: torch.save of plain containers of tensors/numbers, loaded with weights_only=True
    def save_checkpoint(self, state: Mapping[str, Any], path: Path | None = None) -> None:
        atomic_write(path or self.checkpoint, lambda tmp: torch.save(dict(state), tmp))

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        path = path or self.checkpoint
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file
            raise DeltaNASError(f"{path}: cannot read checkpoint ({exc.__class__.__name__})") from None

    def write_json(self, path: Path, data: Any) -> None:
        atomic_write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")

    def write_summary(self, summary: "RunSummary") -> None:
        self.write_json(self.summary, summary.to_dict())

    def read_summary(self) -> "RunSummary":
        return RunSummary.read(self.summary)

    # metrics CSV: appended row by row; on resume, rows after the checkpoint are dropped
    def append_metrics(self, row: Mapping[str, Any], path: Path | None = None) -> None:
        path = path or self.metrics
        new = not path.exists()
        fieldnames = list(row)
        if not new:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            if header and header != fieldnames:
                fieldnames = header  # keep the file's columns; missing values stay empty
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _csv_value(v) for k, v in row.items()})

    def truncate_metrics(self, last_step: int, path: Path | None = None) -> None:
        path = path or self.metrics
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            fieldnames = rows and list(rows[0]) or None
        if not fieldnames:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(r for r in rows if int(float(r["step"])) <= last_step)
        atomic_write_text(path, buf.getvalue())


@dataclass(frozen=True)
class RunSummary:
    """``summary.json``: one schema for every kind of run (``RUN_KINDS``), written when the run ends.

    Every kind has ``kind``, ``version``, ``teacher`` and ``keyframe_interval``; a run that makes one model
    (``train``, ``search``) adds the teacher's MACs, its own MACs per frame averaged at K, with gated layers
    the MACs they spent on the held-out frames (``test_macs_per_frame``), and the held-out agreement
    ``test`` (``Agreement.as_dict()``). ``extra`` holds the kind's own keys (a search's budget, a training's
    steps, a sweep's study), written at the top level beside the common ones; a ``None`` common value is
    left out of the file. A file of an earlier version (no ``kind``) is a train or a search run: a search
    wrote its budget.
    """

    kind: str
    teacher: str | None = None
    keyframe_interval: int | None = None
    teacher_macs: float | None = None
    macs_per_frame: float | None = None
    test_macs_per_frame: float | None = None
    test: dict | None = None
    extra: dict = field(default_factory=dict)
    version: int = SUMMARY_VERSION

    def __post_init__(self) -> None:
        if self.kind not in RUN_KINDS:
            raise ConfigError(f"unknown run kind {self.kind!r}; known: {', '.join(RUN_KINDS)}")
        clash = sorted(set(self.extra) & _SUMMARY_KEYS)
        if clash:
            raise ConfigError(f"summary extra keys {clash} are common fields: pass them as such")

    @property
    def spent_macs_per_frame(self) -> float | None:
        """MACs per frame as spent on the held-out frames where measured, else the analytic count."""
        return self.test_macs_per_frame if self.test_macs_per_frame is not None else self.macs_per_frame

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "version": self.version}
        for name in ("teacher", "keyframe_interval", "teacher_macs", "macs_per_frame", "test_macs_per_frame"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        data.update(self.extra)
        if self.test is not None:
            data["test"] = self.test
        return data

    @classmethod
    def from_dict(cls, data: Any, origin: str = "summary.json") -> "RunSummary":
        if not isinstance(data, dict):
            raise ConfigError(f"{origin}: expected a JSON object")
        data = dict(data)
        version = data.pop("version", SUMMARY_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version > SUMMARY_VERSION:
            raise ConfigError(f"{origin}: summary version {version!r} is not one this deltanas reads "
                              f"(up to {SUMMARY_VERSION})")
        kind = data.pop("kind", None)
        if kind is None:  # written before summaries named their kind
            if "macs_per_frame" not in data:
                raise ConfigError(f"{origin}: no kind and no macs_per_frame (not a run summary)")
            kind = "search" if "target_delta_macs" in data or "budget" in data else "train"
        common = {name: data.pop(name) for name in _SUMMARY_KEYS - {"kind", "version"} if name in data}
        return cls(kind=kind, **common, extra=data, version=version)

    @classmethod
    def read(cls, path: "str | Path") -> "RunSummary":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read ({exc})") from None
        return cls.from_dict(data, str(path))


_SUMMARY_KEYS = {f.name for f in fields(RunSummary)} - {"extra"}


def _csv_value(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if hasattr(v, "as_dict"):
        return v.as_dict()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
