"""The decoded-frame cache and load_clip / load_clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deltanas.video import Clip, FrameCache, load_clip, load_clips, resolve_sources
from deltanas.video import _decode
from videotest_helpers import value_frames, write_frames, write_video


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the cache should have answered")

    monkeypatch.setattr(_decode, "decode_clip", boom)


def test_second_load_comes_from_the_cache(small_mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FrameCache()
    first = load_clip(small_mp4, (24, 32), max_frames=5, cache=cache)
    assert isinstance(first, Clip) and first.name == "small" and first.fps == pytest.approx(10)
    assert first.source == small_mp4.resolve() and len(first) == 5
    assert (cache.hits, cache.misses) == (0, 1)
    _forbid_decoding(monkeypatch)
    second = load_clip(small_mp4, (24, 32), max_frames=5, cache=cache)
    assert cache.hits == 1
    assert torch.equal(first.frames, second.frames) and second.fps == first.fps
    assert second.frames.dtype == torch.uint8


def test_default_cache_lives_under_deltanas_cache(tmp_path: Path, small_mp4: Path) -> None:
    assert FrameCache().root == tmp_path / "cache"
    load_clip(small_mp4, None)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))  # atomic writes leave no temp files


def test_cache_false_writes_nothing(tmp_path: Path, small_mp4: Path) -> None:
    clip = load_clip(small_mp4, (16, 16), cache=False)
    assert clip.frames.shape == (12, 3, 16, 16)
    assert not (tmp_path / "cache").exists()


def test_other_arguments_or_an_edited_file_miss(small_mp4: Path) -> None:
    cache = FrameCache()
    load_clip(small_mp4, (16, 16), cache=cache)
    for kwargs in ({"max_frames": 4}, {"start": 1}, {"step": 2}, {"resize": "stretch"}):
        load_clip(small_mp4, (16, 16), cache=cache, **kwargs)
    load_clip(small_mp4, (16, 24), cache=cache)
    assert (cache.hits, cache.misses) == (0, 6)
    write_video(small_mp4, value_frames(6))  # same path, new content
    os.utime(small_mp4, ns=(1, 1))  # make sure the mtime differs even on coarse clocks
    clip = load_clip(small_mp4, (16, 16), cache=cache)
    assert cache.misses == 7 and len(clip) == 6


def test_frame_folder_changes_miss(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "seq", [np.full((8, 8, 3), v, np.uint8) for v in (1, 2)])
    cache = FrameCache()
    assert len(load_clip(folder, None, cache=cache)) == 2
    write_frames(folder, [np.full((8, 8, 3), 3, np.uint8)], ["frame2.png"])
    assert load_clip(folder, None, cache=cache).frames[:, 0, 0, 0].tolist() == [1, 2, 3]
    assert cache.hits == 0


@pytest.mark.parametrize("damage", ["truncate_array", "garble_note", "drop_array", "wrong_shape"])
def test_corrupt_entry_is_dropped_and_decoded_again(tmp_path: Path, small_mp4: Path, damage: str) -> None:
    cache = FrameCache()
    good = load_clip(small_mp4, (16, 16), cache=cache).frames
    (array_path,) = cache.root.glob("*.npy")
    note_path = array_path.with_suffix(".json")
    if damage == "truncate_array":
        array_path.write_bytes(array_path.read_bytes()[:100])
    elif damage == "garble_note":
        note_path.write_text("{not json")
    elif damage == "drop_array":
        array_path.unlink()
    else:
        np.save(array_path, np.zeros((2, 3, 4, 4), np.uint8))
    again = load_clip(small_mp4, (16, 16), cache=cache)
    assert torch.equal(again.frames, good)
    assert cache.misses == 2
    assert load_clip(small_mp4, (16, 16), cache=cache).frames.shape == good.shape
    assert cache.hits == 1  # the re-decoded entry was stored again


def test_unwritable_cache_warns_and_goes_on(tmp_path: Path, small_mp4: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="cannot write"):
        clip = load_clip(small_mp4, None, cache=FrameCache(blocker / "frames"))
    assert len(clip) == 12


def test_clear_removes_entries(small_mp4: Path) -> None:
    cache = FrameCache()
    load_clip(small_mp4, (8, 8), cache=cache)
    load_clip(small_mp4, (8, 12), cache=cache)
    assert cache.clear() == 2
    assert not list(cache.root.iterdir())


def test_load_clips_resolves_and_loads_each(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    write_video(folder / "a.mp4", value_frames(4, 32, 32))
    write_video(folder / "b.avi", value_frames(6, 16, 48), codec="mpeg4")
    clips = load_clips([folder, "bikes"], (16, 16), max_frames=5)
    assert [(c.name, len(c)) for c in clips] == [("a", 4), ("b", 5), ("bikes", 5)]
    assert all(c.frames.shape[1:] == (3, 16, 16) for c in clips)
    assert [s.name for s in resolve_sources(folder)] == ["a", "b"]
