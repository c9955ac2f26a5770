"""Baselines the search must beat: manual designs and Optuna studies (``deltanas baselines``/``sweep``)."""

from __future__ import annotations

from ._baselines import BaselinesConfig, design_slug, manual_designs, run_baselines
from ._config import METRICS, SweepConfig
from ._gate_objective import GateObjective, best_feasible
from ._gates import gate_arch, gate_stages
from ._objective import ArchObjective, LayerChoices, SearchHparamsObjective, make_objective
from ._storage import StorageError, describe_storage, open_storage, recover_stale_trials
from ._study import DIRECTIONS, SweepResult, create_sampler, open_sweep_study, run_sweep, study_directions

__all__ = [
    "ArchObjective",
    "BaselinesConfig",
    "DIRECTIONS",
    "GateObjective",
    "LayerChoices",
    "METRICS",
    "SearchHparamsObjective",
    "StorageError",
    "SweepConfig",
    "SweepResult",
    "best_feasible",
    "create_sampler",
    "describe_storage",
    "design_slug",
    "gate_arch",
    "gate_stages",
    "make_objective",
    "manual_designs",
    "open_storage",
    "open_sweep_study",
    "recover_stale_trials",
    "run_baselines",
    "run_sweep",
    "study_directions",
]
