"""A tiny classifier teacher and synthetic moving footage: search tests in seconds."""

from __future__ import annotations

import torch
from torch import nn

from deltanas.teachers import Teacher, TeacherInfo
from deltanas.training import DataConfig, VideoData


class TinyTeacher(Teacher):
    def __init__(self, seed: int = 0) -> None:
        super().__init__(TeacherInfo("tiny", (32, 48), (0.5,) * 3, (0.25,) * 3, 10, "tests"))
        g = torch.Generator().manual_seed(seed)
        self.stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.expand = nn.Conv2d(16, 48, 1, bias=False)
        self.dw = nn.Conv2d(48, 48, 3, 1, 1, groups=48, bias=False)
        self.project = nn.Conv2d(48, 16, 1, bias=False)
        self.down = nn.Conv2d(16, 32, 3, 2, 1, bias=False)
        self.head = nn.Conv2d(32, 64, 1, bias=False)
        self.act = nn.ReLU6()
        self.fc = nn.Linear(64, 10)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() > 1 else 0.1))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward_features(self, x):
        x = self.act(self.bn(self.stem(x)))
        x = x + self.project(self.act(self.dw(self.act(self.expand(x)))))
        return self.act(self.head(self.act(self.down(x))))

    def classify(self, pooled):
        return self.fc(pooled)


def moving_clip(frames: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """A textured background with a bright square moving across it (uint8, (T, 3, H, W))."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    base = (torch.rand(3, h, w, generator=g) * 120 + 40)
    clip = base.expand(frames, 3, h, w).clone()
    for t in range(frames):
        x0 = (2 * t + seed) % (w - 8)
        clip[t, :, h // 3:h // 3 + 8, x0:x0 + 8] = 250
    return clip.to(torch.uint8)


def tiny_data(config: DataConfig) -> VideoData:
    clips = [moving_clip(40, config.frame_size, s) for s in (0, 3)]
    evals = [moving_clip(40, config.eval_size, s) for s in (0, 3)]
    return VideoData(["a", "b"], [c[:24] for c in clips], [e[24:30] for e in evals], [e[30:] for e in evals],
                     [e[:24] for e in evals])


TINY_DATA = DataConfig(videos=("synthetic",), frame_size=(40, 56), crop=(32, 48), eval_size=(32, 48),
                       max_frames=40, keyframe_interval=4, later_frames=2, flip=False)
