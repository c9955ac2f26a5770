"""``--teacher module:function --teacher-weights FILE`` on the command line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from deltanas.cli import build_parser, main
from tests._nets import TinyResNet, TinyUNet, seeded

RESNET = "tests._nets:build_resnet"
UNET = "tests._nets:build_unet"
SMALL = ["--videos", "bikes", "--max-frames", "48", "--eval-size", "32x64", "--keyframe", "4",
         "--frame-size", "40x72", "--crop", "32x64"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def resnet_file(tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file(seeded(TinyResNet(), seed=21).state_dict(), str(path))
    return path


def test_every_verb_with_teacher_takes_teacher_weights():
    verbs = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    with_teacher = {name for name, p in verbs.items() if "--teacher" in p._option_string_actions}
    assert {"info", "train", "evaluate", "compare", "run", "search", "baselines", "bench"} <= with_teacher
    for name in with_teacher - {"sweep"}:  # sweep's workers rebuild a registered teacher by name
        action = verbs[name]._option_string_actions["--teacher"]
        assert "module:function" in action.help and "mobilenet_v2" in action.help, name
        assert "--teacher-weights" in verbs[name]._option_string_actions, name


def test_info_on_a_user_classifier(capsys, resnet_file):
    code, out, err = _run(capsys, "info", "--json", "--teacher", RESNET, "--teacher-weights", resnet_file,
                          "--size", "64x96", "--arch", "uniform:lowrank:0.25")
    assert code == 0, err
    info = json.loads(out)
    assert info["teacher"] == RESNET
    assert [r["layer"] for r in info["layers"]] == [
        "features.conv1", "features.layer1.conv1", "features.layer1.conv2", "features.layer2.downsample.0",
        "features.layer2.conv1", "features.layer2.conv2"]
    head = info["layers"][-1]
    assert head["teacher_macs"] == 8 * 12 * 16 * 16 * 9  # 64x96 input -> 8x12 last map
    totals = info["totals"]
    assert totals["linear_macs"] == 16 * 10 and totals["delta_macs"] < totals["teacher_macs"]


def test_bad_teacher_options_give_one_line(capsys, tmp_path):
    code, out, err = _run(capsys, "info", "--teacher", RESNET, "--teacher-weights", tmp_path / "nope.pth")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "deltanas info: error: " in err and "nope.pth: no such weights file" in err
    code, _, err = _run(capsys, "info", "--teacher", "tests._nets:build_vgg")
    assert code == 2 and "has no function 'build_vgg'" in err
    code, _, err = _run(capsys, "info", "--teacher", "efficientnet_lite0", "--teacher-weights", tmp_path / "w.pth")
    assert code == 2 and "takes no argument(s) ['weights']" in err


def test_run_streams_a_dense_user_network(capsys, tmp_path):
    path = tmp_path / "unet.pth"
    torch.save(seeded(TinyUNet(), seed=22).state_dict(), path)
    code, out, err = _run(capsys, "run", "bikes", "--teacher", UNET, "--teacher-weights", path, "--arch", "full",
                          "--size", "32x48", "--max-frames", "8", "--keyframe", "4")
    assert code == 0, err
    assert "8 frames, 2 key frames" in out and "agreement on the delta frames: top-1 100.0%" in out


def test_train_then_evaluate_the_run_folder_finds_the_weights_again(capsys, tmp_path, resnet_file):
    code, out, err = _run(capsys, "train", "--teacher", RESNET, "--teacher-weights", resnet_file, "--steps", "2",
                          "--arch", "uniform:lowrank:0.25", "--runs-dir", tmp_path, "--name", "user",
                          "--no-progress", *SMALL)
    assert code == 0, err
    arch = json.loads((tmp_path / "user" / "arch.json").read_text())
    assert arch["teacher"] == RESNET and arch["teacher_weights"] == str(resnet_file.resolve())
    code, out, err = _run(capsys, "evaluate", tmp_path / "user", "--json", "--no-progress", *SMALL)
    assert code == 0, err
    assert 0 <= json.loads(out)["pooled"]["top1"] <= 1
