"""``deltanas sweep --mode gates``: stages and architectures of per-stage gate thresholds on the real teacher,
short studies on the tiny teacher of the search tests, the command on the real teacher at a tiny size."""

from __future__ import annotations

import json
import math
import sys

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from deltanas.analysis import GatedSpend, measured_cost
from deltanas.cli import main
from deltanas.delta import Arch, convert
from deltanas.errors import ArchError, ConfigError
from deltanas.search._uniform import calibration_groups
from deltanas.sweep import (GateObjective, SweepConfig, best_feasible, gate_arch, gate_stages, open_storage,
                            run_sweep)
from deltanas.sweep._gate_objective import CALIBRATION_ATTR
from deltanas.sweep._gates import DEPTHWISE_GATE, layer_thresholds

from tests.search._tiny import TINY_DATA, TinyTeacher, tiny_data
from tests.sweep._doubles import tiny_gate_objective

optuna.logging.set_verbosity(optuna.logging.WARNING)

# the tiny teacher's gates spend between ~0.27x and ~0.39x per averaged frame on the synthetic clips
TINY = SweepConfig(mode="gates", data=TINY_DATA, target="0.35x")


@pytest.fixture(scope="module")
def lite0_infos(lite0):
    return convert(lite0, "full", input_hw=(256, 448)).layer_infos((256, 448))[0]


def test_stages_of_lite0_group_every_non_depthwise_conv_by_input_stride(lite0_infos):
    stages = gate_stages(lite0_infos, (256, 448))
    assert list(stages) == ["s1", "s2", "s4", "s8", "s16", "s32"]
    by_name = {i.name: i for i in lite0_infos}
    for stage, names in stages.items():
        stride = int(stage[1:])
        assert all(by_name[n].in_hw == (256 // stride, 448 // stride) for n in names), stage
    staged = [n for names in stages.values() for n in names]
    assert sorted(staged) == sorted(i.name for i in lite0_infos if not i.is_depthwise)
    assert len(staged) == len(set(staged)) == 49 - 16
    assert stages["s1"] == ["_conv_stem"] and stages["s32"][-1] == "_conv_head"
    assert stages["s2"][:2] == ["_blocks.0._project_conv", "_blocks.1._expand_conv"]  # network order
    # an input size that no stride divides: the strides are rounded to powers of two
    odd = convert(TinyTeacher(), "full", input_hw=(30, 46)).layer_infos((30, 46))[0]
    assert list(gate_stages(odd, (30, 46))) == ["s1", "s2", "s4"]


def test_gate_arch_writes_a_threshold_per_stage_and_passes_changes_at_depthwise_layers(lite0_infos, tmp_path):
    stages = gate_stages(lite0_infos, (256, 448))
    values = {s: 0.01 * 2 ** i for i, s in enumerate(stages)}
    arch = gate_arch(lite0_infos, values, stages, teacher="efficientnet_lite0")
    assert list(arch.layers) == [i.name for i in lite0_infos]  # every layer written out
    assert arch.layers["_conv_stem"] == "gated:w0.01:run(full)"
    assert arch.layers["_conv_head"] == f"gated:w{values['s32']:g}:run(full)"
    assert all(arch.layers[i.name] == DEPTHWISE_GATE for i in lite0_infos if i.is_depthwise)
    thresholds = layer_thresholds(arch)
    assert thresholds == {n: values[s] for s, names in stages.items() for n in names}
    assert Arch.load(arch.save(tmp_path / "a.json")) == arch  # plain JSON round trip
    arch.resolve(lite0_infos)  # every spec fits its layer
    with pytest.raises(ConfigError, match="stages"):
        gate_arch(lite0_infos, {"s1": 0.1}, stages)
    with pytest.raises(ConfigError, match="positive"):
        gate_arch(lite0_infos, {**values, "s4": 0.0}, stages)
    with pytest.raises(ArchError, match="not a non-depthwise layer"):
        gate_arch(lite0_infos, {"s1": 0.1}, {"s1": ["_blocks.0._depthwise_conv"]})


def test_config_of_the_gates_mode():
    assert TINY.metric == "fidelity" and SweepConfig().metric == "top1"
    assert "target" not in SweepConfig().identity()  # studies made before the gates mode still continue
    assert TINY.identity()["target"] == "0.35x"
    with pytest.raises(ConfigError, match="needs --target"):
        SweepConfig(mode="gates")
    with pytest.raises(ConfigError, match="bad MAC target"):
        SweepConfig(mode="gates", target="lots")


def _measured_per_frame(teacher, arch, data, config):
    """The MACs per frame averaged at K that ``arch`` spends on the validation groups, measured apart from the
    sweep's evaluation (GatedSpend over the calibration groups)."""
    k, size = config.data.keyframe_interval, config.data.eval_size
    model = convert(teacher, arch, input_hw=size).eval()
    spend = GatedSpend(model)
    for group in calibration_groups(data.val_clips(), k, 1 << 30):
        spend.forward_group(group)
    return measured_cost(model.cost(size), spend.macs()).per_frame(k)


def test_a_short_study_starts_from_the_calibrated_profile_and_resumes(tmp_path):
    runs = tmp_path / "runs"
    first = run_sweep(TINY, "g", trials=1, runs_dir=runs, objective=tiny_gate_objective, progress=False)
    study = first.study
    calibration = study.user_attrs[CALIBRATION_ATTR]
    assert study.user_attrs["gates_T0"] == calibration["T0"] > 0
    (trial0,) = study.trials
    assert trial0.user_attrs["calibrated"] and trial0.state == TrialState.COMPLETE
    assert trial0.params == {f"t_{s}": t for s, t in calibration["stage_t0"].items()}
    # trial 0 is the calibrated profile, layer by layer, and it is within the budget where it was calibrated
    arch0 = Arch(layers=trial0.user_attrs["arch"])
    assert layer_thresholds(arch0) == calibration["layer_thresholds"]
    assert trial0.user_attrs["feasible"] and trial0.user_attrs["constraint"][0] <= 0
    assert trial0.user_attrs["macs_per_frame"] <= calibration["target_macs_per_frame"]
    assert trial0.user_attrs["macs_per_frame"] == pytest.approx(calibration["calibrated_macs_per_frame"], rel=0.03)
    assert first.best["trial"] == 0 and first.best["calibrated"]

    # an over-budget trial (every stage at its finest threshold), then resume to 4 trials
    objective = tiny_gate_objective(TINY, first.run)
    study.enqueue_trial({f"t_{s}": t / 10 for s, t in calibration["stage_t0"].items()})
    again = run_sweep(TINY, "g", trials=4, runs_dir=runs, objective=tiny_gate_objective, progress=False)
    assert again.new_trials == 3
    trials = again.study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].values == trial0.values  # kept, not re-run
    over = trials[1]
    assert over.params == {f"t_{s}": t / 10 for s, t in calibration["stage_t0"].items()}
    assert over.user_attrs["macs_per_frame"] > objective.target
    assert over.user_attrs["constraint"][0] > 0 and not over.user_attrs["feasible"]
    assert over.constraints["macs"] == pytest.approx(over.user_attrs["constraint"][0])  # Optuna sees it
    assert over.number not in [t.number for t in again.study.best_trials]

    teacher, data = TinyTeacher(), tiny_data(TINY_DATA)
    for t in trials:
        thresholds = {s: t.params[f"t_{s}"] for s in calibration["stage_t0"]}
        assert t.user_attrs["thresholds"] == thresholds
        for s, v in thresholds.items():  # within a decade of the calibrated profile
            assert calibration["stage_t0"][s] / 10 <= v <= calibration["stage_t0"][s] * 10
        arch = gate_arch(objective.infos, thresholds, objective.stages)
        assert arch.layers == t.user_attrs["arch"]
        assert t.values[1] == t.user_attrs["macs_per_frame"] == pytest.approx(
            _measured_per_frame(teacher, arch, data, TINY), rel=1e-9)
        assert t.values[0] == t.user_attrs["val_fidelity"] and 0 <= t.user_attrs["val_top1"] <= 1
        assert t.user_attrs["seconds"] > 0
    compute = [t.user_attrs["compute_seconds"] for t in trials]
    assert compute == sorted(compute) and compute[0] >= calibration["seconds"]

    folder = runs / "g"
    frame = pd.read_csv(folder / "trials.csv")
    assert len(frame) == 4 and {"params_t_s1", "user_attrs_macs_per_frame", "user_attrs_compute_seconds"} <= set(frame)
    best = json.loads((folder / "best.json").read_text())
    winner = best_feasible(trials, "fidelity")
    assert best["trial"] == winner.number and winner.user_attrs["feasible"]
    assert all(winner.user_attrs["val_fidelity"] >= t.user_attrs["val_fidelity"] for t in trials
               if t.user_attrs["feasible"])
    saved = Arch.load(folder / "arch.json")
    assert layer_thresholds(saved) == layer_thresholds(Arch(layers=winner.user_attrs["arch"]))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["mode"] == "gates" and summary["best"]["trial"] == winner.number
    assert summary["macs_per_frame"] == winner.user_attrs["macs_per_frame"] and "fidelity" in summary["test"]
    log = (folder / "log.txt").read_text()
    assert log.count("calibrated wc gate") == 1 and "1 finished trials, 3 to run" in log
    assert f"best feasible trial {winner.number}" in log


def test_cmaes_scores_the_metric_less_a_penalty_above_the_budget(tmp_path):
    pytest.importorskip("cmaes")
    runs = tmp_path / "runs"
    first = run_sweep(TINY, "c", trials=1, runs_dir=runs, objective=tiny_gate_objective, sampler="cmaes",
                      progress=False)
    t0 = first.study.user_attrs[CALIBRATION_ATTR]["stage_t0"]
    first.study.enqueue_trial({f"t_{s}": t / 10 for s, t in t0.items()})  # over the budget
    result = run_sweep(TINY, "c", trials=4, runs_dir=runs, objective=tiny_gate_objective, sampler="cmaes",
                       progress=False)
    study = result.study
    assert len(study.directions) == 1 and len(study.trials) == 4
    assert study.trials[0].user_attrs["calibrated"]
    over = study.trials[1].user_attrs["constraint"][0]
    assert over > 0 and study.trials[1].value < study.trials[1].user_attrs["val_fidelity"] - 0.01
    for t in study.trials:
        excess = t.user_attrs["constraint"][0]
        assert t.value == pytest.approx(t.user_attrs["val_fidelity"] - TINY.over_budget_weight * max(excess, 0.0))
        assert all(t0[s] / 10 <= v <= t0[s] * 10 for s, v in t.user_attrs["thresholds"].items())
    assert (runs / "c" / "arch.json").is_file()
    with pytest.raises(ConfigError, match="one score"):  # the same study cannot go on with two objectives
        run_sweep(TINY, "c", trials=5, runs_dir=runs, objective=tiny_gate_objective, progress=False)


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cmaes_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cmaes", None)  # import cmaes fails
    code, _, err = _cli(capsys, "sweep", "--mode", "gates", "--target", "0.3x", "--sampler", "cmaes",
                        "--runs-dir", tmp_path)
    assert code == 2 and err.strip().count("\n") == 0 and "deltanas[cmaes]" in err
    assert not (tmp_path / "sweep-gates").exists()


def test_bad_gates_input_is_one_line(tmp_path, capsys):
    for argv, message in ((["--mode", "gates"], "needs --target"),
                          (["--mode", "arch", "--sampler", "cmaes"], "--mode gates"),
                          (["--mode", "gates", "--target", "0.01x", "--videos", "bikes", "--max-frames", "48",
                            "--eval-size", "64x128", "--keyframe", "4"], "below the key frame")):
        code, _, err = _cli(capsys, "sweep", *argv, "--runs-dir", tmp_path)
        assert code == 2 and message in err and err.strip().count("\n") == 0, err
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_gates_command_on_the_real_teacher(tmp_path, capsys):
    small = ["--videos", "bikes", "--max-frames", "48", "--eval-size", "64x128", "--keyframe", "4"]
    code, out, err = _cli(capsys, "sweep", "--mode", "gates", *small, "--target", "0.5x", "--trials", "2",
                          "--runs-dir", tmp_path, "--no-progress", "--threads", "1")
    assert code == 0, err
    assert "2 complete trials" in out and "best within" in out
    folder = tmp_path / "sweep-gates"
    best = json.loads((folder / "best.json").read_text())
    arch = Arch.load(folder / "arch.json")
    assert arch.teacher == "efficientnet_lite0" and len(arch.layers) == 49
    assert best["macs_per_frame"] <= best["target_macs_per_frame"]
    assert math.isfinite(best["val"]["fidelity"])
    study = optuna.load_study(study_name="sweep-gates", storage=open_storage(None, folder))
    assert len(study.trials) == 2 and study.trials[0].user_attrs["calibrated"]
