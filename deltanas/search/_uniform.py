"""The budget-matched uniform skip-convolution: one gate fraction for every layer, by bisection.

The search offers, as candidates for its selection, the one fraction (and the calibrated thresholds)
that land the whole network in the budget band; a per-layer choice is kept only when it beats them on
the selection frames. A layer's update is wasted where the layer before it did not update, so masks
that agree across layers beat a per-layer mix of fractions (BENCHMARKS.md, uniform skip-convolutions).
"""

from __future__ import annotations

import math
import re
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from ..analysis import GatedSpend, keyframe_groups
from ..delta import Arch, LayerInfo, convert
from ..errors import ArchError

__all__ = ["arch_delta_macs", "calibration_groups", "uniform_gated_template", "uniform_for_budget",
           "uniform_threshold_for_budget"]


def arch_delta_macs(arch: Arch, layers: Sequence[LayerInfo], linear_macs: float) -> float:
    """The analytic MACs of one delta frame of ``arch`` (its calibrated fractions as written) on ``layers``."""
    ops = arch.resolve(layers)
    return float(sum(ops[layer.name].macs(layer) for layer in layers) + linear_macs)


class CalibratedGate(NamedTuple):
    """A gate that :func:`uniform_threshold_for_budget` calibrates: its spec with the value, and with the
    value and the measured fraction; (the value spending the most, the value spending the least); and
    optionally what depthwise layers get instead (with their measured fraction: they take no value)."""

    template: str
    calibrated: str
    values: tuple[float, float]
    depthwise: str | None = None


# Per calibrated gate: the frame-relative threshold (t); against a running reference (deltanas.delta.
# RunningGatedDelta) the thresholds relative to the key frame's input (a, w), the frame-relative one (r), the
# top-p fraction of the input positions, whose receptive fields touch more outputs than p (measured like a
# threshold's), and w, r and p with the depthwise layers passing every change (wc, rc, pc: their threshold costs
# nearly what they do, and behind a gated layer their input changes are sparse already)
THRESHOLD_GATES = {
    "t": CalibratedGate("gated:t{}(full)", "gated:t{}:f{}(full)", (0.01, 50.0)),
    "a": CalibratedGate("gated:a{}:run(full)", "gated:a{}:run:f{}(full)", (1e-3, 5.0)),
    "w": CalibratedGate("gated:w{}:run(full)", "gated:w{}:run:f{}(full)", (1e-3, 5.0)),
    "p": CalibratedGate("gated:p{}:run(full)", "gated:p{}:run:f{}(full)", (1.0, 1e-4)),
    "pc": CalibratedGate("gated:p{}:run(full)", "gated:p{}:run:f{}(full)", (1.0, 1e-4),
                         "gated:changed:run:f{}(full)"),
    "r": CalibratedGate("gated:t{}:run(full)", "gated:t{}:run:f{}(full)", (0.01, 50.0)),
    "wc": CalibratedGate("gated:w{}:run(full)", "gated:w{}:run:f{}(full)", (1e-3, 5.0),
                         "gated:changed:run:f{}(full)"),
    "rc": CalibratedGate("gated:t{}:run(full)", "gated:t{}:run:f{}(full)", (0.01, 50.0),
                         "gated:changed:run:f{}(full)"),
}

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
        return arch, arch_delta_macs(arch, layers, linear_macs)

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


def calibration_groups(clips: Sequence[tuple[str, torch.Tensor]], keyframe_interval: int,
                       per_clip: int) -> list[torch.Tensor]:
    """The first ``per_clip`` key-frame groups of each clip (those with a delta frame), float (T, 3, H, W):
    the frames a threshold is calibrated on."""
    return [g for _, frames in clips
            for i, g in enumerate(keyframe_groups(frames, keyframe_interval)) if i < per_clip and len(g) > 1]


@torch.no_grad()
def uniform_threshold_for_budget(teacher: nn.Module, layers: Sequence[LayerInfo], linear_macs: int, target: float,
                                 tolerance: float, groups: Sequence[torch.Tensor], input_hw: tuple[int, int],
                                 gate: str = "t", profile: float = 0.0, iterations: int = 14,
                                 scales: Mapping[str, float] | None = None,
                                 cost_of: Callable[[Arch], float] | None = None) -> tuple[Arch, float] | None:
    """A threshold gate everywhere (``gate`` a key of ``THRESHOLD_GATES``: ``t`` the frame-relative one,
    ``gated:tT(full)``; ``a``, ``w``, ``r`` the thresholds against a running reference, ``wc``, ``rc``
    as ``w``, ``r`` with the depthwise layers passing every change; or ``p``, the running top-p fraction,
    whose touched outputs are measured the same way, ``pc`` with changed depthwise layers), T found by a
    bracketed search in log scale (at most ``iterations`` runs over ``groups`` after the two ends) so that
    the MACs it spends on ``groups`` (float (T, 3, H, W) key-frame groups at the search's size) land in
    ``[(1 - tolerance / 4) x target, target]``, or at least in ``[(1 - tolerance) x target, target]``.

    A threshold adapts the fraction to each layer and frame, so its MACs depend on the footage: the
    returned arch writes each layer's measured fraction into its spec (``gated:t1.2:f0.31(full)``):
    its analytic count is what it spent on ``groups``; evaluation measures it again on other frames.

    ``profile`` scales each layer's threshold by its input stride to the power ``profile``
    (``T x s^profile``, ``s = sqrt(frame area / input area)``; a fraction p by ``s^-profile``): a
    positive profile updates the early, high-resolution layers more finely, whose errors every later
    layer carries (BENCHMARKS.md, running reference). ``scales`` (per gated layer) replaces the profile:
    layer ``l`` gets ``T x scales[l]`` (a learned profile, :func:`~deltanas.search.learn_gates`).
    ``cost_of`` (an arch with its fractions -> its cost, e.g. predicted ms) replaces the MACs as what must land
    in the band around ``target``.
    Returns ``(arch, analytic delta-frame MACs, or its cost_of)`` or None when no threshold lands in the band.
    """
    template, calibrated, (most, least), depthwise = THRESHOLD_GATES[gate]
    fixed = {i.name for i in layers if i.is_depthwise} if depthwise else set()  # they take no value
    model = convert(teacher, Arch(layers=dict.fromkeys(fixed, str(depthwise).format(1)),
                                  default=template.format(most)), input_hw=input_hw)
    names = [name for name in GatedSpend(model).layers if name not in fixed]
    if not names or not groups:
        return None
    model.eval()
    fraction = template.startswith("gated:p")  # a top-p fraction, not a threshold
    sign = -1 if fraction else 1  # a fraction grows where a threshold shrinks
    scale = {i.name: i.input_stride(input_hw) ** (sign * profile) for i in layers}
    if scales is not None:
        scale.update(scales)

    def calibrate(t: float) -> tuple[Arch, float]:
        """Thresholds ``t`` (per layer, 3 significant digits) with the fractions they reach on
        ``groups`` written in, and that arch's analytic delta-frame MACs (= what it spent there, up to
        rounding each layer's fraction up to whole units)."""
        values = {name: float(f"{t * scale[name]:.3g}") for name in names}
        if fraction:
            values = {name: min(max(value, 1e-4), 1.0) for name, value in values.items()}
        spend = GatedSpend(model)
        for name, value in values.items():
            setattr(spend.layers[name].gate, "p" if fraction else "t", value)
        for group in groups:
            spend.forward_group(group)
        arch = Arch(layers={name: str(depthwise).format(f"{max(f, 1e-4):.4g}") if name in fixed else
                            calibrated.format(f"{values[name]:g}", f"{max(f, 1e-4):.4g}")
                            for name, f in spend.fractions().items()}, default="full")
        if cost_of is not None:
            return arch, float(cost_of(arch))
        return arch, arch_delta_macs(arch, layers, linear_macs)

    # MACs fall from the value `most` towards `least`. Keep a bracket (low over the target, high not) in
    # log value and step where the line through its ends meets the target (kept inside the middle 80%, so
    # it never stalls at one end); stop once high is within a quarter of the band below the target. The cost
    # may be in ms (well below 1): a spend of nothing is floored relative to the target, not at 1.
    low, high = math.log(most), math.log(least)  # about exact .. almost nothing
    best = calibrate(math.exp(high))
    if best[1] > target:
        return None
    over = calibrate(math.exp(low))
    if over[1] <= target:
        best = over  # even the finest threshold fits
    else:
        low_macs = over[1]
        for _ in range(iterations):
            if best[1] >= (1 - tolerance / 4) * target:
                break
            share = (math.log(low_macs) - math.log(target)) / (math.log(low_macs) - math.log(max(best[1], 1e-6 * target)))
            middle = low + min(max(share, 0.1), 0.9) * (high - low)
            found = calibrate(math.exp(middle))
            if found[1] > target:
                low, low_macs = middle, found[1]
            else:
                high, best = middle, found
    return best if best[1] >= (1 - tolerance) * target else None
