"""A user teacher's weight file travels with an export: export -> load -> export is identical."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from deltanas.delta import Arch, convert
from deltanas.errors import ArchError, ConfigError
from deltanas.export import build_from_config, export_model, load_model, student_state
from deltanas.teachers import create_teacher
from tests._nets import TinyResNet, TinyUNet, seeded

HW = (32, 32)


def _weights(tmp_path, net, name: str):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("spec,net,file", [
    ("tests._nets:build_resnet", TinyResNet(), "resnet.pth"),
    ("tests._nets:build_unet", TinyUNet(), "unet.safetensors"),
])
def test_export_records_the_weights_and_load_model_rebuilds_the_same_model(tmp_path, spec, net, file):
    path = _weights(tmp_path, seeded(net, seed=11), file)
    teacher = create_teacher(spec, weights=path)  # (input_size, mean, std are not recorded: defaults here)
    model = convert(teacher, "uniform:lowrank:0.25", input_hw=HW)
    with torch.no_grad():  # students that differ from their teacher-derived start
        for p in model.student_parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    first = export_model(model, tmp_path / "a")
    arch = json.loads((first / "arch.json").read_text())
    assert arch["teacher"] == spec and arch["teacher_weights"] == str(path.resolve())

    loaded = load_model(first)
    assert loaded.teacher.info == teacher.info
    for key, value in student_state(model).items():
        assert torch.equal(student_state(loaded)[key], value), key
    x = torch.rand(1, 3, 3, *HW, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        assert torch.equal(loaded.forward_group(x), model.forward_group(x))
        assert torch.equal(loaded.teacher(x[0]), teacher(x[0]))  # the file's teacher weights, not the factory's

    second = export_model(loaded, tmp_path / "b")
    assert (second / "arch.json").read_text() == (first / "arch.json").read_text()
    assert (second / "students.safetensors").read_bytes() == (first / "students.safetensors").read_bytes()


def test_a_moved_weight_file_is_reported_on_load(tmp_path):
    path = _weights(tmp_path, seeded(TinyResNet(), seed=3), "resnet.safetensors")
    export_model(convert(create_teacher("tests._nets:build_resnet", weights=path), "full", input_hw=HW),
                 tmp_path / "export")
    path.unlink()
    with pytest.raises(ConfigError, match="no such weights file") as info:
        load_model(tmp_path / "export")
    assert "\n" not in str(info.value)


def test_build_from_config_passes_teacher_weights(tmp_path):
    weights = seeded(TinyResNet(), seed=4)
    path = _weights(tmp_path, weights, "resnet.pt")
    model = build_from_config({"teacher": "tests._nets:build_resnet", "teacher_weights": str(path), "default": "zero"})
    x = torch.rand(2, 3, *HW, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(model.teacher(x), weights(x))


def test_arch_writes_teacher_weights_only_when_set():
    plain = Arch.uniform("lowrank:0.25", teacher="efficientnet_lite0")
    assert "teacher_weights" not in plain.to_dict()  # files of registered teachers stay as they were
    assert Arch.from_dict(plain.to_dict()) == plain
    user = Arch(default="zero", teacher="pkg.models:build", teacher_weights="/w/net.safetensors")
    assert user.to_dict()["teacher_weights"] == "/w/net.safetensors"
    assert Arch.from_dict(user.to_dict()) == user
    assert user.explicit({}).teacher_weights == "/w/net.safetensors"
    assert Arch.from_dict(json.loads(json.dumps(user.to_dict()))).teacher_weights == "/w/net.safetensors"
    with pytest.raises(ArchError, match="teacher_weights"):
        Arch.from_dict({"teacher": "pkg.models:build", "teacher_weights": 3})
