"""How each frame of a stream runs: a key frame, a delta frame, or, where delta frames cost more than the
dense teacher, the teacher alone (the break-even fallback at the frame level)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

import torch

from ..delta import KeyframePolicy
from ..errors import ConfigError

__all__ = ["DenseFallback", "FrameKind", "FrameSchedule"]

FrameKind = Literal["key", "delta", "dense"]


@dataclass(frozen=True)
class DenseFallback:
    """When the stream's delta groups cost more per frame than the dense teacher alone, run the teacher alone.

    A group's cost per frame is projected from what it measured so far, at the policy's interval K:
    ``(key + (K - 1) * delta) / K``, ``delta`` the lower median of its delta frames (one slow frame of a
    shared machine does not decide), from ``early`` delta frames on. Above ``(1 + margin)`` times the teacher
    alone, the teacher alone runs for ``hold`` frames; then a probe (a key frame and its delta frames) measures
    again. Each probe that finds the same doubles the wait, up to ``max_hold`` times ``hold``; a probe that
    finds delta frames cheaper again resets it."""

    margin: float = 0.1
    hold: int = 16
    max_hold: int = 8
    early: int = 2

    def __post_init__(self) -> None:
        if not self.margin >= 0:
            raise ConfigError(f"the fallback's margin must be >= 0, got {self.margin}")
        if min(self.hold, self.max_hold, self.early) < 1:
            raise ConfigError("the fallback's hold, max_hold and early must be >= 1")


class FrameSchedule:
    """The running decisions of one stream: ``next(frame)`` says how the frame runs, ``ran(kind, seconds)``
    reports what it cost. Without ``fallback`` only ``policy`` decides (key or delta). ``dense_seconds``: what
    the teacher alone costs per frame here (needed with ``fallback``; each dense frame measured refines it).
    ``kinds`` lists every decision so far."""

    def __init__(self, policy: KeyframePolicy, fallback: DenseFallback | None = None,
                 dense_seconds: float | None = None) -> None:
        if fallback is not None and not (dense_seconds is not None and dense_seconds > 0):
            raise ConfigError("the dense fallback needs the dense teacher's time per frame")
        self.policy, self.fallback = policy, fallback
        self._keys = policy.schedule()
        self._dense_measured: list[float] = []
        self._dense_estimate = dense_seconds
        self._key_seconds = 0.0
        self._delta_seconds: list[float] = []  # the current group's delta frames
        self._dense_left = 0
        self._hold = fallback.hold if fallback is not None else 0
        self._probing = False  # the current group follows a spell of the teacher alone
        self.kinds: list[FrameKind] = []
        self.seconds: list[float] = []  # what each frame reported by ``ran`` cost

    @property
    def dense_seconds(self) -> float | None:
        """The teacher alone, per frame: the median of the last dense frames measured, else the estimate given."""
        recent = self._dense_measured[-8:]
        return statistics.median(recent) if recent else self._dense_estimate

    def next(self, frame: torch.Tensor) -> FrameKind:
        if self._dense_left > 0:
            self._dense_left -= 1
            kind: FrameKind = "dense"
            if self._dense_left == 0:  # the next frame probes: a fresh group
                self._keys = self.policy.schedule()
        else:
            kind = "key" if self._keys.is_key(frame.float()) else "delta"
        self.kinds.append(kind)
        return kind

    def ran(self, kind: FrameKind, seconds: float) -> None:
        self.seconds.append(seconds)
        if kind == "dense":
            self._dense_measured.append(seconds)
        elif kind == "key":
            self._key_seconds, self._delta_seconds = seconds, []
        else:
            self._delta_seconds.append(seconds)
            if self.fallback is not None:
                self._decide()

    def group_seconds(self) -> float | None:
        """The current group's projected cost per frame at the policy's interval (None before ``early``)."""
        n = len(self._delta_seconds)
        if self.fallback is None or n < self.fallback.early:
            return None
        delta = sorted(self._delta_seconds)[(n - 1) // 2]
        k = self.policy.interval
        return (self._key_seconds + (k - 1) * delta) / k

    def _decide(self) -> None:
        f, group = self.fallback, self.group_seconds()
        if group is None:
            return
        if group > (1 + f.margin) * self.dense_seconds:
            if self._probing:  # a probe found the same: wait longer before the next
                self._hold = min(2 * self._hold, f.max_hold * f.hold)
            self._dense_left, self._probing, self._delta_seconds = self._hold, True, []
        elif self._probing:  # delta frames pay again here
            self._hold, self._probing = f.hold, False
