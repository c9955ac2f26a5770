"""Decoding: containers, frame selection, resizing, frame folders, bad input."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from videotest_helpers import value_frames, write_frames, write_video
from deltanas.errors import ConfigError, VideoError
from deltanas.video import VideoSource, read_frames, resolve_sources

CONTAINERS = [
    ("clip.mp4", "libx264"),
    ("clip.mp4", "mpeg4"),
    ("clip.avi", "mpeg4"),
    ("clip.mkv", "libx264"),
    ("clip.gif", None),
]


def _flat_values(frames: torch.Tensor) -> list[float]:
    return frames.float().mean(dim=(1, 2, 3)).tolist()


@pytest.mark.parametrize(("name", "codec"), CONTAINERS, ids=[f"{n}-{c}" for n, c in CONTAINERS])
def test_containers_decode_every_frame_in_order(tmp_path: Path, name: str, codec: str | None) -> None:
    path = write_video(tmp_path / name, value_frames(12), codec=codec or "")
    frames = read_frames(path)
    assert frames.dtype == torch.uint8
    assert frames.shape == (12, 3, 48, 64)
    # Lossy codecs move flat grey levels by a few units at most; order must be exact.
    np.testing.assert_allclose(_flat_values(frames), 20 + 10 * np.arange(12), atol=6)


def test_start_step_max_frames_select_frames(small_mp4: Path) -> None:
    frames = read_frames(small_mp4, start=2, step=3, max_frames=3)
    np.testing.assert_allclose(_flat_values(frames), [40, 70, 100], atol=6)
    assert read_frames(small_mp4, start=10).shape[0] == 2


def test_start_past_the_end_is_an_error(small_mp4: Path) -> None:
    with pytest.raises(VideoError, match=r"small\.mp4: no frames decoded"):
        read_frames(small_mp4, start=50)


@pytest.mark.parametrize("resize", ["cover", "stretch"])
@pytest.mark.parametrize("size", [(24, 32), (30, 30), (64, 40)])
def test_resize_gives_the_requested_shape(small_mp4: Path, size: tuple[int, int], resize: str) -> None:
    frames = read_frames(small_mp4, size, resize=resize, max_frames=4)
    assert frames.shape == (4, 3, *size)
    np.testing.assert_allclose(_flat_values(frames), [20, 30, 40, 50], atol=6)


def _bands(h: int = 40, w: int = 80) -> np.ndarray:
    # Dark outer quarters, bright centre half: a centre crop to a square keeps only the bright part.
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 4 : 3 * w // 4] = 200
    return image


def test_cover_centre_crops_and_keeps_aspect(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "bands", [_bands()])
    cover = read_frames(folder, (20, 20), resize="cover")
    assert cover.shape == (1, 3, 20, 20)
    assert int(cover.min()) == 200  # only the centre square survives, not squeezed
    same_aspect = read_frames(folder, (20, 40), resize="cover")
    assert int(same_aspect[..., :8].max()) < 10 and int(same_aspect[..., 12:28].min()) > 190


def test_stretch_squeezes_the_whole_frame(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "bands", [_bands()])
    stretch = read_frames(folder, (20, 20), resize="stretch")
    assert stretch.shape == (1, 3, 20, 20)
    assert int(stretch[..., :3].max()) < 10 and int(stretch[..., 8:12].min()) > 190


def test_frame_folder_uses_natural_order(tmp_path: Path) -> None:
    names = ["frame10.png", "frame2.png", "frame1.png"]
    values = {"frame1.png": 1, "frame2.png": 2, "frame10.png": 10}
    arrays = [np.full((8, 8, 3), values[n], np.uint8) for n in names]
    folder = write_frames(tmp_path / "seq", arrays, names)
    (folder / "notes.txt").write_text("not a frame")
    frames = read_frames(folder)
    assert frames[:, 0, 0, 0].tolist() == [1, 2, 10]
    (source,) = resolve_sources(folder)
    assert source == VideoSource("seq", folder.resolve(), "frames")


def test_frame_folder_with_mixed_sizes_follows_the_first(tmp_path: Path) -> None:
    arrays = [np.full((32, 48, 3), 50, np.uint8), np.full((64, 96, 3), 150, np.uint8)]
    folder = write_frames(tmp_path / "mixed", arrays)
    frames = read_frames(folder)
    assert frames.shape == (2, 3, 32, 48)
    assert frames[:, 0, 0, 0].tolist() == [50, 150]
    assert read_frames(folder, (16, 16)).shape == (2, 3, 16, 16)


def test_jpeg_and_bmp_frames_read(tmp_path: Path) -> None:
    arrays = [np.full((16, 16, 3), 100, np.uint8)] * 2
    folder = write_frames(tmp_path / "mixedfmt", arrays, ["a1.jpg", "a2.bmp"])
    frames = read_frames(folder)
    assert frames.shape == (2, 3, 16, 16)
    assert abs(frames.float().mean().item() - 100) < 3


def test_bikes_decodes_real_frames() -> None:
    frames = read_frames("bikes", max_frames=10)
    assert frames.shape == (10, 3, 272, 640)
    assert frames.float().std() > 20  # real footage, not a blank frame
    assert not torch.equal(frames[0], frames[9])  # the camera moves


@pytest.mark.parametrize("name", ["bikes", "bigbuckbunny", "carphone"])
def test_every_bundled_clip_decodes(name: str) -> None:
    frames = read_frames(name, (32, 32), max_frames=2)
    assert frames.shape == (2, 3, 32, 32)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("missing.mp4", None, "no such file"),
        ("empty.mp4", b"", "empty file"),
        ("noise.mp4", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a readable video"),
        ("readme.avi", b"hello, this is text\n" * 20, "not a readable video"),
    ],
)
def test_bad_files_raise_video_error_naming_the_file(
    tmp_path: Path, filename: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / filename
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=message) as info:
        read_frames(path)
    assert filename in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_video_is_a_video_error(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", value_frames(20, 64, 96) + np.random.default_rng(0).integers(0, 30, (20, 64, 96, 3), dtype=np.uint8))
    data = good.read_bytes()
    # Keep the header, cut and garble the payload.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[:64] + bytes(len(data) - 64))
    with pytest.raises(VideoError, match="broken.mp4"):
        read_frames(broken)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(VideoError, match=r"sound\.mkv: no video stream"):
        read_frames(path)


def test_corrupt_frame_in_folder_names_that_frame(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "seq", [np.zeros((8, 8, 3), np.uint8)])
    (folder / "frame1.png").write_bytes(b"not a png")
    with pytest.raises(VideoError, match=r"frame1\.png"):
        read_frames(folder)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (0, 10)},
        {"size": (10,)},
        {"size": (10.5, 10)},
        {"resize": "squash"},
        {"max_frames": 0},
        {"start": -1},
        {"step": 0},
    ],
)
def test_bad_arguments_raise_config_error(small_mp4: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        read_frames(small_mp4, **kwargs)


def test_a_spec_naming_several_clips_is_refused() -> None:
    with pytest.raises(ConfigError, match="3 clips"):
        read_frames("bundled", max_frames=1)
