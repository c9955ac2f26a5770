"""The budget-matched uniform skip-convolution candidate of the search's validation selection."""

from __future__ import annotations

import json

import pytest

from deltanas._run import RunDir
from deltanas.delta import SearchSpace, convert
from deltanas.search import SearchConfig, build_supernet, search
from deltanas.analysis import Agreement, evaluate
from deltanas.errors import ConfigError
from deltanas.search._select import selection_rank
from deltanas.search._uniform import uniform_for_budget, uniform_gated_template, uniform_threshold_for_budget

from ._tiny import TINY_DATA, TinyTeacher, tiny_data


def test_template_needs_a_top_p_gated_teacher_copy():
    assert uniform_gated_template(["full", "zero", "gated:p0.25(full)"]) == "gated:p{}(full)"
    assert uniform_gated_template(["full", "gated:p0.25(lowrank:0.5)", "gated:t1(full)"]) is None


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35, 0.6])
def test_uniform_fraction_lands_in_the_band_and_never_above(fraction):
    teacher = TinyTeacher()
    supernet = build_supernet(teacher, SearchSpace.load("default"), TINY_DATA.eval_size)
    full = float(sum(m[0] for m in supernet.macs.values()) + supernet.linear_macs)
    target = fraction * full
    arch, macs = uniform_for_budget("gated:p{}(full)", supernet.layers, supernet.linear_macs, target, 0.03)
    assert 0.97 * target <= macs <= target
    assert arch.default.startswith("gated:p") and not arch.layers
    # the analytic count is the built model's
    assert convert(teacher, arch, input_hw=TINY_DATA.eval_size).cost(TINY_DATA.eval_size).delta_macs == \
        pytest.approx(macs)
    # a fraction one grid step larger would be over the target
    p = float(arch.default[len("gated:p"):-len("(full)")])
    assert p < 1
    larger = convert(teacher, f"gated:p{p + 1e-4:g}(full)", input_hw=TINY_DATA.eval_size)
    assert larger.cost(TINY_DATA.eval_size).delta_macs > target


def test_uniform_below_the_cheapest_gate_is_no_candidate():
    supernet = build_supernet(TinyTeacher(), SearchSpace.load("default"), TINY_DATA.eval_size)
    assert uniform_for_budget("gated:p{}(full)", supernet.layers, supernet.linear_macs, 1.0, 0.03) is None


def test_search_records_the_uniform_candidate_in_its_selection(tmp_path):
    config = SearchConfig(teacher="tiny", data=TINY_DATA, steps=6, warmup_steps=2, finetune_steps=2, prior_groups=1,
                          checkpoint_every=3, log_every=3, arch_lr=0.1, target="0.3x", hard=True)
    result = search(config, RunDir.create("s", tmp_path, resume=False), data=tiny_data(TINY_DATA),
                    teacher=TinyTeacher(), progress=False)
    selection = json.loads((tmp_path / "s" / "selection.json").read_text())
    scores = selection["fidelity"]
    # scored on the validation frames and as many groups of the training frames (4 of K=4 per clip)
    assert selection["frames"] == {"a": 6, "b": 6, "a (train)": 16, "b (train)": 16}
    assert len([label for label in scores if label.startswith("uniform top-p gated:p")]) == 1
    # --hard: no threshold candidates (their MACs on other frames are not guaranteed)
    assert not [label for label in scores if label.startswith(("uniform threshold", "uniform running"))]
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["chosen"] == selection["chosen"]
    assert scores[selection["chosen"]] == max(scores.values())
    assert 0 < summary["seconds"]["select"] < summary["seconds"]["total"]
    assert result.delta_macs <= result.budget.delta_macs
    if summary["chosen"].startswith("uniform top-p"):
        assert result.arch.default == summary["chosen"].split()[-1]
    if summary["chosen"].startswith("uniform"):
        assert all(row["prob"] is None or row["op"] == "full" for row in summary["layers"])


# (each layer's written fraction is rounded up to whole units: a few percent on this small network)
@pytest.mark.parametrize("gate,prefix,rel", [("t", "gated:t", 0.05), ("w", "gated:w", 0.1), ("p", "gated:p", 0.1),
                                                   ("r", "gated:t", 0.1), ("wc", "gated:w", 0.1),
                                                   ("pc", "gated:p", 0.1)])
def test_threshold_is_calibrated_to_the_budget_on_the_given_frames(gate, prefix, rel):
    teacher = TinyTeacher()
    supernet = build_supernet(teacher, SearchSpace.load("default"), TINY_DATA.eval_size)
    full = float(sum(m[0] for m in supernet.macs.values()) + supernet.linear_macs)
    data = tiny_data(TINY_DATA)
    groups = [clip[i:i + 4].float() / 255 for clip in data.val for i in range(0, len(clip) - 4, 4)]
    # the synthetic clips change little: even exact updates wherever anything changed cost well under 0.4x
    found = uniform_threshold_for_budget(teacher, supernet.layers, supernet.linear_macs, 0.1 * full, 0.05, groups,
                                         TINY_DATA.eval_size, gate)
    assert found is not None
    arch, macs = found
    assert 0.95 * 0.1 * full <= macs <= 0.1 * full
    # wc, pc: the depthwise layer passes every change (no value), the others share the threshold or fraction
    changed = {name for name, spec in arch.layers.items() if spec.startswith("gated:changed:run:f")}
    assert changed == ({"dw"} if gate in ("wc", "pc") else set())
    thresholds = {spec.split(":f")[0] for name, spec in arch.layers.items() if name not in changed}
    assert len(thresholds) == 1 and thresholds.pop().startswith(prefix)
    assert all((":run:" in spec) == (gate != "t") for spec in arch.layers.values())
    # the written fractions are what the gates did on those frames: measured MACs equal the analytic ones
    model = convert(teacher, arch, input_hw=TINY_DATA.eval_size)
    result = evaluate(model, [("val", clip) for clip in data.val], 4, progress=False)
    assert result.cost(model.cost(TINY_DATA.eval_size)).delta_macs == pytest.approx(macs, rel=rel)
    # no frames, no calibration
    assert uniform_threshold_for_budget(teacher, supernet.layers, supernet.linear_macs, 0.4 * full, 0.05, [],
                                        TINY_DATA.eval_size) is None


def test_threshold_profile_scales_each_layer_by_its_input_stride():
    teacher = TinyTeacher()
    supernet = build_supernet(teacher, SearchSpace.load("default"), TINY_DATA.eval_size)
    full = float(sum(m[0] for m in supernet.macs.values()) + supernet.linear_macs)
    groups = [clip[i:i + 4].float() / 255 for clip in tiny_data(TINY_DATA).val for i in range(0, len(clip) - 4, 4)]
    found = uniform_threshold_for_budget(teacher, supernet.layers, supernet.linear_macs, 0.1 * full, 0.1, groups,
                                         TINY_DATA.eval_size, "w", profile=1.0)
    assert found is not None
    values = {name: float(spec.split(":")[1][1:]) for name, spec in found[0].layers.items()}
    # input strides: stem 1, expand/dw/project/down 2, head 4
    assert values["expand"] == values["dw"] == values["project"] == values["down"]
    assert values["head"] / values["expand"] == pytest.approx(2, rel=0.01)
    assert values["expand"] / values["stem"] == pytest.approx(2, rel=0.01)


def test_threshold_is_no_candidate_when_exact_updates_cost_less_than_the_budget():
    teacher = TinyTeacher()
    supernet = build_supernet(teacher, SearchSpace.load("default"), TINY_DATA.eval_size)
    full = float(sum(m[0] for m in supernet.macs.values()) + supernet.linear_macs)
    groups = [clip[:4].float() / 255 for clip in tiny_data(TINY_DATA).val]
    assert uniform_threshold_for_budget(teacher, supernet.layers, supernet.linear_macs, 0.9 * full, 0.03, groups,
                                        TINY_DATA.eval_size) is None


def test_soft_search_also_offers_the_calibrated_thresholds(tmp_path):
    # (on this tiny network the MACs move in coarse steps: 0.1x is a budget every threshold can land in)
    config = SearchConfig(teacher="tiny", data=TINY_DATA, steps=4, warmup_steps=1, finetune_steps=1, prior_groups=1,
                          checkpoint_every=2, log_every=2, arch_lr=0.1, target="0.1x")
    result = search(config, RunDir.create("s", tmp_path, resume=False), data=tiny_data(TINY_DATA),
                    teacher=TinyTeacher(), progress=False)
    scores = json.loads((tmp_path / "s" / "selection.json").read_text())["fidelity"]
    threshold = [label for label in scores if label.startswith("uniform threshold gated:t")]
    assert len(threshold) == 1
    assert len([label for label in scores if label.startswith("uniform running-profiled gated:w")]) == 1
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    if summary["chosen"] == threshold[0]:  # one threshold, each layer's measured fraction in its spec
        assert {s.split(":f")[0] for s in result.arch.layers.values()} == {threshold[0].split()[-1].split(":f")[0]}
        assert "test_macs_per_frame" in summary
    assert abs(result.delta_macs / result.budget.delta_macs - 1) <= 0.03


def test_selection_ranks_by_the_metric_the_user_names(tmp_path):
    config = SearchConfig(teacher="tiny", data=TINY_DATA, steps=4, warmup_steps=1, finetune_steps=1, prior_groups=1,
                          checkpoint_every=2, log_every=2, arch_lr=0.1, target="0.1x", select_metric="dense")
    search(config, RunDir.create("s", tmp_path, resume=False), data=tiny_data(TINY_DATA), teacher=TinyTeacher(),
           progress=False)
    selection = json.loads((tmp_path / "s" / "selection.json").read_text())
    assert selection["metric"] == "dense" and 0.0 <= selection["reuse_top1"] <= 1.0
    labels = set(selection["fidelity"])
    assert len(labels) >= 3 and all(set(selection[m]) == labels for m in ("top1", "dense", "miou"))
    # the most dense agreement wins; among equals (it moves in whole positions) the best fidelity
    rank = {label: (selection["dense"][label], selection["fidelity"][label]) for label in labels}
    assert rank[selection["chosen"]] == max(rank.values())
    with pytest.raises(ConfigError, match="selection metric"):
        SearchConfig(select_metric="accuracy")


def test_selection_rank_breaks_ties_of_the_metric_by_fidelity():
    def agreement(top1, dense, fidelity):
        return Agreement(frames=7, top1=top1, dense=dense, miou=0.5, fidelity=fidelity, feature_error=0.1, flicker=0.0)

    smooth, sharp = agreement(0.8, 0.6, 0.5), agreement(0.8, 0.7, 0.2)
    assert selection_rank(smooth, "fidelity") > selection_rank(sharp, "fidelity")
    assert selection_rank(sharp, "dense") > selection_rank(smooth, "dense")
    assert selection_rank(smooth, "top1") > selection_rank(sharp, "top1")  # equal top-1: fidelity decides
    undefined = agreement(0.9, 0.9, float("nan"))  # frames that never changed: no fidelity
    assert selection_rank(smooth, "top1") > selection_rank(agreement(0.8, 0.6, float("nan")), "top1")
    assert selection_rank(undefined, "dense") > selection_rank(sharp, "dense")
