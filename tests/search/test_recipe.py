"""The recipe the search defaults to, pinned on the real teacher and real moving footage: at a budget,
the uniform skip-convolution (exact updates where the input changed most, one fraction everywhere)
keeps part of every delta frame's change, while a low-rank student of more MACs is no better than
reusing the key frame (BENCHMARKS.md, issue 6)."""

from __future__ import annotations

from deltanas.analysis import evaluate
from deltanas.delta import convert
from deltanas.search._uniform import uniform_for_budget
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
