"""Measured active fractions and MACs of gated (skip-convolution) layers on real frames."""

from __future__ import annotations

import math

import pytest

from deltanas.analysis import measure_gating
from deltanas.delta import convert
from deltanas.errors import ConfigError
from deltanas.video import read_frames

HW = (64, 96)


def test_measure_gating_reports_fractions_and_measured_macs(lite0):
    frames = read_frames("bikes", HW, max_frames=6)
    model = convert(lite0, "uniform:gated:p0.25(full)", input_hw=HW)
    report = measure_gating(model, frames, keyframe_interval=3)
    assert report.delta_frames == 4 and len(report.layers) == len(model.layers)
    out_hw = {info.name: info.out_hw for info in model.layer_infos(HW)[0]}
    for layer in report.layers:  # a fixed budget: measured = analytic
        units = math.prod(out_hw[layer.name])
        assert layer.active_fraction == pytest.approx(math.ceil(0.25 * units - 1e-9) / units)
        assert layer.measured_macs == pytest.approx(layer.analytic_macs)
    assert report.measured_delta_macs == pytest.approx(report.analytic_delta_macs)
    threshold = measure_gating(convert(lite0, "uniform:gated:t1(full)", input_hw=HW), frames, 3)
    assert all(0 < layer.active_fraction <= 1 for layer in threshold.layers)
    assert threshold.measured_delta_macs != pytest.approx(threshold.analytic_delta_macs)
    assert threshold.speedup() > 1


def test_measure_gating_needs_delta_frames(lite0):
    model = convert(lite0, "uniform:gated:p0.25(full)", input_hw=HW)
    with pytest.raises(ConfigError):
        measure_gating(model, read_frames("bikes", HW, max_frames=4), keyframe_interval=1)


def test_evaluate_reports_what_threshold_gates_spent(lite0):
    """A threshold gate's MACs depend on the footage: evaluate measures them, and its cost() uses them."""
    from deltanas.analysis import evaluate
    from deltanas.delta import convert
    from deltanas.video import load_clip

    size = (64, 112)
    frames = load_clip("bikes", size, max_frames=16).frames
    clip = [("bikes", frames)]
    model = convert(lite0, "uniform:gated:t1(full)", input_hw=size)
    analytic = model.cost(size)  # assumes the default fraction 0.25
    result = evaluate(model, clip, 8, progress=False)
    two = evaluate(model, [("a", frames[:8]), ("b", frames[8:])], 8, progress=False)
    assert list(two.per_clip) == ["a", "b"]  # per-clip results keep the clips' names
    measured = result.cost(analytic)
    report = measure_gating(model, clip[0][1], 8)
    assert measured.delta_macs == pytest.approx(report.measured_delta_macs, rel=1e-6)
    assert measured.delta_macs != pytest.approx(analytic.delta_macs, rel=0.02)
    assert measured.teacher_macs == analytic.teacher_macs
    # top-p gates spend exactly their analytic count
    top_p = convert(lite0, "uniform:gated:p0.25(full)", input_hw=size)
    exact = evaluate(top_p, clip, 8, progress=False).cost(top_p.cost(size))
    assert exact.delta_macs == pytest.approx(top_p.cost(size).delta_macs, rel=1e-6)
