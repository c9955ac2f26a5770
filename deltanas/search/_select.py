"""Several architectures inside the budget, the best kept on selection frames (validation and training).

The logits' argmax (through the knapsack) is one candidate; the others prefer one operator family
wherever it fits and let the logits fill the rest of the budget. Per-layer scores model the
interactions of layers only roughly (errors compound), so a short check on whole frames (the
validation split and groups of the training split, ``VideoData.selection_clips``), with the supernet's
trained students, decides.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..analysis import evaluate
from ._budget import Budget
from ._derive import fit_to_budget
from ._supernet import Supernet

__all__ = ["candidate_choices", "select_on_frames"]

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


@torch.no_grad()
def select_on_frames(supernet: Supernet, choices: dict[str, dict[str, int]], clips: Sequence[tuple[str, torch.Tensor]],
                     keyframe_interval: int, groups_per_clip: int) -> tuple[str, dict[str, float]]:
    """Run each choice with the supernet's students on ``clips`` (``VideoData.selection_clips``); the
    best fidelity wins."""
    scores: dict[str, float] = {}
    try:
        for label, choice in choices.items():
            supernet.fix(choice)
            result = evaluate(supernet.model, clips, keyframe_interval, progress=False,
                              max_groups=groups_per_clip)
            scores[label] = result.pooled.fidelity
    finally:
        supernet.clear_sample()
    best = max(scores, key=lambda k: (scores[k], k == "logits"))
    return best, scores
