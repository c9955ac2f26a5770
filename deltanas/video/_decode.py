"""Decode a clip (video file through PyAV, or a folder of frames through PIL) to a uint8 tensor."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from deltanas.errors import ConfigError, VideoError
from deltanas.video._files import IMAGE_SUFFIXES, list_files
from deltanas.video._resize import ResizeMode, check_size, resize_frames
from deltanas.video._sources import SourceSpec, VideoSource, resolve_sources

__all__ = ["read_frames", "decode_clip", "as_source", "check_range"]

# Frames are resized in batches of this many: fast, yet full-resolution frames of a long clip
# never pile up in memory.
_CHUNK = 32


def read_frames(
    source: SourceSpec,
    size: tuple[int, int] | None = None,
    *,
    max_frames: int | None = None,
    start: int = 0,
    step: int = 1,
    resize: ResizeMode = "cover",
) -> torch.Tensor:
    """Decode frames ``start, start + step, ...`` (at most ``max_frames``) as uint8 ``(T, 3, H, W)`` RGB.

    ``size=(H, W)`` resizes every frame (``resize="cover"``: keep aspect, centre-crop;
    ``"stretch"``: exactly ``H x W``); ``None`` keeps the first frame's size.
    """
    return decode_clip(as_source(source), size, max_frames=max_frames, start=start, step=step, resize=resize)[0]


def as_source(source: SourceSpec) -> VideoSource:
    """One :class:`VideoSource` from a source, a name or a path; a spec naming several is refused."""
    if isinstance(source, VideoSource):
        return source
    found = resolve_sources(source)
    if len(found) != 1:
        raise ConfigError(f"{source}: names {len(found)} clips; load them one at a time (resolve_sources)")
    return found[0]


def check_range(max_frames: object, start: object, step: object) -> None:
    """Validate the frame selection arguments at the public boundary."""
    for name, value, low in (("start", start, 0), ("step", step, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 1):
        raise ConfigError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")


def decode_clip(
    source: VideoSource,
    size: tuple[int, int] | None,
    *,
    max_frames: int | None = None,
    start: int = 0,
    step: int = 1,
    resize: ResizeMode = "cover",
) -> tuple[torch.Tensor, float | None]:
    """Decode ``source``; returns the uint8 frames and the frame rate (``None`` for frame folders)."""
    target = check_size(size, resize)
    check_range(max_frames, start, step)
    if source.kind == "condensed":
        raise ConfigError(f"condensed:{source.path}: a condensed set is groups of frames, not one clip; it loads "
                          f"through deltanas.training.load_video_data (or deltanas.condense.load_condensed)")
    collector = _Collector(target, resize)
    if source.kind == "frames":
        seen = _read_folder(source.path, collector, max_frames, start, step)
        fps = None
    else:
        seen, fps = _read_video(source.path, collector, max_frames, start, step)
    frames = collector.finish()
    if frames is None:
        detail = f" (start={start} but the clip has {seen} frames)" if seen and start else ""
        raise VideoError(f"{source.path}: no frames decoded{detail}")
    return frames, fps


class _Collector:
    """Gathers HWC uint8 arrays and resizes them in batches to one common size."""

    def __init__(self, size: tuple[int, int] | None, resize: ResizeMode) -> None:
        self.size, self.resize = size, resize
        self.pending: list[np.ndarray] = []
        self.done: list[torch.Tensor] = []
        self.count = 0

    def add(self, array: np.ndarray) -> None:
        if self.size is None:  # no size asked: every frame follows the first one's size
            self.size = (int(array.shape[0]), int(array.shape[1]))
        self.pending.append(array)
        self.count += 1
        if len(self.pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.pending or self.size is None:
            return
        run: list[np.ndarray] = []
        for array in [*self.pending, None]:
            if run and (array is None or array.shape != run[0].shape):
                batch = torch.from_numpy(np.stack(run)).permute(0, 3, 1, 2)
                self.done.append(resize_frames(batch, self.size, self.resize))
                run = []
            if array is not None:
                run.append(array)
        self.pending = []

    def finish(self) -> torch.Tensor | None:
        self._flush()
        return torch.cat(self.done) if self.done else None


def _select(index: int, start: int, step: int) -> bool:
    return index >= start and (index - start) % step == 0


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")


def _read_video(
    path: Path, out: _Collector, max_frames: int | None, start: int, step: int
) -> tuple[int, float | None]:
    _check_file(path)
    seen, fps = 0, None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threading: several times faster on long clips
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            for frame in container.decode(stream):
                if _select(seen, start, step):
                    out.add(frame.to_ndarray(format="rgb24"))
                seen += 1
                if max_frames is not None and out.count >= max_frames:
                    break
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(f"{path}: not a readable video ({_reason(err)})") from None
    return seen, fps


def _read_folder(path: Path, out: _Collector, max_frames: int | None, start: int, step: int) -> int:
    if not path.is_dir():
        raise VideoError(f"{path}: no such frame folder")
    files = list_files(path, IMAGE_SUFFIXES)
    chosen = files[start::step][:max_frames]
    for file in chosen:
        try:
            with Image.open(file) as image:
                out.add(np.asarray(image.convert("RGB")))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise VideoError(f"{file}: not a readable image ({_reason(err)})") from None
    return len(files)


def _reason(err: BaseException) -> str:
    # FFmpeg errors carry "[Errno N] message: 'file'"; the strerror part is the useful bit.
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())
