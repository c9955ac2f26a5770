"""From logits to an architecture inside the budget: a multiple-choice knapsack, solved exactly.

Maximise the summed per-layer score (the logits' log-probabilities) subject to
``(1 - tolerance) T <= MACs <= T``, by dynamic programming over MACs quantised to ``T / resolution`` (rounded down); each state also
carries the real MACs of its best path, and only paths whose real total is within ``T`` are taken.
When the argmax already lies in the band it is the optimum and comes back unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["fit_to_budget"]


def fit_to_budget(choice: dict[str, int], scores: dict[str, torch.Tensor], macs: dict[str, torch.Tensor],
                  fixed_macs: float, target: float, tolerance: float = 0.03,
                  resolution: int = 4000) -> dict[str, int]:
    """The best-scoring choice (one candidate per layer) with MACs in ``[(1 - tolerance) T, T]``.

    If no choice reaches the band, the one closest below ``T``; if even the cheapest is above ``T``,
    the cheapest (the caller refuses such targets before searching).
    """
    names = list(choice)
    budget = target - fixed_macs
    if budget <= 0:
        return {n: int(torch.argmin(macs[n])) for n in names}
    unit = budget / resolution
    best = np.full(resolution + 1, -np.inf)
    best[0] = 0.0
    real = np.zeros(resolution + 1)
    backtrack: list[np.ndarray] = []
    for name in names:
        cost_real = macs[name].double().numpy()
        cost = np.floor(cost_real / unit + 1e-9).astype(np.int64)
        score = scores[name].double().numpy()
        new = np.full_like(best, -np.inf)
        new_real = np.zeros_like(real)
        pick = np.full(best.shape, -1, dtype=np.int64)
        for k, (c, s) in enumerate(zip(cost, score)):
            if c > resolution:
                continue
            shifted = np.full_like(best, -np.inf)
            shifted[c:] = best[:resolution + 1 - c] + s
            shifted_real = np.zeros_like(real)
            shifted_real[c:] = real[:resolution + 1 - c] + cost_real[k]
            better = (shifted > new) & (shifted_real <= budget)
            new[better], new_real[better], pick[better] = shifted[better], shifted_real[better], k
        if not np.isfinite(new).any():
            return {n: int(torch.argmin(macs[n])) for n in names}
        best, real = new, new_real
        backtrack.append(pick)

    feasible = np.flatnonzero(np.isfinite(best))
    in_band = feasible[real[feasible] >= (1 - tolerance) * target - fixed_macs]
    end = int(in_band[np.argmax(best[in_band])]) if in_band.size else int(feasible[np.argmax(real[feasible])])
    result: dict[str, int] = {}
    for name, pick in zip(reversed(names), reversed(backtrack)):
        k = int(pick[end])
        result[name] = k
        end -= int(np.floor(macs[name][k].item() / unit + 1e-9))
    return {n: result[n] for n in names}
