"""Footage for training and evaluation: decoded once (cached), split in time per clip."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..video import GroupSampler, load_clips, resolve_sources, split_in_time
from ._config import DataConfig

__all__ = ["VideoData", "load_video_data"]


@dataclass
class VideoData:
    """Per clip: train frames (at ``frame_size``, for crops), val and test frames (at ``eval_size``),
    and the train frames at ``eval_size`` too (``train_eval``; empty when not decoded)."""

    names: list[str]
    train: list[torch.Tensor]
    val: list[torch.Tensor]
    test: list[torch.Tensor]
    train_eval: list[torch.Tensor] = field(default_factory=list)

    def sampler(self, config: DataConfig, generator: torch.Generator) -> GroupSampler:
        return GroupSampler(self.train, config.keyframe_interval, config.later_frames,
                            crop=config.crop, flip=config.flip, generator=generator)

    def val_clips(self) -> list[tuple[str, torch.Tensor]]:
        return list(zip(self.names, self.val))

    def test_clips(self) -> list[tuple[str, torch.Tensor]]:
        return list(zip(self.names, self.test))

    def selection_clips(self, keyframe_interval: int, groups_per_clip: int,
                        min_groups: int = 0) -> list[tuple[str, torch.Tensor]]:
        """The validation clips; where they hold fewer than ``min_groups`` key-frame groups (counting up
        to ``groups_per_clip`` per clip), topped up with groups of the training split: the same number
        per clip, at most ``groups_per_clip``, spread evenly over it (at ``eval_size``, named
        ``"NAME (train)"``, K frames each): more frames than short clips' validation splits hold, to rank
        candidates that were not trained on them (a threshold gate, the teacher copy; BENCHMARKS.md,
        selection frames)."""
        clips = self.val_clips()
        k = keyframe_interval
        held = sum(min(groups_per_clip, -(-len(frames) // k)) for _, frames in clips)
        wanted = min(groups_per_clip, -(-max(min_groups - held, 0) // max(len(self.train_eval), 1)))
        for name, frames in zip(self.names, self.train_eval):
            count = min(wanted, len(frames) // k)
            if count < 1:
                continue
            starts = torch.linspace(0, len(frames) - k, count).round().long().tolist()
            clips.append((f"{name} (train)", torch.cat([frames[s:s + k] for s in starts])))
        return clips


def load_video_data(config: DataConfig, *, need_train: bool = True, teacher: str | None = None) -> VideoData:
    """Decode every clip at the training and the evaluation size and cut both the same way in time.

    A gap of K frames separates the parts, so no group straddles two of them.

    A condensed set (``condensed:DIR``, from ``deltanas condense``) is not cut in time: each of its groups is a
    clip of K frames that serves every part (training, validation and so selection, and test: a held-out figure
    on a condensed set is not held out, judge on real footage; ``train_eval`` is empty, as the group is in
    ``val`` already). It must have been made at ``eval_size``, for the
    key-frame interval and, when ``teacher`` (a name) is given, for that teacher, else :class:`ConfigError`;
    its training frames are at ``eval_size`` too (crops come from them).
    """
    k = config.keyframe_interval
    sources = resolve_sources(list(config.videos))
    real = [s for s in sources if s.kind != "condensed"]
    eval_clips = load_clips(real, config.eval_size, max_frames=config.max_frames) if real else []
    train_clips = (load_clips(real, config.frame_size, max_frames=config.max_frames)
                   if need_train and real else eval_clips)
    data = VideoData([], [], [], [])
    decoded = iter(zip(eval_clips, train_clips))
    for source in sources:
        if source.kind == "condensed":
            _add_condensed(data, source.path, config, teacher)
            continue
        clip, big = next(decoded)
        split = split_in_time(len(clip), config.split, gap=k)
        data.names.append(clip.name)
        data.train.append(big.frames[split.train.start:split.train.stop])
        data.val.append(clip.frames[split.val.start:split.val.stop])
        data.test.append(clip.frames[split.test.start:split.test.stop])
        data.train_eval.append(clip.frames[split.train.start:split.train.stop])  # views: no copy
    return data


def _add_condensed(data: VideoData, folder, config: DataConfig, teacher: str | None) -> None:
    from ..condense import load_condensed

    condensed = load_condensed(folder).check(teacher=teacher, keyframe_interval=config.keyframe_interval,
                                             size=config.eval_size)
    for i, group in enumerate(condensed.frames()):
        data.names.append(f"{folder.name}:g{i}")
        for part in (data.train, data.val, data.test):
            part.append(group)
        data.train_eval.append(group[:0])  # selection_clips tops up from nothing: the group is in val already
