"""The engine runs every operator of a delta model as the dense-masked reference path does."""

from __future__ import annotations

import pytest
import torch

from deltanas.delta import convert
from deltanas.engine import SparseEngine, native_available
from deltanas.errors import ConfigError

from tests.delta._helpers import tiny_net
from ._helpers import engine_frames, reference_outputs, relative_error, sparse_sequence

SPARSE = ["full", "zero", "gated:w0.1:run(full)", "gated:a0.2:run(full)", "gated:t1:run(full)",
          "gated:p0.3:run(full)", "gated:changed:run(full)"]
DENSE_STUDENTS = ["lowrank:0.5", "subsample(full)", "gated:p0.25(full)", "gated:t1:b2(full)",
                  "gated:p0.25(full,lowrank:0.5)", "gated:w0.1:run(lowrank:0.5)"]
needs_native = pytest.mark.skipif(not native_available(), reason="native engine not built")


def _model(arch: str):
    return convert(tiny_net(), f"uniform:{arch}", input_hw=(32, 48))


@pytest.mark.parametrize("arch", SPARSE + DENSE_STUDENTS)
def test_engine_equals_the_reference_path(arch):
    model, frames = _model(arch), sparse_sequence(7, (32, 48), seed=3)
    want = reference_outputs(model, frames)
    got = engine_frames(model, frames, "torch", dtype=torch.float64)  # float64: no rounding on the engine side
    for frame, ref in zip(got, want):
        assert relative_error(frame.outputs[0], ref) < 1e-5, frame.index


@needs_native
@pytest.mark.parametrize("arch", SPARSE + DENSE_STUDENTS)
def test_native_equals_pytorch_and_counts_the_same_work(arch):
    model, frames = _model(arch), sparse_sequence(7, (32, 48), seed=4)
    a, b = engine_frames(model, frames, "torch"), engine_frames(model, frames, "native")
    for x, y in zip(a, b):
        assert relative_error(y.outputs[0], x.outputs[0]) < 1e-5
        assert x.macs == pytest.approx(y.macs)
    if arch.endswith(":run(full)") and "changed" not in arch:  # activations run inside the gates they feed
        engine = SparseEngine(model, backend="native", keyframes="torch")
        assert engine.prepare((32, 48)).program.fused


def test_threshold_zero_gates_are_exact():
    frames = sparse_sequence(6, (32, 48), seed=5)
    exact = engine_frames(_model("full"), frames, "torch")
    for arch in ("gated:a0:run(full)", "gated:w0:run(full)", "gated:t0:run(full)", "gated:changed:run(full)"):
        for x, y in zip(engine_frames(_model(arch), frames, "torch"), exact):
            assert relative_error(x.outputs[0], y.outputs[0]) < 1e-6, arch


def test_an_unchanged_frame_costs_nothing_and_the_changed_gate_adds_no_gate_work():
    frames = sparse_sequence(6, (32, 48), seed=6)
    for arch in ("gated:w0.1:run(full)", "gated:changed:run(full)", "full"):
        unchanged = engine_frames(_model(arch), frames, "torch")[-2]
        assert sum(unchanged.macs.values()) == 0, arch
    model = _model("gated:changed:run(full)")
    changed = engine_frames(model, frames, "torch")[1]
    exact = engine_frames(_model("full"), frames, "torch")[1]
    assert changed.macs == exact.macs  # no norm computed: the change itself is the gate


def test_a_running_gate_holds_back_small_changes_until_they_add_up():
    model = _model("gated:a0.5:run(full)")
    engine = SparseEngine(model, backend="torch", keyframes="torch")
    base = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    engine.key_frame(base)
    step = torch.zeros_like(base)
    step[..., 10:14, 10:14] = 0.02
    spent = []
    for t in range(1, 30):
        engine.delta_frame(base + t * step)
        spent.append(engine.last_macs.get("stem", 0.0))
    norm = 3 * 16  # the gate's norm over the 16 changed positions of 3 channels
    assert spent[0] == norm  # below the threshold: held back, no output computed
    assert any(s > norm for s in spent)  # the held-back change passes once it is large enough


def test_gate_work_counts_only_changed_positions():
    """A norm is computed where the input changed, not over the whole map (unlike the reference's bound)."""
    model = _model("gated:w0.1:run(full)")
    frames = sparse_sequence(4, (32, 48), seed=7)
    first_delta = engine_frames(model, frames, "torch")[1]
    analytic = {c.name: c.student_macs for c in model.cost((32, 48)).layers}
    assert first_delta.macs["stem"] < analytic["stem"]


def test_bad_frames_are_refused_with_one_clear_error():
    engine = SparseEngine(_model("full"), backend="torch", keyframes="torch")
    with pytest.raises(RuntimeError, match="before any key frame"):
        engine.delta_frame(torch.rand(1, 3, 32, 48))
    engine.key_frame(torch.rand(1, 3, 32, 48))
    with pytest.raises(ConfigError, match="NaN"):
        engine.delta_frame(torch.full((1, 3, 32, 48), float("nan")))
    with pytest.raises(ConfigError, match="differs from the key frame"):
        engine.delta_frame(torch.rand(1, 3, 16, 48))
    with pytest.raises(ConfigError, match="one frame"):
        engine.delta_frame(torch.rand(2, 3, 32, 48))


@needs_native
def test_native_refuses_a_nan_frame_and_keeps_its_state():
    model = _model("gated:w0.1:run(full)")
    frames = sparse_sequence(4, (32, 48), seed=8)
    engine = SparseEngine(model, backend="native", keyframes="torch")
    engine.key_frame(frames[:1])
    bad = frames[1:2].clone()
    bad[0, 0, 3, 3] = float("inf")
    with pytest.raises(ConfigError, match="NaN or infinite"):
        engine.delta_frame(bad)
    after = engine.delta_frame(frames[1:2])[0]
    clean = SparseEngine(model, backend="native", keyframes="torch")
    clean.key_frame(frames[:1])
    assert relative_error(after, clean.delta_frame(frames[1:2])[0]) < 1e-6


def test_unknown_backend_and_runtime_are_refused():
    with pytest.raises(ConfigError, match="unknown engine backend"):
        SparseEngine(_model("full"), backend="cuda")
    engine = SparseEngine(_model("full"), backend="torch", keyframes="tensorrt")
    with pytest.raises(ConfigError, match="unknown key-frame runtime"):
        engine.key_frame(torch.rand(1, 3, 32, 48))


@pytest.mark.parametrize("backend", ["torch"] + (["native"] if native_available() else []))
def test_the_gate_scale_multiplies_every_running_threshold(backend):
    """Scale s on gated:w T runs as gated:w sT, also when it changes in the middle of a group; 0 is exact."""
    frames = sparse_sequence(7, (32, 48), seed=5)

    def run(arch: str, scales: dict[int, float]):
        engine = SparseEngine(_model(arch), backend=backend, keyframes="torch")
        outs = []
        for i, x in enumerate(frames):
            if i in scales:
                engine.set_gate_scale(scales[i])
            outs.append((engine.key_frame(x[None]) if i == 0 else engine.delta_frame(x[None]))[0])
        return outs, engine

    def same(a, b, tol=1e-6):
        return all(relative_error(x, y) < tol for x, y in zip(a, b))

    plain, engine = run("gated:w0.1:run(full)", {})
    assert engine.scaled_gates((32, 48)) > 0
    assert same(run("gated:w0.2:run(full)", {0: 0.5})[0], plain)
    switched, engine = run("gated:w0.1:run(full)", {3: 2.0})  # w0.1 for frames 1-2, then w0.2
    assert engine.gate_scale == 2.0
    assert same(switched[:3], plain[:3]) and not same(switched[3:], plain[3:])
    assert same(switched, run("gated:w0.2:run(full)", {0: 0.5, 3: 1.0})[0])
    assert same(run("gated:w0.1:run(full)", {0: 0.0})[0], run("full", {})[0], 1e-5)
    with pytest.raises(ConfigError):
        engine.set_gate_scale(-1.0)


def test_a_dense_frame_is_the_teachers_output_and_leaves_no_reference():
    model, frames = _model("gated:w0.1:run(full)"), sparse_sequence(3, (32, 48), seed=7)
    engine = SparseEngine(model, keyframes="torch")
    dense = engine.dense_frame(frames[1][None])
    key = engine.key_frame(frames[1][None])
    assert all(relative_error(a, b) < 1e-6 for a, b in zip(dense, key))
    engine.dense_frame(frames[2][None])
    with pytest.raises(RuntimeError, match="before any key frame"):
        engine.delta_frame(frames[2][None])
