"""Pareto front and hypervolume on hand-computed cases; the plot. (Gathering points from run folders:
tests/test_runs.py.)"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deltanas.analysis import hypervolume, non_dominated, pareto_analysis
from deltanas.analysis._pareto_plot import plot_pareto
from deltanas.errors import ConfigError

# (MACs, metric): A, B, C (dominated by B), D
BASE = [(1, 0.5), (2, 0.8), (3, 0.7), (4, 0.9)]


def _split(points):
    return [p[0] for p in points], [p[1] for p in points]


def test_front_of_a_simple_set():
    assert non_dominated(*_split(BASE)).tolist() == [True, True, False, True]


def test_hypervolume_by_hand():
    # best metric reachable: 0.5 on [1,2), 0.8 on [2,4), 0.9 on [4,5)
    assert hypervolume(*_split(BASE), (5, 0.0)) == pytest.approx(0.5 + 2 * 0.8 + 0.9)
    # a higher reference metric cuts A (0.5 < 0.6) and lowers every other strip
    assert hypervolume(*_split(BASE), (5, 0.6)) == pytest.approx(2 * 0.2 + 1 * 0.3)
    # dominated points add nothing
    front_only = [BASE[0], BASE[1], BASE[3]]
    assert hypervolume(*_split(BASE), (5, 0)) == pytest.approx(hypervolume(*_split(front_only), (5, 0)))


def test_ties_and_duplicates():
    points = BASE + [(2, 0.8), (2, 0.6), (3, 0.8), (1, 0.5)]
    mask = non_dominated(*_split(points)).tolist()
    # exact duplicates of front points stay on the front; a tie in one objective and worse in the
    # other is dominated
    assert mask == [True, True, False, True, True, False, False, True]
    assert hypervolume(*_split(points), (5, 0)) == pytest.approx(3.0)


def test_points_beyond_the_reference_add_nothing():
    points = BASE + [(6, 0.99), (5, 0.95), (0.5, -0.2)]
    # on the front (the best metric; the cheapest point) but outside the box: no area
    assert non_dominated(*_split(points)).tolist() == [True, True, False, True, True, True, True]
    assert hypervolume(*_split(points), (5, 0)) == pytest.approx(3.0)
    assert hypervolume([5, 7], [0.9, 0.9], (5, 0)) == 0.0  # at or beyond the reference MACs
    assert hypervolume([1, 2], [0.0, -1.0], (5, 0)) == 0.0  # at or below the reference metric
    assert hypervolume([], [], (5, 0)) == 0.0


def test_nan_points_are_never_on_the_front():
    mask = non_dominated([1, 2, math.nan], [math.nan, 0.5, 0.9])
    assert mask.tolist() == [False, True, False]
    assert hypervolume([1, 2], [math.nan, 0.5], (4, 0)) == pytest.approx(1.0)


def test_hypervolume_matches_a_grid_count():
    rng = np.random.default_rng(0)
    m, v = rng.uniform(0, 10, 30), rng.uniform(-0.2, 1, 30)
    xs = np.linspace(0, 10, 2001)[:-1] + 0.0025  # cell centres, width 0.005
    ys = np.linspace(0, 1, 801)[:-1] + 0.000625
    best = np.array([v[m <= x].max(initial=-np.inf) for x in xs])
    area = (best[:, None] >= ys[None, :]).sum() * 0.005 * 0.00125
    assert hypervolume(m, v, (10, 0)) == pytest.approx(area, rel=2e-3)
    # the front alone has the same hypervolume as all points
    front = non_dominated(m, v)
    assert hypervolume(m[front], v[front], (10, 0)) == pytest.approx(hypervolume(m, v, (10, 0)))


def _frame(rows):
    cols = ["family", "label", "macs_per_frame", "top1", "dense", "miou", "fidelity", "teacher_macs", "keyframe",
            "source"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


def test_analysis_uses_the_teacher_as_reference_and_splits_by_family():
    points = _frame([
        ("teacher", "teacher", 100.0, 1, 1, 1, 1, 100.0, 8, ""),
        ("manual", "zero", 20.0, 0.5, 0.6, 0.3, 0.0, 100.0, 8, ""),
        ("manual", "lowrank", 40.0, 0.6, 0.7, 0.4, 0.3, 100.0, 8, ""),
        ("search", "s", 30.0, 0.7, 0.8, 0.5, 0.5, 100.0, 8, ""),
    ])
    result = pareto_analysis(points, "top1")
    assert result.reference == (100.0, 0.0) and result.teacher_macs == 100.0
    on = dict(zip(result.points["label"], result.points["on_front"]))
    assert on == {"teacher": True, "zero": True, "lowrank": False, "s": True}
    assert result.hypervolume == pytest.approx(10 * 0.5 + 70 * 0.7)
    assert result.hypervolume_share == pytest.approx(result.hypervolume / 100.0)
    assert result.by_family["manual"] == pytest.approx(20 * 0.5 + 60 * 0.6)
    assert result.by_family["search"] == pytest.approx(70 * 0.7) and result.by_family["teacher"] == 0.0
    fid = pareto_analysis(points, "fidelity", reference=(50.0, 0.2))
    assert fid.hypervolume == pytest.approx((50 - 30) * (0.5 - 0.2))  # zero (0.0) is below the reference
    with pytest.raises(ConfigError, match="unknown metric"):
        pareto_analysis(points, "accuracy")


def test_plot_writes_png_and_svg(tmp_path):
    points = _frame([
        ("teacher", "teacher", 100e6, 1, 1, 1, 1, 100e6, 8, ""),
        ("manual", "zero", 20e6, 0.5, 0.6, 0.3, 0.0, 100e6, 8, ""),
        ("optuna", "trial 0", 30e6, 0.55, 0.6, 0.3, 0.2, 100e6, 8, ""),
        ("optuna", "trial 1", 60e6, math.nan, 0.6, 0.3, 0.2, 100e6, 8, ""),
        ("search", "s", 30e6, 0.7, 0.8, 0.5, 0.5, 100e6, 8, ""),
    ])
    paths = plot_pareto(pareto_analysis(points), tmp_path / "p")
    assert [p.name for p in paths] == ["p.png", "p.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert b"<svg" in paths[1].read_bytes()[:400]
