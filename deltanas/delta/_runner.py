"""Streaming: run a delta model frame by frame over a video, choosing key frames by a policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from ..errors import ConfigError
from ._model import DeltaModel

__all__ = ["KeyframePolicy", "StreamFrame", "stream"]


@dataclass(frozen=True)
class KeyframePolicy:
    """A key frame every ``interval`` frames; with ``threshold`` set, also whenever the input's
    relative change since the key frame, ``|x_t - x_key|^2 / |x_key|^2``, passes it (adaptive)."""

    interval: int = 8
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ConfigError("keyframe interval must be >= 1")
        if self.threshold is not None and self.threshold <= 0:
            raise ConfigError("keyframe threshold must be positive")

    def is_key(self, since_key: int, frame: torch.Tensor, key: torch.Tensor | None) -> bool:
        if key is None or since_key >= self.interval:
            return True
        if self.threshold is None:
            return False
        change = (frame - key).pow(2).sum() / key.pow(2).sum().clamp_min(1e-12)
        return bool(change > self.threshold)


@dataclass
class StreamFrame:
    index: int
    is_key: bool
    output: torch.Tensor  # the model's output for this frame, batch of one


@torch.no_grad()
def stream(model: DeltaModel, frames: Iterable[torch.Tensor], policy: KeyframePolicy) -> Iterator[StreamFrame]:
    """Frames (3, H, W) float in [0, 1], one at a time, as a live stream would deliver them."""
    model.eval()
    key: torch.Tensor | None = None
    since_key = 0
    try:
        for index, frame in enumerate(frames):
            x = frame[None]
            if policy.is_key(since_key, x, key):
                key, since_key = x, 1
                yield StreamFrame(index, True, model.key_frame(x))
            else:
                since_key += 1
                yield StreamFrame(index, False, model.delta_frames(x))
    finally:
        model.clear_cache()
