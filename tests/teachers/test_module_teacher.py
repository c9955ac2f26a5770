"""Any user CNN as a teacher: ``create_teacher("module:function", weights=FILE)``."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import fx, nn

from deltanas.delta import convert
from deltanas.teachers import ModuleTeacher, Teacher, create_teacher
from tests._nets import TinyResNet, TinyUNet, build_resnet, build_unet, seeded

from tests.teachers import _user_models

RESNET = "tests._nets:build_resnet"
UNET = "tests._nets:build_unet"
HW = (32, 48)


def frames(n: int, seed: int, hw=HW) -> torch.Tensor:
    return torch.rand(n, 3, *hw, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["safetensors", "pth"])
def resnet_weights(request, tmp_path):
    """Weights of another seed than the factory's, so a test sees whether they were loaded."""
    net = seeded(TinyResNet(), seed=7)
    path = tmp_path / f"resnet.{request.param}"
    if request.param == "safetensors":
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    else:
        torch.save(net.state_dict(), path)
    return net, path


def test_a_classifier_loads_its_weights_and_gives_the_modules_logits_exactly(resnet_weights):
    net, path = resnet_weights
    teacher = create_teacher(RESNET, weights=path)
    assert isinstance(teacher, ModuleTeacher) and isinstance(teacher, Teacher) and not teacher.is_dense
    x = frames(3, seed=1)
    with torch.no_grad():
        logits = teacher(x)
        assert torch.equal(logits, net(x))
        assert not torch.allclose(logits, build_resnet()(x), atol=1e-3)  # the file's weights, not the factory's
        features = teacher.forward_features(teacher.normalize(x))
    assert features.shape == (3, 16, 4, 6)  # stride 8: stem, maxpool, strided block
    info = teacher.info
    assert info.name == RESNET and info.num_classes == 10 and info.input_size == (224, 224)
    assert info.weights == str(path.resolve()) and RESNET in info.source and str(path.resolve()) in info.source
    assert not any(m.training for m in teacher.modules()) and not any(p.requires_grad for p in teacher.parameters())


def test_the_classifier_halves_are_graph_modules_that_trace_again():
    teacher = create_teacher(RESNET)
    for part in (teacher.features, teacher.pool, teacher.head):
        assert isinstance(part, fx.GraphModule)
        fx.symbolic_trace(part)  # the rest of deltanas may trace them again
    assert [n for n, m in teacher.features.named_modules() if isinstance(m, nn.Conv2d)] == [
        "conv1", "layer1.conv1", "layer1.conv2", "layer2.downsample.0", "layer2.conv1", "layer2.conv2"]
    assert not any(isinstance(m, nn.Conv2d) for m in teacher.head.modules())
    assert any(isinstance(m, nn.Linear) for m in teacher.head.modules())
    fx.symbolic_trace(teacher)  # the whole teacher as well


def test_classify_applies_the_linear_layers_to_pooled_features_and_at_every_position():
    teacher, net = create_teacher(RESNET), build_resnet()
    x = frames(2, seed=2)
    with torch.no_grad():
        features = teacher.forward_features(x)
        pooled = features.mean(dim=(2, 3))
        torch.testing.assert_close(teacher.classify(pooled), net.fc(pooled))
        dense = teacher.dense_logits(x)
        assert dense.shape == (2, 10, 4, 6)
        torch.testing.assert_close(dense[:, :, 1, 2], net.fc(features[:, :, 1, 2]))
        torch.testing.assert_close(dense.mean(dim=(2, 3)), teacher(x), rtol=1e-5, atol=1e-5)  # linear head


@pytest.mark.parametrize("pool", _user_models.POOLS)
def test_every_spelling_of_the_last_global_pool_is_the_split_point(pool):
    spec = f"tests.teachers._user_models:pool_{pool}"
    teacher, net = create_teacher(spec, input_size=(16, 16)), getattr(_user_models, f"pool_{pool}")()
    x = frames(2, seed=3, hw=(16, 24))
    with torch.no_grad():
        assert torch.equal(teacher(x), net(x))
        features = teacher.forward_features(x)
    # split after conv2 (12 channels), not at the squeeze-excite pool inside the features
    assert features.shape == (2, 12, 8, 12)
    assert teacher.info.num_classes == 6 and teacher.info.input_size == (16, 16)
    assert [n for n, m in teacher.features.named_modules() if isinstance(m, nn.Conv2d)] == ["conv1", "conv2"]


def test_a_dense_network_gives_per_pixel_class_maps(tmp_path):
    net = seeded(TinyUNet(), seed=9)
    path = tmp_path / "unet.safetensors"
    save_file(net.state_dict(), str(path))
    teacher = create_teacher(UNET, weights=path, input_size=(32, 32))
    assert teacher.is_dense and teacher.info.num_classes == 5 and teacher.info.input_size == (32, 32)
    x = frames(2, seed=4)
    with torch.no_grad():
        maps = net(x)
        assert maps.shape == (2, 5, *HW)
        features = teacher.forward_features(teacher.normalize(x))
        assert torch.equal(features, maps)
        assert torch.equal(teacher.dense_logits(x), maps)  # channel c = class c at every pixel
        assert torch.equal(teacher(x), maps.mean(dim=(2, 3)))
        assert torch.equal(teacher.classify(maps[:, :, 0, 0]), maps[:, :, 0, 0])
        assert not torch.allclose(teacher(x), build_unet()(x).mean(dim=(2, 3)), atol=1e-3)


def test_mean_and_std_normalise_before_the_module():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    teacher, net = create_teacher(RESNET, mean=mean, std=std), build_resnet()
    x = frames(2, seed=5)
    expected = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), expected)
    assert teacher.info.mean == mean and teacher.info.std == std


@pytest.mark.parametrize("spec,arch", [(RESNET, "uniform:lowrank:0.25"), (UNET, "uniform:lowrank:0.25")])
def test_convert_wraps_every_user_convolution(spec, arch):
    teacher = create_teacher(spec, input_size=HW)
    expected = sum(isinstance(m, nn.Conv2d) for m in teacher.modules())
    full, low = convert(teacher, "uniform:full"), convert(teacher, arch)
    assert len(full.delta_layers()) == len(full.layers) == expected == len(low.layers)
    x = frames(6, seed=6).view(2, 3, 3, *HW)
    with torch.no_grad():
        reference = teacher.forward_features(x.flatten(0, 1))
        assert torch.equal(full.teacher_forward(x.flatten(0, 1)), reference)
        torch.testing.assert_close(full.forward_group(x).flatten(0, 1), reference, rtol=1e-4, atol=1e-4)
        out = low.forward_group(x)
    assert out.shape == (2, 3, *reference.shape[1:]) and torch.isfinite(out).all()
    assert low.cost(HW).delta_macs < low.cost(HW).teacher_macs
