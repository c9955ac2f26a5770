"""Gates of skip-convolutions: receptive-field pooling, exactness limits, budgets, learned gates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deltanas.delta import LayerInfo, LearnedGate, ThresholdGate, TopPGate, make_op
from deltanas.delta._gates import active_units, pool_to_units, unit_grid, unit_layer

from ._helpers import randn, seeded_conv

# name -> (Conv2d args, Conv2d kwargs, input H x W); odd sizes so that border blocks are partial
GEOMETRIES = {
    "1x1": ((6, 10, 1), {}, (9, 11)),
    "1x1_s2": ((6, 10, 1), {"stride": 2}, (9, 11)),
    "3x3": ((6, 10, 3), {"padding": 1}, (9, 11)),
    "3x3_s2": ((6, 10, 3), {"stride": 2, "padding": 1}, (13, 11)),
    "5x5_s2": ((6, 10, 5), {"stride": 2, "padding": 2}, (13, 15)),
    "dw3x3_s2": ((8, 8, 3), {"stride": 2, "padding": 1, "groups": 8}, (11, 13)),
    "3x3_dil2": ((6, 10, 3), {"padding": 2, "dilation": 2}, (11, 9)),
    "3x3_nopad": ((6, 10, 3), {}, (10, 13)),
}


def build(geometry: str, seed: int = 0):
    args, kwargs, hw = GEOMETRIES[geometry]
    conv = seeded_conv(*args, seed=seed, bias=True, **kwargs)
    return conv, LayerInfo.from_conv(geometry, conv, hw)


def sparse_delta(n: int, c: int, hw, seed: int, keep: float = 0.3) -> torch.Tensor:
    """A delta that is exactly zero at most positions (static background) and random elsewhere."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, *hw, generator=g) * (torch.rand(n, 1, *hw, generator=g) < keep)


def dilated_mask(active_in: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
    """By the definition: an output position is active iff an input position of its receptive field is."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel, layer.stride, layer.padding, layer.dilation
    n = active_in.shape[0]
    out = torch.zeros(n, *layer.out_hw, dtype=torch.bool)
    for i in range(layer.out_hw[0]):
        for j in range(layer.out_hw[1]):
            for a in range(kh):
                for b in range(kw):
                    y, x = i * sh - ph + a * dh, j * sw - pw + b * dw
                    if 0 <= y < layer.in_hw[0] and 0 <= x < layer.in_hw[1]:
                        out[:, i, j] |= active_in[:, y, x]
    return out


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_threshold_mask_is_the_input_mask_dilated_by_the_kernel_then_strided(geometry):
    conv, layer = build(geometry)
    dx = sparse_delta(2, conv.in_channels, layer.in_hw, seed=1, keep=0.1)
    norm = dx.pow(2).sum(1).sqrt()
    for t in (0.0, 1.5):
        expected = dilated_mask(norm > t * norm.mean(dim=(1, 2), keepdim=True), layer)
        mask = ThresholdGate(t)(dx, layer, 1).mask
        assert mask.shape == (2, *layer.out_hw)
        assert torch.equal(mask.bool(), expected)


@pytest.mark.parametrize("geometry", ["3x3", "3x3_s2", "1x1_s2", "5x5_s2"])
@pytest.mark.parametrize("block", [2, 3, 4])
def test_a_block_is_active_iff_one_of_its_positions_is(geometry, block):
    conv, layer = build(geometry)
    dx = sparse_delta(2, conv.in_channels, layer.in_hw, seed=2, keep=0.05)
    positions = ThresholdGate(0.0)(dx, layer, 1).mask
    blocks = ThresholdGate(0.0)(dx, layer, block).mask
    uh, uw = unit_grid(layer, block)
    assert blocks.shape == (2, uh, uw) == (2, math.ceil(layer.out_hw[0] / block), math.ceil(layer.out_hw[1] / block))
    for i in range(uh):
        for j in range(uw):
            tile = positions[:, i * block:(i + 1) * block, j * block:(j + 1) * block]  # partial at the border
            assert torch.equal(blocks[:, i, j].bool(), tile.flatten(1).any(1))


def test_threshold_gate_is_scale_free():
    conv, layer = build("3x3")
    dx = randn(3, conv.in_channels, *layer.in_hw, seed=3)
    gate = ThresholdGate(1.0)
    assert torch.equal(gate(dx, layer, 1).mask, gate(dx * 1e-3, layer, 1).mask)
    assert torch.equal(gate(dx, layer, 1).mask, gate(dx * 50.0, layer, 1).mask)


@pytest.mark.parametrize("geometry", ["3x3", "3x3_s2", "1x1"])
@pytest.mark.parametrize("p,block", [(0.25, 1), (0.5, 1), (0.3, 2), (0.1, 4), (1.0, 3)])
def test_top_p_activates_exactly_its_budget_per_frame(geometry, p, block):
    conv, layer = build(geometry)
    dx = randn(4, conv.in_channels, *layer.in_hw, seed=4)
    decision = TopPGate(p)(dx, layer, block)
    units = math.prod(unit_grid(layer, block))
    assert decision.mask.sum(dim=(1, 2)).tolist() == [active_units(p, units)] * 4
    assert active_units(p, units) == max(1, math.ceil(p * units - 1e-9))
    # ... and they are the units of largest pooled input-delta norm
    scores = pool_to_units(dx.pow(2).sum(1), layer, block, 0.0).flatten(1)
    chosen = scores[decision.mask.flatten(1).bool()].view(4, -1)
    others = scores[~decision.mask.flatten(1).bool()].view(4, -1)
    if others.numel():
        assert (chosen.min(1).values >= others.max(1).values).all()


def test_unit_layer_is_one_tile_plus_halo():
    _, layer = build("5x5_s2")
    unit = unit_layer(layer, 4)
    assert unit.in_hw == (3 * 2 + 5, 3 * 2 + 5) and unit.padding == (0, 0) and unit.out_hw == (4, 4)
    _, layer = build("3x3_dil2")
    assert unit_layer(layer, 1).in_hw == (5, 5) and unit_layer(layer, 1).out_hw == (1, 1)


@pytest.mark.parametrize("spec", ["gated:t0(full)", "gated:p1(full)", "gated:t0:b3(full)", "gated:p1:b4(full)",
                                  "gated:t0(full,lowrank:0.5)"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("sparse", [False, True])
def test_threshold_zero_or_p_one_reproduces_the_ungated_update(spec, geometry, sparse):
    conv, layer = build(geometry)
    op = make_op(spec)
    if op.unfit_reason(layer):
        pytest.skip("lowrank does not fit a depthwise conv")
    student = op.build(layer, conv).eval()
    student.sparse = sparse
    dx = sparse_delta(2, conv.in_channels, layer.in_hw, seed=5)
    with torch.no_grad():
        expected = conv(dx) - conv.bias[:, None, None]
        out = student(dx)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        zero = torch.zeros_like(dx)
        assert not student(zero).any()  # a static frame: nothing to update


def _learned_layer():
    conv = seeded_conv(4, 6, 3, padding=1, seed=6)
    return conv, LayerInfo.from_conv("c", conv, (12, 12))


def _synthetic_deltas(seed: int) -> torch.Tensor:
    """Per-position magnitudes spread over orders of magnitude (log-normal), as in real footage."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.01 * torch.exp(1.5 * torch.randn(8, 1, 12, 12, generator=g))
    return torch.randn(8, 4, 12, 12, generator=g) * scale


def test_learned_gate_expected_fraction_falls_when_its_penalty_rises():
    conv, layer = _learned_layer()
    full = layer.teacher_macs
    fractions = {}
    for weight in (0.05, 2.0):
        student = make_op("gated:learned(full)").build(layer, conv).train()
        student.gate.generator = torch.Generator().manual_seed(0)
        optim = torch.optim.Adam(student.parameters(), lr=0.1)
        for step in range(40):
            dx = _synthetic_deltas(step)
            target = F.conv2d(dx, conv.weight, None, 1, 1)
            out = student(dx)
            loss = (out - target).pow(2).sum() / target.pow(2).sum() + weight * student.expected_macs() / full
            optim.zero_grad()
            loss.backward()
            optim.step()
        student.eval()
        with torch.no_grad():
            student(_synthetic_deltas(1000))
        fractions[weight] = float(student.expected_fraction)
    assert fractions[2.0] < fractions[0.05] - 0.3, fractions


def test_learned_gate_expected_macs_are_differentiable_and_noise_is_seeded():
    conv, layer = _learned_layer()
    student = make_op("gated:learned:b2(full)").build(layer, conv).train()
    dx = _synthetic_deltas(0)
    student(dx)
    macs = student.expected_macs()
    macs.backward()
    assert student.gate.log_threshold.grad is not None and student.gate.log_threshold.grad != 0
    masks = []
    for _ in range(2):
        gate = LearnedGate(seed=3).train()
        masks.append(gate(dx, layer, 1).mask)
    assert torch.equal(masks[0], masks[1])  # the gate's own seeded generator, not the global one
    gate.eval()
    assert torch.equal(gate(dx, layer, 1).mask, gate(dx, layer, 1).mask)


def test_learned_gate_straight_through_gradient_reaches_the_gate_from_the_output():
    conv, layer = _learned_layer()
    student = make_op("gated:learned(full)").build(layer, conv).train()
    student(_synthetic_deltas(0)).sum().backward()
    assert student.gate.log_threshold.grad is not None and student.gate.log_threshold.grad != 0
