"""Measured cost of gated (skip-convolution) layers: active fractions and MACs on real frames."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..delta import CostReport, DeltaModel, GatedDelta, averaged_macs
from ..errors import ConfigError
from ..video import iter_groups

__all__ = ["GatedSpend", "GatingReport", "LayerGating", "measure_gating", "measured_cost"]


class GatedSpend:
    """Accumulates what a delta model spends over the delta frames of the groups run through
    :meth:`forward_group` (the dense-masked reference path: the gated layers' mean active fraction and MACs
    per delta frame; or of the streamed delta frames passed to :meth:`record`), or through
    :meth:`engine_group` (the sparse engine: every layer's MACs as the engine did them, the linear layers'
    in :attr:`linear_macs`)."""

    def __init__(self, model: DeltaModel) -> None:
        self.model = model
        self.layers = {name: m.student for name, m in model.delta_layers().items()
                       if isinstance(m.student, GatedDelta)}
        self.frames = 0  # delta frames seen
        self._fractions = dict.fromkeys(self.layers, 0.0)
        self._macs = dict.fromkeys(self.layers, 0.0)
        self._linear: float | None = None

    def forward_group(self, group: torch.Tensor) -> torch.Tensor:
        """``model.forward_group(group[None])[0]`` for one group (T, 3, H, W), measured."""
        for m in self.layers.values():
            m.reset_measurements()
        out = self.model.forward_group(group[None])[0]
        self.record(len(group) - 1)
        return out

    def engine_group(self, engine, group: torch.Tensor) -> torch.Tensor:
        """One group (T, 3, H, W) streamed through a :class:`~deltanas.engine.SparseEngine` of this model, key
        frame first: its first output per frame (T, ...), measured per layer as the engine spent it."""
        outputs = [engine.key_frame(group[:1])[0]]
        linear = engine.linear_layers
        for frame in group[1:]:
            outputs.append(engine.delta_frame(frame[None])[0])
            self.frames += 1
            self._linear = (self._linear or 0.0) + sum(v for k, v in engine.last_macs.items() if k in linear)
            for name, macs in engine.last_macs.items():
                if name not in linear:
                    self._macs[name] = self._macs.get(name, 0.0) + macs
        for name in engine.conv_layers:  # a layer that did nothing on every frame spent nothing
            self._macs.setdefault(name, 0.0)
        return torch.cat(outputs)

    @property
    def linear_macs(self) -> float | None:
        """The linear layers' MACs per delta frame as the engine spent them (None on the reference path, which
        runs them on every frame)."""
        return None if self._linear is None or not self.frames else self._linear / self.frames

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


def measured_cost(analytic: CostReport, gated_macs: dict[str, float] | None,
                  linear_macs: float | None = None) -> CostReport:
    """``analytic`` with the MACs per delta frame of the layers in ``gated_macs`` replaced by the measured
    ones (by layer name, e.g. :meth:`GatedSpend.macs`), and those of the linear layers by ``linear_macs``
    when given (the sparse engine runs them only when their input changed)."""
    if not gated_macs and linear_macs is None:
        return analytic
    gated_macs = gated_macs or {}
    layers = tuple(replace(c, student_macs=round(gated_macs[c.name])) if c.name in gated_macs else c
                   for c in analytic.layers)
    delta = analytic.delta_macs + sum(gated_macs[c.name] - c.student_macs for c in analytic.layers
                                      if c.name in gated_macs)
    if linear_macs is not None:
        delta += linear_macs - analytic.linear_macs
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
        return averaged_macs(self.teacher_macs, self.measured_delta_macs, self.keyframe_interval)

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
