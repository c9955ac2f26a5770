"""Streaming: run a delta model frame by frame over a video, choosing key frames by a policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from ..errors import ConfigError
from ._model import DeltaModel

__all__ = ["KeyframePolicy", "KeyframeSchedule", "StreamFrame", "calibrate_keyframes", "relative_change", "stream"]

_RESERVE = 2  # key frames a stream may run ahead of its key rate


@dataclass(frozen=True)
class KeyframePolicy:
    """A key frame every ``interval`` frames; with ``threshold`` set, also whenever the input's
    relative change since the key frame, ``|x_t - x_key|^2 / |x_key|^2``, passes it (adaptive).

    ``key_rate`` (adaptive only) caps what changes may trigger: a change triggers a key frame only
    if the stream then has used no more than ``key_rate`` key frames per frame so far, plus two in
    reserve (for cuts that come close together). A threshold calibrated on other footage then cannot
    overspend on footage that changes more; the key frames forced every ``interval`` frames still come.
    """

    interval: int = 8
    threshold: float | None = None
    key_rate: float | None = None

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ConfigError("keyframe interval must be >= 1")
        if self.threshold is not None and self.threshold <= 0:
            raise ConfigError("keyframe threshold must be positive")
        if self.key_rate is not None and not 0 < self.key_rate <= 1:
            raise ConfigError("key_rate must be in (0, 1]")

    def schedule(self) -> "KeyframeSchedule":
        """A fresh decision state for one stream."""
        return KeyframeSchedule(self)

    def key_indices(self, frames: torch.Tensor) -> list[int]:
        """The key frames :func:`stream` would choose on ``frames`` (T, 3, H, W), as indices."""
        schedule = self.schedule()
        return [t for t in range(frames.shape[0]) if schedule.is_key(frames[t].float())]


class KeyframeSchedule:
    """The running state of a :class:`KeyframePolicy` on one stream: ``is_key(frame)`` per frame."""

    def __init__(self, policy: KeyframePolicy) -> None:
        self.policy = policy
        self.key: torch.Tensor | None = None
        self.since_key = 0
        self.frames = 0
        self.keys = 0

    def _triggered(self, frame: torch.Tensor) -> bool:
        p = self.policy
        if p.threshold is None or self.key is None:
            return False
        if p.key_rate is not None and self.keys + 1 > p.key_rate * (self.frames + 1) + _RESERVE:
            return False  # one more would run over budget: only the forced key frames
        return bool(relative_change(frame, self.key) > p.threshold)

    def is_key(self, frame: torch.Tensor) -> bool:
        key = self.key is None or self.since_key >= self.policy.interval or self._triggered(frame)
        if key:
            self.key, self.since_key, self.keys = frame, 0, self.keys + 1
        self.since_key += 1
        self.frames += 1
        return key


def relative_change(frame: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``|frame - key|^2 / |key|^2``: how much the input changed, as energy relative to the reference."""
    return (frame - key).pow(2).sum() / key.pow(2).sum().clamp_min(1e-12)


def calibrate_keyframes(clips: Iterable[torch.Tensor], keyframe_interval: int, max_interval: int | None = None,
                        iterations: int = 30) -> KeyframePolicy:
    """The adaptive policy that spends no more key frames on ``clips`` than a fixed interval K would.

    Key frames come when the input changed by more than a threshold since the last one, and at the
    latest every ``max_interval`` frames (default 2K); the threshold is the smallest (by bisection on
    a log scale) for which the clips get at most ``sum ceil(T / K)`` key frames, and the policy's
    ``key_rate`` of 1/K keeps it near that budget on other footage. Calibrate on footage the model
    is not evaluated on (the training split), then report the key rate it reaches there.
    """
    clips = [c for c in clips if c.shape[0]]
    if not clips:
        raise ConfigError("calibrate_keyframes needs at least one non-empty clip")
    max_interval = max_interval or 2 * keyframe_interval
    if max_interval < keyframe_interval:
        raise ConfigError(f"max_interval ({max_interval}) must be at least the keyframe interval "
                          f"({keyframe_interval})")
    budget = sum(-(-c.shape[0] // keyframe_interval) for c in clips)
    rate = 1 / keyframe_interval

    def keys(threshold: float) -> int:
        policy = KeyframePolicy(max_interval, threshold, rate)
        return sum(len(policy.key_indices(c)) for c in clips)

    low, high = 1e-8, 1e2  # relative changes: keys(high) is the max-interval floor
    if keys(high) > budget:
        return KeyframePolicy(max_interval, high, rate)
    for _ in range(iterations):
        middle = (low * high) ** 0.5
        low, high = (middle, high) if keys(middle) > budget else (low, middle)
    return KeyframePolicy(max_interval, high, rate)


@dataclass
class StreamFrame:
    index: int
    is_key: bool
    output: torch.Tensor  # the model's output for this frame, batch of one


@torch.no_grad()
def stream(model: DeltaModel, frames: Iterable[torch.Tensor], policy: KeyframePolicy) -> Iterator[StreamFrame]:
    """Frames (3, H, W) float in [0, 1], one at a time, as a live stream would deliver them."""
    model.eval()
    schedule = policy.schedule()
    try:
        for index, frame in enumerate(frames):
            x = frame[None]
            if schedule.is_key(x):
                yield StreamFrame(index, True, model.key_frame(x))
            else:
                yield StreamFrame(index, False, model.delta_frames(x))
    finally:
        model.clear_cache()
