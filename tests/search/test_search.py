"""The search end to end on a tiny teacher and synthetic footage (seconds per run)."""

from __future__ import annotations

import json

import pytest
import torch

from deltanas._run import RunDir
from deltanas.errors import ConfigError
from deltanas.search import SearchConfig, search
from deltanas.search import _train

from ._tiny import TINY_DATA, TinyTeacher, tiny_data


def _config(**kw) -> SearchConfig:
    base = dict(teacher="tiny", data=TINY_DATA, steps=8, warmup_steps=2, finetune_steps=2, prior_groups=1,
                checkpoint_every=4, log_every=4, arch_lr=0.1, seed=0)
    base.update(kw)
    return SearchConfig(**base)


def _run(tmp_path, name, config, resume=False):
    return search(config, RunDir.create(name, tmp_path, resume=resume), resume=resume, data=tiny_data(TINY_DATA),
                  teacher=TinyTeacher(), progress=False)


@pytest.mark.parametrize("target", ["0.1x", "0.2x", "0.35x"])
@pytest.mark.parametrize("hard", [False, True])
def test_derived_architecture_lands_on_the_budget(tmp_path, target, hard):
    result = _run(tmp_path, "s", _config(target=target, hard=hard))
    ratio = result.delta_macs / result.budget.delta_macs
    assert abs(ratio - 1) <= 0.03
    if hard:
        assert ratio <= 1.0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["delta_over_target"] == pytest.approx(ratio)
    # the exported model has exactly the derived cost
    cost = result.model.cost(TINY_DATA.eval_size)
    assert cost.delta_macs == pytest.approx(result.delta_macs)


def test_run_folder_has_everything(tmp_path):
    _run(tmp_path, "s", _config(target_frame="0.5x"))
    folder = tmp_path / "s"
    for name in ("config.json", "arch.json", "students.safetensors", "search_metrics.csv", "probs.csv",
                 "sensitivity.json", "arch_choice.png", "arch_choice.svg", "summary.json", "summary.txt",
                 "finetune/summary.json", "log.txt"):
        assert (folder / name).is_file(), name
    lines = (folder / "search_metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,tau,loss") and len(lines) == 9
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["macs_per_frame"] == pytest.approx(0.5 * summary["teacher_macs"], rel=0.03)


def test_seed_reproduces_the_architecture(tmp_path):
    a = _run(tmp_path, "a", _config())
    b = _run(tmp_path, "b", _config())
    assert a.arch.layers == b.arch.layers


def test_killed_search_resumes_to_the_same_architecture(tmp_path, monkeypatch):
    straight = _run(tmp_path, "a", _config(prior="none"))
    calls = {"n": 0}
    real = _train._Objective.forward

    def dying(self, frames):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(self, frames)

    monkeypatch.setattr(_train._Objective, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "b", _config(prior="none"))
    monkeypatch.setattr(_train._Objective, "forward", real)
    resumed = _run(tmp_path, "b", _config(prior="none"), resume=True)
    assert resumed.arch.layers == straight.arch.layers
    steps = [int(line.split(",")[0]) for line in (tmp_path / "b" / "search_metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 9))


def test_lagrangian_moves_the_expected_macs_toward_the_target(tmp_path):
    _run(tmp_path, "s", _config(prior="none", target="0.2x", steps=30, warmup_steps=0, arch_lr=0.2))
    rows = (tmp_path / "s" / "search_metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    ratio = [float(r.split(",")[header.index("expected_over_target")]) for r in rows[1:]]
    assert ratio[0] > 1.5  # uniform logits: far above a 0.2x budget
    assert abs(ratio[-1] - 1) < abs(ratio[0] - 1) / 2


@pytest.mark.parametrize("target,match", [("1.5x", "above the teacher"), ("0.0001x", "below the cheapest")])
def test_unreachable_targets_are_refused_before_training(tmp_path, target, match):
    with pytest.raises(ConfigError, match=match):
        _run(tmp_path, "s", _config(target=target))
    assert not (tmp_path / "s" / "search_metrics.csv").exists()


def test_bad_search_space_is_refused(tmp_path):
    (tmp_path / "empty.yaml").write_text("candidates:\n  dense: []\n")
    with pytest.raises(ConfigError, match="empty"):
        _run(tmp_path, "s", _config(space=str(tmp_path / "empty.yaml")))
    (tmp_path / "bad.yaml").write_text("candidates:\n  dense: [full, squeeze:2]\n")
    with pytest.raises(ConfigError, match="squeeze"):
        _run(tmp_path, "t", _config(space=str(tmp_path / "bad.yaml")))


def test_config_round_trip(tmp_path):
    config = _config(target_frame="0.4x", target=None, penalty="absolute", penalty_weight=2.0)
    config.save(tmp_path / "c.json")
    assert SearchConfig.load(tmp_path / "c.json") == config
    with pytest.raises(ConfigError, match="unknown penalty"):
        _config(penalty="cubic")
    assert _config().tau(0) == 5.0 and _config().tau(8) == pytest.approx(0.2)
    assert torch.is_tensor(torch.tensor(_config().tau(5)))
