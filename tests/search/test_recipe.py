"""The recipe the search defaults to, pinned on the real teacher and real moving footage: at a budget,
the uniform skip-convolution (exact updates where the input changed most, one fraction everywhere)
keeps part of every delta frame's change, while a low-rank student of more MACs is no better than
reusing the key frame (BENCHMARKS.md, every manual design)."""

from __future__ import annotations

import pytest

from deltanas.analysis import evaluate
from deltanas.delta import convert
from deltanas.search._uniform import uniform_for_budget, uniform_threshold_for_budget
from deltanas.video import load_clip

SIZE = (128, 224)


def test_budget_matched_uniform_gates_beat_a_costlier_low_rank_student(lite0):
    clip = [("bikes", load_clip("bikes", SIZE, max_frames=64).frames)]
    lowrank = convert(lite0, "uniform:lowrank:0.25", input_hw=SIZE)
    cost = lowrank.cost(SIZE)
    infos, linear = lowrank.layer_infos(SIZE)
    arch, macs = uniform_for_budget("gated:p{}(full)", infos, linear, 0.9 * cost.delta_macs, 0.03)
    gated = convert(lite0, arch, input_hw=SIZE)
    assert gated.cost(SIZE).delta_macs == macs < cost.delta_macs
    fidelity = {name: evaluate(m, clip, 8, progress=False).pooled.fidelity
                for name, m in (("lowrank", lowrank), ("gated", gated))}
    assert abs(fidelity["lowrank"]) < 0.05  # the untrained SVD student: key-frame reuse
    assert fidelity["gated"] > 0.1


def test_running_reference_beats_the_key_frame_reference_at_the_same_macs(lite0):
    """The search's running-reference candidate (weighted threshold, calibrated to a budget on the
    frames) keeps more of the change than top-p gating against the key frame at the same MACs. (Its
    threshold is absolute: on other frames it spends what their motion asks; BENCHMARKS.md, running reference.)"""
    frames = load_clip("bikes", SIZE, max_frames=64).frames
    groups = [frames[i:i + 8].float() / 255 for i in range(0, 64, 8)]
    probe = convert(lite0, "full", input_hw=SIZE)
    infos, linear = probe.layer_infos(SIZE)
    target = 0.3 * probe.cost(SIZE).teacher_macs
    running, running_macs = uniform_threshold_for_budget(lite0, infos, linear, target, 0.05, groups, SIZE, "w")
    top_p, top_p_macs = uniform_for_budget("gated:p{}(full)", infos, linear, target, 0.03)
    assert 0.95 * target <= running_macs <= target and 0.97 * target <= top_p_macs <= target
    clip = [("bikes", frames)]
    results = {name: evaluate(convert(lite0, arch, input_hw=SIZE), clip, 8, progress=False)
               for name, arch in (("running", running), ("top-p", top_p))}
    spent = results["running"].cost(convert(lite0, running, input_hw=SIZE).cost(SIZE)).delta_macs
    assert spent == pytest.approx(running_macs, rel=0.05)  # its spec: fractions rounded up to whole units
    assert results["running"].pooled.fidelity > results["top-p"].pooled.fidelity + 0.05
