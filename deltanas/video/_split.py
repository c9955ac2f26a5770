"""Split a clip in time into train / val / test frame ranges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deltanas.errors import ConfigError

__all__ = ["TimeSplit", "split_in_time"]


@dataclass(frozen=True)
class TimeSplit:
    """Frame index ranges, in this order in time; ``gap`` frames lie unused between parts."""

    train: range
    val: range
    test: range


def split_in_time(
    n_frames: int, fractions: Sequence[float] = (0.6, 0.1, 0.3), gap: int = 0
) -> TimeSplit:
    """Cut ``range(n_frames)`` into consecutive train, val and test parts.

    Nearby frames are nearly identical, so a random split would leak; contiguous parts with
    ``gap`` dropped frames between non-empty neighbours do not. A fraction of 0 gives an empty
    range; every other part gets at least one frame, else :class:`ConfigError`.
    """
    if not isinstance(n_frames, int) or isinstance(n_frames, bool) or n_frames < 1:
        raise ConfigError(f"n_frames must be a positive integer, got {n_frames!r}")
    if not isinstance(gap, int) or isinstance(gap, bool) or gap < 0:
        raise ConfigError(f"gap must be an integer >= 0, got {gap!r}")
    fracs = _check_fractions(fractions)

    wanted = [i for i, f in enumerate(fracs) if f > 0]
    usable = n_frames - gap * (len(wanted) - 1)
    if usable < len(wanted):
        raise ConfigError(
            f"{n_frames} frames are too few for {len(wanted)} parts with gap={gap}"
        )
    lengths = _apportion(fracs, usable)
    short = [("train", "val", "test")[i] for i in wanted if lengths[i] == 0]
    if short:
        raise ConfigError(
            f"{n_frames} frames are too few: {', '.join(short)} would get no frame "
            f"(fractions {list(fracs)}, gap={gap})"
        )

    ranges: list[range] = []
    at = 0
    for i, length in enumerate(lengths):
        ranges.append(range(at, at + length))
        at += length
        if length and any(lengths[j] for j in range(i + 1, 3)):
            at += gap  # only between two non-empty parts
    return TimeSplit(*ranges)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fracs = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(f"fractions must be three numbers, got {fractions!r}") from None
    if len(fracs) != 3:
        raise ConfigError(f"fractions must be three numbers (train, val, test), got {fractions!r}")
    if any(not math.isfinite(f) or f < 0 for f in fracs):
        raise ConfigError(f"fractions must be finite and >= 0, got {fractions!r}")
    if abs(sum(fracs) - 1.0) > 1e-6:
        raise ConfigError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fracs):g})")
    return fracs  # type: ignore[return-value]


def _apportion(fracs: Sequence[float], total: int) -> list[int]:
    # Largest remainder: floors first, leftovers to the biggest remainders (earlier part on ties).
    norm = sum(fracs)  # within 1e-6 of 1; normalising keeps the floors from overshooting
    exact = [f / norm * total for f in fracs]
    lengths = [math.floor(x) for x in exact]
    order = sorted(range(len(fracs)), key=lambda i: (-(exact[i] - lengths[i]), i))
    for i in order[: total - sum(lengths)]:
        if fracs[i] > 0:
            lengths[i] += 1
    # Leftovers that fell on zero-fraction parts (rounding noise only) go to the first real part.
    lengths[next(i for i, f in enumerate(fracs) if f > 0)] += total - sum(lengths)
    return lengths
