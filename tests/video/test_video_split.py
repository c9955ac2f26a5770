"""Splitting a clip in time."""

from __future__ import annotations

import pytest

from deltanas.errors import ConfigError
from deltanas.video import TimeSplit, split_in_time


def test_default_fractions() -> None:
    assert split_in_time(100) == TimeSplit(range(0, 60), range(60, 70), range(70, 100))


def test_gap_drops_frames_between_parts() -> None:
    split = split_in_time(108, gap=4)
    assert split == TimeSplit(range(0, 60), range(64, 74), range(78, 108))


def test_zero_fraction_gives_an_empty_part_and_no_extra_gap() -> None:
    split = split_in_time(50, (0.5, 0.0, 0.5), gap=2)
    assert len(split.val) == 0
    assert split.train == range(0, 24) and split.test == range(26, 50)


@pytest.mark.parametrize("n", [3, 7, 10, 33, 101, 250, 1394])
@pytest.mark.parametrize("fractions", [(0.6, 0.1, 0.3), (1 / 3, 1 / 3, 1 / 3), (0.8, 0.2, 0.0), (0.29, 0.01, 0.7)])
@pytest.mark.parametrize("gap", [0, 1])
def test_parts_are_ordered_disjoint_and_use_every_other_frame(n: int, fractions: tuple, gap: int) -> None:
    try:
        split = split_in_time(n, fractions, gap)
    except ConfigError:
        assert n * min(f for f in fractions if f > 0) < 1 + 2 * gap  # only refused when really too short
        return
    parts = [p for p in (split.train, split.val, split.test) if len(p)]
    assert [len(p) > 0 for p in (split.train, split.val, split.test)] == [f > 0 for f in fractions]
    for before, after in zip(parts, parts[1:]):
        assert after.start == before.stop + gap
    assert parts[0].start == 0 and parts[-1].stop == n
    for part, fraction in zip((split.train, split.val, split.test), fractions):
        assert abs(len(part) - fraction * (n - gap * (len(parts) - 1))) <= 1


@pytest.mark.parametrize(
    ("n", "fractions", "gap"),
    [
        (2, (0.6, 0.1, 0.3), 0),
        (5, (0.5, 0.0, 0.5), 4),
        (0, (0.6, 0.1, 0.3), 0),
        (10, (0.5, 0.5, 0.5), 0),
        (10, (1.2, -0.2, 0.0), 0),
        (10, (0.5, 0.5), 0),
        (10, (0.6, 0.1, 0.3), -1),
        (10, (float("nan"), 0.5, 0.5), 0),
    ],
)
def test_bad_requests_raise_config_error(n: int, fractions: tuple, gap: int) -> None:
    with pytest.raises(ConfigError):
        split_in_time(n, fractions, gap)
