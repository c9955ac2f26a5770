"""The budget-matched uniform skip-convolution candidate of the search's validation selection."""

from __future__ import annotations

import json

import pytest

from deltanas._run import RunDir
from deltanas.delta import SearchSpace, convert
from deltanas.search import SearchConfig, build_supernet, search
from deltanas.search._uniform import uniform_for_budget, uniform_gated_template

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
    uniform = [label for label in selection["val_fidelity"] if label.startswith("uniform gated:p")]
    assert len(uniform) == 1
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["chosen"] == selection["chosen"]
    assert selection["val_fidelity"][selection["chosen"]] == max(selection["val_fidelity"].values())
    assert result.delta_macs <= result.budget.delta_macs
    if summary["chosen"] == uniform[0]:
        assert result.arch.default == uniform[0].split(" ", 1)[1]
        assert all(row["op"] == result.arch.default or row["op"] == "full" for row in summary["layers"])
