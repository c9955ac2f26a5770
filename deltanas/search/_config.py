"""Search configuration (saved as ``config.json`` of a search run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._config import JsonConfig
from ..errors import ConfigError
from ..training import DataConfig, TrainConfig
from ._learned_gates import GateSchedule
from ._penalty import PENALTIES
from ._select import SELECT_METRICS

__all__ = ["SearchConfig", "quick"]


@dataclass(frozen=True)
class SearchConfig(JsonConfig):
    teacher: str = "efficientnet_lite0"
    space: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    # budget: per delta frame (``0.2x`` of the teacher, ``150M``) or averaged per frame at K;
    # neither given means 0.2x per delta frame
    target: str | None = None
    target_frame: str | None = None
    hard: bool = False  # the derived architecture is never above the target
    tolerance: float = 0.03
    penalty: str = "lagrangian"
    penalty_weight: float = 0.0  # lambda (linear, absolute, initial Lagrangian) or beta (log)
    dual_rate: float = 0.2  # Lagrangian: lambda += rate * (E/T - 1) per step
    # "soft": every candidate runs, weighted; "hard": straight-through, one candidate per layer runs
    # (cheaper, but a "zero" candidate then gets no gradient from the task loss, only from the cost)
    gumbel: str = "soft"
    tau_start: float = 5.0
    tau_end: float = 0.2
    steps: int = 100
    warmup_steps: int = 20  # students train, logits stay put
    batch_groups: int = 2
    weight_lr: float = 1e-3
    arch_lr: float = 0.05
    prior: str = "sensitivity"  # or "none": logits start at zero
    prior_groups: int = 1
    prior_scale: float = 20.0
    finetune_steps: int = 100
    select_groups: int = 4  # per validation clip, to pick among candidate architectures (0: argmax only)
    select_metric: str = "fidelity"  # what picks among them: fidelity, top1, dense or miou (ties: fidelity)
    prefer_candidates: bool = True  # in the selection, also "prefer one operator family" choices (one each)
    threshold_candidate: bool = True  # and (without hard) the threshold gates calibrated to the budget
    adaptive_eval: bool = False  # also report held-out agreement with adaptive key frames at the key budget of K
    speed_report: bool = False  # time the result on the sparse engine against the fastest dense runtime
    supernet: bool = True  # train the supernet of operators; without it only the skip-convolutions compete
    learn_gates: bool = True  # and (with threshold_candidate) the profile's thresholds learned per layer
    gate_steps: int = 60
    gate_lr: float = 0.05
    gate_tau_start: float = 1.0  # the relaxation's temperature, in log threshold units
    gate_tau_end: float = 0.05
    gate_frames: str = "crops"  # what the thresholds learn on: training crops, or "full" frames at the eval size
    # the threshold candidates' budget: "macs" (the target), or "latency": target_ms per frame averaged at K,
    # predicted by the latency model of `deltanas profile` (the file at `latency`); the supernet is then skipped
    cost: str = "macs"
    latency: str | None = None
    target_ms: float | None = None
    output_weight: float = 1.0
    kl_weight: float = 0.5
    layer_weight: float = 0.3
    anchor_weight: float = 0.01
    log_every: int = 10
    checkpoint_every: int = 25
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.penalty not in PENALTIES:
            raise ConfigError(f"unknown penalty {self.penalty!r}; choose from {', '.join(PENALTIES)}")
        if self.gumbel not in ("hard", "soft"):
            raise ConfigError("gumbel must be 'hard' or 'soft'")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"unknown selection metric {self.select_metric!r}; choose from {', '.join(SELECT_METRICS)}")
        if self.prior not in ("sensitivity", "none"):
            raise ConfigError("prior must be 'sensitivity' or 'none'")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ConfigError("warmup_steps must be in 0..steps")
        if not 0 < self.tau_end <= self.tau_start:
            raise ConfigError("need 0 < tau_end <= tau_start")
        if self.steps < 1 or self.finetune_steps < 0:
            raise ConfigError("steps must be >= 1 and finetune_steps >= 0")
        if self.cost not in ("macs", "latency"):
            raise ConfigError("cost must be 'macs' or 'latency'")
        if self.cost == "latency" and (self.latency is None or self.target_ms is None):
            raise ConfigError("a latency budget needs --latency FILE (from deltanas profile) and --target-ms")
        if self.target_ms is not None and not self.target_ms > 0:
            raise ConfigError("--target-ms must be positive")
        if self.gate_steps < 1 or not 0 < self.gate_tau_end <= self.gate_tau_start:
            raise ConfigError("need gate_steps >= 1 and 0 < gate_tau_end <= gate_tau_start")
        self.gate_schedule()  # refuses unknown gate_frames before any training

    def tau(self, step: int) -> float:
        """Exponential annealing from tau_start to tau_end after the warm-up."""
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, max(0, step - self.warmup_steps) / span)
        return self.tau_start * (self.tau_end / self.tau_start) ** progress

    def gate_schedule(self) -> GateSchedule:
        return GateSchedule(steps=self.gate_steps, lr=self.gate_lr, batch_groups=self.batch_groups,
                            tau_start=self.gate_tau_start, tau_end=self.gate_tau_end,
                            checkpoint_every=self.checkpoint_every, seed=self.seed, frames=self.gate_frames)

    def finetune_config(self, arch_path: str) -> TrainConfig:
        return TrainConfig(teacher=self.teacher, arch=arch_path, data=self.data, steps=max(1, self.finetune_steps),
                           batch_groups=self.batch_groups, lr=self.weight_lr, warmup_steps=min(10, self.finetune_steps),
                           output_weight=self.output_weight, kl_weight=self.kl_weight, layer_weight=self.layer_weight,
                           anchor_weight=self.anchor_weight, val_every=max(1, min(50, self.finetune_steps)),
                           checkpoint_every=self.checkpoint_every, seed=self.seed, threads=self.threads)


def quick(config: SearchConfig) -> SearchConfig:
    """A first look in about five minutes on two CPU cores: fewer frames, steps and probes."""
    data = config.data.replace(max_frames=120, crop=(128, 224), frame_size=(192, 320))
    return config.replace(data=data, steps=16, warmup_steps=4, finetune_steps=12, prior_groups=1,
                          select_groups=1, prefer_candidates=False, threshold_candidate=True, checkpoint_every=8,
                          log_every=4, gate_steps=min(config.gate_steps, 12))
