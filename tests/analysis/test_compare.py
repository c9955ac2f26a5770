"""Paired bootstrap over key-frame groups: hand-made groups, then the command on the real teacher."""

from __future__ import annotations

import json

import pytest

from deltanas.analysis import Agreement, EvalResult, GroupSums, paired_bootstrap
from deltanas.cli import main
from deltanas.errors import ConfigError

_POOLED = Agreement(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _result(groups) -> EvalResult:
    return EvalResult(8, {}, _POOLED, len(groups), sum(g.frames + 1 for g in groups), tuple(groups))


def _groups(top1_hits, err):
    return [GroupSums(7, h, 0, 10, e, 1.0) for h, e in zip(top1_hits, err)]


def test_a_model_better_on_every_group_is_better_in_every_resample():
    a = _result(_groups([3] * 20, [0.8] * 20))
    b = _result(_groups([5] * 20, [0.2] * 20))
    top1, fidelity = paired_bootstrap(a, b, metrics=("top1", "fidelity"), samples=500)
    assert top1.a == pytest.approx(3 / 7) and top1.b == pytest.approx(5 / 7)
    assert top1.low == pytest.approx(2 / 7) and top1.high == pytest.approx(2 / 7) and top1.b_better == 1.0
    assert fidelity.difference == pytest.approx(0.6) and fidelity.low == pytest.approx(0.6)


def test_a_difference_carried_by_one_group_is_not_significant():
    a = _result(_groups([3] * 20, [0.5] * 20))
    b = _result(_groups([3] * 19 + [7], [0.5] * 20))  # one lucky group
    (top1,) = paired_bootstrap(a, b, metrics=("top1",), samples=2000, seed=1)
    assert top1.difference > 0
    assert top1.low == pytest.approx(0.0)  # a third of the resamples leave that group out
    assert 0.5 < top1.b_better < 0.8


def test_results_from_different_footage_are_refused():
    a = _result(_groups([3] * 20, [0.5] * 20))
    with pytest.raises(ConfigError, match="same clips"):
        paired_bootstrap(a, _result(_groups([3] * 19, [0.5] * 19)))
    with pytest.raises(ConfigError, match="unknown metric"):
        paired_bootstrap(a, a, metrics=("speed",))


def test_compare_command_on_the_real_teacher(capsys):
    small = ["--videos", "bikes", "--max-frames", "48", "--eval-size", "64x128", "--keyframe", "4", "--no-progress"]
    assert main(["compare", "zero", "full", "--json", "--samples", "200", *small]) == 0
    report = json.loads(capsys.readouterr().out)
    by_metric = {d["metric"]: d for d in report["differences"]}
    fidelity = by_metric["fidelity"]
    assert fidelity["a"] == pytest.approx(0.0, abs=1e-5) and fidelity["b"] == pytest.approx(1.0, abs=1e-5)
    assert fidelity["low"] == pytest.approx(1.0, abs=1e-4) and fidelity["b_better"] == 1.0
    assert report["macs_per_frame"]["a"] < report["macs_per_frame"]["b"]
    assert main(["compare", "zero", "full", "--json", "--samples", "50", "--phases", "4", *small]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["phases"] == 4 and report["differences"][0]["groups"] == fidelity["groups"]  # K-frame windows
    assert report["differences"][2]["b_better"] == 1.0
    assert main(["compare", "zero", "full", "--phases", "5", *small]) == 2  # more phases than K
    assert main(["compare", "zero", "nonsense-op", *small]) == 2


def test_groups_of_several_phases_are_resampled_by_window():
    # two phases: each K-frame window holds two groups; b is better on every window's second group only
    groups_a = _groups([3] * 20, [0.5] * 20)
    groups_b = [g if i % 2 == 0 else GroupSums(7, 5, 0, 10, 0.5, 1.0) for i, g in enumerate(groups_a)]
    blocks = tuple(i // 2 for i in range(20))
    a, b = (EvalResult(8, {}, _POOLED, 20, 160, tuple(g), None, blocks) for g in (groups_a, groups_b))
    (top1,) = paired_bootstrap(a, b, metrics=("top1",), samples=300)
    assert top1.groups == 10  # windows, not groups
    assert top1.low == pytest.approx(1 / 7) and top1.high == pytest.approx(1 / 7)  # every window gains the same
    with pytest.raises(ConfigError, match="same clips"):
        paired_bootstrap(a, _result(groups_b))
