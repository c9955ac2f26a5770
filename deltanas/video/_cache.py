"""On-disk cache of decoded frames, so repeated runs skip decoding and resizing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from deltanas.errors import VideoError
from deltanas.video._files import IMAGE_SUFFIXES, list_files
from deltanas.video._sources import VideoSource

__all__ = ["FrameCache"]

_ENV = "DELTANAS_CACHE"
# Bump when decoding or resizing changes output, so stale entries are never served.
_FORMAT_VERSION = 1


class FrameCache:
    """A folder of ``<sha1>.npy`` frame arrays with a ``<sha1>.json`` note each.

    The key covers the source's identity (absolute path, size and mtime of the file, or of every
    frame of a folder) and every decode argument, so an edited file or other arguments miss.
    Entries are written atomically (temp file + ``os.replace``); a corrupt entry is deleted and
    reported as a miss. ``hits`` and ``misses`` count lookups of this instance.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        if root is None:
            env = os.environ.get(_ENV, "").strip()
            root = env or Path.home() / ".cache" / "deltanas" / "frames"
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FrameCache({str(self.root)!r})"

    def key(
        self,
        source: VideoSource,
        size: tuple[int, int] | None,
        *,
        max_frames: int | None = None,
        start: int = 0,
        step: int = 1,
        resize: str = "cover",
    ) -> str:
        """The entry name for ``source`` decoded with these arguments."""
        identity = {
            "version": _FORMAT_VERSION,
            "path": str(source.path.resolve()),
            "kind": source.kind,
            "stat": _fingerprint(source),
            "size": list(size) if size is not None else None,
            "max_frames": max_frames,
            "start": start,
            "step": step,
            "resize": resize,
        }
        return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> tuple[torch.Tensor, float | None] | None:
        """Frames and fps stored under ``key``, or ``None`` on a miss (a corrupt entry is removed)."""
        array_path, note_path = self._paths(key)
        if not note_path.is_file():
            self.misses += 1
            return None
        try:
            note = json.loads(note_path.read_text())
            array = np.load(array_path, allow_pickle=False)
            if array.dtype != np.uint8 or list(array.shape) != note["shape"]:
                raise ValueError("shape or dtype does not match its note")
            fps = None if note["fps"] is None else float(note["fps"])
        except (OSError, ValueError, EOFError, KeyError, TypeError):
            self._remove(key)
            self.misses += 1
            return None
        self.hits += 1
        return torch.from_numpy(array), fps

    def put(self, key: str, frames: torch.Tensor, fps: float | None, *, name: str = "") -> None:
        """Store an entry; a cache that cannot be written warns and is skipped, never fatal."""
        array_path, note_path = self._paths(key)
        note = {"name": name, "shape": list(frames.shape), "fps": fps, "version": _FORMAT_VERSION}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Array first, note last: a note only exists beside a complete array.
            _write_atomic(array_path, lambda f: np.save(f, frames.contiguous().numpy(), allow_pickle=False))
            _write_atomic(note_path, lambda f: f.write(json.dumps(note).encode()))
        except OSError as err:
            warnings.warn(f"frame cache {self.root}: cannot write ({err}); going on without it", stacklevel=3)

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        if not self.root.is_dir():
            return 0
        notes = list(self.root.glob("*.json"))
        for note in notes:
            self._remove(note.stem)
        return len(notes)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def _remove(self, key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)


def _fingerprint(source: VideoSource) -> list[list[object]]:
    try:
        if source.kind == "frames":
            files = list_files(source.path, IMAGE_SUFFIXES)
        else:
            files = [source.path]
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    except OSError as err:
        raise VideoError(f"{source.path}: cannot read ({err.strerror or err})") from None


def _write_atomic(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
