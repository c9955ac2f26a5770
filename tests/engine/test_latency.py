"""The latency cost model: attributing node times to conv layers, the non-negative line fit, a profile of a
tiny network on the native engine, the JSON file, the search's cost in ms, and ``deltanas profile``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from deltanas.cli import main
from deltanas.delta import convert
from deltanas.engine import LatencyModel, LayerLatency, SparseEngine, attribute, native_available, profile_latency
from deltanas.engine._geometry import Geometry
from deltanas.engine._latency import _fit_line
from deltanas.engine._nodes import ActivationNode, AddNode, ConvNode, InputNode
from deltanas.errors import ConfigError
from deltanas.search._learned_gates import latency_cost

from tests.search._tiny import TinyTeacher
from ._helpers import sparse_sequence

needs_native = pytest.mark.skipif(not native_available(), reason="native engine not built")

ARCH = "uniform:gated:w0.04:run(full)"  # running gates on every convolution: the profile sweeps their scale
SIZE = (32, 48)
K = 4


# -- attributing a profiled frame ------------------------------------------------------------------------

def _conv(name: str, linear: bool = False) -> ConvNode:
    geometry = Geometry(4, 4, 3, 4, 4, 3)
    return ConvNode(name=name, inputs=(0,), output=1, geometry=geometry, is_linear=linear)


def _other(kind, name: str):
    return kind(name=name, inputs=(0,), output=1)


def test_a_conv_owns_the_nodes_after_it_up_to_the_next_conv():
    a, b, fc = _conv("a"), _conv("b"), _conv("fc", linear=True)
    records = [(_other(InputNode, "x"), 0, 10, 0.5), (_other(ActivationNode, "pre"), 10, 10, 0.25),
               (a, 10, 7, 1.0), (_other(ActivationNode, "act_a"), 7, 7, 0.125), (_other(AddNode, "add"), 7, 9, 2.0),
               (b, 9, 3, 4.0), (_other(ActivationNode, "act_b"), 3, 3, 8.0), (fc, 1, 1, 16.0)]
    parts = attribute(records)
    assert parts.fixed_s == 0.75  # the nodes before the first conv
    assert parts.layers == {"a": 3.125, "b": 28.0}  # a Linear starts no owner: it joins the last conv's part
    assert parts.positions == {"a": 7, "b": 3}
    assert parts.total_s == sum(r[3] for r in records)


def test_a_conv_met_twice_adds_up_and_nothing_before_a_conv_is_fixed_only_then():
    a = _conv("a")
    parts = attribute([(a, 4, 5, 1.0), (_other(ActivationNode, "act"), 5, 5, 0.5), (a, 4, 6, 2.0)])
    assert parts.fixed_s == 0.0 and parts.layers == {"a": 3.5} and parts.positions == {"a": 11}
    assert attribute([]).total_s == 0.0


# -- the line fit ----------------------------------------------------------------------------------------

def test_the_fit_recovers_a_line_from_noiseless_points():
    x = [0.0, 10.0, 50.0, 200.0, 1000.0]
    a, b = _fit_line(x, [0.3 + 0.002 * u for u in x])
    assert a == pytest.approx(0.3, rel=1e-9) and b == pytest.approx(0.002, rel=1e-9)
    a, b = _fit_line(x, [0.3 + 0.002 * u for u in x], [1.0 / (0.3 + 0.002 * u) ** 2 for u in x])  # weighted
    assert a == pytest.approx(0.3, rel=1e-9) and b == pytest.approx(0.002, rel=1e-9)


def test_the_fit_stays_non_negative():
    x = [0.0, 10.0, 20.0, 30.0]
    a, b = _fit_line(x, [5.0 - 0.1 * u for u in x])  # falling: a flat line at the mean
    assert b == 0.0 and a == pytest.approx(3.5)
    a, b = _fit_line(x, [-1.0 + 0.2 * u for u in x])  # negative intercept: through the origin
    assert a == 0.0 and b > 0
    assert all(v >= 0 for v in _fit_line([1.0, 2.0], [-3.0, -4.0]))
    assert _fit_line([], []) == (0.0, 0.0)


# -- profiling a tiny network ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model():
    return convert(TinyTeacher(), ARCH, input_hw=SIZE)


@pytest.fixture(scope="module")
def profiled(tiny_model):
    clips = [sparse_sequence(8, SIZE, seed) for seed in (0, 1)]  # ends on a frame where everything changed
    engine = SparseEngine(tiny_model, backend="native", keyframes="torch")
    return profile_latency(tiny_model, clips, K, (0.0, 1.0, 4.0), 1, engine=engine, progress=False), engine


@needs_native
def test_the_profile_covers_every_conv_layer_at_its_output_area(tiny_model, profiled):
    latency, engine = profiled
    graph = engine.prepare(SIZE).graph
    convs = {n.name: n for n in graph.nodes if isinstance(n, ConvNode) and not n.is_linear}
    assert list(latency.layers) == list(convs) == [info.name for info in tiny_model.layers]
    for name, layer in latency.layers.items():
        g = convs[name].geometry
        assert layer.positions == g.out_h * g.out_w
        assert layer.fixed_ms >= 0 and layer.ms_per_position >= 0 and layer.samples > 0
        assert 0 < layer.max_positions <= layer.positions
    # at gate scale 0 every change passes: the last frame changed everywhere, so the stem computed all of it
    assert latency.layers["stem"].max_positions == latency.layers["stem"].positions
    assert (latency.teacher, latency.input_hw, latency.backend) == ("tiny", SIZE, "native")
    report = latency.report["profile"]
    assert report["delta_frames"] == 2 * 2 * (K - 1) and report["scales"] == [0.0, 1.0, 4.0]
    assert latency.calibration > 0 and latency.key_ms > 0


@needs_native
def test_predictions_grow_with_the_positions_computed(profiled):
    latency, _ = profiled
    dense = latency.dense_positions()
    nothing = latency.predict_ms({})
    half = latency.predict_ms({n: p // 2 for n, p in dense.items()})
    full = latency.predict_ms(dense)
    assert 0 < nothing <= half <= full and nothing < full
    assert latency.predict_ms({"stem": 0}) == pytest.approx(nothing)  # a layer left out computes nothing
    with pytest.raises(ValueError, match="not in the latency model: nope"):
        latency.predict_ms({"nope": 1})
    for k in (1, 4, 8):
        assert latency.predict_frame_ms(dense, k) == pytest.approx((latency.key_ms + (k - 1) * full) / k)
    with pytest.raises(ValueError):
        latency.predict_frame_ms(dense, 0)


@needs_native
def test_the_search_cost_in_ms_names_the_models_layers(tiny_model, profiled):
    """The engine's node names are the DeltaModel's layer names: fractions keyed by layer give the model's
    prediction (all ones: a dense delta frame)."""
    latency, _ = profiled
    cost = latency_cost(latency)
    assert cost.unit == "ms"
    positions = {info.name: info.out_hw[0] * info.out_hw[1] for info in tiny_model.layers}
    assert positions == latency.dense_positions()
    ones = dict.fromkeys(positions, 1.0)
    assert cost.of_fractions(ones, positions) == pytest.approx(latency.predict_ms(latency.dense_positions()))
    half = dict.fromkeys(positions, 0.5)
    assert cost.of_fractions(half, positions) == pytest.approx(
        latency.predict_ms({n: 0.5 * p for n, p in positions.items()}))
    grad = torch.ones((), requires_grad=True)  # differentiable in tensor fractions
    cost.of_fractions({"stem": grad}, positions).backward()
    assert float(grad.grad) == pytest.approx(latency.calibration * latency.layers["stem"].ms_per_position
                                             * positions["stem"])


@needs_native
def test_a_profiled_model_round_trips_through_its_file(tmp_path, profiled):
    latency, _ = profiled
    path = latency.save(tmp_path / "latency.json")
    assert LatencyModel.load(path, teacher="tiny", input_hw=SIZE) == latency


@needs_native
def test_a_search_with_a_latency_budget_lands_on_its_ms(tmp_path, profiled):
    """``--target-ms`` end to end: the search skips the supernet, and the model it derives is predicted to take
    the target per frame (averaged at K) within the budget band on its selection frames."""
    from deltanas._run import RunDir
    from deltanas.search import SearchConfig, search
    from tests.search._tiny import TINY_DATA, tiny_data

    latency, _ = profiled
    path = latency.save(tmp_path / "latency.json")
    k = TINY_DATA.keyframe_interval
    dense = latency.predict_ms(latency.dense_positions())
    # the tiny clips change at about 5% of the positions: a budget of half that is in reach
    target_ms = latency.predict_frame_ms({n: p / 40 for n, p in latency.dense_positions().items()}, k)
    config = SearchConfig(teacher="tiny", data=TINY_DATA, cost="latency", latency=str(path), target_ms=target_ms,
                          finetune_steps=2, gate_steps=4, checkpoint_every=4, seed=0, speed_report=False)
    run = RunDir.create("ms", tmp_path)
    result = search(config, run, data=tiny_data(TINY_DATA), teacher=TinyTeacher(), progress=False)
    assert not (run.path / "supernet").exists() and result.seconds.get("supernet") is None
    selection = json.loads((run.path / "selection.json").read_text())
    delta_ms = (k * target_ms - latency.key_ms) / (k - 1)
    assert delta_ms < dense and f"{delta_ms:.2f} ms per delta frame" in selection["budget"]
    spent = selection["cost"][selection["chosen"]]  # ms per delta frame, predicted on the selection frames
    assert (1 - config.tolerance) * delta_ms <= spent <= delta_ms
    assert result.delta_macs < result.budget.teacher_macs and result.budget.asked == f"--target-ms {target_ms:g}"


def test_profile_refuses_bad_arguments(tiny_model):
    clip = sparse_sequence(8, SIZE)
    with pytest.raises(ConfigError, match="interval"):
        profile_latency(tiny_model, clip, 1, progress=False)
    with pytest.raises(ConfigError, match="scales"):
        profile_latency(tiny_model, clip, K, (-1.0,), progress=False)
    with pytest.raises(ConfigError, match="repeats"):
        profile_latency(tiny_model, clip, K, (0.0,), 0, progress=False)
    with pytest.raises(ConfigError, match="float tensors"):
        profile_latency(tiny_model, (clip * 255).to(torch.uint8), K, progress=False)


# -- the file --------------------------------------------------------------------------------------------

def _hand_made() -> LatencyModel:
    layers = {"stem": LayerLatency(0.01, 1e-4, 384, 0.9, 0.05, 9, 384),
              "head": LayerLatency(0.02, 2e-4, 96, None, None, 0, 0)}
    return LatencyModel("tiny", (32, 48), 1, "native", "torch", "x86_64 test cpu", 1.5, 0.005, layers, 0.8,
                        {"profile": {"scales": [0.0, 1.0], "repeats": 1}})


def test_save_load_round_trip_is_exact_and_atomic(tmp_path, monkeypatch):
    model = _hand_made()
    path = model.save(tmp_path / "sub" / "latency.json")
    loaded = LatencyModel.load(path)
    assert loaded == model and loaded.as_dict() == model.as_dict()
    assert loaded.predict_ms({"stem": 100}) == pytest.approx(0.8 * (0.005 + 0.01 + 1e-4 * 100 + 0.02))
    assert json.loads(path.read_text())["format"] == "deltanas-latency"
    assert [p.name for p in path.parent.iterdir()] == ["latency.json"]  # no temp file left

    import deltanas._io as io

    def fail(*_):
        raise OSError("disk gone")

    monkeypatch.setattr(io.os, "replace", fail)
    with pytest.raises(OSError):
        model.with_report(extra=1).save(path)
    assert LatencyModel.load(path) == model  # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == ["latency.json"]


@pytest.mark.parametrize("teacher,hw,wanted", [("other", None, "not other at 32x48"),
                                               (None, (64, 96), "not tiny at 64x96"),
                                               ("other", (64, 96), "not other at 64x96")])
def test_load_refuses_another_teacher_or_size_in_one_line(tmp_path, teacher, hw, wanted):
    path = _hand_made().save(tmp_path / "latency.json")
    with pytest.raises(ConfigError) as exc:
        LatencyModel.load(path, teacher=teacher, input_hw=hw)
    message = str(exc.value)
    assert "\n" not in message and "profiled for tiny at 32x48" in message and wanted in message
    assert LatencyModel.load(path, teacher="tiny", input_hw=[32, 48]).teacher == "tiny"


def _edit(data: dict, where: str, value) -> dict:
    data = json.loads(json.dumps(data))
    *parents, last = where.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize("where,value,match", [
    ("format", "something-else", "not a latency model"),
    ("version", 99, "version 99"),
    ("input_hw", [32], "input_hw"),
    ("input_hw", [32, -48], "input_hw"),
    ("layers", {}, "layers"),
    ("layers", [1, 2], "layers"),
    ("key_ms", KeyError, "missing field 'key_ms'"),
    ("key_ms", -1.0, "key_ms"),
    ("key_ms", "fast", "malformed"),
    ("fixed_ms", float("nan"), "fixed_ms"),
    ("calibration", 0.0, "calibration"),
    ("layers.stem.ms_per_position", -1e-4, "layer stem"),
    ("layers.stem.fixed_ms", -0.5, "layer stem"),
    ("layers.stem.fixed_ms", "x", "layer stem"),
    ("layers.stem.positions", -3, "layer stem"),
    ("layers.stem.positions", "many", "layer stem"),
    ("layers.stem.bogus", 1, "malformed"),
    ("layers.stem", 3, "malformed"),
])
def test_malformed_files_are_refused_with_one_line(tmp_path, where, value, match):
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(_edit(_hand_made().as_dict(), where, value)))
    with pytest.raises(ConfigError, match=match) as exc:
        LatencyModel.load(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_missing_and_non_json_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the latency model"):
        LatencyModel.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        LatencyModel.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a latency model"):
        LatencyModel.load(tmp_path / "list.json")


# -- the command line ------------------------------------------------------------------------------------

def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_with_a_missing_video_fails_in_one_line(capsys, tmp_path):
    missing = tmp_path / "absent.mp4"
    code, out, err = _run(capsys, "profile", "--videos", missing, "--out", tmp_path / "latency.json")
    assert code != 0 and not (tmp_path / "latency.json").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deltanas profile: error:") and str(missing) in lines[0]


@pytest.mark.parametrize("argv,match", [(["-K", "1"], "-K must be >= 2"), (["--holdout", "1"], "--holdout"),
                                        (["--frames", "1"], "--frames")])
def test_profile_refuses_bad_options_in_one_line(capsys, tmp_path, argv, match):
    code, _, err = _run(capsys, "profile", *argv, "--out", tmp_path / "latency.json")
    assert code != 0 and match in err and len(err.strip().splitlines()) == 1


@needs_native
def test_profile_writes_a_latency_model_the_search_can_load(capsys, tmp_path):
    out = tmp_path / "latency.json"
    code, stdout, err = _run(capsys, "profile", "--videos", "static", "--frames", 10, "-K", 4, "--size", "64x96",
                             "--repeats", 1, "--scales", 0, 1, "--threads", 1, "--no-progress", "--out", out)
    assert code == 0, err
    latency = LatencyModel.load(out, teacher="efficientnet_lite0", input_hw=(64, 96))
    assert len(latency.layers) == 49 and latency.layers["_conv_head"].positions == 2 * 3
    assert latency.threads == 1 and latency.report["profile"]["keyframe_interval"] == 4
    check = latency.report["check"]  # the last group of each clip held out
    assert check["frames"] == 2 * 1 * 2  # two clips x one held-out delta frame x two gate scales
    assert math.isfinite(check["median_error"]) and check["predicted_ms_median"] > 0
    assert f"written to {out}" in stdout and "held out (2 delta frames at 2 gate scales)" in stdout
