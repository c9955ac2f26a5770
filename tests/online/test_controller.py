"""The online controller on scripted checks: it holds the target, reacts, settles and falls back."""

from __future__ import annotations

import pytest

from deltanas.errors import ConfigError
from deltanas.online import Check, Controller, OnlineConfig


def _check(fidelity: float, change: float = 1.0, delta_cost: float = 10.0, key_cost: float = 100.0) -> Check:
    return Check((1 - fidelity) * change, change, fidelity > 0.5, delta_cost, key_cost)


def _scene(interval: int, scale: float, difficulty: float) -> float:
    """A scene whose fidelity falls with the interval and the gate scale (difficulty: 0 static)."""
    return 1 - difficulty * interval * scale


def _drive(controller: Controller, difficulty: float, checks: int) -> list[tuple[int, float]]:
    seen = []
    for _ in range(checks):
        controller.decide(_check(_scene(controller.interval, controller.scale, difficulty)))
        seen.append((controller.interval, controller.scale))
    return seen


def test_an_unchanging_scene_grows_the_interval_to_its_maximum():
    c = Controller(OnlineConfig(max_interval=64, cost="macs"))
    for _ in range(12):
        c.decide(Check(0.0, 0.0, True, 0.0, 100.0))  # nothing changed, nothing wrong
    assert c.interval == 64


def test_a_harder_scene_shortens_the_interval_and_refines_the_gates():
    c = Controller(OnlineConfig(cost="macs"))
    easy = _drive(c, 0.0005, 30)
    interval, scale = easy[-1]
    hard = _drive(c, 0.02, 30)
    assert hard[-1][0] < interval and hard[-1][1] < scale
    assert _scene(*hard[-1], 0.02) >= 0.85  # where it settled holds the target


def test_a_steady_scene_settles_instead_of_oscillating():
    c = Controller(OnlineConfig(cost="macs"))
    seen = _drive(c, 0.004, 200)
    changes = sum(a != b for a, b in zip(seen[-100:], seen[-99:]))
    assert changes <= 12  # a retry now and then (the hold doubles each time), not every few checks
    assert sum(_scene(i, s, 0.004) >= 0.85 for i, s in seen[-100:]) >= 90


def test_a_check_worse_than_reuse_falls_back_to_the_finest_gates():
    c = Controller(OnlineConfig(min_interval=2, min_scale=1 / 8, cost="macs", probes=False))
    d = c.decide(Check(2.0, 1.0, False, 10.0, 100.0))
    assert d.event == "fallback" and "reuse" in d.reason
    assert (c.interval, c.scale) == (4, 1 / 8)
    c = Controller(OnlineConfig(min_interval=2, cost="macs", probes=False), scalable=False)
    c.decide(Check(2.0, 1.0, False, 10.0, 100.0))
    assert c.interval == 2  # no gates to refine: the shortest interval


def test_a_miss_right_after_a_growth_puts_that_knob_back():
    c = Controller(OnlineConfig(cost="macs", patience=1))
    assert c.decide(_check(0.99)).event == "hold"  # the stream's first check ends a probe: no growth
    assert c.decide(_check(0.99)).event == "grow interval"
    d = c.decide(_check(0.84))
    assert d.event == "shrink" and (c.interval, c.scale) == (8, 1.0)


def test_a_small_miss_refines_the_gates_and_a_clear_one_backs_off_on_both():
    c = Controller(OnlineConfig(cost="macs"))  # errors count 1.5 times: 0.92 passes, 0.92 then 0.86 not
    assert c.decide(_check(0.92)).event == "hold"
    c.decide(_check(0.86))
    assert (c.interval, c.scale) == (8, 0.5)
    c.decide(_check(0.5))
    assert (c.interval, c.scale) == (4, 0.25)


def test_a_cut_resets_the_knobs_to_their_start():
    c = Controller(OnlineConfig(cost="macs"))
    _drive(c, 0.0, 20)
    assert c.interval > 8
    d = c.cut()
    assert (d.interval, d.scale, d.event) == (8, 1.0, "cut") and c.probing  # an exact probe first


def test_delta_groups_dearer_than_the_teacher_alone_hand_over_to_it_then_probe_again():
    c = Controller(OnlineConfig(cost="ms", dense_probe=4))
    d = c.decide(Check(0.0, 1.0, True, delta_cost=40.0, key_cost=60.0, dense_cost=30.0))
    assert d.event == "dense" and c.dense and c.interval == 1
    assert [c.dense_frame() for _ in range(3)] == [None] * 3
    probe = c.dense_frame()
    assert probe.event == "probe" and not c.dense and c.interval == 8 and c.probing
    d = c.decide(Check(0.0, 1.0, True, delta_cost=40.0, key_cost=60.0, dense_cost=30.0))
    assert d.event == "dense"
    assert sum(c.dense_frame() is None for _ in range(8)) == 7  # the probe confirmed it: twice as long
    c.decide(Check(0.0, 1.0, True, delta_cost=40.0, key_cost=60.0, dense_cost=30.0))
    assert c.dense_frame(cut=True) is None  # a new scene: the probe comes within dense_probe frames again
    assert [c.dense_frame() is None for _ in range(3)] == [True, True, False]
    d = c.decide(Check(0.0, 1.0, True, delta_cost=5.0, key_cost=60.0, dense_cost=30.0))
    assert d.event != "dense" and c.dense_hold == 4  # cheap delta frames: the groups stay, probes reset


def test_a_probe_measures_exactly_and_may_shrink_but_not_grow():
    """The stream's start is a probe (a group in the teacher's shadow); what follows is a group at the knobs'
    levels, grown only by the checks of groups."""
    c = Controller(OnlineConfig(cost="macs", patience=1))
    assert c.probing and c.interval == 8
    assert c.decide(_check(0.99)).event == "hold"
    assert not c.probing and c.decide(_check(0.99)).event == "grow interval"
    c = Controller(OnlineConfig(cost="macs", probes=False))  # a fixed schedule: no probe
    assert c.interval == 8 and c.cut().interval == 8
    assert Controller(OnlineConfig(cost="macs"), checks=False).interval == 8


def test_a_probe_that_misses_probes_again_finer_and_at_the_bottom_hands_over_to_the_teacher():
    """No group runs on a level a probe saw miss: the next probe is at the shrunk levels; a miss with both
    knobs at their lowest leaves the teacher alone."""
    c = Controller(OnlineConfig(cost="macs", min_interval=4, min_scale=0.5))
    d = c.decide(_check(0.5))  # a clear miss: both knobs back off, and the next group is a probe again
    assert (d.event, d.interval, d.scale) == ("probe", 4, 0.5) and c.probing
    d = c.decide(_check(0.5))  # missed at the bottom
    assert d.event == "dense" and "finest" in d.reason and c.dense
    c = Controller(OnlineConfig(cost="macs"))
    c.decide(_check(0.5))
    d = c.decide(_check(0.95))  # the finer level passes: its group runs
    assert d.event == "hold" and not c.probing and c.interval == 4


def test_delta_frames_that_alone_cost_more_than_the_teacher_end_their_group_at_once():
    c = Controller(OnlineConfig(cost="ms", dense_probe=4))
    assert c.delta_costs([50.0], 30.0) is None  # one frame is not a measurement yet
    assert c.delta_costs([30.0, 32.0], 30.0) is None  # within the margin
    d = c.delta_costs([50.0, 45.0], 30.0)
    assert d.event == "dense" and c.dense and not c.probing and "delta frames" in d.reason


def test_without_gates_only_the_interval_moves():
    c = Controller(OnlineConfig(cost="macs"), scalable=False)
    _drive(c, 0.0, 20)
    assert c.scale == 1.0 and c.interval == 64


def test_top1_target():
    c = Controller(OnlineConfig(target_fidelity=None, target_top1=0.9, cost="macs", probes=False))
    d = c.decide(Check(0.5, 1.0, False, 10.0, 100.0))
    assert d.event == "shrink"


@pytest.mark.parametrize("kw", [dict(target_fidelity=1.5), dict(target_top1=0.9), dict(min_interval=16),
                                dict(cost="joules"), dict(min_scale=2.0)])
def test_bad_configs_are_refused(kw):
    with pytest.raises(ConfigError):
        OnlineConfig(**kw)
