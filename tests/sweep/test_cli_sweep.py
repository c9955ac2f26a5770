"""The verbs end to end on the real teacher and the real `bikes` clip at tiny size:
baselines -> sweep (one real trial) -> pareto."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deltanas.cli import main

SMALL = ["--videos", "bikes", "--max-frames", "48", "--eval-size", "64x128", "--keyframe", "4"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_baselines_sweep_and_pareto(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, out, err = _run(capsys, "baselines", *SMALL, "--steps", "2", "--designs", "lowrank:0.25", "subsample(full)",
                          "--name", "base", "--runs-dir", runs, "--no-progress", "--threads", "1")
    assert code == 0, err
    points = pd.read_csv(runs / "base" / "points.csv")
    assert list(points["design"]) == ["full", "zero", "lowrank:0.25", "subsample(full)"]
    assert list(points["family"]) == ["teacher", "manual", "manual", "manual"]
    teacher = points.iloc[0]
    assert teacher["macs_per_frame"] == teacher["teacher_macs"] and teacher["top1"] == 1.0
    assert (points["macs_per_frame"][1:] < teacher["macs_per_frame"]).all()
    assert points.loc[1, "fidelity"] == 0.0 or abs(points.loc[1, "fidelity"]) < 1e-5  # zero = reuse
    trained = runs / "base" / "uniform-lowrank-0.25"
    assert json.loads((trained / "summary.json").read_text())["steps"] == 2
    assert json.loads((trained / "summary.json").read_text())["kind"] == "train"
    assert points.loc[2, "run"] == "uniform-lowrank-0.25"

    # resuming skips what is done; --designs adds a design
    code, out, err = _run(capsys, "baselines", *SMALL, "--steps", "2", "--designs", "subsample(lowrank:0.25)",
                          "--name", "base", "--runs-dir", runs, "--resume", "--no-progress")
    assert code == 0, err
    again = pd.read_csv(runs / "base" / "points.csv")
    assert list(again["design"]) == list(points["design"]) + ["subsample(lowrank:0.25)"]
    pd.testing.assert_frame_equal(again.iloc[:4], points)
    code, _, err = _run(capsys, "baselines", *SMALL, "--steps", "3", "--name", "base", "--runs-dir", runs, "--resume")
    assert code == 2 and "steps differ" in err

    code, out, err = _run(capsys, "sweep", *SMALL, "--steps", "2", "--trials", "1", "--granularity", "block",
                          "--name", "sw", "--runs-dir", runs, "--no-progress", "--threads", "1")
    assert code == 0, err
    assert "1 complete trials" in out
    assert (runs / "sw" / "trials" / "00000" / "summary.json").is_file()
    summaries = {n: json.loads((runs / n / "summary.json").read_text()) for n in ("base", "sw")}
    assert summaries["base"]["kind"] == "baselines" and summaries["base"]["designs"] == 5
    assert summaries["base"]["teacher_macs"] == teacher["teacher_macs"]
    assert summaries["sw"]["kind"] == "sweep" and summaries["sw"]["complete"] == 1
    assert summaries["sw"]["teacher_macs"] == pytest.approx(teacher["teacher_macs"])

    out_dir = tmp_path / "pareto"
    code, out, err = _run(capsys, "pareto", runs / "base", runs / "sw", "--out", out_dir, "--metric", "fidelity")
    assert code == 0, err
    front = pd.read_csv(out_dir / "pareto.csv")
    assert sorted(set(front["family"])) == ["manual", "optuna", "teacher"] and len(front) == 6
    assert front["on_front"].any() and bool(front.loc[front["family"] == "teacher", "on_front"].iloc[0])
    assert (out_dir / "pareto.png").stat().st_size > 1000 and (out_dir / "pareto.svg").is_file()
    info = json.loads((out_dir / "pareto.json").read_text())
    assert info["reference"]["macs_per_frame"] == teacher["teacher_macs"] and info["hypervolume"] >= 0
    code, _, err = _run(capsys, "pareto", runs / "base", "--out", out_dir, "--ref", "1.0x", "high")
    assert code == 2 and "--ref METRIC must be a number" in err


def test_skipconv_family_in_baselines(tmp_path, capsys):
    """`--skipconv` adds the gated teacher copies; they land in points.csv as their own family."""
    import csv

    from deltanas.cli import main
    from deltanas.sweep._baselines import design_family

    assert design_family("gated:p0.25(full)") == "skipconv" and design_family("lowrank:0.5") == "manual"
    code = main(["baselines", "--designs", "lowrank:0.5", "--skipconv", "--steps", "1", "--name", "b",
                 "--runs-dir", str(tmp_path), "--videos", "bikes", "--max-frames", "40", "--eval-size", "32x64",
                 "--frame-size", "40x72", "--crop", "32x64", "--keyframe", "4", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / "b" / "points.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    families = {r["design"]: r["family"] for r in rows}
    assert families["full"] == "teacher" and families["lowrank:0.5"] == "manual"
    assert families["gated:p0.25(full)"] == "skipconv" and families["gated:t2(full)"] == "skipconv"
    assert families["gated:w0.03:run(full)"] == "skipconv"
