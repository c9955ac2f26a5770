"""Footage for training and evaluation: decoded once (cached), split in time per clip."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..video import GroupSampler, load_clips, split_in_time
from ._config import DataConfig

__all__ = ["VideoData", "load_video_data"]


@dataclass
class VideoData:
    """Per clip: train frames (at ``frame_size``, for crops), val and test frames (at ``eval_size``)."""

    names: list[str]
    train: list[torch.Tensor]
    val: list[torch.Tensor]
    test: list[torch.Tensor]

    def sampler(self, config: DataConfig, generator: torch.Generator) -> GroupSampler:
        return GroupSampler(self.train, config.keyframe_interval, config.later_frames,
                            crop=config.crop, flip=config.flip, generator=generator)

    def val_clips(self) -> list[tuple[str, torch.Tensor]]:
        return list(zip(self.names, self.val))

    def test_clips(self) -> list[tuple[str, torch.Tensor]]:
        return list(zip(self.names, self.test))


def load_video_data(config: DataConfig, *, need_train: bool = True) -> VideoData:
    """Decode every clip at the training and the evaluation size and cut both the same way in time.

    A gap of K frames separates the parts, so no group straddles two of them.
    """
    k = config.keyframe_interval
    eval_clips = load_clips(list(config.videos), config.eval_size, max_frames=config.max_frames)
    train_clips = (load_clips(list(config.videos), config.frame_size, max_frames=config.max_frames)
                   if need_train else eval_clips)
    names, train, val, test = [], [], [], []
    for clip, big in zip(eval_clips, train_clips):
        split = split_in_time(len(clip), config.split, gap=k)
        names.append(clip.name)
        train.append(big.frames[split.train.start:split.train.stop])
        val.append(clip.frames[split.val.start:split.val.stop])
        test.append(clip.frames[split.test.start:split.test.stop])
    return VideoData(names, train, val, test)
