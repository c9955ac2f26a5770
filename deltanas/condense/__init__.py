"""Condensed footage: a few key-frame groups that stand for hours of it where a delta model is calibrated,
selected and trained.

``distill`` learns N synthetic groups (still key frames, low-resolution codes per later frame, one small
generator) whose teacher statistics match the real footage's: per convolution, the per-position input-delta
norms that gates see, the output deltas that fidelity measures, the key frames' features. ``random`` and
``kcenter`` keep N real groups (a random draw, a k-center coreset of the teacher's pooled features), in the same
format. Any verb that takes footage takes a set as ``--videos condensed:DIR``.
"""

from __future__ import annotations

from ._condense import condense
from ._config import CondenseConfig
from ._footage import CandidateGroups, candidate_groups, condense_footage
from ._format import CONDENSE_METHODS, CondensedSet, is_condensed, load_condensed, save_condensed
from ._match import set_distance
from ._memory import GeneratorSpec, SyntheticGroups
from ._select import group_features, kcenter_greedy
from ._stats import GroupStatistics, LayerStatistics, group_statistics, pool_statistics, statistic_distance

__all__ = [
    "CONDENSE_METHODS",
    "CandidateGroups",
    "CondenseConfig",
    "CondensedSet",
    "GeneratorSpec",
    "GroupStatistics",
    "LayerStatistics",
    "SyntheticGroups",
    "candidate_groups",
    "condense",
    "condense_footage",
    "group_features",
    "group_statistics",
    "is_condensed",
    "kcenter_greedy",
    "load_condensed",
    "pool_statistics",
    "save_condensed",
    "set_distance",
    "statistic_distance",
]
