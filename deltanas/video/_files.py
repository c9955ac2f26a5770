"""File kinds and ordering shared by the clip finders (one place, so they agree)."""

from __future__ import annotations

import re
from pathlib import Path

from deltanas.errors import VideoError

__all__ = ["VIDEO_SUFFIXES", "IMAGE_SUFFIXES", "natural_key", "list_files"]

# Containers PyAV reads that people actually hand us; gif counts as a video (animated).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".gif"}
)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    parts = _DIGITS.split(name)
    # Tag each part so ints and strs never get compared with each other.
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts if p)


def list_files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    """Visible regular files of ``folder`` with one of ``suffixes``, in natural order."""
    try:
        found = [
            p
            for p in folder.iterdir()
            if not p.name.startswith(".") and p.suffix.lower() in suffixes and p.is_file()
        ]
    except OSError as err:
        raise VideoError(f"{folder}: cannot list the folder ({err.strerror or err})") from None
    return sorted(found, key=lambda p: natural_key(p.name))
