"""Turn what a user names (a bundled clip, a file, a folder) into a list of clip sources."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from deltanas.errors import ConfigError, VideoError
from deltanas.video._bundled import BUNDLED_FILES, CLIP_GROUPS, STATIC_FILES, bundled_clips, shared_clips, static_clips
from deltanas.video._files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_files

__all__ = ["VideoSource", "SourceSpec", "resolve_sources", "CONDENSED_PREFIX"]

CONDENSED_PREFIX = "condensed:"
CONDENSED_META = "condensed.json"  # deltanas.condense writes it last: a folder with it holds a whole set

SourceSpec = Union[str, os.PathLike, "VideoSource"]


@dataclass(frozen=True)
class VideoSource:
    """One clip: a video file (``kind="file"``) or a folder of image frames (``kind="frames"``); or a condensed
    set of key-frame groups (``kind="condensed"``, a folder written by ``deltanas condense``), which
    :func:`deltanas.training.load_video_data` loads as one clip per group."""

    name: str
    path: Path
    kind: Literal["file", "frames", "condensed"]


def resolve_sources(spec: SourceSpec | Sequence[SourceSpec]) -> list[VideoSource]:
    """Expand one spec or a sequence of specs into clip sources, in the order given.

    A spec is a bundled name (``bikes``, ``bigbuckbunny``, ``carphone``), ``bundled`` or ``moving`` (all
    three, filmed by moving cameras), a static-camera clip shipped in the package (``bottle-detection``,
    ``asl-book``), ``static`` (both), ``shared`` (every clip of :func:`shared_clips`), a video file, a
    folder of image frames (one clip, natural order) or a folder of video files (one clip per file). A
    plain string that is a clip or group name means that clip or group; write ``./bikes`` for a local
    path of that name. ``condensed:DIR`` names a condensed set (``deltanas condense``).
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike, VideoSource)) else list(spec)
    if not specs:
        raise ConfigError("no video sources given; name a bundled clip, a file or a folder")
    sources: list[VideoSource] = []
    for item in specs:
        sources.extend(_resolve_one(item))
    return sources


def _resolve_one(spec: SourceSpec) -> list[VideoSource]:
    if isinstance(spec, VideoSource):
        return [spec]
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"a video source must be a name or a path, got {type(spec).__name__}")
    if isinstance(spec, str):
        word = spec.strip()
        if word.startswith(CONDENSED_PREFIX):
            return [_condensed(Path(word[len(CONDENSED_PREFIX):]).expanduser())]
        if word in BUNDLED_FILES or word in STATIC_FILES:
            clips = bundled_clips() if word in BUNDLED_FILES else static_clips()
            return [VideoSource(word, clips[word], "file")]
        if word in CLIP_GROUPS:
            return [VideoSource(n, p, "file") for n, p in CLIP_GROUPS[word]().items()]
        if word == "shared":
            found = shared_clips()
            if not found:
                raise VideoError(
                    "'shared': no extra footage folder found; set DELTANAS_EXTRA_VIDEO "
                    "or create ../shared/video"
                )
            return [VideoSource(n, p, "file") for n, p in found.items()]
    return _resolve_path(Path(spec).expanduser())


def _condensed(path: Path) -> VideoSource:
    if not (path / CONDENSED_META).is_file():
        raise ConfigError(f"condensed:{path}: not a condensed set (no {CONDENSED_META}); make one with "
                         f"deltanas condense")
    return VideoSource(path.resolve().name, path.resolve(), "condensed")


def _resolve_path(path: Path) -> list[VideoSource]:
    if not path.exists():
        names = ", ".join([*BUNDLED_FILES, *STATIC_FILES, *CLIP_GROUPS, "shared"])
        raise VideoError(f"{path}: no such file or folder (clip names: {names})")
    if path.is_file():
        return [VideoSource(path.stem, path.resolve(), "file")]
    if not path.is_dir():
        raise VideoError(f"{path}: not a regular file or folder")
    images = list_files(path, IMAGE_SUFFIXES)
    videos = list_files(path, VIDEO_SUFFIXES)
    if images and videos:
        # Guessing would silently drop one kind; a thumbnail next to a video is a common trap.
        raise VideoError(f"{path}: holds both image frames and video files; point at one kind")
    if images:
        return [VideoSource(path.resolve().name, path.resolve(), "frames")]
    if videos:
        return [VideoSource(v.stem, v.resolve(), "file") for v in videos]
    raise VideoError(
        f"{path}: empty folder (no video files and no {'/'.join(sorted(IMAGE_SUFFIXES))} frames)"
    )
