"""`deltanas search` on the real teacher and a real clip, at a tiny size."""

import json

import pytest

from deltanas.cli import main

TINY = ["--videos", "bikes", "--max-frames", "48", "--eval-size", "64x128", "--frame-size", "72x128",
        "--crop", "64x112", "--keyframe", "4", "--no-progress", "--threads", "1"]


def test_search_on_the_real_teacher(tmp_path, capsys):
    code = main(["search", "--target", "0.3x", "--hard", "--steps", "3", "--warmup-steps", "1",
                 "--finetune-steps", "2", "--adaptive-eval", "--select-metric", "dense", "--name", "s",
                 "--runs-dir", str(tmp_path), *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "searched:" in out and "(key-frame reuse " in out
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert 0.97 <= summary["delta_over_target"] <= 1.0
    assert len(summary["layers"]) == 49 and summary["test"]["frames"] > 0
    adaptive = summary["test_adaptive"]  # the same model with adaptive key frames at the key budget of K=4
    assert adaptive["key_frames"] <= adaptive["frames"] // 4 + 2 and adaptive["pooled"]["frames"] > 0
    assert "adaptive key frames" in out
    selection = json.loads((tmp_path / "s" / "selection.json").read_text())
    assert selection["metric"] == "dense" and selection["chosen"] == summary["chosen"]
    assert selection["dense"][selection["chosen"]] == max(selection["dense"].values())
    arch = json.loads((tmp_path / "s" / "arch.json").read_text())
    assert arch["teacher"] == "efficientnet_lite0" and len(arch["layers"]) == 49
    # the exported architecture evaluates like any other
    assert main(["evaluate", str(tmp_path / "s"), "--json", *TINY[:-2]]) == 0


@pytest.mark.parametrize("argv,match", [
    (["--target", "1.5x"], "above the teacher"),
    (["--target", "0.0001x"], "below the cheapest"),
    (["--target", "lots"], "bad MAC target"),
    (["--target-frame", "0.05x"], "key frame's own share"),
])
def test_bad_budgets_are_refused_before_training(tmp_path, capsys, argv, match):
    code = main(["search", *argv, "--name", "x", "--runs-dir", str(tmp_path), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0]
    assert not (tmp_path / "x" / "search_metrics.csv").exists()
