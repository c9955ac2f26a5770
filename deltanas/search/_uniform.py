"""The budget-matched uniform skip-convolution: one gate fraction for every layer, by bisection.

Measured (BENCHMARKS.md section 2): the teacher copy gated at the same top-p fraction in every layer
is hard to beat with per-layer choices at equal MACs. A layer's update is wasted at positions where
the layer before it did not update, so masks that agree across layers beat a per-layer mix of
fractions. The search therefore also offers, as a candidate for its validation selection, the one
fraction that lands the whole network in the budget band; a per-layer choice is kept only when it
beats that on validation frames.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..delta import Arch, LayerInfo
from ..errors import ArchError

__all__ = ["uniform_gated_template", "uniform_for_budget"]

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
