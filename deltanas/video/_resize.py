"""Resize batches of uint8 frames in torch (deterministic on CPU, antialiased when shrinking)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from deltanas.errors import ConfigError

__all__ = ["ResizeMode", "RESIZE_MODES", "check_size", "resize_frames"]

ResizeMode = Literal["cover", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("cover", "stretch")


def check_size(size: object, resize: object) -> tuple[int, int] | None:
    """Validate a ``(H, W)`` target and a resize mode at the public boundary."""
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if size is None:
        return None
    try:
        h, w = size  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (height, width), got {size!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise ConfigError(f"size must be two positive integers (height, width), got {size!r}")
    return int(h), int(w)


def resize_frames(frames: torch.Tensor, size: tuple[int, int], resize: ResizeMode = "cover") -> torch.Tensor:
    """Resize uint8 ``(N, 3, h, w)`` frames to ``(N, 3, H, W)``.

    ``cover`` centre-crops the source to the target's aspect ratio first (so nothing is
    stretched and no pixels are resized only to be thrown away), then scales; ``stretch``
    scales straight to ``H x W``.
    """
    out_h, out_w = size
    if resize == "cover":
        frames = _centre_crop_to_aspect(frames, out_h / out_w)
    if tuple(frames.shape[-2:]) == (out_h, out_w):
        return frames.contiguous()
    # torch resizes uint8 directly (about 10x faster than via float32, within 1 grey level, and
    # fastest on channels-last data, which is what decoded HWC arrays are). antialias matters when
    # shrinking: aliasing would show up as fake motion between frames.
    x = frames.contiguous(memory_format=torch.channels_last)
    x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def _centre_crop_to_aspect(frames: torch.Tensor, aspect: float) -> torch.Tensor:
    h, w = frames.shape[-2:]
    if w * aspect > h:  # source is wider than the target: trim left and right
        crop_h, crop_w = h, max(1, min(w, round(h / aspect)))
    else:  # source is taller: trim top and bottom
        crop_h, crop_w = max(1, min(h, round(w * aspect))), w
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return frames[..., top : top + crop_h, left : left + crop_w]
