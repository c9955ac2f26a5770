"""Geometry of a network's convolutions at a given input size (what MAC formulas need)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import ArchError

__all__ = ["LayerInfo", "trace_layers", "conv_output_hw", "conv_macs"]


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


@dataclass(frozen=True)
class LayerInfo:
    """One convolution of the teacher, with its input/output sizes at the traced resolution."""

    name: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels

    @property
    def is_pointwise(self) -> bool:
        return self.kernel == (1, 1)

    @property
    def teacher_macs(self) -> int:
        return conv_macs(self.in_channels, self.out_channels, self.kernel, self.groups, self.out_hw)

    def input_stride(self, frame_hw: tuple[int, int]) -> float:
        """``sqrt(frame area / input area)``: 1 for a layer that sees the frame, 2 after one stride-2 layer ..."""
        return math.sqrt(frame_hw[0] * frame_hw[1] / (self.in_hw[0] * self.in_hw[1]))

    def with_input(self, in_hw: tuple[int, int], **changes) -> "LayerInfo":
        """The same convolution on another input size (and optionally other channels/kernel...)."""
        geometry = replace(self, in_hw=in_hw, **changes)
        return replace(geometry, out_hw=conv_output_hw(geometry))

    @classmethod
    def from_conv(cls, name: str, conv: nn.Conv2d, in_hw: tuple[int, int]) -> "LayerInfo":
        kernel, stride, dilation = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
        if isinstance(conv.padding, str):
            if conv.padding == "valid":
                padding = (0, 0)
            else:  # 'same' (stride 1): symmetric only when the receptive field is odd
                total = [d * (k - 1) for d, k in zip(dilation, kernel)]
                if any(t % 2 for t in total):
                    raise ArchError(f"layer {name}: padding='same' with an even kernel is not supported")
                padding = (total[0] // 2, total[1] // 2)
        else:
            padding = _pair(conv.padding)
        info = cls(name, conv.in_channels, conv.out_channels, kernel, stride, padding, dilation,
                   conv.groups, in_hw, (0, 0))
        return replace(info, out_hw=conv_output_hw(info))


def conv_output_hw(layer: LayerInfo) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, p, d, k, s in zip(layer.in_hw, layer.padding, layer.dilation, layer.kernel, layer.stride)
    )


def conv_macs(c_in: int, c_out: int, kernel: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> int:
    """Multiply-adds of a convolution (the same convention as fvcore)."""
    return out_hw[0] * out_hw[1] * c_out * (c_in // groups) * kernel[0] * kernel[1]


@torch.no_grad()
def trace_layers(
    model: nn.Module, input_hw: tuple[int, int], in_channels: int = 3
) -> tuple[list[LayerInfo], int]:
    """Every ``nn.Conv2d`` of ``model`` in execution order, and the MACs of its ``nn.Linear`` layers.

    The model runs once on a zero frame of ``input_hw``.
    A convolution that runs more than once per frame is refused (a delta layer caches one key input).
    """
    convs: list[LayerInfo] = []
    linear_macs = 0
    seen: set[str] = set()
    handles = []

    def conv_hook(name):
        def hook(module, inputs, output):
            if name in seen:
                raise ArchError(f"layer {name} runs more than once per frame; delta layers need one call")
            seen.add(name)
            convs.append(LayerInfo.from_conv(name, module, tuple(inputs[0].shape[-2:])))
        return hook

    def linear_hook(module, inputs, output):
        nonlocal linear_macs
        linear_macs += inputs[0].numel() // inputs[0].shape[-1] * module.in_features * module.out_features

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook(name)))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        model(torch.zeros(1, in_channels, *input_hw))
    finally:
        for h in handles:
            h.remove()
    return convs, linear_macs

