"""Measured cost of gated (skip-convolution) layers: active fractions and MACs on real frames."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..delta import CostReport, DeltaModel, GatedDelta
from ..errors import ConfigError
from ..video import iter_groups

__all__ = ["GatedSpend", "GatingReport", "LayerGating", "measure_gating", "measured_cost"]


class GatedSpend:
    """Accumulates what a delta model's gated layers spend over the delta frames of the groups run
    through :meth:`forward_group` (or of the streamed delta frames passed to :meth:`record`): per
    layer, the mean active fraction and MACs per delta frame."""

    def __init__(self, model: DeltaModel) -> None:
        self.model = model
        self.layers = {name: m.student for name, m in model.delta_layers().items()
                       if isinstance(m.student, GatedDelta)}
        self.frames = 0  # delta frames seen
        self._fractions = dict.fromkeys(self.layers, 0.0)
        self._macs = dict.fromkeys(self.layers, 0.0)

    def forward_group(self, group: torch.Tensor) -> torch.Tensor:
        """``model.forward_group(group[None])[0]`` for one group (T, 3, H, W), measured."""
        for m in self.layers.values():
            m.reset_measurements()
        out = self.model.forward_group(group[None])[0]
        self.record(len(group) - 1)
        return out

    def record(self, frames: int = 1) -> None:
        """Count the gated layers' last call, which ran ``frames`` delta frames (a streamed one: 1)."""
        if frames <= 0:
            return
        self.frames += frames
        for name, m in self.layers.items():
            self._fractions[name] += frames * (m.last_active_fraction or 0.0)
            self._macs[name] += frames * (m.last_macs or 0.0)

    def fractions(self) -> dict[str, float]:
        return {name: v / self.frames for name, v in self._fractions.items()} if self.frames else {}

    def macs(self) -> dict[str, float]:
        return {name: v / self.frames for name, v in self._macs.items()} if self.frames else {}


def measured_cost(analytic: CostReport, gated_macs: dict[str, float] | None) -> CostReport:
    """``analytic`` with the gated layers' MACs per delta frame replaced by ``gated_macs`` (by layer
    name, as measured, e.g. :meth:`GatedSpend.macs`)."""
    if not gated_macs:
        return analytic
    layers = tuple(replace(c, student_macs=round(gated_macs[c.name])) if c.name in gated_macs else c
                   for c in analytic.layers)
    delta = analytic.delta_macs + sum(gated_macs[c.name] - c.student_macs for c in analytic.layers
                                      if c.name in gated_macs)
    return replace(analytic, delta_macs=round(delta), layers=layers)


@dataclass(frozen=True)
class LayerGating:
    name: str
    op: str
    teacher_macs: int
    analytic_macs: int  # the op's formula (expected fraction p, f or 0.25)
    measured_macs: float  # per delta frame, as the sparse path spends them; = analytic when not gated
    active_fraction: float | None  # mean fraction of active units (positions or blocks); None when not gated


@dataclass(frozen=True)
class GatingReport:
    """Per-layer measurements and totals per delta frame (linear layers included), at ``input_hw``."""

    input_hw: tuple[int, int]
    keyframe_interval: int
    delta_frames: int
    layers: tuple[LayerGating, ...]
    teacher_macs: int
    analytic_delta_macs: int
    measured_delta_macs: float

    def per_frame(self) -> float:
        """Measured MACs averaged over a group of K frames (the key frame runs the teacher)."""
        k = self.keyframe_interval
        return (self.teacher_macs + (k - 1) * self.measured_delta_macs) / k

    def speedup(self) -> float:
        return self.teacher_macs / max(self.per_frame(), 1.0)


@torch.no_grad()
def measure_gating(model: DeltaModel, frames: torch.Tensor, keyframe_interval: int = 8, *,
                   max_groups: int | None = None) -> GatingReport:
    """Run ``model`` over ``frames`` (uint8 (T, 3, H, W)) in groups of K and measure every gated
    layer's active fraction and MACs, averaged over all delta frames."""
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ConfigError(f"measure_gating needs at least two frames (T, 3, H, W), got {tuple(frames.shape)}")
    model.eval()
    spend = GatedSpend(model)
    for i, group in enumerate(iter_groups(frames, keyframe_interval)):
        if (max_groups is not None and i >= max_groups) or len(group) < 2:
            break
        spend.forward_group(group)
    count = spend.frames
    if count == 0:
        raise ConfigError("measure_gating: no delta frame ran (keyframe_interval must be >= 2)")
    hw = (int(frames.shape[-2]), int(frames.shape[-1]))
    cost = model.cost(hw)
    macs, fractions = spend.macs(), spend.fractions()
    layers = tuple(
        LayerGating(c.name, c.op, c.teacher_macs, c.student_macs, macs.get(c.name, float(c.student_macs)),
                    fractions.get(c.name))
        for c in cost.layers
    )
    measured = sum(layer.measured_macs for layer in layers) + cost.linear_macs
    return GatingReport(hw, keyframe_interval, count, layers, cost.teacher_macs, cost.delta_macs, measured)
