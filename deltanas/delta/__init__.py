"""Delta inference: DeltaConv, conversion of a teacher, student operators and their MAC counts."""

from __future__ import annotations

from ._arch import Arch
from ._conv import DeltaConv, DeltaMode
from ._gated import GatedDelta, gated_layers
from ._gates import Gate, LearnedGate, ThresholdGate, TopPGate, top_mask
from ._layers import LayerInfo, conv_macs, trace_layers
from ._cost import CostReport, LayerCost, averaged_macs, cost_report
from ._model import DeltaModel, convert
from ._ops import OP_TYPES, StudentOp, make_op, op_types, register_op
from ._runner import KeyframePolicy, StreamFrame, calibrate_keyframes, relative_change, stream
from ._running import RelaxedThreshold, RunningGatedDelta
from ._skipconv import Gated, skipconv_designs
from ._space import SearchSpace, builtin_search_spaces
from ._spec import OpSpec, parse_op
from ._students import FullDelta, ZeroDelta

__all__ = [
    "Arch",
    "CostReport",
    "DeltaConv",
    "DeltaMode",
    "DeltaModel",
    "FullDelta",
    "Gate",
    "Gated",
    "GatedDelta",
    "KeyframePolicy",
    "calibrate_keyframes",
    "LayerCost",
    "LayerInfo",
    "LearnedGate",
    "OP_TYPES",
    "OpSpec",
    "RelaxedThreshold",
    "RunningGatedDelta",
    "SearchSpace",
    "StreamFrame",
    "StudentOp",
    "ThresholdGate",
    "TopPGate",
    "ZeroDelta",
    "averaged_macs",
    "conv_macs",
    "convert",
    "cost_report",
    "gated_layers",
    "make_op",
    "op_types",
    "register_op",
    "relative_change",
    "parse_op",
    "skipconv_designs",
    "stream",
    "top_mask",
    "trace_layers",
    "builtin_search_spaces",
]
