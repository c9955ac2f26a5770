"""The command line on the real teacher and clips: verbs work, bad input gets one clear line."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from deltanas.cli import main

SMALL = ["--videos", "bikes", "--max-frames", "48", "--eval-size", "64x128", "--keyframe", "4",
         "--frame-size", "72x128", "--crop", "64x112"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_lists_every_layer_with_candidates(capsys):
    code, out, _ = _run(capsys, "info", "--json", "--size", "128x224", "--arch", "uniform:lowrank:0.25")
    assert code == 0
    info = json.loads(out)
    assert len(info["layers"]) == 49
    head = next(r for r in info["layers"] if r["layer"] == "_conv_head")
    assert head["teacher_macs"] == 4 * 7 * 1280 * 320  # 128x224 input -> 4x7 last map
    assert head["candidates"]["lowrank:0.5"] < head["teacher_macs"] and head["candidates"]["zero"] == 0
    totals = info["totals"]
    assert totals["teacher_macs"] == sum(r["teacher_macs"] for r in info["layers"]) + totals["linear_macs"]
    assert totals["delta_macs"] < totals["teacher_macs"]


def test_info_prints_the_arch_in_either_form(capsys):
    arch = "gated:w0.0257:run:f0.396(full)"
    code, out, _ = _run(capsys, "info", "--size", "64x128", "--arch", arch)
    assert code == 0 and f"_conv_head                       {arch}\n" in out
    code, out, _ = _run(capsys, "info", "--size", "64x128", "--arch", arch, "--arch-format", "fields")
    line = next(x for x in out.splitlines() if x.startswith("  _conv_head "))  # the arch's lines are indented
    assert json.loads(line.split(None, 1)[1]) == {"op": "gated", "gate": "w", "threshold": 0.0257,
                                                  "reference": "running", "fraction": 0.396, "inner": "full"}
    code, out, _ = _run(capsys, "info", "--json", "--size", "64x128", "--arch", arch, "--arch-format", "fields")
    head = next(r for r in json.loads(out)["layers"] if r["layer"] == "_conv_head")
    assert head["op"]["threshold"] == 0.0257


def test_evaluate_phases_of_a_gated_run_folder_keep_every_clip(capsys, tmp_path, lite0):
    from deltanas.delta import convert
    from deltanas.export import export_model

    export_model(convert(lite0, "gated:w0.05:run(full)", input_hw=(64, 128)), tmp_path / "run")
    small = [*SMALL[:2], "carphone", *SMALL[2:]]  # two clips
    code, out, err = _run(capsys, "evaluate", tmp_path / "run", "--phases", "4", "--json", "--no-progress", *small)
    assert code == 0, err
    report = json.loads(out)
    assert list(report["per_clip"]) == ["bikes", "carphone"]
    assert sum(c["frames"] for c in report["per_clip"].values()) == report["pooled"]["frames"] > 0
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["per_clip"] == report["per_clip"]


def test_evaluate_full_is_exact_and_zero_is_reuse(capsys):
    code, out, _ = _run(capsys, "evaluate", "--arch", "full", "--json", "--no-progress", *SMALL)
    assert code == 0
    full = json.loads(out)["pooled"]
    assert full["top1"] == 1.0 and full["fidelity"] == pytest.approx(1.0, abs=1e-6)
    code, out, _ = _run(capsys, "evaluate", "--arch", "zero", "--json", "--no-progress", *SMALL)
    zero = json.loads(out)
    assert zero["pooled"]["fidelity"] == pytest.approx(0.0, abs=1e-5)  # float32 batch vs single frame
    assert zero["speedup"] > 3
    code, out, _ = _run(capsys, "evaluate", "--arch", "zero", "--json", "--no-progress", "--phases", "4", *SMALL)
    phased = json.loads(out)  # 12 held-out frames: each after the first is a delta frame in 3 of the 4 phases
    assert code == 0 and phased["keyframes"]["phases"] == 4 and phased["pooled"]["frames"] == 3 * 11
    assert phased["pooled"]["fidelity"] == pytest.approx(0.0, abs=1e-5)
    code, out, _ = _run(capsys, "evaluate", "--arch", "zero", "--no-progress", "--phases", "4", *SMALL)
    assert code == 0 and "K=4, pooled over 4 key-frame phases" in out and "(33 delta frames)" in out
    code, _, err = _run(capsys, "evaluate", "--arch", "zero", "--adaptive", "--phases", "2", *SMALL)
    assert code == 2 and "--phases" in err


def test_evaluate_adaptive_key_frames_keep_the_key_budget(capsys):
    code, out, _ = _run(capsys, "evaluate", "--arch", "zero", "--json", "--no-progress", "--adaptive", *SMALL)
    assert code == 0
    report = json.loads(out)
    keys = report["keyframes"]
    assert keys["policy"] == "adaptive" and keys["max_interval"] == 8
    # bikes' held-out part (12 frames at K=4): calibrated on the training split and held to a key rate
    # of 1/4 (two in reserve), and the MACs are those of the key frames actually spent
    assert keys["frames"] == 12 and 1 <= keys["key_frames"] <= 12 // 4 + 2
    teacher = report["teacher_macs"]
    expected = (keys["key_frames"] * teacher + (keys["frames"] - keys["key_frames"]) * report["delta_macs"])
    assert report["macs_per_frame"] == pytest.approx(expected / keys["frames"])
    code, _, err = _run(capsys, "evaluate", "--arch", "zero", "--max-interval", "8", *SMALL)
    assert code == 2 and "--adaptive" in err


def test_train_then_evaluate_then_export(tmp_path, capsys):
    code, out, err = _run(capsys, "train", "--arch", "uniform:lowrank:0.5", "--steps", "3", "--name", "t",
                          "--runs-dir", tmp_path, "--no-progress", *SMALL)
    assert code == 0, err
    assert "held-out: top-1" in out
    code, out, _ = _run(capsys, "evaluate", tmp_path / "t", "--no-progress", *SMALL)
    assert code == 0 and "fidelity" in out and (tmp_path / "t" / "eval.json").is_file()
    code, _, _ = _run(capsys, "export", tmp_path / "t", "--out", tmp_path / "exp")
    assert code == 0
    assert json.loads((tmp_path / "exp" / "arch.json").read_text())["teacher"] == "efficientnet_lite0"
    # the same run name again is refused (nothing overwritten)
    code, _, err = _run(capsys, "train", "--steps", "1", "--name", "t", "--runs-dir", tmp_path, *SMALL)
    assert code == 2 and "exists already" in err


def test_run_streams_a_video(capsys, tmp_path):
    code, out, _ = _run(capsys, "run", "bikes", "--arch", "full", "--max-frames", "9", "--size", "64x128",
                        "--keyframe", "4", "--csv", tmp_path / "f.csv")
    assert code == 0
    assert "9 frames, 3 key frames" in out and "agreement on the delta frames: top-1 100.0%" in out
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 10


def test_run_reports_the_macs_a_threshold_gate_spent(capsys):
    """`gated:t0(full)` updates every position that changed (on real footage: nearly all), whatever its
    analytic default fraction (0.25) says: the report is what it spent."""
    code, out, _ = _run(capsys, "run", "bikes", "--arch", "gated:t0(full)", "--max-frames", "9", "--size", "64x128",
                        "--keyframe", "4")
    assert code == 0
    speedup = float(out.split("M (")[1].split("x fewer)")[0])
    assert speedup < 1.1  # analytic: about 3x


def test_run_online_holds_a_target_and_writes_its_accounting(capsys, tmp_path):
    code, out, _ = _run(capsys, "run", "asl-book", "bikes", "--online", "--target-fidelity", "0.9", "--check",
                        "--max-frames", "40", "--size", "64x128", "--cost", "macs", "--out", tmp_path / "on",
                        "--no-progress")
    assert code == 0
    assert "80 frames" in out and "at scene cuts" in out and "against the teacher on every frame" in out
    summary = json.loads((tmp_path / "on" / "summary.json").read_text())
    assert summary["frames"] == 80 and summary["target"] == {"fidelity": 0.9} and summary["checks"] > 0
    assert (tmp_path / "on" / "online.png").is_file() and (tmp_path / "on" / "log.txt").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--out", "x"], "only with --online"),
    (["--online", "--engine", "reference"], "sparse engine"),
    (["--online", "--target-fidelity", "0.9", "--target-top1", "0.9"], "one target"),
    (["--online", "--min-interval", "9", "--max-interval", "4"], "min_interval"),
    (["--online", "--train-steps", "2"], "no trainable students"),
])
def test_run_online_misuse_gets_one_clear_line(capsys, argv, message):
    code, _, err = _run(capsys, "run", "bikes", "--size", "64x128", "--max-frames", "4", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def _write_corrupt(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    return path


@pytest.mark.parametrize("case", ["missing-video", "corrupt-video", "unknown-teacher", "bad-arch-json",
                                  "unknown-op", "arch-unknown-layer", "bad-space-yaml", "arch-does-not-fit"])
def test_bad_input_gets_one_clear_line(case, tmp_path, capsys):
    argv = {
        "missing-video": ["run", tmp_path / "nope.mp4"],
        "corrupt-video": ["run", _write_corrupt(tmp_path / "bad.mp4")],
        "unknown-teacher": ["info", "--teacher", "resnet9000"],
        "bad-arch-json": ["info", "--arch", tmp_path / "a.json"],
        "unknown-op": ["info", "--arch", "uniform:squeeze:2"],
        "arch-unknown-layer": ["info", "--arch", tmp_path / "b.json"],
        "bad-space-yaml": ["info", "--space", tmp_path / "s.yaml"],
        "arch-does-not-fit": ["info", "--arch", tmp_path / "c.json"],
    }[case]
    (tmp_path / "a.json").write_text("{\"layers\": ")
    (tmp_path / "b.json").write_text(json.dumps({"layers": {"_blocks.99._conv": "zero"}}))
    (tmp_path / "c.json").write_text(json.dumps({"layers": {"_blocks.1._depthwise_conv": "lowrank:0.5"}}))
    (tmp_path / "s.yaml").write_text("candidates: [full, zero\n")
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    expected = {"missing-video": "nope.mp4", "corrupt-video": "bad.mp4", "unknown-teacher": "resnet9000",
                "bad-arch-json": "malformed JSON", "unknown-op": "squeeze",
                "arch-unknown-layer": "_blocks.99._conv", "bad-space-yaml": "malformed YAML",
                "arch-does-not-fit": "does not fit"}[case]
    assert expected in lines[0]


def test_video_formats_run_the_same_way(tmp_path, capsys):
    """A user's own video file and a frame folder stream like the bundled clips."""
    from PIL import Image

    from deltanas.video import read_frames

    frames = read_frames("bikes", (64, 128), max_frames=6).permute(0, 2, 3, 1).numpy()
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{i}.png")
    with av.open(str(tmp_path / "clip.avi"), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    for source in (folder, tmp_path / "clip.avi"):
        code, out, err = _run(capsys, "run", source, "--arch", "zero", "--size", "64x128", "--keyframe", "3")
        assert code == 0, err
        assert "6 frames, 2 key frames" in out
