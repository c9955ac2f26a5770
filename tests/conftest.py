"""Shared fixtures: the real teacher and a real bundled clip, small enough for CI."""

from __future__ import annotations

import pytest
import torch

from deltanas.teachers import create_teacher
from deltanas.training import DataConfig


@pytest.fixture(autouse=True, scope="session")
def _private_frame_cache(tmp_path_factory):
    """Decoded frames go to a per-session cache, never the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DELTANAS_CACHE", str(tmp_path_factory.mktemp("frame-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread: the tests' tensors are tiny, and on a shared 2-core machine OpenMP threads
    that other processes preempt make small convolutions (and SVDs) many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def lite0():
    return create_teacher("efficientnet_lite0")


@pytest.fixture(scope="session")
def small_data_config() -> DataConfig:
    """The real `bikes` clip, 80 frames, small frames so a training step takes well under a second."""
    return DataConfig(videos=("bikes",), frame_size=(96, 160), crop=(64, 128), eval_size=(64, 128),
                      max_frames=80, keyframe_interval=4, later_frames=2)
