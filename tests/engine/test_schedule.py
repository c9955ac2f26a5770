"""The frame-level dense fallback: decisions from measured costs (no engine needed)."""

import pytest
import torch

from deltanas.delta import KeyframePolicy
from deltanas.engine import DenseFallback, FrameSchedule
from deltanas.errors import ConfigError

FRAME = torch.zeros(1, 3, 4, 4)


def _stream(schedule: FrameSchedule, frames: int, cost: dict[str, float]) -> list[str]:
    for _ in range(frames):
        kind = schedule.next(FRAME)
        schedule.ran(kind, cost[kind])
    return schedule.kinds


def test_without_a_fallback_the_policy_alone_decides():
    kinds = _stream(FrameSchedule(KeyframePolicy(4)), 8, {"key": 9.0, "delta": 9.0})
    assert kinds == ["key", "delta", "delta", "delta"] * 2


def test_cheap_delta_frames_never_fall_back():
    # (key + 7 delta) / 8 = (4 + 7) / 8 = 1.375 < 1.1 x 1.5
    kinds = _stream(FrameSchedule(KeyframePolicy(8), DenseFallback(), 1.5), 40, {"key": 4.0, "delta": 1.0, "dense": 1.5})
    assert "dense" not in kinds and kinds.count("key") == 5


def test_dear_delta_frames_fall_back_then_probe_with_a_doubling_wait():
    fallback = DenseFallback(hold=4, max_hold=2, early=2)
    schedule = FrameSchedule(KeyframePolicy(8), fallback, 1.0)
    kinds = _stream(schedule, 40, {"key": 4.0, "delta": 2.0, "dense": 1.0})
    # key, two delta frames measured, then 4 dense; the probe finds the same: 8 dense (capped at 2 x 4), ...
    assert kinds[:7] == ["key", "delta", "delta"] + ["dense"] * 4
    assert kinds[7:18] == ["key", "delta", "delta"] + ["dense"] * 8
    assert kinds[18:29] == ["key", "delta", "delta"] + ["dense"] * 8


def test_a_probe_that_finds_cheap_delta_frames_resets_the_wait():
    schedule = FrameSchedule(KeyframePolicy(8), DenseFallback(hold=4, early=2), 1.0)
    _stream(schedule, 7, {"key": 4.0, "delta": 2.0, "dense": 1.0})  # falls back for 4 frames
    kinds = _stream(schedule, 12, {"key": 1.0, "delta": 0.5, "dense": 1.0})[7:]
    assert kinds[0] == "key" and "dense" not in kinds


def test_one_slow_frame_does_not_decide():
    schedule = FrameSchedule(KeyframePolicy(8), DenseFallback(early=2), 1.0)
    for kind, cost in [("key", 1.0), ("delta", 0.5), ("delta", 50.0), ("delta", 0.5)]:
        assert schedule.next(FRAME) == kind
        schedule.ran(kind, cost)
    assert schedule.next(FRAME) == "delta"


def test_bad_fallbacks_are_refused():
    with pytest.raises(ConfigError):
        DenseFallback(hold=0)
    with pytest.raises(ConfigError):
        DenseFallback(margin=-1)
    with pytest.raises(ConfigError):
        FrameSchedule(KeyframePolicy(8), DenseFallback(), None)
