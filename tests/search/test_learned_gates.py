"""Learned per-layer gate thresholds: the relaxation, the learning under a budget, and the search's candidate."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from deltanas._run import RunDir
from deltanas.errors import ConfigError
from deltanas.delta import Arch, RunningGatedDelta, SearchSpace, convert
from deltanas.analysis._gating import GatedSpend
from deltanas.search import Budget, SearchConfig, build_supernet
from deltanas.search._derive import derive
from deltanas.search._learned_gates import (GateSchedule, arch_fractions, learn_gates, macs_cost, relative_scales,
                                            relax_gates)
from deltanas.search import _learned_gates as _learned
from deltanas.search._uniform import calibration_groups
from deltanas.teachers import Teacher, TeacherInfo
from deltanas.training import VideoData

from ._tiny import TINY_DATA, TinyTeacher, moving_clip, tiny_data


class TwoBranchTeacher(Teacher):
    """Two 1x1 branches on the same input, one amplified tenfold into the output and one damped tenfold:
    their gates see the same changes, and the output depends on one far more than on the other."""

    def __init__(self) -> None:
        super().__init__(TeacherInfo("two-branch", (32, 48), (0.5,) * 3, (0.25,) * 3, 10, "tests"))
        g = torch.Generator().manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.loud = nn.Conv2d(8, 16, 1)
        self.quiet = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.quiet.weight.copy_(self.loud.weight)  # the same layer but for its weight downstream
            self.quiet.bias.copy_(self.loud.bias)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward_features(self, x):
        s = torch.relu(self.stem(x))
        return 10.0 * torch.relu(self.loud(s)) + 0.1 * torch.relu(self.quiet(s))

    def classify(self, pooled):
        return self.fc(pooled)


GATE = "gated:w{}:run(full)"


def noisy_data(config=TINY_DATA) -> VideoData:
    """The tiny moving clips with sensor noise on every frame: small changes everywhere, so that where a
    threshold lies trades error against cost."""
    def noisy(clip: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return (clip.float() + 12 * torch.randn(clip.shape, generator=g)).clamp(0, 255).to(torch.uint8)

    clips = [noisy(moving_clip(40, config.frame_size, s), s) for s in (0, 3)]
    evals = [noisy(moving_clip(40, config.eval_size, s), s + 1) for s in (0, 3)]
    return VideoData(["a", "b"], [c[:24] for c in clips], [e[24:30] for e in evals], [e[30:] for e in evals],
                     [e[:24] for e in evals])


def _two_branch_start(threshold: float = 0.3) -> Arch:
    return Arch(layers={"stem": "full", "loud": GATE.format(threshold), "quiet": GATE.format(threshold)},
                default="full")


def test_the_relaxation_tends_to_the_hard_gate_and_carries_the_gradient():
    teacher = TinyTeacher()
    arch = Arch(layers={}, default=GATE.format(0.2))
    frames = noisy_data().val[0][:4].float().div(255)[None]  # one group (1, K, 3, H, W)
    hard = convert(teacher, arch, input_hw=TINY_DATA.eval_size)
    with torch.no_grad():
        expected = hard.forward_group(frames)
    relaxed = convert(teacher, arch, input_hw=TINY_DATA.eval_size)
    thresholds = relax_gates(relaxed, temperature=1.0)
    assert set(thresholds) == {name for name, layer in relaxed.delta_layers().items()
                               if isinstance(layer.student, RunningGatedDelta)}
    errors = {}
    for temperature in (1.0, 0.01, 1e-5):
        for t in thresholds.values():
            t.temperature = temperature
        with torch.no_grad():
            got = relaxed.forward_group(frames)
        errors[temperature] = float((got - expected)[:, 1:].norm() / (expected[:, 1:] - expected[:, :1]).norm())
    # positions hover at the threshold (a partial pass leaves a partial change), so the relaxed model meets
    # the hard one only at a very low temperature
    assert errors[1e-5] < 1e-4 < errors[0.01] < errors[1.0]
    got = relaxed.forward_group(frames)
    got.pow(2).sum().backward()
    grads = [t.log_value.grad for t in thresholds.values()]
    assert all(g is not None and torch.isfinite(g) for g in grads)
    assert any(float(g.abs()) > 0 for g in grads)
    # every other parameter is frozen
    assert [p for p in relaxed.parameters() if p.requires_grad] == [t.log_value for t in thresholds.values()]


def _learn(teacher, start, steps=40, target_share=1.0, tau_end=0.02):
    data = noisy_data()
    layers = convert(teacher, start, input_hw=TINY_DATA.eval_size).layers
    cost = macs_cost(layers, start, 0)
    positions = {i.name: i.out_hw[0] * i.out_hw[1] for i in layers}
    half = {name: 0.5 for name in ("loud", "quiet")} if "loud" in start.layers else \
        {name: 0.5 for name in arch_fractions(start, layers)}
    target = target_share * float(cost.of_fractions(half, positions))
    schedule = GateSchedule(steps=steps, lr=0.1, batch_groups=2, tau_start=1.0, tau_end=tau_end, seed=0)
    return learn_gates(teacher, start, cost, target, data, TINY_DATA, schedule, progress=False), target


def test_learned_thresholds_move_toward_the_layer_the_output_is_sensitive_to():
    learned, _ = _learn(TwoBranchTeacher(), _two_branch_start())
    loud, quiet = learned.thresholds["loud"], learned.thresholds["quiet"]
    # from the same threshold: the amplified branch is updated more finely, the damped one more coarsely
    assert math.log(quiet / loud) > 0.5, learned.thresholds
    scales = relative_scales(learned.thresholds)
    assert scales["loud"] < 1 < scales["quiet"]
    assert math.prod(scales.values()) == pytest.approx(1.0)


def test_full_frames_learn_on_the_training_frames_at_the_eval_size():
    data, g = noisy_data(), torch.Generator().manual_seed(0)
    crops = _learned._group_sampler(data, TINY_DATA, "crops", g).sample(3).frames
    full = _learned._group_sampler(data, TINY_DATA, "full", g).sample(3).frames
    k = TINY_DATA.keyframe_interval
    assert crops.shape[1] == full.shape[1] == k  # whole groups either way
    assert tuple(crops.shape[-2:]) == TINY_DATA.crop
    assert tuple(full.shape[-2:]) == TINY_DATA.eval_size and TINY_DATA.eval_size != TINY_DATA.frame_size
    # every group of full frames is a run of K consecutive training frames at the eval size
    for group in full:
        starts = [i for e in data.train_eval for i in range(e.shape[0] - k + 1)
                  if torch.equal(e[i:i + k].float() / 255, group)]
        assert starts, "a group that is no run of training frames"
    # a condensed set has no training frames at the eval size: its crops are used
    condensed = VideoData(data.names, data.train, data.val, data.test, [e[:0] for e in data.train_eval])
    assert tuple(_learned._group_sampler(condensed, TINY_DATA, "full", g).sample(1).frames.shape[-2:]) == TINY_DATA.crop
    with pytest.raises(ConfigError, match="gate frames"):
        GateSchedule(frames="tiles")
    with pytest.raises(ConfigError, match="gate frames"):  # a search refuses it before any training
        SearchConfig(gate_frames="tiles")


def test_the_relaxed_cost_is_the_measured_spend_at_the_end_of_annealing():
    learned, _ = _learn(TwoBranchTeacher(), _two_branch_start(), steps=30, tau_end=0.01)
    assert learned.steps == 30
    assert learned.relaxed_over_target == pytest.approx(learned.spend_over_target, rel=0.05)


def test_learning_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    teacher, start = TwoBranchTeacher(), _two_branch_start()
    data = noisy_data()
    layers = convert(teacher, start, input_hw=TINY_DATA.eval_size).layers
    cost = macs_cost(layers, start, 0)
    target = float(cost.of_fractions({"loud": 0.5, "quiet": 0.5}, {i.name: i.out_hw[0] * i.out_hw[1] for i in layers}))
    schedule = GateSchedule(steps=8, checkpoint_every=4)
    whole = learn_gates(teacher, start, cost, target, data, TINY_DATA, schedule, RunDir.create("a", tmp_path),
                        progress=False)
    run = RunDir.create("b", tmp_path)
    calls = {"n": 0}
    real = _learned.DistillLoss.__call__

    def dies_at_step_6(self, frames):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(self, frames)

    monkeypatch.setattr(_learned.DistillLoss, "__call__", dies_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        learn_gates(teacher, start, cost, target, data, TINY_DATA, schedule, run, progress=False)
    monkeypatch.setattr(_learned.DistillLoss, "__call__", real)
    resumed = learn_gates(teacher, start, cost, target, data, TINY_DATA, schedule, run, resume=True, progress=False)
    assert resumed.thresholds == pytest.approx(whole.thresholds, rel=1e-5)
    assert len((run.path / "gates_metrics.csv").read_text().strip().splitlines()) == 1 + 8


def test_the_learned_candidate_lands_in_the_budget_in_hard_mode(tmp_path):
    teacher = TinyTeacher()
    data = noisy_data()
    config = SearchConfig(teacher="tiny", data=TINY_DATA, target="0.3x", supernet=False, gate_steps=10,
                          select_groups=2)
    supernet = build_supernet(teacher, SearchSpace.load("default"), TINY_DATA.eval_size)
    full = float(sum(m[0] for m in supernet.macs.values()) + supernet.linear_macs)
    budget = Budget.parse("0.3x", full, TINY_DATA.keyframe_interval)
    run = RunDir.create("s", tmp_path)
    derive(supernet, budget, config, data, run, "tiny")
    selection = json.loads((run.path / "selection.json").read_text())
    assert "learned gates" in selection["fidelity"] and "learned gates" in selection["archs"]
    assert "logits" not in selection["fidelity"]  # no supernet: only the skip-convolutions compete
    learned = json.loads((run.path / "learned_gates.json").read_text())
    assert set(learned["thresholds"]) == {i.name for i in supernet.layers if not i.is_depthwise}
    assert [r["layer"] for r in learned["layers"]] == [i.name for i in supernet.layers]
    assert all(r["learned threshold"] is None for r in learned["layers"] if r["depthwise"])
    assert (run.path / "learned_gates.png").is_file()
    # the learned thresholds as plain (hard) gates spend within the band on the calibration groups
    arch = Arch.from_dict(selection["archs"]["learned gates"])
    model = convert(teacher, arch, input_hw=TINY_DATA.eval_size)
    spend = GatedSpend(model)
    clips = data.selection_clips(TINY_DATA.keyframe_interval, 2, 12)
    with torch.no_grad():
        for group in calibration_groups(clips, TINY_DATA.keyframe_interval, 2):
            spend.forward_group(group)
    ops = arch.resolve(supernet.layers)
    macs = sum(ops[i.name].macs(i) for i in supernet.layers) + supernet.linear_macs
    assert (1 - config.tolerance) * budget.delta_macs <= macs <= budget.delta_macs * 1.0001
    assert selection["cost"]["learned gates"] == pytest.approx(macs)
    fractions = spend.fractions()
    for name, f in arch_fractions(arch, supernet.layers).items():
        assert fractions[name] <= f + 1e-3  # the written fractions are what the gates spent, rounded up
