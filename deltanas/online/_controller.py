"""The controller of an online stream: from the check at each key frame, the next key-frame interval and
gate scale."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Check", "Controller", "Decision", "OnlineConfig"]

COSTS = ("ms", "macs")


@dataclass(frozen=True)
class OnlineConfig:
    """What the controller holds and within which bounds.

    The target is ``target_fidelity`` (``1 - sum|y_hat - y|^2 / sum|y - y_key|^2`` of the logits over the
    checks; 1 is the teacher, 0 key-frame reuse) or ``target_top1`` (share of checks whose top-1 class is the
    teacher's). The interval runs between ``min_interval`` and ``max_interval`` frames, the gate scale (a
    factor on the model's running-gate thresholds) between ``min_scale`` and ``max_scale``; both start at
    ``start_interval`` and 1. A knob grows only after ``patience`` checks in a row that beat the target by
    ``margin`` (pooled over the last ``window`` checks); a level that failed is not tried again until twice as
    many checks have passed as the last time (at most ``max_hold``), so a steady scene settles instead of
    oscillating. A change of the input between consecutive frames above ``cut_threshold`` (relative energy)
    is a scene cut: a key frame at once. ``cost`` is what the controller saves: measured ``ms`` or ``macs``
    (the same on every machine, for reproducible runs). A check's squared error counts ``check_weight`` times
    against the fidelity target: the check is the group's last frame, where the teacher's change is largest,
    so the group's pooled error ratio lies above the check's (on the benchmark streams 1.23x at the median,
    2x at the upper quartile). Where delta groups cost more than the teacher alone,
    the teacher alone runs for ``dense_probe`` frames (doubling while probes find the same) before a group is
    tried again. ``probes``: exact probes where the controller knows nothing of the scene (see
    :class:`Controller`).
    """

    target_fidelity: float | None = 0.85
    target_top1: float | None = None
    min_interval: int = 2
    max_interval: int = 64
    start_interval: int = 8
    min_scale: float = 1 / 16
    max_scale: float = 4.0
    scale_step: float = 2.0
    margin: float = 0.03
    window: int = 4
    patience: int = 2
    max_hold: int = 32
    cut_threshold: float = 0.1
    cost: str = "ms"
    dense_probe: int = 32
    check_weight: float = 1.5
    probes: bool = True

    def __post_init__(self) -> None:
        if (self.target_fidelity is None) == (self.target_top1 is None):
            raise ConfigError("name one target: target_fidelity or target_top1")
        target = self.target
        if not (math.isfinite(target) and 0 < target < 1):
            raise ConfigError(f"the target must lie between 0 and 1, got {target}")
        if not 1 <= self.min_interval <= self.start_interval <= self.max_interval:
            raise ConfigError(f"need 1 <= min_interval ({self.min_interval}) <= start_interval "
                              f"({self.start_interval}) <= max_interval ({self.max_interval})")
        if not 0 < self.min_scale <= 1 <= self.max_scale:
            raise ConfigError(f"need 0 < min_scale ({self.min_scale}) <= 1 <= max_scale ({self.max_scale})")
        if self.scale_step <= 1 or min(self.window, self.patience, self.max_hold, self.dense_probe) < 1:
            raise ConfigError("scale_step must exceed 1; window, patience, max_hold and dense_probe must be >= 1")
        if not self.cut_threshold > 0:
            raise ConfigError("cut_threshold must be positive")
        if not self.check_weight >= 1:
            raise ConfigError("check_weight must be at least 1")
        if self.cost not in COSTS:
            raise ConfigError(f"unknown cost {self.cost!r}; known: {', '.join(COSTS)}")

    @property
    def target(self) -> float:
        return self.target_fidelity if self.target_fidelity is not None else self.target_top1

    @property
    def metric(self) -> str:
        return "fidelity" if self.target_fidelity is not None else "top1"


@dataclass(frozen=True)
class Check:
    """The delta model against the teacher on a key frame, before the key frame resets the state:
    ``sq_err`` (squared error of the logits), ``sq_change`` (squared change of the teacher's logits since the
    last key frame: the error of reusing it), ``top1_agree``; and, in the controller's cost unit, what the
    group cost per delta frame and per key frame, and what the teacher alone costs per frame (``dense_cost``,
    no state for delta frames: less than a key frame)."""

    sq_err: float
    sq_change: float
    top1_agree: bool
    delta_cost: float
    key_cost: float
    dense_cost: float | None = None

    @property
    def worse_than_reuse(self) -> bool:
        return self.sq_err > self.sq_change * (1 + 1e-6) + 1e-12


@dataclass(frozen=True)
class Decision:
    interval: int
    scale: float
    event: str  # "hold", "grow interval", "grow scale", "shrink", "fallback", "dense", "probe", "cut"
    reason: str = ""


@dataclass
class _Knob:
    """One knob's level (an index on its ladder) and, per level that failed, how many passing checks must
    come before it is tried again."""

    level: int
    top: int
    holds: dict[int, int] = field(default_factory=dict)
    waits: dict[int, int] = field(default_factory=dict)

    def can_grow(self) -> bool:
        return self.level < self.top and self.waits.get(self.level + 1, 0) <= 0

    def failed(self, level: int, max_hold: int) -> None:
        hold = min(2 * self.holds.get(level, 1), max_hold)
        self.holds[level] = hold
        self.waits[level] = hold

    def passed(self) -> None:
        for level in list(self.waits):
            self.waits[level] -= 1


class Controller:
    """The online controller. ``decide(check)`` after each check (and ``cut()`` after a scene cut) returns the
    interval and gate scale of the next group; ``scalable`` says whether the model has gates the scale acts
    on (else only the interval moves).

    The interval moves on doublings from ``start_interval`` (clipped to the bounds), the scale on factors
    of ``scale_step``. When the checks since the last change miss the target (pooled), or one check misses it
    by more than ``CLEAR_MISS``: a knob grown just before is put back; else a clear miss (the scene changed)
    shrinks both knobs a step, a small one the gate scale alone (finer gates lower the error at any interval;
    with running-reference gates a shorter interval need not: the error stays bounded while the teacher's
    change, the yardstick, shrinks), or the interval where no gate scale is left to shrink. A check worse than
    key-frame reuse drops to the finest gates and a shorter interval (no gates: the shortest; ``fallback``).
    After ``patience`` passing checks in a row the knob that saves more grows one step: the interval saves
    the key frame's cost spread over twice the frames, the scale an assumed third of the delta frames' cost.
    Where a delta group costs more per frame than the teacher alone (``DENSE_MARGIN``), the teacher alone
    runs (``dense``) for ``dense_probe`` frames, then a probe measures again; each probe that finds the same
    doubles the wait, up to ``MAX_DENSE_HOLD`` times ``dense_probe``, and a scene cut brings the next probe
    within ``dense_probe`` frames; delta frames that alone cost more than the teacher end their group at once
    (:meth:`delta_costs`).

    Where the controller knows nothing of the scene (the stream's start, a scene cut, the end of a spell of
    the teacher alone) and the config's ``probes`` is on, the next group is an exact ``probe``: a group whose
    delta frames run beside the teacher, which gives the outputs (``probing`` says so). Its check measures
    what the group would have cost and erred before a group risks an output on an unknown scene; it may
    shrink the knobs, never grow them. A probe that misses the target probes again at the knobs' shrunk
    levels; at their lowest, the teacher alone runs.
    """

    DENSE_MARGIN = 0.1  # delta groups must cost this much more than the teacher alone to leave them
    MAX_DENSE_HOLD = 8  # probes at least every 8 x dense_probe frames
    DELTA_SAVING = 1 / 3  # share of a delta frame's cost one scale step is assumed to save
    CLEAR_MISS = 0.1  # a check this far below the target: the scene changed
    EARLY_FRAMES = 2  # delta frames measured before their cost alone can end a group

    def __init__(self, config: OnlineConfig, scalable: bool = True, checks: bool = True) -> None:
        self.config = config
        self.scalable = scalable
        self.probes = config.probes and checks  # a fixed schedule (no checks) has no probes
        c = config
        self.intervals = _ladder(c.start_interval, c.min_interval, c.max_interval, 2.0, integer=True)
        self.scales = _ladder(1.0, c.min_scale, c.max_scale, c.scale_step) if scalable else [1.0]
        self.interval_knob = _Knob(self.intervals.index(c.start_interval), len(self.intervals) - 1)
        self.scale_knob = _Knob(self.scales.index(1.0), len(self.scales) - 1)
        self.recent: list[Check] = []
        self.streak = 0
        self.grown: _Knob | None = None  # the knob grown since the last passing check
        self.dense_left = 0  # frames of the teacher alone still to run
        self.dense_hold = config.dense_probe  # frames of the teacher alone before the next probe
        self.probing = self.probes  # the next group is an exact probe
        self.after_dense = False  # the next check ends a spell of the teacher alone

    @property
    def dense(self) -> bool:
        """Whether the teacher alone runs now (delta groups cost more here)."""
        return self.dense_left > 0

    @property
    def interval(self) -> int:
        """Frames from this key frame to the next: 1 on the teacher alone."""
        return 1 if self.dense else self.group_interval

    @property
    def group_interval(self) -> int:
        """The interval a delta group runs at (the interval knob's level)."""
        return int(self.intervals[self.interval_knob.level])

    def dense_frame(self, cut: bool = False) -> Decision | None:
        """One frame of the teacher alone ran (``cut``: at a scene cut, after which a probe comes within
        ``dense_probe`` frames); when the wait is over, a ``probe``: the next frame is a key frame, then a group
        at the last interval and scale (exact, with ``probes``)."""
        if cut:
            self.dense_hold = self.config.dense_probe
            self.dense_left = min(self.dense_left, self.dense_hold)
        self.dense_left -= 1
        if self.dense:
            return None
        self.after_dense, self.probing = True, self.probes
        return self._decision("probe")

    @property
    def scale(self) -> float:
        return float(self.scales[self.scale_knob.level])

    def _passes(self, checks: list[Check], margin: float) -> bool:
        c = self.config
        if c.metric == "top1":
            return sum(ch.top1_agree for ch in checks) / len(checks) >= c.target + margin
        err = c.check_weight * sum(ch.sq_err for ch in checks)
        change = sum(ch.sq_change for ch in checks)
        if change <= 0:
            return err <= 1e-12
        return 1.0 - err / change >= c.target + margin

    def decide(self, check: Check) -> Decision:
        c = self.config
        self.recent = (self.recent + [check])[-c.window:]
        k = self.group_interval
        group = (check.key_cost + k * check.delta_cost) / k  # per frame, the check counted as a delta frame
        dense = check.dense_cost if check.dense_cost is not None else check.key_cost
        probe, self.probing = self.probing, False
        bottom = self.interval_knob.level == 0 and (self.scale_knob.level == 0 or not self.scalable)
        decision = self._accuracy(check, may_grow=not probe)
        missed = probe and decision.event in ("shrink", "fallback")
        dearer = group > dense * (1 + self.DENSE_MARGIN)
        if dearer or (missed and bottom):  # the teacher alone: cheaper here, or the only level left; exact
            if decision.event.startswith("grow"):
                self.grown.level -= 1
            return self._go_dense(f"delta groups ({group:.3g} per frame) cost more than the teacher alone "
                                  f"({dense:.3g})" if dearer else
                                  "a probe at the finest gates and the shortest interval missed the target")
        if missed:  # no group on a level known to miss: probe again, finer
            self.probing = True
            return self._decision("probe", decision.reason + "; probing again")
        self.dense_hold, self.after_dense = c.dense_probe, False
        return decision

    def delta_costs(self, costs: list[float], dense_cost: float) -> Decision | None:
        """After each delta frame of a group, its frames' ``costs`` so far: where their mean alone exceeds the
        teacher alone's (by ``DENSE_MARGIN``, over ``EARLY_FRAMES`` frames at least), no check can keep the
        group, and the teacher alone takes over at once."""
        if len(costs) < self.EARLY_FRAMES or sum(costs) / len(costs) <= dense_cost * (1 + self.DENSE_MARGIN):
            return None
        return self._go_dense(f"delta frames ({sum(costs) / len(costs):.3g} each) cost more than the teacher "
                              f"alone ({dense_cost:.3g})")

    def _go_dense(self, reason: str) -> Decision:
        if self.after_dense:  # confirmed: probe half as often
            self.dense_hold = min(2 * self.dense_hold, self.config.dense_probe * self.MAX_DENSE_HOLD)
        self.dense_left, self.recent, self.streak, self.grown = self.dense_hold, [], 0, None
        self.after_dense = self.probing = False
        return self._decision("dense", reason)

    def _accuracy(self, check: Check, may_grow: bool = True) -> Decision:
        c = self.config
        iv, sc = self.interval_knob, self.scale_knob
        if check.worse_than_reuse:
            shrink = [(sc, 0), (iv, iv.level - 1)] if self.scalable else [(iv, 0)]
            for knob, level in shrink:
                knob.failed(knob.level, c.max_hold)
                knob.level = max(0, level)
            self.streak, self.recent, self.grown = 0, [], None
            return self._decision("fallback", f"error {check.sq_err:.4g} above key-frame reuse's "
                                              f"{check.sq_change:.4g}")
        clear_miss = not self._passes([check], -self.CLEAR_MISS)
        if clear_miss or not self._passes(self.recent, 0.0):
            if self.grown is not None:  # the growth since the last pass did it: undo that alone
                knobs = [self.grown]
            elif clear_miss:  # the scene changed: back off on both
                knobs = [iv, sc]
            else:  # a small miss: finer gates first, they lower the error at any interval
                knobs = [sc] if self.scalable and sc.level > 0 else [iv]
            for knob in knobs:
                knob.failed(knob.level, c.max_hold)
                knob.level = max(0, knob.level - 1)
            self.streak, self.recent, self.grown = 0, [], None
            return self._decision("shrink", f"checks' {c.metric} below the target {c.target:g}")
        self.grown = None
        iv.passed()
        sc.passed()
        self.streak = self.streak + 1 if self._passes(self.recent, c.margin) else 0
        if self.streak < c.patience or not may_grow:
            return self._decision("hold")
        self.streak = 0
        k = self.group_interval
        grow_interval = (check.key_cost - check.delta_cost) / (2 * k) if iv.can_grow() else -math.inf
        grow_scale = self.DELTA_SAVING * check.delta_cost * (k - 1) / k if sc.can_grow() else -math.inf
        if grow_interval == grow_scale == -math.inf:
            return self._decision("hold")
        self.recent = []
        self.grown = iv if grow_interval >= grow_scale else sc
        self.grown.level += 1
        return self._decision("grow interval" if self.grown is iv else "grow scale")

    def cut(self) -> Decision:
        """A scene cut outside the teacher-alone mode (there: :meth:`dense_frame`): the next group (after a
        probe, with ``probes``) starts no longer than ``start_interval`` and no coarser than scale 1, and the
        checks of the old scene no longer count."""
        c = self.config
        self.interval_knob.level = min(self.interval_knob.level, self.intervals.index(c.start_interval))
        self.scale_knob.level = min(self.scale_knob.level, self.scales.index(1.0))
        self.recent, self.streak, self.grown = [], 0, None
        self.probing = self.probes
        return self._decision("cut")

    def _decision(self, event: str, reason: str = "") -> Decision:
        return Decision(self.interval, self.scale, event, reason)


def _ladder(start: float, low: float, high: float, step: float, integer: bool = False) -> list[float]:
    """``start`` times powers of ``step`` within [low, high], ascending, with the bounds themselves."""
    values = {start}
    v = start
    while v / step >= low * (1 - 1e-9):
        v /= step
        values.add(round(v) if integer else v)
    v = start
    while v * step <= high * (1 + 1e-9):
        v *= step
        values.add(round(v) if integer else v)
    values.update({low, high})
    return sorted(values)
