"""The real objectives: per-layer architectures on the real teacher and clip (tiny size, 2 steps),
and the search's own hyper-parameters (on the tiny teacher of the search tests)."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from deltanas._run import RunDir
from deltanas.delta import Arch, SearchSpace, convert
from deltanas.sweep import DIRECTIONS, ArchObjective, LayerChoices, SearchHparamsObjective, SweepConfig
from deltanas.training import load_video_data

from tests.search._tiny import TINY_DATA, TinyTeacher, tiny_data


@pytest.fixture(scope="module")
def small(small_data_config):
    return small_data_config.replace(max_frames=48)


@pytest.fixture(scope="module")
def data(small):
    return load_video_data(small)


def test_layer_and_block_choices(lite0):
    infos, _ = convert(lite0, "full", input_hw=(64, 128)).layer_infos((64, 128))
    space = SearchSpace.load("default")
    layer = LayerChoices.build(infos, space, "layer")
    assert len(layer.groups) == len(infos) == 49
    block = LayerChoices.build(infos, space, "block")
    # 15 blocks with an expand/project pair, their 16 depthwise convs, block 0's project, stem, head
    assert len(block.groups) == 15 + 16 + 1 + 2
    layers, specs = block.groups["_blocks.3._expand_conv+_project_conv"]
    assert layers == ("_blocks.3._expand_conv", "_blocks.3._project_conv") and specs[0] == "full"
    depthwise = next(i for i in infos if i.name == "_blocks.3._depthwise_conv")
    assert block.groups["_blocks.3._depthwise_conv"][1] == tuple(str(op) for op in space.candidates(depthwise))
    covered = [name for layers, _ in block.groups.values() for name in layers]
    assert sorted(covered) == sorted(i.name for i in infos)


def test_arch_trials_are_priced_before_training_and_trained_after(tmp_path, lite0, data, small):
    config = SweepConfig(data=small, steps=2, granularity="block", max_macs="0.6x")
    run = RunDir(tmp_path / "s")
    run.path.mkdir()
    objective = ArchObjective(config, run, teacher=lite0, data=data)
    study = optuna.create_study(directions=list(DIRECTIONS))
    groups = objective.choices.groups
    study.enqueue_trial({name: "full" for name in groups})  # the teacher: above 0.6x, pruned untrained
    cheap = {name: ("lowrank:0.125" if "lowrank:0.125" in specs else "full") for name, (_, specs) in groups.items()}
    study.enqueue_trial(cheap)
    study.optimize(objective, n_trials=2)
    pruned, done = study.trials
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["over_budget"]
    assert pruned.user_attrs["speedup"] == pytest.approx(1.0)
    assert not (run.path / "trials" / "00000").exists()
    assert done.state == TrialState.COMPLETE
    arch = Arch(layers={layer: cheap[name] for name, (layers, _) in groups.items() for layer in layers})
    expected = convert(lite0, arch, input_hw=small.eval_size).cost(small.eval_size)
    attrs = done.user_attrs
    assert done.values[1] == pytest.approx(expected.per_frame(4)) == attrs["macs_per_frame"]
    assert done.values[0] == attrs["val_top1"] and 0 <= attrs["test_top1"] <= 1
    assert {"test_dense", "test_miou", "test_fidelity", "val_fidelity", "seconds", "arch", "run"} <= set(attrs)
    assert attrs["arch"]["_blocks.3._expand_conv"] == "lowrank:0.125"
    summary = json.loads((run.path / "trials" / "00001" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["macs_per_frame"] == pytest.approx(attrs["macs_per_frame"])


def test_search_hparams_trial_runs_a_short_search(tmp_path):
    config = SweepConfig(mode="search-hparams", data=TINY_DATA, steps=2, search_steps=3, prior="none",
                         targets=("0.3x",), penalties=("linear",), metric="fidelity")
    run = RunDir(tmp_path / "h")
    run.path.mkdir()
    teacher = TinyTeacher()
    objective = SearchHparamsObjective(config, run, teacher=teacher, data=tiny_data(TINY_DATA))
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE, trial
    assert set(trial.params) == {"target", "penalty", "penalty_weight", "tau_start", "tau_end"}
    summary = json.loads((run.path / "trials" / "00000" / "summary.json").read_text())
    assert trial.values[1] == pytest.approx(summary["macs_per_frame"])
    assert trial.values[0] == trial.user_attrs["val_fidelity"]
    assert summary["seconds"]["total"] > 0 and trial.user_attrs["test_frames"] > 0
