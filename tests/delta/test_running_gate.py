"""Skip-convolutions against a running reference (``gated:GATE:run(OP)``, DeltaCNN style)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deltanas.delta import Arch, RunningGatedDelta, convert, gated_layers, make_op, parse_op
from deltanas.delta._gates import ThresholdGate
from deltanas.errors import ArchError

from ._helpers import rand, randn, seeded_


def small_net() -> nn.Module:
    return seeded_(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.ReLU(),
        nn.Conv2d(8, 6, 1),
    ), seed=3)


def moving_square(frames: int = 6, size: int = 16) -> torch.Tensor:
    """One group (1, T, 3, H, W): a static noisy scene where a bright square moves one pixel a frame."""
    scene = rand(3, size, size, seed=1)[None].repeat(frames, 1, 1, 1)
    for t in range(frames):
        scene[t, :, 4:8, 2 + t:6 + t] = 1.0
    return scene[None]


RUNNING_SPECS = ["gated:a0.1:run(full)", "gated:t1:run(full)", "gated:p0.25:run(lowrank:0.5)",
                 "gated:a0:run:f0.3(full)", "gated:changed:run(full)", "gated:changed:run:f0.2(full)"]


@pytest.mark.parametrize("text", RUNNING_SPECS)
def test_running_specs_round_trip(text):
    assert str(make_op(text)) == text and str(parse_op(text)) == text


@pytest.mark.parametrize("text", ["gated:a0.1(full)",  # the key-relative gate needs run
                                  "gated:learned:run(full)", "gated:p0.25:run:b2(full)",
                                  "gated:t1:run(full,lowrank:0.5)", "gated:a-1:run(full)",
                                  "gated:t1:b2:run(full)", "gated:changed(full)", "gated:c0.5:run(full)"])
def test_running_specs_refused(text):
    with pytest.raises(ArchError):
        make_op(text)


@pytest.mark.parametrize("arch", ["gated:a0:run(full)", "gated:t0:run(full)", "gated:p1:run(full)",
                                  "gated:changed:run(full)"])
def test_gate_passing_everything_is_exact(arch):
    net, x = small_net(), randn(2, 5, 3, 16, 16, seed=4)
    out = convert(net, arch, input_hw=(16, 16)).forward_group(x)
    torch.testing.assert_close(out, net(x.flatten(0, 1)).view_as(out), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_stream_equals_group_and_sparse_equals_dense(sparse):
    net, x = small_net(), moving_square()
    dense = convert(net, "gated:a0.2:run(full)", input_hw=(16, 16))
    model = convert(net, "gated:a0.2:run(full)", input_hw=(16, 16))
    for m in gated_layers(model).values():
        m.sparse = sparse
    grouped = dense.forward_group(x)[0]
    streamed = [model.key_frame(x[0, :1])] + [model.delta_frames(x[0, t:t + 1]) for t in range(1, x.shape[1])]
    torch.testing.assert_close(torch.cat(streamed), grouped, atol=1e-5, rtol=1e-5)
    # a new key frame resets the reference: the same stream again gives the same outputs
    again = [model.key_frame(x[0, :1])] + [model.delta_frames(x[0, t:t + 1]) for t in range(1, x.shape[1])]
    torch.testing.assert_close(torch.cat(again), grouped, atol=1e-5, rtol=1e-5)


def test_unchanged_frame_costs_nothing_with_key_relative_gate():
    net = small_net()
    frame = rand(3, 16, 16, seed=2)
    x = torch.stack([frame] * 4)[None]
    model = convert(net, "gated:a0.01:run(full)", input_hw=(16, 16))
    out = model.forward_group(x)[0]
    for m in gated_layers(model).values():
        assert m.last_active_fraction == 0
        assert m.last_macs == m.gate.macs(m.layer)  # only the gate's norm
    torch.testing.assert_close(out, net(x[0]), atol=1e-5, rtol=1e-5)


def test_changed_gate_costs_no_macs_and_follows_the_sparse_changes_exactly():
    """Behind a thresholded layer a depthwise conv's input changes at few positions: ``changed`` computes
    exactly those (what the layer before passed, no spurious updates where nothing changed since) and
    counts no gate."""
    net, x = small_net(), moving_square(frames=6)
    x[0, 4:] = x[0, 3]  # the square stops: the last two frames change nothing
    arch = Arch(layers={"2": "gated:changed:run(full)"}, default="gated:a0.05:run(full)")
    model = convert(net, arch, input_hw=(16, 16))
    reference = convert(net, Arch(layers={"2": "gated:a0:run(full)"}, default="gated:a0.05:run(full)"),
                        input_hw=(16, 16))
    torch.testing.assert_close(model.forward_group(x), reference.forward_group(x), atol=1e-6, rtol=1e-6)
    depthwise = gated_layers(model)["net.2.student"]
    counts = depthwise._last[0]
    assert counts[3:].sum() == 0 < counts[:3].min()  # nothing touched once the frames stop changing
    assert 0 < depthwise.last_active_fraction < 0.5
    assert depthwise.last_macs == pytest.approx(float(counts.float().mean()) * depthwise.unit_macs[0])
    # analytic: a threshold of 0 at the same fraction, less its norm
    layer = depthwise.layer
    assert make_op("gated:changed:run:f0.25(full)").macs(layer) == \
        make_op("gated:a0:run:f0.25(full)").macs(layer) - ThresholdGate.macs(layer) > 0


def test_running_reference_recomputes_less_than_the_key_frame_reference():
    """A square moving over a static scene: against the key frame every position it ever covered
    stays changed; against a running reference only where it moved since the last frame."""
    net, x = small_net(), moving_square(frames=8)
    fractions = {}
    for arch in ("gated:t0(full)", "gated:t0:run(full)"):
        model = convert(net, arch, input_hw=(16, 16))
        out = model.forward_group(x)[0]
        torch.testing.assert_close(out, net(x[0]), atol=1e-5, rtol=1e-5)  # both exact at threshold 0
        first = next(iter(gated_layers(model).values()))
        fractions[arch] = first.last_active_fraction
    assert fractions["gated:t0:run(full)"] < 0.7 * fractions["gated:t0(full)"]


def test_error_stays_bounded_over_a_long_group():
    """Sub-threshold changes stay in the reference until they add up: the running error of a slow
    drift does not grow with the frame index (it would if skipped changes were dropped)."""
    conv = seeded_(nn.Sequential(nn.Conv2d(3, 4, 1)), seed=5)
    frames = 40
    base = rand(3, 8, 8, seed=6)
    x = torch.stack([base + 0.02 * t for t in range(frames)])[None]  # slow uniform drift
    model = convert(conv, "gated:a0.1:run(full)", input_hw=(8, 8))
    out = model.forward_group(x)[0]
    error = (out - conv(x[0])).flatten(1).norm(dim=1)
    change = (conv(x[0]) - conv(x[0, :1])).flatten(1).norm(dim=1)
    assert error[-1] < 0.2 * change[-1]
    assert error.max() < 0.3 * change.max()
    m = next(iter(gated_layers(model).values()))
    assert 0 < m.last_active_fraction < 0.5  # it updated now and then, not every frame


def test_macs_count_touched_outputs_and_analytic_uses_f():
    net = small_net()
    model = convert(net, Arch.parse("uniform:gated:w0.2:run:f0.5(full)"), input_hw=(16, 16))
    model.forward_group(moving_square())
    for name, m in gated_layers(model).items():
        assert isinstance(m, RunningGatedDelta)
        units = m.layer.out_hw[0] * m.layer.out_hw[1]
        expected = m.gate.macs(m.layer) + m.last_active_fraction * units * m.unit_macs[0]
        assert m.last_macs == pytest.approx(expected, rel=1e-5)
    op = make_op("gated:a0.2:run:f0.5(full)")
    layer = model.layers[0]
    assert op.macs(layer) == layer.in_channels * 16 * 16 + layer.out_hw[0] * layer.out_hw[1] // 2 * 27 * 8
    # the weighted norm of w takes two multiplies per channel and position
    weighted = make_op("gated:w0.2:run:f0.5(full)")
    assert weighted.macs(layer) == op.macs(layer) + layer.in_channels * 16 * 16


def test_trainable_student_gets_gradients_through_the_sequence():
    net, x = small_net(), moving_square()
    model = convert(net, "gated:a0.05:run(lowrank:0.5)", input_hw=(16, 16))
    model.train()
    out = model.forward_group(x)
    loss = (out - net(x.flatten(0, 1)).view_as(out)).pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.student_parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_running_top_p_analytic_macs_bound_what_it_touches():
    """A running top-p gate passes the top p of the input positions; on a 3 x 3 convolution each touches
    up to 9 outputs, so its analytic count is that bound (never below what it spends), and a measured
    f replaces it."""
    net, x = small_net(), moving_square()
    model = convert(net, "gated:p0.1:run(full)", input_hw=(16, 16))
    model.forward_group(x)
    op = make_op("gated:p0.1:run(full)")
    for info, m in zip(model.layers, gated_layers(model).values()):
        assert op.macs(info) >= m.last_macs
    stem = model.layers[0]  # 3 x 3, stride 1: ceil(0.1 x 256) = 26 passed inputs reach up to 234 of 256 outputs
    assert op.fraction_for(stem) == pytest.approx(234 / 256)
    pointwise = model.layers[2]  # 1 x 1: the top p of the inputs are the outputs it computes
    assert op.fraction_for(pointwise) == pytest.approx(0.1, abs=1 / 64)
    calibrated = make_op("gated:p0.1:run:f0.3(full)")
    assert calibrated.fraction_for(stem) == 0.3 and str(calibrated) == "gated:p0.1:run:f0.3(full)"
