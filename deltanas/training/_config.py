"""Training configuration: one frozen dataclass, saved as ``config.json`` in the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._config import JsonConfig
from ..errors import ConfigError

__all__ = ["DataConfig", "TrainConfig"]


@dataclass(frozen=True)
class DataConfig(JsonConfig):
    """Which footage, at what size, and how it is split in time and sampled."""

    videos: tuple[str, ...] = ("bundled",)
    frame_size: tuple[int, int] = (288, 512)  # decoded (H, W); crops are taken from it
    crop: tuple[int, int] = (192, 320)  # training crop (H, W)
    eval_size: tuple[int, int] = (256, 448)  # held-out frames are decoded at this size
    max_frames: int | None = 300  # per clip, from its start
    split: tuple[float, float, float] = (0.6, 0.1, 0.3)  # train, val, test in time
    keyframe_interval: int = 8
    later_frames: int = 3  # frames per group after the key frame, at random distances 1..K-1
    flip: bool = True

    def __post_init__(self) -> None:
        if self.keyframe_interval < 2:
            raise ConfigError("keyframe_interval must be >= 2")
        if not 1 <= self.later_frames < self.keyframe_interval:
            raise ConfigError(f"later_frames must be in 1..{self.keyframe_interval - 1}")
        if any(c > f for c, f in zip(self.crop, self.frame_size)):
            raise ConfigError(f"crop {self.crop} is larger than frame_size {self.frame_size}")
        if not self.videos:
            raise ConfigError("no videos given")


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Delta distillation of a fixed architecture."""

    teacher: str = "efficientnet_lite0"
    arch: str = "uniform:lowrank:0.25"
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 300
    batch_groups: int = 2  # groups per step (each 1 + later_frames frames)
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    output_weight: float = 1.0  # end-to-end term: normalised feature error + KL on logits
    kl_weight: float = 0.5
    layer_weight: float = 0.3  # per-layer normalised delta MSE
    anchor_weight: float = 0.01  # pull toward the teacher-derived initialisation (regulariser)
    gate_weight: float = 0.5  # cost of learned skip-convolution gates (expected MACs / teacher MACs)
    val_every: int = 50
    val_groups: int = 6  # groups per clip of the validation split
    patience: int = 4  # validations without improvement before stopping early (0: never stop)
    checkpoint_every: int = 25
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_groups", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.lr <= 0:
            raise ConfigError("lr must be positive")
