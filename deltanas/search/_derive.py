"""From logits to an architecture that fits the budget: argmax, then greedy repair / fill."""

from __future__ import annotations

import torch

__all__ = ["fit_to_budget"]


def fit_to_budget(choice: dict[str, int], scores: dict[str, torch.Tensor], macs: dict[str, torch.Tensor],
                  fixed_macs: float, target: float, tolerance: float = 0.03) -> dict[str, int]:
    """Move ``choice`` into ``[(1 - tolerance) T, T]`` MACs, changing as little score as possible.

    Over budget: repeatedly take the switch with the least score lost per MAC saved (repair).
    Far under budget: repeatedly take the switch with the most score gained (or least lost) per MAC
    added that stays within T (fill). ``scores`` are per-candidate, higher is better (log-probs).
    The result is never above ``T`` when the cheapest choice fits (the caller checks that).
    """
    choice = dict(choice)
    total = fixed_macs + sum(float(macs[n][i]) for n, i in choice.items())

    while total > target:
        best = None
        for name, i in choice.items():
            m, s = macs[name], scores[name]
            for j in range(len(m)):
                saved = float(m[i] - m[j])
                if saved > 0:
                    ratio = float(s[i] - s[j]) / saved
                    if best is None or ratio < best[0]:
                        best = (ratio, name, j, saved)
        if best is None:
            break
        _, name, j, saved = best
        choice[name] = j
        total -= saved

    while total < (1 - tolerance) * target:
        best = None
        for name, i in choice.items():
            m, s = macs[name], scores[name]
            for j in range(len(m)):
                added = float(m[j] - m[i])
                if added > 0 and total + added <= target:
                    ratio = float(s[j] - s[i]) / added
                    if best is None or ratio > best[0]:
                        best = (ratio, name, j, added)
        if best is None:
            break
        _, name, j, added = best
        choice[name] = j
        total += added
    return choice
