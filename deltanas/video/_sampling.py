"""Draw groups (a key frame and later frames) from clips, for training and evaluating delta models."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from deltanas.errors import ConfigError

__all__ = ["GroupSampler", "SampledGroups", "iter_groups"]


@dataclass
class SampledGroups:
    """A batch of groups: ``frames[b, 0]`` is the key frame, ``frames[b, j]`` lies ``distances[b, j-1]`` after it."""

    frames: torch.Tensor  # float32 (B, 1 + later_frames, 3, h, w) in [0, 1]
    distances: torch.Tensor  # int64 (B, later_frames), ascending, distinct, in 1..K-1
    clip_index: torch.Tensor  # int64 (B,): index into the clips given to the sampler
    key_index: torch.Tensor  # int64 (B,): the key frame's index in its clip


class GroupSampler:
    """Random groups ``[frame i, frame i + d_1, ..., frame i + d_L]`` with ``0 < d_1 < ... < d_L < K``.

    A clip is drawn with probability proportional to its number of key positions (``T - K + 1``,
    so every whole group of ``K`` frames is equally likely); clips shorter than ``K`` are skipped.
    The crop position and the flip are drawn once per group and applied to all its frames, so
    augmentation never adds motion that is not in the footage. All randomness comes from
    ``generator``: the same seed gives the same batches.
    """

    def __init__(
        self,
        clips: Sequence[torch.Tensor],
        keyframe_interval: int,
        later_frames: int,
        *,
        crop: tuple[int, int] | None = None,
        flip: bool = False,
        generator: torch.Generator,
    ) -> None:
        k, later = keyframe_interval, later_frames
        if not _is_int(k) or k < 2:
            raise ConfigError(f"keyframe_interval must be an integer >= 2, got {k!r}")
        if not _is_int(later) or not 1 <= later <= k - 1:
            raise ConfigError(f"later_frames must be an integer in 1..{k - 1} (keyframe_interval - 1), got {later!r}")
        if not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        for i, clip in enumerate(clips):
            _check_clip(clip, f"clip {i}")
        usable = [i for i, c in enumerate(clips) if c.shape[0] >= k]
        if not usable:
            raise ConfigError(f"no clip has the {k} frames one group needs (keyframe_interval={k})")
        sizes = {tuple(clips[i].shape[-2:]) for i in usable}
        if crop is None:
            if len(sizes) > 1:
                raise ConfigError(f"clips differ in size {sorted(sizes)}; pass crop=(h, w) or load them at one size")
        else:
            if not (len(crop) == 2 and all(_is_int(v) and v > 0 for v in crop)):
                raise ConfigError(f"crop must be two positive integers (height, width), got {crop!r}")
            too_small = sorted(s for s in sizes if s[0] < crop[0] or s[1] < crop[1])
            if too_small:
                raise ConfigError(f"crop {tuple(crop)} is larger than clip frames {too_small}")
        self.clips = list(clips)
        self.keyframe_interval = k
        self.later_frames = later
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.flip = bool(flip)
        self.generator = generator
        self._usable = torch.tensor(usable, dtype=torch.long)
        self._keys = torch.tensor([clips[i].shape[0] - k + 1 for i in usable], dtype=torch.long)

    def sample(self, batch_size: int) -> SampledGroups:
        """``batch_size`` groups, stacked."""
        if not _is_int(batch_size) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        g, k, b = self.generator, self.keyframe_interval, batch_size
        pick = torch.multinomial(self._keys.to(torch.float64), b, replacement=True, generator=g)
        clip_index = self._usable[pick]
        key_index = _uniform_below(self._keys[pick], g)
        # L distinct distances: the first L of a random permutation of 1..K-1, then sorted.
        distances = torch.rand(b, k - 1, generator=g).argsort(dim=1)[:, : self.later_frames] + 1
        distances = distances.sort(dim=1).values
        offsets = torch.cat([torch.zeros(b, 1, dtype=torch.long), distances], dim=1)

        heights = torch.tensor([self.clips[i].shape[-2] for i in clip_index.tolist()])
        widths = torch.tensor([self.clips[i].shape[-1] for i in clip_index.tolist()])
        crop_h, crop_w = self.crop if self.crop is not None else (int(heights[0]), int(widths[0]))
        tops = _uniform_below(heights - crop_h + 1, g)
        lefts = _uniform_below(widths - crop_w + 1, g)
        flips = torch.rand(b, generator=g) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool)

        groups = []
        for j in range(b):
            top, left = int(tops[j]), int(lefts[j])
            # Crop (a view) before gathering frames, so only the cropped pixels are copied.
            window = self.clips[int(clip_index[j])][..., top : top + crop_h, left : left + crop_w]
            frames = window[key_index[j] + offsets[j]]
            groups.append(frames.flip(-1) if flips[j] else frames)
        batch = torch.stack(groups).to(torch.float32).div_(255)
        return SampledGroups(batch, distances, clip_index, key_index)


def iter_groups(clip: torch.Tensor, keyframe_interval: int) -> Iterator[torch.Tensor]:
    """Consecutive groups ``[key, key + 1, ..., key + K - 1]`` as float32 ``(k, 3, H, W)`` in [0, 1].

    Every frame appears exactly once, in order; the last group holds the remaining 1..K frames.
    """
    _check_clip(clip, "clip")
    if not _is_int(keyframe_interval) or keyframe_interval < 1:
        raise ConfigError(f"keyframe_interval must be an integer >= 1, got {keyframe_interval!r}")
    for start in range(0, clip.shape[0], keyframe_interval):
        yield clip[start : start + keyframe_interval].to(torch.float32).div_(255)


def _uniform_below(n: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Integers uniform in [0, n) per entry; float64 keeps rand * n from rounding up to n.
    u = torch.rand(n.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * n).long(), n - 1)


def _check_clip(clip: object, what: str) -> None:
    if not isinstance(clip, torch.Tensor) or clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[1] != 3:
        got = f"{clip.dtype} {tuple(clip.shape)}" if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ConfigError(f"{what} must be a uint8 tensor (T, 3, H, W), got {got}")
    if clip.shape[0] == 0:
        raise ConfigError(f"{what} has no frames")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
