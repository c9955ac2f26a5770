"""The engine on the real teachers and a real clip, against the dense teacher and the reference path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deltanas.analysis import evaluate
from deltanas.delta import KeyframePolicy, convert
from deltanas.engine import SparseEngine, available_key_runtimes, engine_stream, native_available
from deltanas.errors import ArchError
from deltanas.teachers import create_teacher
from deltanas.video import read_frames

from ._helpers import reference_outputs, relative_error

pytestmark = pytest.mark.slow
SIZE = (64, 112)
BACKEND = "native" if native_available() else "torch"


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """Twelve real frames: two groups of K=6 (the second key frame checks that a key frame resets all)."""
    return read_frames("bikes", SIZE, max_frames=12).float() / 255


def _stream(model, frames, **kw):
    engine = SparseEngine(model, backend=kw.pop("backend", BACKEND), **kw)
    return list(engine_stream(engine, frames, KeyframePolicy(6)))


@pytest.mark.parametrize("runtime", available_key_runtimes())
def test_exact_updates_equal_the_dense_teacher_with_every_key_runtime(lite0, clip, runtime):
    model = convert(lite0, "uniform:full", input_hw=SIZE)
    frames = _stream(model, clip, keyframes=runtime)
    with torch.no_grad():
        features = model.teacher_forward(clip)
        logits = lite0.logits_from_features(features)
    for f in frames:
        assert relative_error(f.outputs[0], features[f.index:f.index + 1]) <= 1e-4, f.index
        assert relative_error(f.outputs[1], logits[f.index:f.index + 1]) <= 1e-4, f.index


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2",
                                  "tests._nets:build_resnet", "tests._nets:build_unet"])
def test_other_teachers_are_exact(name, clip):
    teacher = create_teacher(name)
    model = convert(teacher, "uniform:full", input_hw=SIZE)
    with torch.no_grad():
        want = model.teacher_forward(clip[:4])
    for f in _stream(model, clip[:4], keyframes="torch"):
        assert relative_error(f.outputs[0], want[f.index:f.index + 1]) <= 1e-4


@pytest.mark.parametrize("arch", ["uniform:gated:w0.04:run(full)", "uniform:gated:t1:run(full)"])
def test_gated_engine_follows_the_reference_path_on_real_frames(lite0, clip, arch):
    model = convert(lite0, arch, input_hw=SIZE)
    want = reference_outputs(model, clip, interval=6)
    got = _stream(model, clip, keyframes="torch")
    moved = max(relative_error(w, want[0]) for w in want[:6])
    assert moved > 0.05  # the frames do change the output: the comparison means something
    for f, w in zip(got, want):
        assert relative_error(f.outputs[0], w) < 1e-3, f.index


def test_gated_mobilenet_v2_follows_the_reference_path(clip):
    model = convert(create_teacher("mobilenet_v2"), "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    want = reference_outputs(model, clip[:6], interval=6)
    for f, w in zip(_stream(model, clip[:6], keyframes="torch"), want):
        assert relative_error(f.outputs[0], w) < 1e-3


def test_evaluate_on_the_engine_gives_the_reference_figures_for_less_work(lite0, clip):
    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    clips = [("bikes", (clip * 255).round().to(torch.uint8))]
    ref = evaluate(model, clips, 6, progress=False)
    eng = evaluate(model, clips, 6, progress=False, engine=SparseEngine(model, backend=BACKEND, keyframes="torch"))
    assert eng.pooled.frames == ref.pooled.frames
    assert abs(eng.pooled.fidelity - ref.pooled.fidelity) < 1e-3
    assert eng.pooled.top1 == pytest.approx(ref.pooled.top1, abs=1 / ref.pooled.frames)
    analytic = model.cost(SIZE)
    assert eng.cost(analytic).delta_macs < ref.cost(analytic).delta_macs  # gate norms only where inputs changed


class _Product(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.relu(self.a(x)) * torch.sigmoid(self.b(x))  # a gate of two changing tensors (squeeze-excite)


def test_an_unsupported_node_is_named():
    model = convert(_Product().eval(), "full", input_hw=(16, 16))
    engine = SparseEngine(model, backend="torch", keyframes="torch")
    with pytest.raises(ArchError, match=r"node mul .*product of two changing tensors"):
        engine.key_frame(torch.rand(1, 3, 16, 16))


def test_the_dense_fallback_serves_the_teachers_outputs(lite0, clip):
    """A teacher alone that costs nothing: after two delta frames the stream falls back to it."""
    from deltanas.engine import DenseFallback, FrameSchedule

    model = convert(lite0, "uniform:gated:w0.04:run(full)", input_hw=SIZE)
    engine = SparseEngine(model, backend=BACKEND, keyframes="torch")
    schedule = FrameSchedule(KeyframePolicy(6), DenseFallback(hold=4, early=2), dense_seconds=1e-9)
    frames = list(engine_stream(engine, clip, schedule))
    assert schedule.kinds[:7] == ["key", "delta", "delta", "dense", "dense", "dense", "dense"]
    with torch.no_grad():
        want = model.teacher_forward(clip)
    for f in frames:
        assert f.dense == (schedule.kinds[f.index] == "dense")
        assert bool(f.macs) == (schedule.kinds[f.index] == "delta")
        if f.dense or f.is_key:
            assert relative_error(f.outputs[0], want[f.index:f.index + 1]) <= 1e-4, f.index


@pytest.mark.skipif("openvino" not in available_key_runtimes(), reason="OpenVINO not installed")
def test_openvino_key_frames_compute_in_float32(lite0):
    """On a CPU with native bfloat16, OpenVINO's default precision would put errors near 1e-1 in the state."""
    engine = SparseEngine(convert(lite0, "uniform:full", input_hw=SIZE), keyframes="openvino")
    engine.prepare(SIZE)
    compiled = engine._prepared[SIZE].key_runtime.compiled
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32", "float32")
