"""The budget-matched uniform skip-convolution: one gate fraction for every layer, by bisection.

Measured (BENCHMARKS.md section 2): the teacher copy gated at the same top-p fraction in every layer
is hard to beat with per-layer choices at equal MACs. A layer's update is wasted at positions where
the layer before it did not update, so masks that agree across layers beat a per-layer mix of
fractions. The search therefore also offers, as a candidate for its validation selection, the one
fraction that lands the whole network in the budget band; a per-layer choice is kept only when it
beats that on validation frames.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch
from torch import nn

from ..analysis import GatedSpend
from ..delta import Arch, LayerInfo, convert
from ..errors import ArchError

__all__ = ["uniform_gated_template", "uniform_for_budget", "uniform_threshold_for_budget"]

_THRESHOLD = "gated:t{}(full)"
_CALIBRATED = "gated:t{}:f{}(full)"

_GRID = 10_000  # fractions are searched in steps of 1e-4
_TOP_P = re.compile(r"^gated:p[0-9.]+\((.+)\)$")


def uniform_gated_template(specs: Sequence[str]) -> str | None:
    """``gated:p{}(full)`` when the space offers a top-p gated teacher copy (exact at the chosen
    positions), else None. Only that inner op: its quality does not depend on training."""
    for spec in specs:
        match = _TOP_P.match(spec)
        if match and match.group(1) == "full":
            return "gated:p{}(full)"
    return None


def uniform_for_budget(template: str, layers: Sequence[LayerInfo], linear_macs: int, target: float,
                       tolerance: float) -> tuple[Arch, float] | None:
    """``(uniform arch, delta-frame MACs)`` with the largest fraction p (a multiple of 1e-4) whose MACs
    are at most ``target``, or None when that lands below ``(1 - tolerance) x target``."""

    def build(steps: int) -> tuple[Arch, float]:
        arch = Arch.uniform(template.format(f"{steps / _GRID:g}"))
        ops = arch.resolve(layers)
        return arch, float(sum(ops[layer.name].macs(layer) for layer in layers) + linear_macs)

    try:
        if build(1)[1] > target:
            return None
        low, high = 1, _GRID + 1  # build(low) fits; high is past the last fraction that might
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if build(middle)[1] <= target else (low, middle)
        arch, macs = build(low)
    except ArchError:
        return None
    return (arch, macs) if macs >= (1 - tolerance) * target else None


@torch.no_grad()
def uniform_threshold_for_budget(teacher: nn.Module, layers: Sequence[LayerInfo], linear_macs: int, target: float,
                                 tolerance: float, groups: Sequence[torch.Tensor], input_hw: tuple[int, int],
                                 iterations: int = 14) -> tuple[Arch, float] | None:
    """The frame-relative threshold gate everywhere (``gated:tT(full)``), T found by bisection (log
    scale) so that the MACs it spends on ``groups`` (float (T, 3, H, W) key-frame groups at the
    search's size) land in ``[(1 - tolerance) x target, target]``.

    A threshold adapts the fraction to each layer and frame, which measured better than one top-p
    fraction at equal MACs (BENCHMARKS.md section 2). Its MACs depend on the footage, so the
    returned arch writes each layer's measured fraction into its spec (``gated:t1.2:f0.31(full)``):
    its analytic count is what it spent on ``groups``; evaluation measures it again on other frames.
    Returns ``(arch, analytic delta-frame MACs)`` or None when no threshold lands in the band.
    """
    model = convert(teacher, Arch.uniform(_THRESHOLD.format(1)), input_hw=input_hw)
    if not GatedSpend(model).layers:
        return None
    model.eval()
    fixed = model.cost(input_hw)

    def measure(t: float) -> tuple[float, dict[str, float]]:
        spend = GatedSpend(model)
        for m in spend.layers.values():
            m.gate.t = t
        for group in groups:
            spend.forward_group(group)
        macs = spend.macs()
        total = fixed.delta_macs + sum(macs[c.name] - c.student_macs for c in fixed.layers if c.name in macs)
        return total, spend.fractions()

    low, high = math.log(0.01), math.log(50.0)  # exact (every changed unit) .. almost nothing
    if not groups or measure(math.exp(high))[0] > target:
        return None
    for _ in range(iterations):
        middle = (low + high) / 2
        if measure(math.exp(middle))[0] > target:
            low = middle
        else:
            high = middle
    for nudge in (1.0, 1.01, 1.03):  # 3 significant digits, rounded toward fewer MACs when it matters
        t = float(f"{math.exp(high) * nudge:.3g}")
        _, fractions = measure(t)
        arch = Arch(layers={name: _CALIBRATED.format(f"{t:g}", f"{max(f, 1e-4):.4g}")
                            for name, f in fractions.items()}, default="full")
        ops = arch.resolve(layers)
        macs = float(sum(ops[layer.name].macs(layer) for layer in layers) + linear_macs)
        if (1 - tolerance) * target <= macs <= target:
            return arch, macs
    return None
