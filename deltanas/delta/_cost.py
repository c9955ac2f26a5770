"""What a delta model costs: MACs of a key frame and a delta frame per layer, averaged over a key-frame group."""

from __future__ import annotations

from dataclasses import dataclass

from ._layers import LayerInfo
from ._ops import StudentOp

__all__ = ["CostReport", "LayerCost", "averaged_macs", "cost_report"]


def averaged_macs(teacher_macs: float, delta_macs: float, keyframe_interval: "int | float") -> float:
    """MACs per frame over a group of K frames whose first runs the teacher: ``(M_teacher + (K-1) M_delta) / K``
    (K may be fractional: an adaptive policy's frames per key frame)."""
    k = keyframe_interval
    return (teacher_macs + (k - 1) * delta_macs) / k


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    teacher_macs: int
    student_macs: int


@dataclass(frozen=True)
class CostReport:
    """MACs of one key frame (the teacher) and one delta frame at an input size."""

    input_hw: tuple[int, int]
    teacher_macs: int  # a full frame: every convolution plus the always-on linear layers
    delta_macs: int  # a frame after the key frame: students plus the linear layers
    linear_macs: int
    layers: tuple[LayerCost, ...]
    cache_bytes: int  # key-frame inputs and outputs of every delta layer (float32)

    def per_frame(self, keyframe_interval: int) -> float:
        """Averaged over a group of K frames: :func:`averaged_macs`."""
        return averaged_macs(self.teacher_macs, self.delta_macs, keyframe_interval)

    def speedup(self, keyframe_interval: int) -> float:
        return self.teacher_macs / max(self.per_frame(keyframe_interval), 1.0)


def cost_report(infos: list[LayerInfo], ops: dict[str, StudentOp], linear_macs: int,
                input_hw: tuple[int, int]) -> CostReport:
    layers = tuple(LayerCost(i.name, str(ops[i.name]), i.teacher_macs, ops[i.name].macs(i)) for i in infos)
    # A layer caches its key output, and its key input unless it never computes a delta.
    cache = sum(4 * (i.out_channels * i.out_hw[0] * i.out_hw[1]
                     + (0 if str(ops[i.name]) == "zero" else i.in_channels * i.in_hw[0] * i.in_hw[1]))
                for i in infos)
    return CostReport(
        input_hw=input_hw,
        teacher_macs=sum(c.teacher_macs for c in layers) + linear_macs,
        delta_macs=sum(c.student_macs for c in layers) + linear_macs,
        linear_macs=linear_macs,
        layers=layers,
        cache_bytes=cache,
    )
