import pytest

from deltanas.analysis import bench
from deltanas.cli import main
from deltanas.delta import convert
from deltanas.video import read_frames


def test_bench_reports_ratios_in_the_same_run(lite0):
    frames = read_frames("bikes", (64, 96), max_frames=8).float() / 255
    model = convert(lite0, "zero", input_hw=(64, 96))
    r = bench(model, frames, keyframe_interval=4, repeats=1)
    assert r.frames == 8 and r.teacher_ms > 0 and r.stream_ms > 0
    assert r.macs_ratio == pytest.approx(model.cost((64, 96)).speedup(4))
    assert r.stream_speedup == pytest.approx(r.teacher_ms / r.stream_ms)
    assert r.cache_mib > 0


def test_bench_cli(capsys):
    assert main(["bench", "--arch", "full", "--size", "64x96", "--frames", "8", "--keyframe", "4",
                 "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "1.00x fewer than the teacher" in out and "streaming, batch 1" in out


def test_bench_counts_the_macs_a_threshold_gate_spent(lite0):
    """`gated:t0(full)` updates every changed position (nearly all on real footage): its MAC ratio is
    what it spent, not its analytic default fraction of 0.25."""
    frames = read_frames("bikes", (64, 96), max_frames=8).float() / 255
    model = convert(lite0, "gated:t0(full)", input_hw=(64, 96))
    r = bench(model, frames, keyframe_interval=4, repeats=1)
    assert model.cost((64, 96)).speedup(4) > 2
    assert r.macs_ratio < 1.1
