"""Online streams on the real teacher and clips: the checks are exact, the controller follows the footage,
online training lowers the checks' error, and the accounting adds up."""

from __future__ import annotations

import json

import pytest
import torch

from deltanas.delta import convert
from deltanas.engine import SparseEngine
from deltanas.online import OnlineConfig, OnlineTrainer, run_online, window_fidelity
from deltanas.video import read_frames

SIZE = (64, 128)


def _frames(name: str, n: int) -> torch.Tensor:
    return read_frames(name, SIZE, max_frames=n).float().div(255)


def _engine(model):
    return SparseEngine(model, keyframes="torch")


def test_a_frozen_scene_grows_the_interval_to_its_maximum(lite0):
    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    frozen = _frames("bottle-detection", 1).expand(200, -1, -1, -1)
    report = run_online(model, frozen, OnlineConfig(max_interval=32, cost="macs"), engine=_engine(model))
    assert report.rows[-1]["interval"] == 32
    assert all(r["check_err"] == 0.0 for r in report.rows if r["check_err"] != "")
    assert report.macs_per_frame < report.teacher_macs / 8  # the delta frames of a frozen scene cost nothing


def test_from_static_to_moving_footage_the_interval_shortens_and_the_gates_refine(lite0):
    """A camera that sees nothing move (the clip's first frame, held) lets both knobs grow; when the clip
    starts to move (no cut: the checks alone must see the change), both come down."""
    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    moving = _frames("carphone", 150)
    static = moving[:1].expand(330, -1, -1, -1)
    report = run_online(model, torch.cat([static, moving]), OnlineConfig(cut_threshold=100.0, cost="macs"),
                        engine=_engine(model))
    at_switch, after = report.rows[len(static)], report.rows[len(static):]
    assert at_switch["interval"] == 64 and at_switch["gate_scale"] > 1
    assert min(r["interval"] for r in after) < at_switch["interval"]
    assert min(r["gate_scale"] for r in after) < at_switch["gate_scale"]
    assert any(r["event"] in ("shrink", "fallback") for r in after)


def test_a_cut_forces_a_key_frame_at_once_and_an_exact_probe_follows(lite0):
    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    stream = torch.cat([_frames("bottle-detection", 10), _frames("bikes", 5)])
    report = run_online(model, stream, OnlineConfig(cost="macs"), engine=_engine(model), evaluate=True)
    assert all(r["probe"] for r in report.rows[1:8])  # the stream starts with a probe
    row, after = report.rows[10], [r for r in report.rows[11:] if not r["key"]]
    assert row["key"] == 1 and row["cut"] == 1 and row["event"] == "cut" and row["check_err"] == ""
    assert "cut" in " ".join(report.log)
    assert all(r["probe"] and r["sq_err"] < 1e-6 for r in after)  # the new scene's group runs in the shadow
    assert all(r["macs"] > report.teacher_macs for r in after)  # both paths ran and count


def test_the_checks_error_is_the_error_against_a_separate_teacher_pass(lite0):
    """A key-referenced student (no gate scale): the check at key frame i against the key frame j before it is
    the delta model's output for i from j, compared with the teacher's."""
    model = convert(lite0, "uniform:lowrank:0.25", input_hw=SIZE)
    frames = _frames("carphone", 40)
    # no probes: they would hand an untrained student over to the teacher alone, leaving no checks
    report = run_online(model, frames, OnlineConfig(max_interval=8, cost="macs", probes=False), engine=_engine(model),
                        evaluate=True)
    keys = [r["frame"] for r in report.rows if r["key"]]
    checked = [r for r in report.rows if r["check_err"] != ""]
    assert len(checked) >= 3
    teacher = model.teacher
    with torch.no_grad():
        for r in checked:
            i = r["frame"]
            j = max(k for k in keys if k < i)
            model.key_frame(frames[j:j + 1])
            out = teacher.logits_from_features(model.delta_frames(frames[i:i + 1]))
            y, y_key = (teacher.logits_from_features(model.teacher_forward(frames[k:k + 1])) for k in (i, j))
            model.clear_cache()
            assert r["check_err"] == pytest.approx(float((out - y).pow(2).sum()), rel=1e-3, abs=1e-6)
            assert r["check_change"] == pytest.approx(float((y - y_key).pow(2).sum()), rel=1e-3, abs=1e-6)
    # the evaluation columns pool into the fidelity of the summary
    s = report.summary()
    err = sum(r["sq_err"] for r in report.rows)
    change = sum(r["sq_teacher_change"] for r in report.rows)
    assert s["fidelity"] == pytest.approx(1 - err / change)
    assert window_fidelity(report.rows, 20)[0] == pytest.approx(
        1 - sum(r["sq_err"] for r in report.rows[:20]) / sum(r["sq_teacher_change"] for r in report.rows[:20]))


def test_online_training_lowers_the_checks_error_and_counts_its_cost(lite0):
    frames = _frames("asl-book", 60)
    config = OnlineConfig(min_interval=4, start_interval=4, max_interval=4, cost="macs", probes=False)
    errors = {}
    for steps in (0, 3):
        torch.manual_seed(0)
        model = convert(lite0, "uniform:lowrank:0.25", input_hw=SIZE)
        trainer = OnlineTrainer(model, steps, lr=1e-3) if steps else None
        report = run_online(model, frames, config, engine=_engine(model), trainer=trainer)
        late = [r for r in report.rows[30:] if r["check_err"] != ""]
        errors[steps] = sum(r["check_err"] for r in late) / sum(r["check_change"] for r in late)
        trained = sum(r["train_steps"] for r in report.rows)
        assert trained == (3 * (report.key_frames - 1) if steps else 0)
        if steps:
            assert report.summary()["train_steps"] == trained
            key_macs = [r["macs"] for r in report.rows if r["key"] and r["train_steps"]]
            assert min(key_macs) > report.teacher_macs * 10  # the training's passes are in the cost
    assert errors[3] < 0.92 * errors[0]  # measured 0.87 of it


def test_a_model_without_students_cannot_train_online(lite0):
    from deltanas.errors import ConfigError

    with pytest.raises(ConfigError, match="no trainable students"):
        OnlineTrainer(convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE))


def test_the_report_writes_its_files(lite0, tmp_path):
    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    report = run_online(model, _frames("bikes", 20), OnlineConfig(cost="macs"), engine=_engine(model),
                        evaluate=True)
    paths = report.write(tmp_path / "out")
    names = {p.name for p in paths}
    assert {"frames.csv", "summary.json", "log.txt", "online.png", "online.svg"} <= names
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 20 and summary["key_frames"] == report.key_frames
    lines = (tmp_path / "out" / "frames.csv").read_text().splitlines()
    assert len(lines) == 21 and "sq_teacher_change" in lines[0]
    assert sum(float(line.split(",")[lines[0].split(",").index("macs")]) for line in lines[1:]) == \
        pytest.approx(report.macs_per_frame * 20, rel=1e-5)
