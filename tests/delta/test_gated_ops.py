"""Gated operators (skip-convolutions): spec grammar, sparse == dense, MACs of computed units, Lite0."""

from __future__ import annotations

import pytest
import torch

from deltanas.delta import (
    Arch,
    LayerInfo,
    OpSpec,
    SearchSpace,
    convert,
    gated_layers,
    make_op,
    parse_op,
    skipconv_designs,
)
from deltanas.delta._gates import units_to_positions
from deltanas.errors import ArchError
from deltanas.teachers import create_teacher
from deltanas.video import read_frames

from ._helpers import seeded_conv

# -- spec grammar ------------------------------------------------------------------------------

ROUND_TRIPS = [
    ("gated:p0.25(full)", "gated:p0.25(full)"),
    ("gated:t0.02(full)", "gated:t0.02(full)"),
    ("gated:p0.25:b4(full)", "gated:p0.25:b4(full)"),
    ("gated:learned(full)", "gated:learned(full)"),
    ("gated:p0.25(full, lowrank:0.125)", "gated:p0.25(full,lowrank:0.125)"),
    (" gated : t1 : b2 : f0.3 ( full , zero ) ", "gated:t1:b2:f0.3(full,zero)"),
    ("gated:learned:b8:f0.1(lowrank:0.5,channel:4)", "gated:learned:b8:f0.1(lowrank:0.5,channel:4)"),
    ("gated:p1(depthwise)", "gated:p1(depthwise)"),
    ("gated:t0(zero)", "gated:t0(zero)"),
]


@pytest.mark.parametrize("text,canonical", ROUND_TRIPS)
def test_gated_specs_round_trip(text, canonical):
    spec = parse_op(text)
    assert str(spec) == canonical
    assert parse_op(str(spec)) == spec
    assert str(make_op(text)) == canonical
    assert Arch.parse(f"uniform:{text}").default == canonical


def test_op_spec_inners_and_inner():
    spec = parse_op("gated:p0.25(full,lowrank:0.125)")
    assert spec.inners == (OpSpec("full"), OpSpec("lowrank", ("0.125",)))
    assert spec.inner == OpSpec("full")
    assert OpSpec("subsample", (), OpSpec("full")) == parse_op("subsample(full)")  # one inner, as before
    assert parse_op("subsample(full)").inners == (OpSpec("full"),) and parse_op("full").inner is None
    assert parse_op("full").inners == ()


MALFORMED = [
    "gated(full)",  # no gate
    "gated:p0.25",  # no inner op
    "gated:q0.25(full)", "gated:p(full)", "gated:px(full)", "gated:p0(full)", "gated:p1.5(full)", "gated:p-0.1(full)",
    "gated:t-1(full)", "gated:tinf(full)", "gated:tnan(full)",
    "gated:p0.25:b1(full)", "gated:p0.25:b0(full)", "gated:p0.25:b2.5(full)", "gated:p0.25:bx(full)",
    "gated:b4:p0.25(full)",  # the gate comes first
    "gated:t1:f0.3:b4(full)",  # block before f
    "gated:p0.25:f0.3(full)",  # a top-p gate's fraction is p
    "gated:t1:f0(full)", "gated:t1:f1.5(full)", "gated:p0.25:x1(full)", "gated:p0.25:b4:b4(full)",
    "gated:p0.25(full,lowrank:0.5,zero)",  # at most two inner ops
    "gated:p0.25(full,)", "gated:p0.25(,full)", "gated:p0.25(full zero)",
    "gated:p0.25(subsample(full))", "gated:p0.25(gated:p0.5(full))", "gated:p0.25(full,subsample(full))",
    "gated:p0.25(foo)", "gated:p0.25(lowrank:7)x",
    "subsample(full,zero)",  # subsample still takes one inner op
    "full(zero,zero)", "full,zero",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_gated_specs_raise_arch_error(text):
    with pytest.raises(ArchError):
        make_op(text)


def test_gated_fit_follows_its_inner_ops():
    dw = LayerInfo.from_conv("dw", seeded_conv(8, 8, 3, padding=1, groups=8, seed=0), (9, 9))
    pw = LayerInfo.from_conv("pw", seeded_conv(8, 16, 1, seed=0), (9, 9))
    assert make_op("gated:p0.25(full)").unfit_reason(dw) is None
    assert make_op("gated:p0.25(zero)").unfit_reason(dw) is None
    assert "depthwise" in make_op("gated:p0.25(lowrank:0.5)").unfit_reason(dw)
    assert "depthwise" in make_op("gated:p0.25(full,lowrank:0.5)").unfit_reason(dw)
    assert make_op("gated:p0.25(depthwise)").unfit_reason(pw)
    space = SearchSpace(name="s", dense=("gated:p0.25(full)",), depthwise=("full", "gated:p0.25(full)",
                                                                           "gated:p0.25(full,lowrank:0.5)"))
    assert [str(op) for op in space.candidates(dw)] == ["full", "gated:p0.25(full)"]


def test_trainable():
    assert not make_op("gated:p0.25(full)").trainable and not make_op("gated:t1(full,zero)").trainable
    assert make_op("gated:learned(full)").trainable
    assert make_op("gated:p0.25(full,lowrank:0.5)").trainable and make_op("gated:p0.5(lowrank:0.5)").trainable


# -- sparse path == dense masked path -----------------------------------------------------------

GEOMETRIES = {
    "1x1": ((12, 16, 1), {}, (15, 17)),
    "1x1_s2": ((12, 16, 1), {"stride": 2}, (15, 17)),
    "3x3": ((12, 16, 3), {"padding": 1}, (15, 17)),
    "3x3_s2": ((12, 16, 3), {"stride": 2, "padding": 1}, (17, 15)),
    "5x5_s2": ((8, 12, 5), {"stride": 2, "padding": 2}, (15, 17)),
    "dw3x3": ((16, 16, 3), {"padding": 1, "groups": 16}, (13, 11)),
    "dw5x5_s2": ((16, 16, 5), {"stride": 2, "padding": 2, "groups": 16}, (15, 17)),
    "3x3_groups4": ((16, 24, 3), {"padding": 1, "groups": 4}, (14, 11)),
    "3x3_dil2": ((12, 16, 3), {"padding": 2, "dilation": 2}, (13, 19)),
    "3x3_nopad": ((8, 12, 3), {}, (15, 17)),
    "3x3_reflect": ((8, 12, 3), {"padding": 1, "padding_mode": "reflect"}, (11, 13)),
}

SPARSE_SPECS = ["gated:p0.3(full)", "gated:p0.3:b2(full)", "gated:p0.2:b4(full)", "gated:t1:b3(full)",
                "gated:t0.5(full)", "gated:learned:b4(full)", "gated:p0.4:b4(full,zero)",
                "gated:p0.3:b4(lowrank:0.5,channel:2)", "gated:t1(depthwise,lowrank:0.25)", "gated:p0.5:b3(zero,full)"]


def build(geometry: str, seed: int = 0):
    args, kwargs, hw = GEOMETRIES[geometry]
    conv = seeded_conv(*args, seed=seed, bias=True, **kwargs)
    return conv, LayerInfo.from_conv(geometry, conv, hw)


def static_delta(n: int, c: int, hw, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, *hw, generator=g) * torch.exp(2 * torch.randn(n, 1, *hw, generator=g))


@pytest.mark.parametrize("spec", SPARSE_SPECS)
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_sparse_path_equals_dense_masked_path(spec, geometry):
    conv, layer = build(geometry)
    op = make_op(spec)
    if op.unfit_reason(layer):
        pytest.skip(op.unfit_reason(layer))
    dense = op.build(layer, conv).eval()
    sparse = op.build(layer, conv).eval()
    sparse.sparse = True
    dx = static_delta(3, conv.in_channels, layer.in_hw, seed=1)
    with torch.no_grad():
        a, b = dense(dx), sparse(dx)
        assert a.shape == b.shape == conv(dx).shape
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
        assert sparse.last_active_fraction == dense.last_active_fraction
        assert sparse.last_macs == dense.last_macs
        if spec.endswith("(full)"):  # the definition: the dense update, masked at the output
            mask = units_to_positions(dense.gate(dx, layer, dense.block, dense.padding_mode).mask, dense.block,
                                      layer.out_hw)
            expected = (conv(dx) - conv.bias[:, None, None]) * mask
            torch.testing.assert_close(a, expected, rtol=1e-4, atol=1e-5 * float(a.abs().max()))


def test_sparse_path_runs_at_another_resolution_and_keeps_gradients():
    conv, layer = build("3x3_s2")
    student = make_op("gated:p0.3:b2(full,lowrank:0.5)").build(layer, conv)
    dx = static_delta(2, conv.in_channels, (21, 26), seed=2)
    dense = student(dx)
    student.sparse = True
    out = student(dx)
    torch.testing.assert_close(out, dense, rtol=1e-4, atol=1e-4)
    out.pow(2).sum().backward()
    assert all(p.grad is not None for p in student.rest.parameters())


# -- MACs count the computed units --------------------------------------------------------------

def one_hot_delta(c: int, hw, points) -> torch.Tensor:
    dx = torch.zeros(1, c, *hw)
    for y, x in points:
        dx[0, :, y, x] = 1.0
    return dx


def test_measured_macs_of_a_3x3_conv_on_hand_built_masks():
    conv = seeded_conv(4, 6, 3, padding=1, seed=3)
    layer = LayerInfo.from_conv("c", conv, (8, 8))
    per_position = 6 * 4 * 9  # C_out x C_in x k^2
    gate = 4 * 8 * 8  # C_in x H x W
    student = make_op("gated:t0(full)").build(layer, conv).eval()
    student(one_hot_delta(4, (8, 8), [(3, 3)]))  # outputs (2..4) x (2..4) see it
    assert student.last_active_fraction == 9 / 64
    assert student.last_macs == gate + 9 * per_position
    student(one_hot_delta(4, (8, 8), [(0, 0), (3, 3)]))  # + (0..1) x (0..1) at the corner
    assert student.last_macs == gate + 13 * per_position
    # 4x4 blocks: a tile is 4x4 outputs from a 6x6 patch; (3, 3) touches all four tiles of the 8x8 output
    blocks = make_op("gated:t0:b4(full)").build(layer, conv).eval()
    blocks(one_hot_delta(4, (8, 8), [(3, 3)]))
    assert blocks.last_active_fraction == 1.0 and blocks.last_macs == gate + 4 * 16 * per_position
    blocks(one_hot_delta(4, (8, 8), [(0, 0)]))
    assert blocks.last_active_fraction == 0.25 and blocks.last_macs == gate + 16 * per_position


def test_measured_macs_of_a_strided_conv_and_a_rest_op():
    conv = seeded_conv(4, 6, 3, stride=2, padding=1, seed=4)
    layer = LayerInfo.from_conv("c", conv, (9, 9))  # output 5 x 5: output o sees inputs 2o-1 .. 2o+1
    assert layer.out_hw == (5, 5)
    per_position, gate = 6 * 4 * 9, 4 * 9 * 9
    student = make_op("gated:t0(full)").build(layer, conv).eval()
    student(one_hot_delta(4, (9, 9), [(4, 4)]))  # only output (2, 2)
    assert student.last_macs == gate + 1 * per_position
    student(one_hot_delta(4, (9, 9), [(3, 3)]))  # outputs (1..2) x (1..2)
    assert student.last_macs == gate + 4 * per_position
    # with a rest op: lowrank rank r on a 3x3 patch, one output: (3x1 conv to r at 1x3) + (1x3 conv to C_out)
    op = make_op("gated:t0(full,lowrank:2)")
    rest = 4 * 2 * 3 * (1 * 3) + 2 * 6 * 3 * 1
    student = op.build(layer, conv).eval()
    student(one_hot_delta(4, (9, 9), [(3, 3)]))
    assert student.last_macs == gate + 4 * per_position + 21 * rest


def test_analytic_macs_by_hand():
    conv = seeded_conv(4, 6, 3, padding=1, seed=3)
    layer = LayerInfo.from_conv("c", conv, (8, 8))
    per_position, gate = 6 * 4 * 9, 4 * 64
    assert make_op("gated:p0.25(full)").macs(layer) == gate + 16 * per_position
    assert make_op("gated:p0.1(full)").macs(layer) == gate + 7 * per_position  # ceil(6.4)
    assert make_op("gated:p0.25:b4(full)").macs(layer) == gate + 1 * 16 * per_position
    assert make_op("gated:p0.3:b3(full)").macs(layer) == gate + 3 * 9 * per_position  # 9 tiles, ceil(2.7)
    assert make_op("gated:t1(full)").macs(layer) == gate + 16 * per_position  # expected fraction 0.25
    assert make_op("gated:t1:f0.5(full)").macs(layer) == gate + 32 * per_position
    learned_gate = 4 * 64 + 64  # channel mean of |dx| + the 1x1 conv on the one-channel map
    assert make_op("gated:learned(full)").macs(layer) == learned_gate + 16 * per_position
    lowrank = make_op("lowrank:2").macs(LayerInfo.from_conv("u", conv, (3, 3)).with_input((3, 3), padding=(0, 0)))
    assert make_op("gated:p0.25(full,lowrank:2)").macs(layer) == gate + 16 * per_position + 48 * lowrank


def test_expected_macs_follow_the_measured_fraction_for_fixed_gates():
    conv = seeded_conv(4, 6, 3, padding=1, seed=3)
    layer = LayerInfo.from_conv("c", conv, (8, 8))
    student = make_op("gated:t0(full)").build(layer, conv).eval()
    student(one_hot_delta(4, (8, 8), [(3, 3)]))
    assert float(student.expected_macs()) == pytest.approx(student.last_macs)
    with pytest.raises(RuntimeError):
        make_op("gated:t0(full)").build(layer, conv).expected_macs()


# -- the real teacher ---------------------------------------------------------------------------

HW = (64, 96)


@pytest.fixture(scope="module")
def lite0():
    return create_teacher("efficientnet_lite0")


@pytest.fixture(scope="module")
def bikes_group() -> torch.Tensor:
    return read_frames("bikes", HW, max_frames=4).float().div(255)[None]  # (1, 4, 3, H, W)


def test_lite0_gated_p1_equals_the_teacher_on_bikes(lite0, bikes_group):
    model = convert(lite0, "uniform:gated:p1(full)", input_hw=HW)
    assert len(gated_layers(model)) == len(model.layers)
    with torch.no_grad():
        out = model.forward_group(bikes_group)[0]
        reference = model.teacher_forward(bikes_group[0])
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-4 * float(reference.abs().max()))


def test_lite0_gated_sparse_equals_dense_and_p025_macs(lite0, bikes_group):
    model = convert(lite0, "uniform:gated:p0.25:b2(full)", input_hw=HW)
    with torch.no_grad():
        dense = model.forward_group(bikes_group)
        for m in gated_layers(model).values():
            m.sparse = True
        sparse = model.forward_group(bikes_group)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-4 * float(dense.abs().max()))
    # analytic MACs of gated:p0.25(full): a quarter of the outputs, plus the gate
    infos, _ = model.layer_infos(HW)
    op = make_op("gated:p0.25(full)")
    for info in infos:
        if not info.is_depthwise:
            assert 0.25 <= op.macs(info) / info.teacher_macs <= 0.45, info.name
    cost = convert(lite0, "uniform:gated:p0.25(full)", input_hw=HW).cost(HW)
    assert 0.25 < cost.delta_macs / cost.teacher_macs < 0.45


# -- baselines --------------------------------------------------------------------------------

def test_skipconv_designs():
    designs = skipconv_designs()
    assert list(designs)[:4] == ["gated:p0.5(full)", "gated:p0.35(full)", "gated:p0.25(full)", "gated:p0.15(full)"]
    assert all(isinstance(a, Arch) and a.default == label for label, a in designs.items())
    assert any(label.startswith("gated:t") for label in designs)
    assert [label for label in designs if label.endswith(":run(full)")] == ["gated:w0.03:run(full)",
                                                                            "gated:w0.05:run(full)"]
    more = skipconv_designs(ps=(0.2,), thresholds=(), block=4, learned=True)
    assert list(more) == ["gated:p0.2:b4(full)", "gated:learned:b4(full)"]
    with pytest.raises(ArchError):
        skipconv_designs(ps=(1.5,))
