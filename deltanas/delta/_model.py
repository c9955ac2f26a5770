"""``convert(teacher, arch)``: wrap every convolution of a network in a :class:`DeltaConv`."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import torch
from torch import nn

from ..teachers import Teacher
from ._arch import Arch
from ._conv import DeltaConv, DeltaMode
from ._cost import CostReport, cost_report
from ._layers import LayerInfo, trace_layers
from ._ops import StudentOp

__all__ = ["DeltaModel", "convert"]


class DeltaModel(nn.Module):
    """A converted network. Frames are RGB in [0, 1]; a :class:`Teacher` also normalises them.

    ``forward_group`` runs groups of frames (the first of each group is its key frame) as one batch;
    ``key_frame`` / ``delta_frames`` are the streaming pair, caching the key frame inside each layer.
    """

    def __init__(self, net: nn.Module, arch: Arch, ops: dict[str, StudentOp], layers: list[LayerInfo],
                 in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.net = net
        self.arch = arch
        self.ops = ops
        self.layers = layers

    # -- layers and modes ---------------------------------------------------------------------
    def delta_layers(self) -> dict[str, DeltaConv]:
        return {name: m for name, m in self.net.named_modules() if isinstance(m, DeltaConv)}

    def set_mode(self, mode: DeltaMode, group_size: int = 1) -> None:
        for layer in self.delta_layers().values():
            layer.mode, layer.group_size = DeltaMode(mode), group_size

    @contextmanager
    def mode(self, mode: DeltaMode, group_size: int = 1) -> Iterator[None]:
        previous = [(m, m.mode, m.group_size) for m in self.delta_layers().values()]
        self.set_mode(mode, group_size)
        try:
            yield
        finally:
            for m, old_mode, old_size in previous:
                m.mode, m.group_size = old_mode, old_size

    def student_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.delta_layers().values() for p in m.student.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> "DeltaModel":
        # Only students train; the teacher's BatchNorm statistics stay frozen.
        super().train(False)
        for layer in self.delta_layers().values():
            layer.student.train(mode)
        self.training = mode
        return self

    # -- running ------------------------------------------------------------------------------
    @property
    def teacher(self) -> Teacher | None:
        return self.net if isinstance(self.net, Teacher) else None

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, Teacher):
            return self.net.forward_features(self.net.normalize(x))
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output (a teacher's last feature map) in the current mode."""
        return self._features(x)

    def forward_group(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) groups, key frame first -> outputs (B, T, ...)."""
        b, t = frames.shape[:2]
        with self.mode(DeltaMode.GROUP, t):
            out = self._features(frames.flatten(0, 1))
        return out.view(b, t, *out.shape[1:])

    def teacher_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exact teacher on any batch of frames (every layer runs its convolution)."""
        with self.mode(DeltaMode.PLAIN):
            return self._features(x)

    def key_frame(self, x: torch.Tensor) -> torch.Tensor:
        with self.mode(DeltaMode.KEY):
            return self._features(x)

    def delta_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frames after the last :meth:`key_frame` (a batch of them shares that key frame)."""
        with self.mode(DeltaMode.DELTA):
            return self._features(x)

    def clear_cache(self) -> None:
        for layer in self.delta_layers().values():
            layer.clear_cache()

    # -- cost ---------------------------------------------------------------------------------
    def layer_infos(self, input_hw: tuple[int, int]) -> tuple[list[LayerInfo], int]:
        """Layer geometry at ``input_hw`` (names as in the teacher) and the linear layers' MACs."""
        with self.mode(DeltaMode.PLAIN):
            convs, linear = trace_layers(self.net, input_hw, self.in_channels)
        return [replace(c, name=c.name.removesuffix(".conv")) for c in convs], linear

    def cost(self, input_hw: tuple[int, int]) -> CostReport:
        infos, linear = self.layer_infos(input_hw)
        return cost_report(infos, self.ops, linear, input_hw)


def convert(teacher: nn.Module, arch: "Arch | str" = "full", input_hw: tuple[int, int] | None = None,
            in_channels: int = 3) -> DeltaModel:
    """A delta model of ``teacher`` (left untouched) with students chosen by ``arch``.

    ``input_hw`` is only used to trace the layers (default: the teacher's input size); the model
    runs at any resolution.
    """
    if isinstance(arch, str):
        arch = Arch.parse(arch)
    if input_hw is None:
        input_hw = teacher.info.input_size if isinstance(teacher, Teacher) else (64, 64)
    net = copy.deepcopy(teacher).eval()  # the caller's network stays exactly as it was
    for p in net.parameters():
        p.requires_grad_(False)
    layers, _ = trace_layers(net, input_hw, in_channels)
    ops = arch.resolve(layers)
    for info in layers:
        parent_name, _, attr = info.name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        conv = getattr(parent, attr)
        setattr(parent, attr, DeltaConv(conv, ops[info.name].build(info, conv), str(ops[info.name])))
    return DeltaModel(net, arch, ops, layers, in_channels)

