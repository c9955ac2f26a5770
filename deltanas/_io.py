"""Small file helpers: every artifact is written atomically (temp file + rename)."""

from __future__ import annotations

import csv
import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import DeltaNASError

__all__ = ["atomic_write", "atomic_write_csv", "atomic_write_text"]


def atomic_write(path: "str | Path", write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DeltaNASError(f"{path}: no space left on device") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: "str | Path", text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_csv(path: "str | Path", rows: Sequence[Mapping]) -> Path:
    """``rows`` as CSV, the first row's keys the header."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return atomic_write(path, write)
