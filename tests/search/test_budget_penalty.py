import pytest
import torch

from deltanas.errors import ConfigError
from deltanas.search import PENALTIES, Budget, fit_to_budget, make_penalty, parse_macs


@pytest.mark.parametrize("text,expected", [("0.2x", 200.0), ("150M", 150e6), ("1.5G", 1.5e9), ("5e8", 5e8),
                                           ("12k", 12e3), (" 0.35X ", 350.0)])
def test_parse_macs(text, expected):
    assert parse_macs(text, reference=1000.0) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "0.2y", "-1x", "x"])
def test_parse_macs_refuses_garbage(text):
    with pytest.raises(ConfigError, match="bad MAC target"):
        parse_macs(text, 1000.0)


def test_target_frame_is_an_average_over_the_group():
    b = Budget.parse(None, teacher_macs=800.0, keyframe_interval=8, target_frame="0.35x")
    assert b.per_frame() == pytest.approx(0.35 * 800)
    assert b.delta_macs == pytest.approx((8 * 0.35 * 800 - 800) / 7)
    with pytest.raises(ConfigError, match="key frame's own share"):
        Budget.parse(None, 800.0, 8, target_frame="0.1x")  # below 1/K of the teacher
    with pytest.raises(ConfigError, match="one budget"):
        Budget.parse("0.2x", 800.0, 8, target_frame="0.3x")


def test_reachability_is_checked():
    b = Budget.parse("1.2x", 100.0, 8)
    with pytest.raises(ConfigError, match="above the teacher"):
        b.check_reachable(cheapest=5.0)
    with pytest.raises(ConfigError, match="below the cheapest"):
        Budget.parse("0.01x", 100.0, 8).check_reachable(cheapest=5.0)
    Budget.parse("0.2x", 100.0, 8).check_reachable(cheapest=5.0)


def _grad(penalty, expected, target=100.0, task=1.0):
    e = torch.tensor(float(expected), requires_grad=True)
    penalty.combine(torch.tensor(task), e, target).backward()
    return float(e.grad)


def test_every_penalty_pushes_down_when_over_budget():
    for name in PENALTIES:
        p = make_penalty(name, 1.0)
        assert _grad(p, 150.0) > 0, name


def test_absolute_pulls_up_from_below_and_linear_does_not():
    assert _grad(make_penalty("absolute", 1.0), 50.0) < 0
    assert _grad(make_penalty("linear", 1.0), 50.0) > 0


def test_lagrangian_dual_ascent_drives_lambda_both_ways_and_round_trips():
    p = make_penalty("lagrangian", 0.0)
    p.after_step(150.0, 100.0)
    assert p.weight == pytest.approx(0.5 * p.rate)
    p.after_step(50.0, 100.0)
    p.after_step(50.0, 100.0)
    assert p.weight < 0  # below target: lambda turns negative, pushing E back up
    q = make_penalty("lagrangian", 3.0)
    q.load_state(p.state())
    assert q.weight == p.weight
    with pytest.raises(ConfigError, match="unknown penalty"):
        make_penalty("quadratic", 1.0)


def test_fit_repairs_over_budget_by_least_score_per_mac():
    macs = {"a": torch.tensor([100.0, 50.0, 0.0]), "b": torch.tensor([100.0, 60.0, 0.0])}
    scores = {"a": torch.tensor([0.0, -1.0, -5.0]), "b": torch.tensor([0.0, -0.1, -5.0])}
    choice = fit_to_budget({"a": 0, "b": 0}, scores, macs, fixed_macs=10.0, target=175.0)
    # b's step (0.1 score for 40 MACs) is far cheaper than a's (1 for 50): b moves first and that suffices
    assert choice == {"a": 0, "b": 1}


def test_fit_fills_up_to_the_tolerance_but_never_above():
    macs = {n: torch.tensor([100.0, 30.0, 10.0, 0.0]) for n in "abcd"}
    scores = {n: torch.tensor([0.0, -0.2, -0.5, -3.0]) for n in "abcd"}
    start = {n: 3 for n in "abcd"}
    for target in (45.0, 130.0, 250.0, 399.0):
        choice = fit_to_budget(start, scores, macs, 0.0, target, tolerance=0.03)
        total = sum(float(macs[n][i]) for n, i in choice.items())
        assert total <= target
        best_possible = max(sum(c) for c in __import__("itertools").product([100, 30, 10, 0], repeat=4)
                            if sum(c) <= target)
        assert total >= min(0.97 * target, best_possible) - 1e-9
