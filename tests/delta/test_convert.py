"""convert(): delta models of a tiny synthetic network and of the real EfficientNet-Lite0 teacher."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from deltanas.delta import (Arch, CostReport, DeltaConv, DeltaModel, KeyframePolicy, LayerCost, convert, stream,
                            trace_layers)
from deltanas.errors import ArchError, ConfigError
from deltanas.teachers import create_teacher

from ._helpers import TinyNet, TwiceNet, rand, tiny_net

with warnings.catch_warnings():  # fvcore scripts a function at import time (deprecated API)
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis

HW = (20, 28)
MIXED = {"stem": "full", "dw": "zero", "grouped": "lowrank:0.5", "down": "subsample(full)", "pw": "channel:2"}


def frames(b: int, t: int, seed: int, hw=HW) -> torch.Tensor:
    return rand(b, t, 3, *hw, seed=seed)


def plain(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The plain network frame by frame, as (B, T, ...)."""
    with torch.no_grad():
        out = torch.stack([net(x[:, i]) for i in range(x.shape[1])], dim=1)
    return out


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    scale = expected.abs().max().clamp_min(1e-6)
    torch.testing.assert_close(actual, expected, rtol=0, atol=tol * float(scale))


# -- tiny network -----------------------------------------------------------------------------

def test_full_forward_group_equals_the_plain_network():
    net = tiny_net()
    model = convert(net, "full", input_hw=HW)
    x = frames(2, 4, seed=1)
    with torch.no_grad():
        out = model.forward_group(x)
        assert out.shape == (2, 4, 5)
        assert_close_scaled(out, plain(net, x), 1e-5)
        assert_close_scaled(model.teacher_forward(x.flatten(0, 1)), plain(net, x).flatten(0, 1), 1e-6)


def test_full_runs_at_another_resolution_than_traced():
    net = tiny_net()
    model = convert(net, "full", input_hw=HW)
    x = frames(1, 3, seed=2, hw=(33, 17))
    with torch.no_grad():
        assert_close_scaled(model.forward_group(x), plain(net, x), 1e-5)


def test_zero_gives_every_frame_its_key_frames_output():
    net = tiny_net()
    model = convert(net, "zero", input_hw=HW)
    x = frames(2, 3, seed=3)
    with torch.no_grad():
        out = model.forward_group(x)
    reference = plain(net, x)
    assert not torch.allclose(reference[:, 1], reference[:, 0], atol=1e-3)  # frames do differ
    for t in range(3):
        torch.testing.assert_close(out[:, t], reference[:, 0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", ["lowrank:0.25", "subsample(full)", "channel:2", "depthwise"])
def test_key_frames_are_exact_and_delta_frames_are_not_for_cheap_students(arch):
    net = tiny_net()
    model = convert(net, arch, input_hw=HW)
    x = frames(2, 3, seed=4)
    with torch.no_grad():
        out = model.forward_group(x)
    reference = plain(net, x)
    assert_close_scaled(out[:, 0], reference[:, 0], 1e-5)
    assert not torch.allclose(out[:, 1:], reference[:, 1:], atol=1e-4)


@pytest.mark.parametrize("arch", ["full", "zero", "lowrank:0.25", Arch(layers=MIXED)])
def test_streaming_equals_forward_group(arch):
    model = convert(tiny_net(), arch, input_hw=HW)
    x = frames(1, 4, seed=5)
    with torch.no_grad():
        grouped = model.forward_group(x)[0]
        key = model.key_frame(x[:, 0])
        rest = model.delta_frames(x[0, 1:])  # a batch of later frames sharing the key frame
        one = model.delta_frames(x[:, 2])
    assert_close_scaled(key, grouped[:1], 1e-5)
    assert_close_scaled(rest, grouped[1:], 1e-5)
    assert_close_scaled(one, grouped[2:3], 1e-5)


def test_delta_frame_before_any_key_frame_is_refused():
    model = convert(tiny_net(), "lowrank:0.5", input_hw=HW)
    with pytest.raises(RuntimeError, match="key frame"):
        model.delta_frames(frames(1, 1, seed=6)[:, 0])


def test_convert_leaves_the_original_untouched_and_freezes_the_copy():
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    types = [(name, type(m)) for name, m in net.named_modules()]
    model = convert(net, Arch(layers=MIXED), input_hw=HW)
    assert [(name, type(m)) for name, m in net.named_modules()] == types
    assert not any(isinstance(m, DeltaConv) for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())
    after = net.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    # the copy: every conv wrapped, teacher weights frozen and not shared with the original
    assert sorted(model.delta_layers()) == sorted(TinyNet.EXECUTION_ORDER)
    assert {name: m.op for name, m in model.delta_layers().items()} == MIXED
    teacher_params = [p for name, p in model.net.named_parameters() if ".student." not in name]
    assert teacher_params and not any(p.requires_grad for p in teacher_params)
    assert model.net.stem.conv.weight.data_ptr() != net.stem.weight.data_ptr()
    assert [layer.name for layer in model.layers] == TinyNet.EXECUTION_ORDER


def test_convert_keeps_the_originals_per_module_training_flags():
    net = tiny_net()
    net.train()
    net.bn1.eval()
    convert(net, "full", input_hw=HW)
    assert net.training and net.bn0.training and not net.bn1.training


def test_delta_model_train_keeps_batchnorm_in_eval_and_trains_students():
    model = convert(tiny_net(), Arch(layers=MIXED), input_hw=HW)
    model.train()
    assert model.training
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            assert not m.training, name
    students = {name: layer.student for name, layer in model.delta_layers().items()}
    assert students["grouped"].training and students["pw"].training
    assert len(model.student_parameters()) > 0
    assert all(p.requires_grad for p in model.student_parameters())
    # training mode changes nothing in the outputs (no BatchNorm statistics in use)
    x = frames(1, 3, seed=7)
    with torch.no_grad():
        trained = model.forward_group(x)
        model.eval()
        assert not model.training and not students["grouped"].training
        torch.testing.assert_close(model.forward_group(x), trained)


def test_full_and_zero_have_no_student_parameters():
    for arch in ("full", "zero"):
        assert convert(tiny_net(), arch, input_hw=HW).student_parameters() == []


def fvcore_by_module(net: nn.Module, hw) -> FlopCountAnalysis:
    analysis = FlopCountAnalysis(net, (torch.zeros(1, 3, *hw),))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


@pytest.mark.parametrize("hw", [HW, (33, 17)])
def test_cost_of_full_matches_fvcore_on_the_plain_network(hw):
    net = tiny_net()
    report = convert(net, "full", input_hw=HW).cost(hw)
    analysis = fvcore_by_module(net, hw)
    by_module = analysis.by_module()
    assert [c.name for c in report.layers] == TinyNet.EXECUTION_ORDER
    for layer in report.layers:
        assert layer.op == "full"
        assert layer.teacher_macs == layer.student_macs == by_module[layer.name] > 0
    assert report.linear_macs == by_module["fc"] > 0
    assert report.teacher_macs == report.delta_macs == sum(by_module[n] for n in TinyNet.EXECUTION_ORDER + ["fc"])
    assert report.input_hw == hw


def test_cost_of_zero_and_mixed():
    net = tiny_net()
    zero = convert(net, "zero", input_hw=HW).cost(HW)
    full = convert(net, "full", input_hw=HW).cost(HW)
    assert zero.teacher_macs == full.teacher_macs
    assert zero.delta_macs == zero.linear_macs
    mixed = convert(net, Arch(layers=MIXED), input_hw=HW).cost(HW)
    ops = {c.name: c for c in mixed.layers}
    assert {n: c.op for n, c in ops.items()} == MIXED
    assert ops["stem"].student_macs == ops["stem"].teacher_macs
    assert ops["dw"].student_macs == 0
    assert 0 < ops["grouped"].student_macs < ops["grouped"].teacher_macs
    assert ops["pw"].student_macs > 0  # channel:2 on a 1x1 conv: three 1x1 convs (not cheaper here)
    assert 0 < ops["down"].student_macs < ops["down"].teacher_macs
    assert mixed.delta_macs == sum(c.student_macs for c in mixed.layers) + mixed.linear_macs


def test_cost_report_per_frame_and_speedup():
    report = CostReport(input_hw=(8, 8), teacher_macs=1000, delta_macs=100, linear_macs=10,
                        layers=(LayerCost("a", "lowrank:0.5", 990, 90),), cache_bytes=0)
    assert report.per_frame(1) == 1000
    assert report.per_frame(4) == pytest.approx((1000 + 3 * 100) / 4)
    assert report.per_frame(10) == pytest.approx(190.0)
    assert report.speedup(10) == pytest.approx(1000 / 190)
    real = convert(tiny_net(), Arch(layers=MIXED), input_hw=HW).cost(HW)
    for k in (1, 3, 8):
        assert real.per_frame(k) == pytest.approx((real.teacher_macs + (k - 1) * real.delta_macs) / k)


def conv_io_bytes(net: nn.Module, hw) -> dict[str, tuple[int, int]]:
    """Bytes of every conv's input and output on one frame of the plain network (float32)."""
    sizes: dict[str, tuple[int, int]] = {}
    handles = [m.register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(
        name, (i[0].numel() * i[0].element_size(), o.numel() * o.element_size())))
        for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, *hw))
    for h in handles:
        h.remove()
    return sizes


@pytest.mark.parametrize("arch", ["full", "zero", Arch(layers=MIXED)])
def test_cache_bytes_count_key_input_and_output(arch):
    net = tiny_net()
    model = convert(net, arch, input_hw=HW)
    sizes = conv_io_bytes(net, HW)
    ops = {c.name: c.op for c in model.cost(HW).layers}
    expected = sum(out + (0 if ops[name] == "zero" else inp) for name, (inp, out) in sizes.items())
    assert model.cost(HW).cache_bytes == expected > 0


def test_runtime_cache_matches_the_report_for_full():
    model = convert(tiny_net(), "full", input_hw=HW)
    with torch.no_grad():
        model.key_frame(frames(1, 1, seed=8)[:, 0])
    held = sum(layer.cache_bytes for layer in model.delta_layers().values())
    assert held == model.cost(HW).cache_bytes
    model.clear_cache()
    assert sum(layer.cache_bytes for layer in model.delta_layers().values()) == 0


def test_runtime_cache_matches_the_report_for_zero():
    model = convert(tiny_net(), "zero", input_hw=HW)
    with torch.no_grad():
        model.key_frame(frames(1, 1, seed=8)[:, 0])
    assert sum(layer.cache_bytes for layer in model.delta_layers().values()) == model.cost(HW).cache_bytes


def test_trace_layers_geometry_and_linear_macs():
    infos, linear = trace_layers(tiny_net(), HW)
    assert [i.name for i in infos] == TinyNet.EXECUTION_ORDER
    by_name = {i.name: i for i in infos}
    assert by_name["stem"].in_hw == HW and by_name["stem"].out_hw == (10, 14)
    assert by_name["dw"].is_depthwise and not by_name["grouped"].is_depthwise and by_name["grouped"].groups == 2
    assert by_name["down"].out_hw == (5, 7) and by_name["pw"].is_pointwise
    assert linear == 16 * 5


def test_a_conv_called_twice_per_frame_is_refused():
    with pytest.raises(ArchError, match="shared"):
        trace_layers(TwiceNet(), (8, 8))
    with pytest.raises(ArchError, match="shared"):
        convert(TwiceNet(), "full", input_hw=(8, 8))


# -- the real teacher -------------------------------------------------------------------------

TEACHER_HW = (64, 96)


@pytest.fixture(scope="module")
def lite0():
    return create_teacher("efficientnet_lite0")


def teacher_features(teacher, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return teacher.forward_features(teacher.normalize(x.flatten(0, 1))).view(*x.shape[:2], -1, 2, 3)


def test_real_teacher_full_equals_teacher_features(lite0):
    model = convert(lite0, "full", input_hw=TEACHER_HW)
    assert isinstance(model, DeltaModel) and model.teacher is not None
    assert len(model.delta_layers()) == len(model.layers) > 40  # every conv wrapped
    x = frames(2, 3, seed=10, hw=TEACHER_HW)
    with torch.no_grad():
        out = model.forward_group(x)
    reference = teacher_features(lite0, x)
    assert out.shape == reference.shape == (2, 3, 1280, 2, 3)
    assert_close_scaled(out, reference, 1e-4)


def test_real_teacher_zero_reuses_the_key_frame(lite0):
    model = convert(lite0, "zero", input_hw=TEACHER_HW)
    x = frames(2, 3, seed=11, hw=TEACHER_HW)
    with torch.no_grad():
        out = model.forward_group(x)
    reference = teacher_features(lite0, x)
    assert not torch.allclose(reference[:, 1], reference[:, 0], atol=1e-3)
    assert_close_scaled(out[:, 0], reference[:, 0], 1e-4)
    for t in (1, 2):
        torch.testing.assert_close(out[:, t], out[:, 0], rtol=1e-6, atol=1e-6)


def test_real_teacher_stream_with_keyframe_interval(lite0):
    model = convert(lite0, "full", input_hw=TEACHER_HW)
    video = frames(1, 7, seed=12, hw=TEACHER_HW)[0]
    result = list(stream(model, iter(video), KeyframePolicy(interval=3)))
    assert [f.index for f in result] == list(range(7))
    assert [f.index for f in result if f.is_key] == [0, 3, 6]
    reference = teacher_features(lite0, video[None])[0]
    for f in result:
        assert f.output.shape == (1, 1280, 2, 3)
        assert_close_scaled(f.output[0], reference[f.index], 1e-4)
    assert sum(layer.cache_bytes for layer in model.delta_layers().values()) == 0  # cleared at the end


@pytest.mark.parametrize("threshold,keys", [(1e-9, list(range(5))), (1e9, [0])])
def test_real_teacher_stream_adaptive_threshold(lite0, threshold, keys):
    model = convert(lite0, "zero", input_hw=TEACHER_HW)
    video = frames(1, 5, seed=13, hw=TEACHER_HW)[0]
    result = list(stream(model, video, KeyframePolicy(interval=100, threshold=threshold)))
    assert [f.index for f in result if f.is_key] == keys


@pytest.mark.parametrize("kwargs", [{"interval": 0}, {"threshold": 0.0}, {"threshold": -1.0}])
def test_keyframe_policy_validates(kwargs):
    with pytest.raises(ConfigError):
        KeyframePolicy(**kwargs)
