"""Fixtures for deltanas.video tests: an isolated cache and a tiny video with known content."""

from __future__ import annotations

from pathlib import Path

import pytest

from videotest_helpers import value_frames, write_video


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the real cache in ~/.cache, and never pick up a user's extra footage setting.
    monkeypatch.setenv("DELTANAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DELTANAS_EXTRA_VIDEO", raising=False)


@pytest.fixture
def small_mp4(tmp_path: Path) -> Path:
    """12 frames, 48x64, h264, 10 fps, frame i filled with 20 + 10 i."""
    return write_video(tmp_path / "clips" / "small.mp4", value_frames(12))
