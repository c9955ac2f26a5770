"""FLOPs-constrained differentiable search for per-layer delta students (``deltanas search``)."""

from __future__ import annotations

from ._budget import Budget, parse_macs
from ._config import SearchConfig, quick
from ._knapsack import fit_to_budget
from ._distributed import DistContext, init_distributed
from ._penalty import PENALTIES, Penalty, make_penalty
from ._derive import Derived, derive
from ._searcher import SearchResult, search
from ._sensitivity import layer_sensitivity, logits_for_budget
from ._supernet import MixedDelta, Supernet, build_supernet

__all__ = [
    "Budget",
    "Derived",
    "DistContext",
    "MixedDelta",
    "PENALTIES",
    "Penalty",
    "SearchConfig",
    "SearchResult",
    "Supernet",
    "build_supernet",
    "derive",
    "fit_to_budget",
    "init_distributed",
    "layer_sensitivity",
    "logits_for_budget",
    "make_penalty",
    "parse_macs",
    "quick",
    "search",
]
