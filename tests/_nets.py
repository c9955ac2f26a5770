"""Two tiny user networks any test can import (``tests._nets:build_resnet`` as a teacher name).

Both take RGB in [0, 1] and get deterministic weights and BatchNorm statistics from a seeded
``torch.Generator`` (never the global RNG), so two calls build identical networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.delta._helpers import seeded_

__all__ = ["TinyResNet", "TinyUNet", "build_resnet", "build_unet", "seeded"]


def seeded(module: nn.Module, seed: int) -> nn.Module:
    """Fan-in scaled conv/linear weights, small biases, non-trivial BatchNorm affine and statistics; eval mode."""
    return seeded_(module, seed).eval()


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + identity)


class TinyResNet(nn.Module):
    """torchvision-ResNet-shaped: stem conv+BN+ReLU, maxpool, two basic blocks (the second strided
    with a 1x1 downsample), adaptive average pool, flatten, Linear."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(width, width)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(),
                         nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


class TinyUNet(nn.Module):
    """Two downsampling stages, a bottleneck, nearest upsampling with ``torch.cat`` skips, and a 1x1
    head giving one channel per class at the input's resolution (H and W divisible by 4)."""

    def __init__(self, num_classes: int = 5, width: int = 4) -> None:
        super().__init__()
        self.down1 = _double_conv(3, width)
        self.down2 = _double_conv(width, 2 * width)
        self.bottleneck = _double_conv(2 * width, 4 * width)
        self.up2 = _double_conv(4 * width + 2 * width, 2 * width)
        self.up1 = _double_conv(2 * width + width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        b = self.bottleneck(F.max_pool2d(d2, 2))
        u2 = self.up2(torch.cat([F.interpolate(b, scale_factor=2.0, mode="nearest"), d2], dim=1))
        u1 = self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="nearest"), d1], dim=1))
        return self.head(u1)


def build_resnet(num_classes: int = 10) -> TinyResNet:
    return seeded(TinyResNet(num_classes), seed=0)


def build_unet(num_classes: int = 5) -> TinyUNet:
    return seeded(TinyUNet(num_classes), seed=1)
