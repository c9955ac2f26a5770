"""Several architectures inside the budget, the best kept on selection frames (validation and training).

The logits' argmax (through the knapsack) is one candidate; the others prefer one operator family
wherever it fits and let the logits fill the rest of the budget. Per-layer scores model the
interactions of layers only roughly (errors compound), so a short check on whole frames (the
validation split and groups of the training split, ``VideoData.selection_clips``), with the supernet's
trained students, decides: by fidelity (the continuous one) unless the user ranks by top-1, dense or mIoU
agreement (``SearchConfig.select_metric``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..analysis import Agreement, evaluate
from ._budget import Budget
from ._knapsack import fit_to_budget
from ._supernet import Supernet

__all__ = ["SELECT_METRICS", "candidate_choices", "select_on_frames", "selection_rank"]

_PREFERENCE = 10.0  # added to a preferred op's log-probability: it wins wherever it fits


def candidate_choices(supernet: Supernet, budget: Budget, tolerance: float,
                      logits_choice: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{label: choice}``: "logits" (the derived choice), and "prefer OP" for every operator other
    than full/zero."""
    scores = supernet.log_probabilities()
    target, fixed = budget.delta_macs, supernet.linear_macs
    choices = {"logits": logits_choice}
    specs = dict.fromkeys(s for m in supernet.mixed.values() for s in m.specs if s not in ("full", "zero"))
    for spec in specs:
        preferred = {n: s + _PREFERENCE * torch.tensor([float(x == spec) for x in supernet.mixed[n].specs],
                                                       dtype=torch.float64)
                     for n, s in scores.items()}
        choice = fit_to_budget(supernet.argmax(), preferred, supernet.macs, fixed, target, tolerance)
        if choice not in choices.values():
            choices[f"prefer {spec}"] = choice
    return choices


# what a selection can rank by: fields of deltanas.analysis.Agreement, higher is better
SELECT_METRICS = ("fidelity", "top1", "dense", "miou")


def selection_rank(agreement: Agreement, metric: str) -> tuple[float, float]:
    """How a candidate ranks: ``metric``, ties (top-1 moves in whole frames) broken by fidelity; an
    undefined value (NaN: frames that never change) ranks last."""
    return tuple(-math.inf if math.isnan(v) else v  # type: ignore[return-value]
                 for v in (getattr(agreement, metric), agreement.fidelity))


@torch.no_grad()
def select_on_frames(supernet: Supernet, choices: dict[str, dict[str, int]], clips: Sequence[tuple[str, torch.Tensor]],
                     keyframe_interval: int, groups_per_clip: int,
                     metric: str = "fidelity") -> tuple[str, dict[str, Agreement]]:
    """Run each choice with the supernet's students on ``clips`` (``VideoData.selection_clips``); the
    best by ``metric`` (see :func:`selection_rank`) wins. Returns it and every choice's agreement."""
    results: dict[str, Agreement] = {}
    try:
        for label, choice in choices.items():
            supernet.fix(choice)
            results[label] = evaluate(supernet.model, clips, keyframe_interval, progress=False,
                                      max_groups=groups_per_clip).pooled
    finally:
        supernet.clear_sample()
    best = max(results, key=lambda k: (selection_rank(results[k], metric), k == "logits"))
    return best, results
