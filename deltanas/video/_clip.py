"""Load clips as tensors, through the frame cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from deltanas.errors import ConfigError
from deltanas.video import _decode
from deltanas.video._cache import FrameCache
from deltanas.video._resize import ResizeMode, check_size
from deltanas.video._sources import SourceSpec, resolve_sources

__all__ = ["Clip", "load_clip", "load_clips"]


@dataclass
class Clip:
    """A decoded clip: uint8 ``(T, 3, H, W)`` RGB frames, fps (``None`` for frame folders)."""

    name: str
    frames: torch.Tensor
    fps: float | None
    source: Path

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def load_clip(
    source: SourceSpec,
    size: tuple[int, int] | None,
    *,
    max_frames: int | None = None,
    start: int = 0,
    step: int = 1,
    resize: ResizeMode = "cover",
    cache: FrameCache | None | Literal[False] = None,
) -> Clip:
    """Decode one clip (see :func:`read_frames`), from the cache when it holds it.

    ``cache=None`` uses the default :class:`FrameCache`, ``False`` decodes without any cache.
    """
    src = _decode.as_source(source)
    size = check_size(size, resize)
    _decode.check_range(max_frames, start, step)
    if cache is False:
        frames, fps = _decode.decode_clip(src, size, max_frames=max_frames, start=start, step=step, resize=resize)
        return Clip(src.name, frames, fps, src.path)
    if cache is None:
        cache = FrameCache()
    elif not isinstance(cache, FrameCache):
        raise ConfigError(f"cache must be a FrameCache, None or False, got {cache!r}")
    key = cache.key(src, size, max_frames=max_frames, start=start, step=step, resize=resize)
    hit = cache.get(key)
    if hit is None:
        hit = _decode.decode_clip(src, size, max_frames=max_frames, start=start, step=step, resize=resize)
        cache.put(key, hit[0], hit[1], name=src.name)
    return Clip(src.name, hit[0], hit[1], src.path)


def load_clips(
    specs: SourceSpec | Sequence[SourceSpec],
    size: tuple[int, int] | None,
    *,
    max_frames: int | None = None,
    start: int = 0,
    step: int = 1,
    resize: ResizeMode = "cover",
    cache: FrameCache | None | Literal[False] = None,
) -> list[Clip]:
    """:func:`resolve_sources` then :func:`load_clip` on each, sharing one cache."""
    sources = resolve_sources(specs)
    if cache is None:
        cache = FrameCache()
    return [
        load_clip(s, size, max_frames=max_frames, start=start, step=step, resize=resize, cache=cache)
        for s in sources
    ]
