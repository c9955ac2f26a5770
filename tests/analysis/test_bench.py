import json

import pytest

from deltanas.analysis import bench, run_stream
from deltanas.cli import main
from deltanas.delta import KeyframePolicy, convert
from deltanas.engine import SparseEngine, available_dense_runtimes, available_key_runtimes
from deltanas.video import read_frames


@pytest.fixture(scope="module")
def frames():
    return read_frames("bikes", (64, 96), max_frames=8).float() / 255


def test_bench_reports_ratios_against_every_installed_runtime_in_the_same_run(lite0, frames):
    model = convert(lite0, "zero", input_hw=(64, 96))
    r = bench(model, frames, keyframe_interval=4, repeats=1)
    assert r.frames == 8 and r.delta_ms_per_frame > 0 and r.key_ms_per_key_frame > 0
    assert set(r.teacher_ms_per_frame) == set(available_dense_runtimes())
    assert r.fastest_runtime in available_key_runtimes()  # float32, as the engine computes
    for runtime, ms in r.teacher_ms_per_frame.items():
        assert r.speedup(runtime) == pytest.approx(ms / r.delta_ms_per_frame)
    # reuse computes nothing on delta frames: the engine's MACs are the key frames' alone
    assert r.macs_ratio == pytest.approx(4.0, rel=1e-6)
    assert r.state_mib > 0 and r.peak_rss_mib > 0


def test_bench_counts_the_macs_the_engine_spent(lite0, frames):
    """`gated:t0(full)` updates every changed position (nearly all on real footage): its MAC ratio is what
    it spent, not its analytic default fraction of 0.25."""
    model = convert(lite0, "gated:t0(full)", input_hw=(64, 96))
    r = bench(model, frames, keyframe_interval=4, repeats=1, runtimes=["torch"])
    assert model.cost((64, 96)).speedup(4) > 2
    assert r.macs_ratio < 1.1


def test_bench_json_has_the_stable_fields(capsys):
    assert main(["bench", "--arch", "uniform:gated:w0.04:run(full)", "--video", "bikes", "--size", "64x96",
                 "--frames", "8", "--keyframe", "4", "--repeats", "1", "--runtimes", "torch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["teacher_ms_per_frame"]) == {"torch"}
    assert report["delta_ms_per_frame"] > 0 and report["speedup"]["torch"] > 0
    for key in ("delta_ms_per_delta_frame", "key_ms_per_key_frame", "macs_ratio", "state_mib", "peak_rss_mib",
                "threads", "engine_backend", "key_runtime", "fidelity", "top1"):
        assert key in report


def test_bench_cli_prints_each_runtime(capsys):
    assert main(["bench", "--arch", "full", "--video", "bikes", "--size", "64x96", "--frames", "8",
                 "--keyframe", "4", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 thread(s)" in out and "dense teacher in torch" in out and "engine (" in out


def test_run_stream_on_the_engine_agrees_with_the_reference_path(lite0, frames):
    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=(64, 96))
    policy = KeyframePolicy(4)
    engine = run_stream(model, frames, policy, engine=SparseEngine(model, keyframes="torch"), teacher_runtime="torch")
    reference = run_stream(model, frames, policy, teacher_runtime="torch")
    assert engine.key_frames == reference.key_frames == 2
    assert engine.agreement.fidelity == pytest.approx(reference.agreement.fidelity, abs=1e-3)
    assert [r["key"] for r in engine.rows] == [1, 0, 0, 0, 1, 0, 0, 0]
    assert engine.macs_per_frame < reference.macs_per_frame  # gate work only where the input changed
    assert engine.path.startswith("engine (") and reference.path == "reference"


def test_run_cli_writes_per_frame_rows(tmp_path, capsys):
    out = tmp_path / "frames.csv"
    assert main(["run", "bikes", "--arch", "uniform:gated:w0.04:run(full)", "--size", "64x96", "--max-frames", "6",
                 "--keyframe", "3", "--keyframes", "torch", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ms/frame (engine (" in text and "vs the dense teacher in" in text
    lines = out.read_text().splitlines()
    assert lines[0] == "frame,key,dense,ms,macs,teacher_top1,model_top1" and len(lines) == 7


def test_speed_words_say_slower_below_one():
    from deltanas.analysis import speed_words

    assert speed_words(1.52) == "1.52x faster"
    assert speed_words(0.8) == "1.25x slower"


def test_bench_cli_with_the_dense_fallback_counts_its_frames(capsys):
    assert main(["bench", "--arch", "uniform:gated:w0.04:run(full)", "--video", "bikes", "--size", "64x96",
                 "--frames", "8", "--keyframe", "4", "--repeats", "1", "--runtimes", "torch", "--keyframes", "torch",
                 "--dense-fallback", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert 0 <= record["dense_frames"] <= 8 - 2 and record["key_frames"] >= 1


def test_the_online_mode_refuses_the_fixed_policys_fallback():
    assert main(["run", "bikes", "--online", "--dense-fallback", "--size", "64x96", "--max-frames", "4"]) != 0
