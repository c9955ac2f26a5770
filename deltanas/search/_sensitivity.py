"""Per-layer sensitivity: the output error when one layer alone takes a candidate (others exact).

Cheap (one forward per layer and candidate on a few groups) and a strong prior for the search's
logits: layers differ by orders of magnitude in what they tolerate (DESIGN section 9).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ._supernet import Supernet

__all__ = ["layer_sensitivity", "logits_for_budget"]


@torch.no_grad()
def layer_sensitivity(supernet: Supernet, groups: torch.Tensor, progress: bool = False) -> dict[str, torch.Tensor]:
    """``err[layer][k] = sum|f_hat - f|^2 / sum|f - f_key|^2`` on the last feature map, delta frames
    of ``groups`` (B, T, 3, H, W), with only ``layer`` on candidate ``k``."""
    model = supernet.model
    model.eval()
    ref = model.teacher_forward(groups.flatten(0, 1)).view(*groups.shape[:2], -1)
    moving = (ref[:, 1:] - ref[:, :1]).pow(2).sum().clamp_min(1e-12)
    base = supernet.full_choice()
    errors: dict[str, torch.Tensor] = {}
    total = sum(len(m.specs) - 1 for m in supernet.mixed.values())
    bar = tqdm(total=total, desc="sensitivity", unit="probe", disable=not progress, leave=False)
    try:
        for name, mixed in supernet.mixed.items():
            err = torch.zeros(len(mixed.specs), dtype=torch.float64)
            for k in range(len(mixed.specs)):
                if k == base[name]:
                    continue
                supernet.fix({**base, name: k})
                out = model.forward_group(groups).view(*groups.shape[:2], -1)
                err[k] = float((out[:, 1:] - ref[:, 1:]).pow(2).sum() / moving)
                bar.update()
            errors[name] = err
    finally:
        supernet.clear_sample()
        bar.close()
    return errors


def logits_for_budget(errors: dict[str, torch.Tensor], macs: dict[str, torch.Tensor], fixed_macs: float,
                      target: float, scale: float) -> tuple[dict[str, torch.Tensor], float]:
    """Logits ``-scale * (c + mu * M / T)`` with ``mu`` found by bisection so that the expected
    MACs under their softmax equal the target: the Lagrangian relaxation of the knapsack
    "least summed cost within the budget", so the search starts on budget instead of far above it.

    The cost of an error is ``c = -log(1 - err)``: errors compound through depth, so the share of
    the delta a chain keeps is about the product of ``1 - err``. A layer that loses the whole
    delta (``err >= 1``, e.g. ``zero`` outside a residual block) cuts every later layer off from
    the new frame; summed errors would price it like a few small ones and pick it.
    Returns the logits and ``mu``."""
    costs = {n: -torch.log((1 - e).clamp_min(1e-3)) for n, e in errors.items()}

    def logits(mu: float) -> dict[str, torch.Tensor]:
        return {n: -scale * (costs[n] + mu * macs[n] / target) for n in errors}

    def expected(mu: float) -> float:
        return fixed_macs + sum(float((a.softmax(0) * macs[n]).sum()) for n, a in logits(mu).items())

    lo, hi = 0.0, 1.0
    if expected(lo) <= target:
        return {n: a.float() for n, a in logits(lo).items()}, lo
    while expected(hi) > target and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if expected(mid) > target else (lo, mid)
    return {n: a.float() for n, a in logits(hi).items()}, hi
