"""What ``deltanas condense`` does: one frozen dataclass, kept in the checkpoint to resume only the same job."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._config import JsonConfig
from ..errors import ConfigError
from ._format import CONDENSE_METHODS
from ._memory import GeneratorSpec

__all__ = ["CondenseConfig"]


@dataclass(frozen=True)
class CondenseConfig(JsonConfig):
    """N groups of K frames at ``size`` by ``method``; the rest is the matching loop's (``distill`` only):
    ``steps`` of Adam, each on ``batch_groups`` synthetic groups at ``later_frames`` consecutive ones of their
    K-1 later frames (from a random distance), against the statistics pooled on ``real_groups`` real groups
    spread over the footage."""

    groups: int = 10
    method: str = "distill"
    keyframe_interval: int = 8
    size: tuple[int, int] = (256, 448)
    steps: int = 200
    batch_groups: int = 2  # with later_frames, 6 frames through the teacher and back per step
    later_frames: int = 2
    real_groups: int = 64
    lr_frames: float = 0.01  # key-frame logits
    lr_codes: float = 0.05
    lr_generator: float = 0.003
    gate_weight: float = 1.0  # the terms of deltanas.condense.statistic_distance
    delta_weight: float = 1.0
    key_weight: float = 1.0
    generator: GeneratorSpec = field(default_factory=GeneratorSpec)
    checkpoint_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in CONDENSE_METHODS:
            raise ConfigError(f"unknown condense method {self.method!r}; known: {', '.join(CONDENSE_METHODS)}")
        for name in ("groups", "steps", "batch_groups", "later_frames", "real_groups", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.keyframe_interval, int) or self.keyframe_interval < 2:
            raise ConfigError(f"keyframe_interval must be an integer >= 2, got {self.keyframe_interval!r}")
        if self.later_frames > self.keyframe_interval - 1:
            raise ConfigError(f"later_frames must be at most K - 1 = {self.keyframe_interval - 1}")
        if len(self.size) != 2 or min(self.size) < 8:
            raise ConfigError(f"size must be (height, width) of at least 8 each, got {self.size!r}")
        for name in ("lr_frames", "lr_codes", "lr_generator"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive")
        if min(self.gate_weight, self.delta_weight, self.key_weight) < 0:
            raise ConfigError("the distance's weights must be >= 0")

    @property
    def weights(self) -> dict[str, float]:
        return {"gate": self.gate_weight, "delta": self.delta_weight, "key": self.key_weight}
