"""Continuous gate thresholds per stage: the weighted running-reference skip-convolution with one threshold
per group of layers that see the same input stride.

Every non-depthwise convolution gets ``gated:w{T}:run(full)`` (the teacher copy where the weighted
change of its input, against the reference it last updated, passes ``T``); every depthwise convolution
gets ``gated:changed:run(full)`` (it passes every change: behind a gated layer its input changes are
sparse already, and a threshold there costs nearly what it saves). See ``THRESHOLD_GATES["wc"]`` in
``deltanas.search`` and :class:`deltanas.delta.RunningGatedDelta`.
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

from ..delta import Arch, LayerInfo
from ..errors import ArchError, ConfigError

__all__ = ["GATE_TEMPLATE", "DEPTHWISE_GATE", "gate_arch", "gate_stages", "layer_thresholds",
           "stage_stride", "stage_thresholds"]

GATE_TEMPLATE = "gated:w{}:run(full)"  # a non-depthwise layer; {} its threshold
DEPTHWISE_GATE = "gated:changed:run(full)"
# a weighted running gate's spec, calibrated (with its measured fraction ``:fF``) or not
_WEIGHTED = re.compile(r"^gated:w([0-9.eE+-]+):run(?::f[0-9.eE+-]+)?\(full\)$")


def stage_stride(layer: LayerInfo, input_hw: tuple[int, int]) -> float:
    """:meth:`LayerInfo.input_stride` rounded to a power of two (in log scale): the stride that names the
    layer's stage."""
    return 2.0 ** round(math.log2(layer.input_stride(input_hw)))


def _stage_name(stride: float) -> str:
    return f"s{stride:g}"


def gate_stages(layers: Sequence[LayerInfo], input_hw: tuple[int, int]) -> dict[str, list[str]]:
    """The layers that take a threshold (every non-depthwise convolution of ``layers``, traced at
    ``input_hw``), grouped by their :func:`stage_stride`.

    Returns ``{"s1": [...], "s2": [...], ...}``: keys ``s<stride>`` in increasing stride, each list
    the layer names in the order of ``layers``. Depthwise convolutions are in no stage (they take no
    threshold; :func:`gate_arch` gives them ``DEPTHWISE_GATE``). Raises ``ConfigError`` when no layer
    takes a threshold."""
    if min(input_hw) < 1:
        raise ConfigError(f"input size must be positive, got {input_hw}")
    by_stride: dict[float, list[str]] = {}
    for layer in layers:
        if not layer.is_depthwise:
            by_stride.setdefault(stage_stride(layer, input_hw), []).append(layer.name)
    if not by_stride:
        raise ConfigError("no layer takes a gate threshold (every convolution is depthwise)")
    return {_stage_name(s): names for s, names in sorted(by_stride.items())}


def gate_arch(layers: Sequence[LayerInfo], thresholds_per_stage: Mapping[str, float],
              stages: Mapping[str, Sequence[str]], teacher: str | None = None) -> Arch:
    """The architecture with threshold ``thresholds_per_stage[stage]`` at every layer of that stage
    (``GATE_TEMPLATE``, the value written with 6 significant digits) and ``DEPTHWISE_GATE`` at every
    depthwise layer of ``layers``; every layer is written out (``default="full"``).

    ``stages`` maps stage names to layer names (what :func:`gate_stages` returns); ``thresholds_per_stage``
    must name exactly those stages, with positive finite values (``ConfigError`` otherwise); a staged layer
    that is not in ``layers`` or is depthwise is an ``ArchError``. A non-depthwise layer of ``layers`` that is
    in no stage stays ``full``."""
    if set(thresholds_per_stage) != set(stages):
        raise ConfigError(f"thresholds name stages {sorted(thresholds_per_stage)}, the layers' stages are "
                          f"{sorted(stages)}")
    by_name = {layer.name: layer for layer in layers}
    specs: dict[str, str] = {layer.name: DEPTHWISE_GATE for layer in layers if layer.is_depthwise}
    for stage, names in stages.items():
        value = float(thresholds_per_stage[stage])
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"stage {stage}: a gate threshold must be positive and finite, got {value!r}")
        for name in names:
            if name not in by_name or by_name[name].is_depthwise:
                raise ArchError(f"stage {stage}: {name!r} is not a non-depthwise layer of the teacher")
            specs[name] = GATE_TEMPLATE.format(f"{value:.6g}")
    ordered = {layer.name: specs.get(layer.name, "full") for layer in layers}
    return Arch(layers=ordered, default="full", teacher=teacher)


def layer_thresholds(arch: Arch) -> dict[str, float]:
    """``{layer: T}`` of the layers of ``arch`` whose spec is a weighted running gate (``gated:wT:run(full)``,
    also with a calibrated fraction ``:fF``), in the arch's order; other layers are left out."""
    found = {}
    for name, spec in arch.layers.items():
        match = _WEIGHTED.match(spec)
        if match:
            found[name] = float(match.group(1))
    return found


def stage_thresholds(thresholds: Mapping[str, float], stages: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """One threshold per stage from per-layer ``thresholds``: the geometric mean of its layers' values (their
    common value when they agree, as calibrated thresholds of one stride do). ``ConfigError`` when a stage has
    a layer without a threshold."""
    result = {}
    for stage, names in stages.items():
        missing = [n for n in names if n not in thresholds]
        if missing:
            raise ConfigError(f"stage {stage}: no threshold for {', '.join(missing[:3])}")
        values = [float(thresholds[n]) for n in names]
        result[stage] = (values[0] if all(v == values[0] for v in values)
                         else math.exp(sum(math.log(v) for v in values) / len(values)))
    return result
