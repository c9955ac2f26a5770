"""Adaptive key frames: offline decisions equal the stream's, and the calibration keeps the key budget."""

from __future__ import annotations

import pytest
import torch

from deltanas.delta import KeyframePolicy, calibrate_keyframes
from deltanas.errors import ConfigError


def _bursty_clip(seed: int = 0) -> torch.Tensor:
    """30 frames (uint8): a still scene with three abrupt changes (cuts) at frames 7, 15 and 22."""
    g = torch.Generator().manual_seed(seed)
    scenes = [torch.randint(0, 256, (3, 16, 24), generator=g, dtype=torch.uint8) for _ in range(4)]
    frames = []
    for t in range(30):
        scene = scenes[sum(t >= c for c in (7, 15, 22))].clone()
        scene[:, t % 16, :2] = 255 - scene[:, t % 16, :2]  # a small moving change every frame
        frames.append(scene)
    return torch.stack(frames)


def test_key_indices_match_the_fixed_interval_and_the_threshold():
    clip = _bursty_clip()
    assert KeyframePolicy(8).key_indices(clip) == [0, 8, 16, 24]
    # a threshold between the small changes and the cuts puts a key frame on every cut
    keys = KeyframePolicy(100, threshold=0.1).key_indices(clip)
    assert keys == [0, 7, 15, 22]


def test_calibration_spends_no_more_key_frames_than_fixed_k_and_finds_the_cuts():
    clip = _bursty_clip()
    policy = calibrate_keyframes([clip], keyframe_interval=8)
    assert policy.interval == 16
    keys = policy.key_indices(clip)
    assert len(keys) <= 4  # ceil(30 / 8)
    assert {7, 15, 22} <= set(keys)


def test_calibration_with_a_budget_of_one_key_frame_keeps_only_the_first():
    clip = _bursty_clip()
    policy = calibrate_keyframes([clip], keyframe_interval=30, max_interval=30)
    assert policy.key_indices(clip) == [0]


@pytest.mark.parametrize("kwargs", [{"clips": []}, {"max_interval": 4}])
def test_calibration_refuses_bad_input(kwargs):
    args = {"clips": [_bursty_clip()], "keyframe_interval": 8, **kwargs}
    with pytest.raises(ConfigError):
        calibrate_keyframes(**args)


def test_key_rate_holds_a_low_threshold_to_the_budget():
    clip = _bursty_clip()
    assert len(KeyframePolicy(100, threshold=1e-6).key_indices(clip)) == 30  # every frame changed
    keys = KeyframePolicy(100, threshold=1e-6, key_rate=0.25).key_indices(clip)
    # at most a quarter of the frames seen so far, plus two in reserve, at every point of the stream
    assert all(sum(k <= t for k in keys) <= 0.25 * (t + 1) + 2 for t in range(30))
    assert len(keys) >= 7
