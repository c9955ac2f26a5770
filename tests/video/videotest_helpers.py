"""Helpers for deltanas.video tests: tiny videos and frame folders with known content.

A uniquely named module (not conftest) so `from ... import` stays unambiguous when pytest collects
several test folders.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image


def value_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """``n`` flat RGB frames, frame ``i`` filled with ``20 + 10 * i`` (survives lossy codecs)."""
    values = 20 + 10 * np.arange(n, dtype=np.int64)
    assert values.max() <= 255
    return np.broadcast_to(values[:, None, None, None], (n, h, w, 3)).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264", rate: int = 10) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 frames to ``path`` (PyAV; animated gif through PIL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // rate, loop=0)
        return path
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
        container.mux(stream.encode())
    return path


def write_frames(folder: Path, frames: np.ndarray | list[np.ndarray], names: list[str] | None = None) -> Path:
    """Save frames as PNG files (lossless) named ``names`` or ``frame0.png, frame1.png, ...``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"frame{i}.png" for i in range(len(frames))]
    for name, array in zip(names, frames, strict=True):
        Image.fromarray(np.ascontiguousarray(array)).save(folder / name)
    return folder
