"""A run folder ``runs/<name>/``: config, log, metrics CSV, checkpoint, weights, summary."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ._io import atomic_write, atomic_write_text
from .errors import ConfigError, DeltaNASError

__all__ = ["RunDir", "default_runs_root"]


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
