import math

import pytest
import torch

from deltanas.analysis import AgreementMeter, evaluate, keyframe_groups
from deltanas.delta import convert
from deltanas.errors import ConfigError
from deltanas.video import read_frames


def _logits(classes):
    out = torch.full((len(classes), 5), -1.0)
    out[torch.arange(len(classes)), torch.tensor(classes)] = 1.0
    return out


def test_hand_computed_group():
    teacher = _logits([0, 1, 1, 2])
    model = _logits([0, 1, 3, 2])
    meter = AgreementMeter(5)
    meter.update(teacher, model)
    a = meter.result()
    assert a.frames == 3  # the key frame is left out
    assert a.top1 == pytest.approx(2 / 3)
    assert a.reuse_top1 == 0.0  # no delta frame keeps the key frame's class 0
    # errors: frame 2 differs by 2 entries of size 2 -> 8; deltas from key: 8 per changed frame
    assert a.fidelity == pytest.approx(1 - 8 / 24)
    assert a.by_distance[2]["top1"] == 0.0 and a.by_distance[1]["top1"] == 1.0
    # teacher changes class twice over 3 pairs, the model three times
    assert a.flicker == pytest.approx((3 - 2) / 3)


def test_reuse_has_zero_fidelity_and_exact_has_one():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 10, generator=g)
    reuse = teacher[:1].expand(6, 10)
    m = AgreementMeter(10)
    m.update(teacher, reuse)
    assert m.result().fidelity == pytest.approx(0.0, abs=1e-12)
    m = AgreementMeter(10)
    m.update(teacher, teacher.clone())
    assert m.result().fidelity == 1.0 and m.result().top1 == 1.0


def test_dense_agreement_and_miou():
    t = torch.zeros(2, 3, 1, 4)
    s = torch.zeros(2, 3, 1, 4)
    # frame 1 (delta frame): teacher classes [0,0,1,2], model [0,1,1,2]
    for i, c in enumerate([0, 0, 1, 2]):
        t[1, c, 0, i] = 1
    for i, c in enumerate([0, 1, 1, 2]):
        s[1, c, 0, i] = 1
    m = AgreementMeter(3)
    m.update(torch.randn(2, 3), torch.randn(2, 3), t, s)
    a = m.result()
    assert a.dense == pytest.approx(3 / 4)
    # IoU: class0 1/2, class1 1/2, class2 1/1
    assert a.miou == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_ratio_of_sums_not_mean_of_ratios():
    key = torch.zeros(1, 2)
    # a near-static frame (tiny delta, relatively large error) and a moving one
    teacher = torch.cat([key, torch.tensor([[1e-3, 0.0]]), torch.tensor([[10.0, 0.0]])])
    model = torch.cat([key, torch.tensor([[0.0, 0.0]]), torch.tensor([[9.0, 0.0]])])
    m = AgreementMeter(2)
    m.update(teacher, model)
    expected = 1 - (1e-6 + 1.0) / (1e-6 + 100.0)
    assert m.result().fidelity == pytest.approx(expected)
    assert not math.isnan(m.result().fidelity)


def test_reuse_top1_counts_the_frames_that_keep_the_key_frames_class():
    meter = AgreementMeter(5)
    meter.update(_logits([2, 2, 1, 2]), _logits([2, 1, 1, 1]))
    meter.update(_logits([0, 0]), _logits([0, 0]))
    a = meter.result()
    assert a.reuse_top1 == pytest.approx(3 / 4) and a.top1 == pytest.approx(2 / 4)


def test_reuse_top1_is_what_reusing_the_key_frame_scores_on_real_footage(lite0):
    clips = [("bikes", read_frames("bikes", (64, 96), max_frames=24))]
    reuse = evaluate(convert(lite0, "zero", input_hw=(64, 96)), clips, 8, progress=False).pooled
    exact = evaluate(convert(lite0, "full", input_hw=(64, 96)), clips, 8, progress=False).pooled
    assert reuse.top1 == reuse.reuse_top1 < 1.0  # the class changes on some frames of this clip
    assert exact.top1 == 1.0 and exact.reuse_top1 == reuse.reuse_top1


def test_keyframe_groups_at_a_phase_cover_every_frame_once():
    frames = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 1, 1)
    groups = list(keyframe_groups(frames, 8, phase=3))
    assert [len(g) for g in groups] == [3, 8, 8, 1]
    assert [round(float(g[0, 0, 0, 0]) * 255) for g in groups] == [0, 3, 11, 19]  # the key frames
    assert [len(g) for g in keyframe_groups(frames, 8)] == [8, 8, 4]


def test_every_phase_makes_every_later_frame_a_delta_frame_at_each_distance(lite0):
    clips = [("bikes", read_frames("bikes", (64, 96), max_frames=24))]
    reuse = evaluate(convert(lite0, "zero", input_hw=(64, 96)), clips, 8, progress=False, phases=8)
    exact = evaluate(convert(lite0, "full", input_hw=(64, 96)), clips, 8, progress=False, phases=8).pooled
    # frame 0 is the key frame of every phase, each later frame of exactly one
    assert reuse.pooled.frames == 7 * 23 and reuse.key_frames == 8 * 3 + 7
    assert sorted(reuse.pooled.by_distance) == list(range(1, 8))
    assert reuse.pooled.fidelity == pytest.approx(0.0, abs=1e-6) and exact.fidelity == pytest.approx(1.0, abs=1e-5)
    assert exact.top1 == 1.0 and reuse.pooled.top1 == reuse.pooled.reuse_top1
    assert sorted(set(reuse.blocks)) == [0, 1, 2] and len(reuse.blocks) == len(reuse.groups)
    single = evaluate(convert(lite0, "zero", input_hw=(64, 96)), clips, 8, progress=False)
    assert single.blocks == (0, 1, 2) and single.pooled.frames == 21
    with pytest.raises(ConfigError, match="phases"):
        evaluate(convert(lite0, "zero", input_hw=(64, 96)), clips, 8, progress=False, phases=9)
