"""Condensed footage: the matching lowers the distance it optimises, a set round-trips through its files, a
damaged or mismatched set is one ConfigError, the selection baselines, and ``condensed:DIR`` as footage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deltanas.analysis import evaluate
from deltanas.cli import main
from deltanas.condense import (CondenseConfig, condense, kcenter_greedy, load_condensed, save_condensed,
                               set_distance)
from deltanas.condense import _match
from deltanas.delta import convert
from deltanas.errors import ConfigError
from deltanas.search._uniform import calibration_groups, uniform_threshold_for_budget
from deltanas.training import DataConfig, load_video_data
from deltanas.video import load_clip, resolve_sources
from tests.search._tiny import TinyTeacher, moving_clip

SIZE, K = (32, 48), 4
CONFIG = CondenseConfig(groups=3, keyframe_interval=K, size=SIZE, steps=30, batch_groups=3, later_frames=3,
                        real_groups=16, lr_frames=0.05, checkpoint_every=10)


@pytest.fixture(scope="module")
def teacher() -> TinyTeacher:
    return TinyTeacher()


@pytest.fixture(scope="module")
def footage() -> list[tuple[str, torch.Tensor]]:
    return [("a", moving_clip(40, SIZE, 0)), ("b", moving_clip(40, SIZE, 3))]


@pytest.fixture(scope="module")
def distilled(teacher, footage, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sets") / "distill"
    condense(teacher, footage, CONFIG, out, progress=False)
    return out


def data_config(folder: Path, **changes) -> DataConfig:
    values = dict(videos=(f"condensed:{folder}",), frame_size=(40, 56), crop=(32, 48), eval_size=SIZE,
                  max_frames=40, keyframe_interval=K, later_frames=2, flip=False)
    return DataConfig(**{**values, **changes})


def test_matching_lowers_the_statistic_distance_it_optimises(teacher, footage, distilled) -> None:
    loaded = load_condensed(distilled)
    distance = loaded.info["distance"]
    assert distance["end"] < 0.5 * distance["start"]
    # the recorded end is the distance of the frames the set renders when loaded
    from deltanas.condense._footage import candidate_groups
    from deltanas.condense._match import _pool

    candidates = candidate_groups(footage, K)
    real = _pool(teacher, candidates.frames(candidates.spread(CONFIG.real_groups)), CONFIG.seed)
    again, _ = set_distance(teacher, loaded.frames(), real, CONFIG.weights, CONFIG.seed)
    assert again == pytest.approx(distance["end"], rel=1e-4)
    assert (distilled / "metrics.csv").read_text().count("\n") == CONFIG.steps + 1
    assert not (distilled / "checkpoint.pt").exists()


def test_a_condensed_set_round_trips_through_its_files(distilled, tmp_path) -> None:
    first = load_condensed(distilled)
    assert (first.method, first.teacher, first.size, first.keyframe_interval, first.groups) == \
        ("distill", "tiny", SIZE, K, 3)
    frames = first.frames()
    assert frames.dtype == torch.uint8 and frames.shape == (3, K, 3, *SIZE)
    save_condensed(first, tmp_path / "copy")
    second = load_condensed(tmp_path / "copy")
    assert second.tensors.keys() == first.tensors.keys()
    assert all(torch.equal(second.tensors[k], v) for k, v in first.tensors.items())
    assert torch.equal(second.frames(), frames)
    assert (tmp_path / "copy" / "condensed.json").read_text() == (distilled / "condensed.json").read_text()


def test_a_damaged_or_mismatched_set_is_one_config_error(distilled, tmp_path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(distilled, bad)
    tensors = bad / "condensed.safetensors"
    raw = bytearray(tensors.read_bytes())
    raw[-10] ^= 0xFF
    tensors.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="damaged"):
        load_condensed(bad)
    (bad / "condensed.json").write_text("{ not json")
    with pytest.raises(ConfigError, match="damaged"):
        load_condensed(bad)
    meta = json.loads((distilled / "condensed.json").read_text())
    (bad / "condensed.json").write_text(json.dumps({**meta, "keyframe_interval": "eight"}))
    with pytest.raises(ConfigError, match="malformed"):
        load_condensed(bad)
    with pytest.raises(ConfigError, match="not a condensed set"):
        resolve_sources(f"condensed:{tmp_path}")

    loaded = load_condensed(distilled)
    with pytest.raises(ConfigError, match="teacher tiny, but this run uses efficientnet_lite0"):
        loaded.check(teacher="efficientnet_lite0")
    with pytest.raises(ConfigError, match="key-frame interval 4, but this run uses 8"):
        load_video_data(data_config(distilled, keyframe_interval=8, later_frames=3))
    with pytest.raises(ConfigError, match="input size 32x48, but this run uses 64x96"):
        load_video_data(data_config(distilled, eval_size=(64, 96), crop=(32, 48)))
    with pytest.raises(ConfigError, match="teacher tiny"):
        load_video_data(data_config(distilled), teacher="mobilenet_v2")
    with pytest.raises(ConfigError, match="groups of frames, not one clip"):
        load_clip(resolve_sources(f"condensed:{distilled}")[0], SIZE, cache=False)


def test_a_mismatched_set_is_one_line_on_the_command_line(distilled, capsys) -> None:
    code = main(["evaluate", "--arch", "full", "--videos", f"condensed:{distilled}", "--keyframe", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "condensed for input size 32x48, but this run uses 256x448" in err


def test_random_and_kcenter_choose_n_real_groups(teacher, footage, tmp_path) -> None:
    for method in ("random", "kcenter"):
        result = condense(teacher, footage, CONFIG.replace(method=method, groups=4), tmp_path / method,
                          progress=False)
        loaded = load_condensed(tmp_path / method)
        assert loaded.method == method and loaded.groups == 4
        frames = loaded.frames()
        assert frames.shape == (4, K, 3, *SIZE) and torch.equal(frames, result.frames())
        origin = [(o["clip"], o["start"]) for o in loaded.info["origin"]]
        assert len(set(origin)) == 4
        for group, (name, start) in zip(frames, origin):
            assert torch.equal(group, dict(footage)[name][start:start + K])
    # k-center greedy spreads: one point per cluster first
    points = torch.cat([torch.randn(20, 2, generator=torch.Generator().manual_seed(0)) * 0.1 + c
                        for c in (torch.tensor([0.0, 0.0]), torch.tensor([10.0, 0.0]), torch.tensor([0.0, 10.0]))])
    assert sorted(int(i) // 20 for i in kcenter_greedy(points, 3)) == [0, 1, 2]
    with pytest.raises(ConfigError, match="more than the footage"):
        condense(teacher, footage, CONFIG.replace(method="random", groups=99), progress=False)


def test_condense_resumes_where_its_checkpoint_left_off(teacher, footage, tmp_path, monkeypatch) -> None:
    config = CONFIG.replace(steps=12, checkpoint_every=5)
    whole = condense(teacher, footage, config, progress=False)
    calls = {"n": 0}
    real_distance = _match.statistic_distance

    def stop_at_eight(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 8 + 1:  # the start distance, then eight steps
            raise KeyboardInterrupt
        return real_distance(*args, **kw)

    monkeypatch.setattr(_match, "statistic_distance", stop_at_eight)
    with pytest.raises(KeyboardInterrupt):
        condense(teacher, footage, config, tmp_path / "job", progress=False)
    monkeypatch.setattr(_match, "statistic_distance", real_distance)
    assert (tmp_path / "job" / "checkpoint.pt").is_file()
    with pytest.raises(ConfigError, match="unfinished"):
        condense(teacher, footage, config, tmp_path / "job", progress=False)
    with pytest.raises(ConfigError, match="another job"):
        condense(teacher, footage, config.replace(seed=1), tmp_path / "job", resume=True, progress=False)
    resumed = condense(teacher, footage, config, tmp_path / "job", resume=True, progress=False)
    assert all(torch.allclose(resumed.tensors[k].float(), v.float(), atol=1e-6) for k, v in whole.tensors.items())
    steps = [line.split(",")[0] for line in (tmp_path / "job" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 13)]
    with pytest.raises(ConfigError, match="holds a condensed set already"):
        condense(teacher, footage, config, tmp_path / "job", progress=False)


def test_condensed_footage_feeds_load_video_data_and_a_calibration(teacher, distilled, footage) -> None:
    (source,) = resolve_sources(f"condensed:{distilled}")
    assert source.kind == "condensed"
    data = load_video_data(data_config(distilled), teacher="tiny")
    assert data.names == [f"{distilled.name}:g{i}" for i in range(3)]
    assert all(len(part) == 3 and all(f.shape == (K, 3, *SIZE) for f in part)
               for part in (data.train, data.val, data.test))
    assert [len(f) for f in data.train_eval] == [0, 0, 0]
    selection = data.selection_clips(K, 6, 36)
    assert [name for name, _ in selection] == data.names  # each group once, though fewer than asked
    groups = calibration_groups(selection, K, 2)
    assert len(groups) == 3
    probe = convert(teacher, "full", input_hw=SIZE)
    layers, linear = probe.layer_infos(SIZE)
    target = 0.5 * probe.cost(SIZE).teacher_macs
    found = uniform_threshold_for_budget(teacher, layers, linear, target, 0.3, groups, SIZE, "wc", 0.25)
    assert found is not None and found[1] <= target
    result = evaluate(convert(teacher, found[0], input_hw=SIZE), data.val_clips(), K, progress=False)
    assert result.pooled.frames == 3 * (K - 1)
    assert data.sampler(data_config(distilled), torch.Generator().manual_seed(0)).sample(2).frames.shape == \
        (2, 3, 3, 32, 48)
    mixed = load_video_data(data_config(distilled, videos=("asl-book", f"condensed:{distilled}")))
    assert mixed.names == ["asl-book", *data.names]
    assert mixed.train[0].shape[-2:] == (40, 56) and mixed.train[1].shape[-2:] == SIZE


def test_the_condense_verb_writes_every_method(tmp_path, capsys) -> None:
    common = ["static", "--size", "32x56", "-K", "4", "--max-frames", "24", "--groups", "2", "--no-progress"]
    for method in ("random", "kcenter", "distill"):
        extra = ["--steps", "2", "--batch-groups", "1", "--later-frames", "1", "--real-groups", "2"]
        assert main(["condense", *common, "--method", method, "--out", str(tmp_path / method),
                     *(extra if method == "distill" else [])]) == 0
        out = capsys.readouterr().out
        assert f"--videos condensed:{tmp_path / method}" in out
        loaded = load_condensed(tmp_path / method).check(teacher="efficientnet_lite0", keyframe_interval=4,
                                                          size=(32, 56))
        assert loaded.groups == 2
    assert main(["condense", *common, "--out", str(tmp_path / "random")]) == 2
    assert "holds a condensed set already" in capsys.readouterr().err
