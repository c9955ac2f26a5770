"""What a sweep optimises (``SweepConfig``, stored with the study) and how its run is driven."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._config import JsonConfig
from ..errors import ConfigError
from ..training import DataConfig

__all__ = ["SweepConfig", "METRICS", "MODES", "GRANULARITIES", "SAMPLERS"]

METRICS = ("top1", "dense", "miou", "fidelity")
MODES = ("arch", "search-hparams", "gates")
GRANULARITIES = ("layer", "block")
SAMPLERS = ("tpe", "nsga2", "random", "cmaes")
_GATES_KEYS = ("target", "max_groups", "over_budget_weight")  # what only mode gates reads


@dataclass(frozen=True)
class SweepConfig(JsonConfig):
    """The definition of a study: two runs with equal configs may share it (and only those).

    Objectives: maximise ``metric`` (agreement with the teacher on the validation split; the test
    split's figures go to the trial's user attrs, for the Pareto plot), minimise MACs per frame
    averaged at the keyframe interval. ``metric`` None means ``top1``, and ``fidelity`` in mode gates.

    Mode ``gates`` (see ``GateObjective``) trains nothing: each trial sets one threshold per stage of
    the weighted running gate, ``target`` (MACs per frame averaged at K, required) is its budget, each
    trial evaluates ``max_groups`` key-frame groups per validation clip (None: all), and with the
    single-objective CMA-ES sampler a trial scores ``metric - over_budget_weight x (MACs / target - 1)``
    above the budget.
    """

    mode: str = "arch"  # "arch": per-layer operators, trained briefly; "search-hparams": the search's own
    # knobs; "gates": continuous per-stage gate thresholds, untrained
    teacher: str = "efficientnet_lite0"
    space: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    metric: str | None = None
    granularity: str = "layer"  # "block": one choice per block for layers with the same candidates
    steps: int = 30  # arch: training steps per trial; search-hparams: fine-tuning steps per trial
    batch_groups: int = 2
    lr: float = 1e-3
    max_macs: str | None = None  # arch: MACs per frame averaged at K (0.5x or 300M); above it: pruned
    # search-hparams mode
    targets: tuple[str, ...] = ("0.1x", "0.2x", "0.35x")  # per delta frame, as `deltanas search --target`
    penalties: tuple[str, ...] = ("lagrangian", "linear", "log", "absolute")
    search_steps: int = 40
    prior: str = "sensitivity"
    # gates mode
    target: str | None = None  # the budget: MACs per frame averaged at K (0.3x of the teacher, or 250M)
    max_groups: int | None = None  # key-frame groups per validation clip a trial evaluates (None: all)
    over_budget_weight: float = 10.0  # cmaes: metric lost per unit of relative excess over the budget
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown sweep mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.metric is None:
            object.__setattr__(self, "metric", "fidelity" if self.mode == "gates" else "top1")
        if self.mode == "gates" and self.target is None:
            raise ConfigError("--mode gates needs --target: MACs per frame averaged at K (0.3x of the teacher, "
                              "or 250M)")
        if self.max_groups is not None and self.max_groups < 1:
            raise ConfigError("max_groups must be >= 1 (or None: every group)")
        if not (self.over_budget_weight >= 0 and self.over_budget_weight < float("inf")):
            raise ConfigError("over_budget_weight must be >= 0 and finite")
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        if self.granularity not in GRANULARITIES:
            raise ConfigError(f"unknown granularity {self.granularity!r}; choose from {', '.join(GRANULARITIES)}")
        if self.steps < 1 or self.search_steps < 1:
            raise ConfigError("steps and search_steps must be >= 1")
        if self.mode == "search-hparams" and not (self.targets and self.penalties):
            raise ConfigError("search-hparams mode needs at least one target and one penalty")
        from ..search import PENALTIES

        unknown = sorted(set(self.penalties) - set(PENALTIES))
        if unknown:
            raise ConfigError(f"unknown penalty {unknown}; choose from {', '.join(PENALTIES)}")
        if self.prior not in ("sensitivity", "none"):
            raise ConfigError("prior must be 'sensitivity' or 'none'")
        from ..search import parse_macs

        for value in ((self.max_macs,) if self.max_macs else ()) + tuple(self.targets) + \
                ((self.target,) if self.target is not None else ()):
            parse_macs(value, 1.0)  # refused here, not in every worker

    def check(self) -> None:
        """What can be checked before any worker starts: the teacher's name, the search space."""
        from ..delta import SearchSpace
        from ..teachers import list_teachers

        if self.teacher not in list_teachers():
            raise ConfigError(f"unknown teacher {self.teacher!r}; known: {', '.join(list_teachers())}")
        SearchSpace.load(self.space)

    def identity(self) -> dict:
        """What must match for a run to continue a study (everything but the seed; the gates mode's own
        keys only in that mode, so studies made before it existed still continue)."""
        d = self.to_dict()
        d.pop("seed")
        if self.mode != "gates":
            for key in _GATES_KEYS:
                d.pop(key)
        return d
