"""Student operator types: parse a spec, say whether it fits a layer, count its MACs, build it.

The analytic ``macs`` of each type is the single source of truth for cost; the tests cross-check
it against fvcore on the built module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

from torch import nn

from ..errors import ArchError
from ._layers import LayerInfo, conv_macs
from ._spec import OpSpec, parse_op
from ._students import (
    ChannelDelta,
    DepthwiseDelta,
    FullDelta,
    LowRankDelta,
    SubsampleDelta,
    ZeroDelta,
    dense_weight,
    subsampled_hw,
    with_padding_mode,
)

__all__ = ["StudentOp", "OP_TYPES", "make_op", "op_types", "register_op"]

OP_TYPES: "dict[str, type[StudentOp]]" = {}  # name -> operator type, filled by @register_op


class StudentOp(ABC):
    """One candidate student for a layer, as data. Subclasses set ``name`` and parse their args.

    ``unfit_reason(layer)`` says why the op cannot serve ``layer`` (None when it can);
    ``macs(layer)`` counts multiply-adds of one delta frame; ``build(layer, conv)`` makes the module.
    """

    name: ClassVar[str]
    arity: ClassVar[tuple[int, int]] = (0, 0)  # min, max number of args
    takes_inner: ClassVar[bool] = False
    max_inners: ClassVar[int] = 1  # inner operators accepted, when it takes any

    def __init__(self, spec: OpSpec) -> None:
        lo, hi = self.arity
        if not lo <= len(spec.args) <= hi:
            raise ArchError(f"operator {spec}: {self.name} takes {lo}..{hi} argument(s)")
        if (spec.inner is not None) != self.takes_inner:
            raise ArchError(f"operator {spec}: {self.name} " + ("needs an inner operator (...)"
                            if self.takes_inner else "takes no inner operator"))
        if len(spec.inners) > self.max_inners:
            raise ArchError(f"operator {spec}: {self.name} takes at most {self.max_inners} inner operator(s)")
        self.spec = spec

    def __str__(self) -> str:
        return str(self.spec)

    def unfit_reason(self, layer: LayerInfo) -> str | None:
        return None

    @abstractmethod
    def macs(self, layer: LayerInfo) -> int: ...

    @abstractmethod
    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module: ...

    @property
    def trainable(self) -> bool:
        return True


def register_op(op_type: "type[StudentOp]") -> "type[StudentOp]":
    """Class decorator: make ``op_type`` known to :func:`make_op` under its ``name`` (refuses a second
    type of the same name)."""
    known = OP_TYPES.get(op_type.name)
    if known is not None and known is not op_type:
        raise ValueError(f"operator {op_type.name!r} is registered already (by {known.__qualname__})")
    OP_TYPES[op_type.name] = op_type
    return op_type


def _number(spec: OpSpec, text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise ArchError(f"operator {spec}: {text!r} is not a {kind.__name__}") from None
    if value <= 0:
        raise ArchError(f"operator {spec}: argument must be positive")
    return value


@register_op
class Full(StudentOp):
    name = "full"

    def macs(self, layer: LayerInfo) -> int:
        return layer.teacher_macs

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        return with_padding_mode(layer, conv, lambda geo: FullDelta(conv, geo))

    @property
    def trainable(self) -> bool:
        return False


@register_op
class Zero(StudentOp):
    name = "zero"

    def macs(self, layer: LayerInfo) -> int:
        return 0

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        return ZeroDelta(layer)

    @property
    def trainable(self) -> bool:
        return False


class _DenseOnly(StudentOp):
    """Factorisations of a dense kernel: a depthwise teacher has nothing to factor."""

    def unfit_reason(self, layer: LayerInfo) -> str | None:
        return "a depthwise convolution takes only full, zero and subsample" if layer.is_depthwise else None


@register_op
class LowRank(_DenseOnly):
    """``lowrank:F`` with F a fraction (``0.25``) of min(C_in, C_out), or ``lowrank:R`` an integer rank."""

    name = "lowrank"
    arity = (1, 1)

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        text = spec.args[0]
        self.absolute = text.isdigit()
        self.value = _number(spec, text, int if self.absolute else float)
        if not self.absolute and self.value > 1:
            raise ArchError(f"operator {spec}: a rank fraction must be in (0, 1]")

    def rank(self, layer: LayerInfo) -> int:
        kh, kw = layer.kernel
        limit = min(layer.in_channels * kh, layer.out_channels * kw)
        wanted = self.value if self.absolute else round(self.value * min(layer.in_channels, layer.out_channels))
        return int(max(1, min(limit, wanted)))

    def macs(self, layer: LayerInfo) -> int:
        r, (kh, kw) = self.rank(layer), layer.kernel
        rows_out = (layer.out_hw[0], layer.in_hw[1])  # the (kh x 1) conv keeps the width
        return (conv_macs(layer.in_channels, r, (kh, 1), 1, rows_out)
                + conv_macs(r, layer.out_channels, (1, kw), 1, layer.out_hw))

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        return with_padding_mode(layer, conv, lambda geo: LowRankDelta(dense_weight(conv), geo, self.rank(layer)))


@register_op
class Channel(_DenseOnly):
    """``channel:c``: 1x1 down to C_in/c, the k x k conv on C_in/c -> C_out/c, 1x1 up to C_out."""

    name = "channel"
    arity = (1, 1)

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        self.factor = _number(spec, spec.args[0], float)

    def reduced(self, layer: LayerInfo) -> tuple[int, int]:
        # Capped at the weight's rank along each side: more channels could not be initialised.
        k = layer.kernel[0] * layer.kernel[1]
        c_in, c_out = layer.in_channels, layer.out_channels
        return (max(1, min(round(c_in / self.factor), c_out * k)), max(1, min(round(c_out / self.factor), c_in * k)))

    def macs(self, layer: LayerInfo) -> int:
        m, n = self.reduced(layer)
        return (conv_macs(layer.in_channels, m, (1, 1), 1, layer.in_hw)
                + conv_macs(m, n, layer.kernel, 1, layer.out_hw)
                + conv_macs(n, layer.out_channels, (1, 1), 1, layer.out_hw))

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        return with_padding_mode(layer, conv, lambda geo: ChannelDelta(dense_weight(conv), geo, *self.reduced(layer)))


@register_op
class Depthwise(_DenseOnly):
    name = "depthwise"

    def unfit_reason(self, layer: LayerInfo) -> str | None:
        if layer.is_pointwise:
            return "depthwise needs a kernel larger than 1x1"
        return super().unfit_reason(layer)

    def macs(self, layer: LayerInfo) -> int:
        c = layer.in_channels
        return conv_macs(c, c, layer.kernel, c, layer.out_hw) + conv_macs(c, layer.out_channels, (1, 1), 1, layer.out_hw)

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        return with_padding_mode(layer, conv, lambda geo: DepthwiseDelta(dense_weight(conv), geo))


@register_op
class Subsample(StudentOp):
    """``subsample(OP)`` or ``subsample:F(OP)``: OP on an F x F average-pooled delta (F = 2 default)."""

    name = "subsample"
    arity = (0, 1)
    takes_inner = True

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        self.factor = int(_number(spec, spec.args[0], int)) if spec.args else 2
        self.inner = make_op(spec.inner)

    def inner_layer(self, layer: LayerInfo) -> LayerInfo:
        return layer.with_input(subsampled_hw(layer.in_hw, self.factor))

    def unfit_reason(self, layer: LayerInfo) -> str | None:
        inner = self.inner_layer(layer)
        if min(inner.out_hw) < 1:
            return f"input {layer.in_hw} is too small to subsample by {self.factor}"
        return self.inner.unfit_reason(inner)

    def macs(self, layer: LayerInfo) -> int:
        pool = layer.in_channels * layer.in_hw[0] * layer.in_hw[1]  # one add per input element
        upsample = 4 * layer.out_channels * layer.out_hw[0] * layer.out_hw[1]  # bilinear weights
        return pool + self.inner.macs(self.inner_layer(layer)) + upsample

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        return SubsampleDelta(self.inner.build(self.inner_layer(layer), conv), layer, self.factor)

    @property
    def trainable(self) -> bool:
        return self.inner.trainable


def op_types() -> list[str]:
    return sorted(OP_TYPES)


def make_op(spec: "str | OpSpec | Mapping[str, Any]") -> StudentOp:
    """Parse and validate an operator spec (``lowrank:0.25``, or its object form); unknown names are refused."""
    spec = parse_op(spec)
    op_type = OP_TYPES.get(spec.name)
    if op_type is None:
        raise ArchError(f"unknown operator {spec.name!r} in {str(spec)!r}; known: {', '.join(op_types())}")
    return op_type(spec)
