"""Student modules: exactness where the maths says so, SVD truncation behaviour, no copies of W."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deltanas.delta import OP_TYPES, LayerInfo, make_op

from ._helpers import EXAMPLE_SPEC, randn, seeded_conv

# name -> (Conv2d args, kwargs, input H x W)
DENSE_GEOMETRIES = {
    "1x1": ((6, 10, 1), {}, (9, 11)),
    "1x1_wide_in": ((12, 5, 1), {}, (7, 9)),
    "3x3": ((6, 10, 3), {"padding": 1}, (9, 11)),
    "3x3_stride2": ((6, 10, 3), {"stride": 2, "padding": 1}, (9, 11)),
    "5x5_stride2": ((4, 6, 5), {"stride": 2, "padding": 2}, (13, 10)),
    "3x3_groups2": ((8, 12, 3), {"padding": 1, "groups": 2}, (9, 11)),
    "3x3_dilation2": ((6, 10, 3), {"padding": 2, "dilation": 2}, (9, 11)),
    "3x1": ((6, 10, (3, 1)), {"padding": (1, 0)}, (9, 11)),
}


def build(geometry: str, seed: int = 0) -> tuple[nn.Conv2d, LayerInfo]:
    args, kwargs, in_hw = DENSE_GEOMETRIES[geometry]
    conv = seeded_conv(*args, seed=seed, bias=True, **kwargs)
    return conv, LayerInfo.from_conv(geometry, conv, in_hw)


def conv_no_bias(conv: nn.Conv2d, dx: torch.Tensor) -> torch.Tensor:
    return F.conv2d(dx, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("geometry", list(DENSE_GEOMETRIES))
def test_lowrank_at_full_rank_reproduces_the_conv_without_bias(geometry):
    conv, layer = build(geometry)
    kh, kw = layer.kernel
    full_rank = min(layer.in_channels * kh, layer.out_channels * kw)
    op = make_op(f"lowrank:{full_rank}")
    assert op.rank(layer) == full_rank
    dx = randn(3, layer.in_channels, *layer.in_hw, seed=1)
    with torch.no_grad():
        assert rel_err(op.build(layer, conv)(dx), conv_no_bias(conv, dx)) < 1e-4


@pytest.mark.parametrize("geometry", ["1x1", "3x3", "3x3_stride2", "3x3_groups2", "5x5_stride2"])
def test_lowrank_below_full_rank_is_not_exact(geometry):
    conv, layer = build(geometry)
    dx = randn(2, layer.in_channels, *layer.in_hw, seed=1)
    with torch.no_grad():
        assert rel_err(make_op("lowrank:2").build(layer, conv)(dx), conv_no_bias(conv, dx)) > 1e-2


@pytest.mark.parametrize("geometry", ["3x3", "3x3_stride2", "5x5_stride2", "3x3_groups2", "3x3_dilation2",
                                      "1x1_wide_in"])
def test_channel_1_reproduces_the_conv(geometry):
    conv, layer = build(geometry)
    op = make_op("channel:1")
    kk = layer.kernel[0] * layer.kernel[1]
    uncapped = (min(layer.in_channels, layer.out_channels * kk), min(layer.out_channels, layer.in_channels * kk))
    assert op.reduced(layer) == uncapped
    dx = randn(2, layer.in_channels, *layer.in_hw, seed=2)
    with torch.no_grad():
        assert rel_err(op.build(layer, conv)(dx), conv_no_bias(conv, dx)) < 1e-4


@pytest.mark.parametrize("geometry", list(DENSE_GEOMETRIES))
def test_full_equals_the_conv_and_shares_the_teacher_weight(geometry):
    conv, layer = build(geometry)
    student = make_op("full").build(layer, conv)
    dx = randn(2, layer.in_channels, *layer.in_hw, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(student(dx), conv_no_bias(conv, dx), rtol=1e-5, atol=1e-6)
    assert student.weight.data_ptr() == conv.weight.data_ptr()  # no copy
    assert "weight" not in student.state_dict() and not student.state_dict()
    assert list(student.parameters()) == []
    with torch.no_grad():  # the student follows the teacher's weight (shared storage)
        conv.weight.mul_(2)
        torch.testing.assert_close(student(dx), conv_no_bias(conv, dx), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("geometry", list(DENSE_GEOMETRIES))
def test_zero_gives_zeros_of_the_conv_output_shape(geometry):
    conv, layer = build(geometry)
    student = make_op("zero").build(layer, conv)
    for hw in (layer.in_hw, (layer.in_hw[0] + 3, layer.in_hw[1] + 4)):  # also off the traced size
        dx = randn(2, layer.in_channels, *hw, seed=4)
        out = student(dx)
        assert out.shape == conv(dx).shape
        assert not out.any()


@pytest.mark.parametrize("kernel", [1, 3])
def test_lowrank_error_decreases_with_rank(kernel):
    conv = seeded_conv(32, 32, kernel, padding=kernel // 2, seed=5)
    layer = LayerInfo.from_conv("c", conv, (12, 12))
    dx = randn(4, 32, 12, 12, seed=6)
    reference = conv_no_bias(conv, dx)
    with torch.no_grad():
        errors = [rel_err(make_op(f"lowrank:{f}").build(layer, conv)(dx), reference)
                  for f in ("0.125", "0.25", "0.5", "1.0")]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[0] > 0.1  # a random weight is far from low rank
    if kernel == 1:
        assert errors[3] < 1e-4  # rank min(C_in, C_out) is exact for a 1x1 conv


@pytest.mark.parametrize("geometry_kwargs", [{"padding": 1}, {"stride": 2, "padding": 1},
                                             {"padding": 2, "dilation": 2}])
def test_depthwise_op_is_exact_on_per_channel_rank1_kernels(geometry_kwargs):
    c_in, c_out = 6, 8
    g = torch.Generator().manual_seed(7)
    mix = torch.randn(c_out, c_in, generator=g)
    spatial = torch.randn(c_in, 3, 3, generator=g)
    conv = nn.Conv2d(c_in, c_out, 3, bias=False, **geometry_kwargs)
    with torch.no_grad():
        conv.weight.copy_(mix[:, :, None, None] * spatial[None])  # W[o, i] = a[o, i] * k_i
    layer = LayerInfo.from_conv("c", conv, (10, 9))
    dx = randn(2, c_in, 10, 9, seed=8)
    with torch.no_grad():
        assert rel_err(make_op("depthwise").build(layer, conv)(dx), conv(dx)) < 1e-5


def test_depthwise_op_is_not_exact_on_a_generic_kernel():
    conv, layer = build("3x3")
    dx = randn(2, layer.in_channels, *layer.in_hw, seed=8)
    with torch.no_grad():
        assert rel_err(make_op("depthwise").build(layer, conv)(dx), conv_no_bias(conv, dx)) > 1e-2


def test_subsample_factor_1_of_full_is_exact():
    conv, layer = build("3x3_stride2")
    dx = randn(2, layer.in_channels, *layer.in_hw, seed=9)
    with torch.no_grad():
        assert rel_err(make_op("subsample:1(full)").build(layer, conv)(dx), conv_no_bias(conv, dx)) < 1e-5


def test_subsample_of_full_is_exact_on_a_spatially_constant_delta():
    conv, layer = build("1x1")
    dx = randn(2, layer.in_channels, 1, 1, seed=10).expand(2, layer.in_channels, *layer.in_hw).contiguous()
    student = make_op("subsample(full)").build(layer, conv)
    with torch.no_grad():
        assert rel_err(student(dx), conv_no_bias(conv, dx)) < 1e-5
        # ... and only approximate on a generic delta
        dx = randn(2, layer.in_channels, *layer.in_hw, seed=11)
        assert rel_err(student(dx), conv_no_bias(conv, dx)) > 0.1


@pytest.mark.parametrize("op_type", sorted(OP_TYPES))
def test_students_are_linear_and_bias_free(op_type):
    conv, layer = build("3x3_stride2")
    student = make_op(EXAMPLE_SPEC[op_type]).build(layer, conv)
    for m in student.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
    a = randn(2, layer.in_channels, *layer.in_hw, seed=12)
    b = randn(2, layer.in_channels, *layer.in_hw, seed=13)
    with torch.no_grad():
        assert not student(torch.zeros_like(a)).any()
        torch.testing.assert_close(student(a + 2 * b), student(a) + 2 * student(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", ["lowrank:0.5", "lowrank:3", "channel:2", "depthwise", "subsample(lowrank:0.25)"])
def test_svd_initialisation_is_deterministic_and_trainable(spec):
    conv, layer = build("3x3_groups2")
    op = make_op(spec)
    first, second = op.build(layer, conv).state_dict(), op.build(layer, conv).state_dict()
    assert first and first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert op.trainable
    assert all(p.requires_grad for p in op.build(layer, conv).parameters())


def test_full_and_zero_are_not_trainable():
    assert not make_op("full").trainable and not make_op("zero").trainable
    assert not make_op("subsample(full)").trainable and make_op("subsample(lowrank:0.5)").trainable


@pytest.mark.parametrize("spec", ["lowrank:18", "channel:1"])
def test_full_rank_students_respect_reflect_padding(spec):
    conv = seeded_conv(6, 10, 3, padding=1, padding_mode="reflect", seed=14)
    layer = LayerInfo.from_conv("c", conv, (9, 11))
    dx = randn(2, 6, 9, 11, seed=15)
    with torch.no_grad():
        expected = conv(dx) - conv.bias[:, None, None]
        assert rel_err(make_op("full").build(layer, conv)(dx), expected) < 1e-5  # full handles it
        assert rel_err(make_op(spec).build(layer, conv)(dx), expected) < 1e-4
