"""Analytic MAC formulas of every student operator, cross-checked against fvcore on the built module."""

from __future__ import annotations

import math

import warnings

import pytest
import torch
from torch import nn

from deltanas.delta import OP_TYPES, GatedDelta, LayerInfo, StudentOp, make_op, register_op

from ._helpers import EXAMPLE_SPEC, randn, seeded_conv

with warnings.catch_warnings():  # fvcore scripts a function at import time (deprecated API)
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

SPECS = [
    "full",
    "zero",
    "lowrank:0.5",
    "lowrank:0.25",
    "lowrank:3",  # absolute rank
    "channel:2",
    "channel:4",
    "depthwise",
    "subsample(full)",
    "subsample(lowrank:0.25)",
    "subsample:3(full)",
    "gated:p0.25(full)",  # checked on the sparse path, whose work the analytic count describes
    "gated:p0.5:b4(full)",
    "gated:p0.25:b2(full,lowrank:0.25)",
]

# name -> (Conv2d args, Conv2d kwargs, input H x W)
GEOMETRIES = {
    "1x1": ((16, 24, 1), {}, (15, 17)),
    "1x1_stride2": ((16, 24, 1), {"stride": 2}, (15, 17)),
    "3x3_s1": ((16, 24, 3), {"padding": 1}, (16, 16)),
    "3x3_s2": ((16, 24, 3), {"stride": 2, "padding": 1}, (16, 20)),
    "5x5_s2_p2": ((12, 20, 5), {"stride": 2, "padding": 2}, (15, 17)),
    "3x3_groups4": ((16, 24, 3), {"padding": 1, "groups": 4}, (14, 11)),
    "dw3x3_s2": ((16, 16, 3), {"stride": 2, "padding": 1, "groups": 16}, (15, 17)),
    "3x3_dilation2": ((16, 24, 3), {"padding": 2, "dilation": 2}, (13, 19)),
    "3x3_nopad_odd": ((8, 12, 3), {}, (15, 17)),
    "3x1_rect": ((8, 12, (3, 1)), {"padding": (1, 0)}, (15, 17)),
}

DENSE_ONLY = {"lowrank:0.5", "lowrank:0.25", "lowrank:3", "channel:2", "channel:4", "depthwise",
              "subsample(lowrank:0.25)", "gated:p0.25:b2(full,lowrank:0.25)"}


def build_conv(geometry: str, seed: int = 0) -> tuple[nn.Conv2d, LayerInfo]:
    args, kwargs, in_hw = GEOMETRIES[geometry]
    conv = seeded_conv(*args, seed=seed, bias=True, **kwargs)
    return conv, LayerInfo.from_conv(geometry, conv, in_hw)


def expected_fit(spec: str, geometry: str) -> bool:
    conv, layer = build_conv(geometry)
    if layer.is_depthwise:
        return spec not in DENSE_ONLY
    if spec == "depthwise":
        return not layer.is_pointwise
    return True


def _fitting_pairs() -> list:
    pairs = []
    for geometry in GEOMETRIES:
        _, layer = build_conv(geometry)
        for spec in SPECS:
            if make_op(spec).unfit_reason(layer) is None:
                pairs.append(pytest.param(spec, geometry, id=f"{spec}-{geometry}"))
    return pairs


def _numel_of_input(inputs, outputs) -> int:
    return math.prod(get_shape(inputs[0]))


def _bilinear(inputs, outputs) -> int:
    return 4 * math.prod(get_shape(outputs[0]))


def _elementwise_if_tensor(inputs, outputs) -> int:
    # Scalar shape arithmetic is free; an add/sub on a tensor costs one per element and is NOT in
    # the analytic formulas, so counting it here makes any such tensor op fail the comparison.
    # (the tracer records shape arithmetic on 0-d tensors)
    shape = get_shape(outputs[0])
    return math.prod(shape) if shape else 0


def _free(inputs, outputs) -> int:
    return 0


def fvcore_macs(module: nn.Module, dx: torch.Tensor) -> tuple[int, FlopCountAnalysis]:
    analysis = FlopCountAnalysis(module, (dx,))
    analysis.set_op_handle(
        "aten::avg_pool2d", _numel_of_input,  # one add per input element
        "aten::upsample_bilinear2d", _bilinear,  # four weights per output element
        "aten::add", _elementwise_if_tensor,
        "aten::sub", _elementwise_if_tensor,
        "aten::zeros", _free,
        "aten::new_zeros", _free,
        # a gate squares dx (one multiply-add per element with the sum); its pooling, top-k and
        # bookkeeping compare or count, they do not multiply-add
        "aten::mul", _elementwise_if_tensor,
        "aten::maximum", _free,
        "aten::topk", _free,
        "aten::amin", _free,  # top-p's ties go to the lower position: comparisons and counts
        "aten::gt", _free,
        "aten::eq", _free,
        "aten::cumsum", _free,
        "aten::rsub", _free,
        "aten::le", _free,
        "aten::__or__", _free,
        "aten::__and__", _free,
        "aten::scatter_", _free,
        "aten::ones_like", _free,
        "aten::mean", _free,
        "aten::sum", _free,
        "aten::unfold", _free,  # a view: the sparse path's patches
        "aten::nonzero_numpy", _free,
        "aten::pad", _free,
    )
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    total = analysis.total()
    # Nothing may be silently skipped: every op fvcore met has an explicit count above.
    assert dict(analysis.unsupported_ops()) == {}
    return total, analysis


def test_every_op_type_has_an_example_spec():
    assert set(OP_TYPES) <= set(EXAMPLE_SPEC), "add an example spec for the new op type"
    assert {make_op(s).spec.name for s in SPECS} >= set(OP_TYPES)


def test_register_op_refuses_a_second_type_of_a_known_name():
    assert register_op(OP_TYPES["gated"]) is OP_TYPES["gated"]  # registering the same type again: no change

    class OtherLowRank(StudentOp):
        name = "lowrank"

    with pytest.raises(ValueError, match="'lowrank' is registered already"):
        register_op(OtherLowRank)
    assert OP_TYPES["lowrank"] is not OtherLowRank


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_layer_info_matches_the_convolution(geometry):
    conv, layer = build_conv(geometry)
    x = randn(2, conv.in_channels, *layer.in_hw, seed=1)
    assert tuple(conv(x).shape[-2:]) == layer.out_hw
    total, _ = fvcore_macs(conv, x[:1])
    assert layer.teacher_macs == total > 0


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("spec", SPECS)
def test_fit_matrix(spec, geometry):
    _, layer = build_conv(geometry)
    reason = make_op(spec).unfit_reason(layer)
    if expected_fit(spec, geometry):
        assert reason is None
    else:
        assert isinstance(reason, str) and reason.strip()


@pytest.mark.parametrize("spec,geometry", _fitting_pairs())
def test_output_shape_and_macs_match_fvcore(spec, geometry):
    conv, layer = build_conv(geometry)
    op = make_op(spec)
    student = op.build(layer, conv).eval()
    if isinstance(student, GatedDelta):
        student.sparse = True
    dx = randn(1, conv.in_channels, *layer.in_hw, seed=7)
    with torch.no_grad():
        out = student(dx)
        assert out.shape == conv(dx).shape
    total, analysis = fvcore_macs(student, dx)
    assert op.macs(layer) == total
    if spec == "zero":
        assert total == 0 and not any(analysis.by_operator().values())
    if spec == "full":
        assert total == layer.teacher_macs


@pytest.mark.parametrize("geometry", ["3x3_s2", "5x5_s2_p2", "dw3x3_s2", "1x1"])
def test_subsample_macs_split_into_pool_inner_and_upsample(geometry):
    conv, layer = build_conv(geometry)
    op = make_op("subsample(full)")
    dx = randn(1, conv.in_channels, *layer.in_hw, seed=3)
    _, analysis = fvcore_macs(op.build(layer, conv), dx)
    by_op = analysis.by_operator()
    c_in, (h, w) = layer.in_channels, layer.in_hw
    assert by_op["avg_pool2d"] == c_in * h * w
    assert by_op["upsample_bilinear2d"] == 4 * layer.out_channels * layer.out_hw[0] * layer.out_hw[1]
    inner = layer.with_input((math.ceil(h / 2), math.ceil(w / 2)))
    assert by_op["conv"] == inner.teacher_macs


def test_subsample_is_cheaper_than_its_inner_op_on_large_layers():
    conv = seeded_conv(32, 32, 3, padding=1, seed=0)
    layer = LayerInfo.from_conv("big", conv, (32, 32))
    full, sub = make_op("full").macs(layer), make_op("subsample(full)").macs(layer)
    assert 0.2 * full < sub < 0.35 * full  # ~1/4 plus pooling and upsampling


@pytest.mark.parametrize("spec", ["lowrank:0.5", "lowrank:3", "channel:2", "channel:4", "depthwise",
                                  "subsample(lowrank:0.25)"])
def test_dense_only_ops_do_not_fit_a_depthwise_conv(spec):
    conv = seeded_conv(8, 8, 3, padding=1, groups=8, seed=0)
    layer = LayerInfo.from_conv("dw", conv, (9, 9))
    reason = make_op(spec).unfit_reason(layer)
    assert isinstance(reason, str) and "depthwise" in reason


def test_depthwise_op_does_not_fit_a_1x1_conv():
    conv = seeded_conv(8, 16, 1, seed=0)
    reason = make_op("depthwise").unfit_reason(LayerInfo.from_conv("pw", conv, (9, 9)))
    assert isinstance(reason, str) and reason.strip()


def test_subsample_refuses_an_input_too_small_after_pooling():
    conv = seeded_conv(4, 4, 5, seed=0)  # no padding: needs at least 5x5 inside
    layer = LayerInfo.from_conv("c", conv, (6, 6))
    reason = make_op("subsample(full)").unfit_reason(layer)  # 6x6 -> 3x3 < 5x5 kernel
    assert isinstance(reason, str) and "small" in reason
    assert make_op("subsample:1(full)").unfit_reason(layer) is None


def test_lowrank_rank_from_fraction_absolute_and_capped():
    conv = seeded_conv(16, 24, 3, padding=1, seed=0)
    layer = LayerInfo.from_conv("c", conv, (8, 8))
    assert make_op("lowrank:0.5").rank(layer) == 8  # half of min(16, 24)
    assert make_op("lowrank:0.25").rank(layer) == 4
    assert make_op("lowrank:3").rank(layer) == 3
    assert make_op("lowrank:0.01").rank(layer) == 1  # never below 1
    assert make_op("lowrank:100000").rank(layer) == min(16 * 3, 24 * 3)  # capped at the matrix rank


def test_macs_scale_with_resolution():
    conv = seeded_conv(16, 24, 3, padding=1, seed=0)
    small = LayerInfo.from_conv("c", conv, (8, 8))
    large = small.with_input((16, 16))
    assert large.out_hw == (16, 16)
    for spec in ["full", "lowrank:0.5", "channel:2", "depthwise"]:
        assert make_op(spec).macs(large) == 4 * make_op(spec).macs(small)
