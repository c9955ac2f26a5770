"""The real footage a set is condensed from: every clip's frames before its held-out part, as whole groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError
from ..video import load_clips, split_in_time

__all__ = ["CandidateGroups", "candidate_groups", "condense_footage"]

DEFAULT_SPLIT = (0.6, 0.1, 0.3)  # deltanas.training.DataConfig's: the test part is what a condensed set never sees


def condense_footage(videos: Sequence[str], size: tuple[int, int], keyframe_interval: int,
                     max_frames: int | None = 300, split: Sequence[float] | None = DEFAULT_SPLIT
                     ) -> list[tuple[str, torch.Tensor]]:
    """The clips ``videos`` at ``size`` (up to ``max_frames`` each) as ``(name, uint8 frames)`` segments: with
    ``split``, each clip's training and validation parts as :func:`deltanas.training.load_video_data` cuts
    them (a gap of K frames between parts; the test part left out, so that a condensed set can be judged on
    it), else each clip whole."""
    clips = load_clips(list(videos), size, max_frames=max_frames)
    if split is None:
        return [(c.name, c.frames) for c in clips]
    segments = []
    for clip in clips:
        parts = split_in_time(len(clip), split, gap=keyframe_interval)
        for part, frames in (("train", parts.train), ("val", parts.val)):
            if len(frames):
                segments.append((f"{clip.name} ({part})", clip.frames[frames.start:frames.stop]))
    return segments


@dataclass
class CandidateGroups:
    """Every whole group of K consecutive frames of the footage, key frames K apart, by where it starts
    (segment, frame index); the frames stay in the segments until asked for."""

    segments: list[tuple[str, torch.Tensor]]
    keyframe_interval: int
    starts: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.starts)

    def group(self, i: int) -> torch.Tensor:
        """uint8 (K, 3, H, W), a view."""
        segment, start = self.starts[i]
        return self.segments[segment][1][start:start + self.keyframe_interval]

    def frames(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 (len(index), K, 3, H, W)."""
        return torch.stack([self.group(i) for i in index.tolist()])

    def origin(self, index: torch.Tensor) -> list[dict]:
        return [{"clip": self.segments[self.starts[i][0]][0], "start": self.starts[i][1]} for i in index.tolist()]

    def spread(self, count: int) -> torch.Tensor:
        """Indices of ``count`` groups spread evenly over all (all of them when there are fewer)."""
        if count >= len(self):
            return torch.arange(len(self))
        return torch.linspace(0, len(self) - 1, count).round().long().unique()


def candidate_groups(segments: Sequence[tuple[str, torch.Tensor]], keyframe_interval: int) -> CandidateGroups:
    """The whole K-frame groups of ``segments`` (see :class:`CandidateGroups`); none at all is a ConfigError."""
    k = keyframe_interval
    starts = [(i, start) for i, (_, clip) in enumerate(segments) for start in range(0, clip.shape[0] - k + 1, k)]
    if not starts:
        raise ConfigError(f"the footage holds no whole group of K={k} frames: give longer clips "
                          f"(more --max-frames) or a smaller -K")
    return CandidateGroups(list(segments), k, starts)
