"""Is one model really better than another on the same footage? A paired bootstrap over key-frame groups.

Consecutive frames are correlated, so frames are not independent samples; key-frame groups nearly
are. Both models must have been evaluated on the same clips with the same key frames: each bootstrap
sample draws groups with replacement and pools both models' metrics (ratios of sums) over the same
draw, so the spread of the difference reflects which footage was held out, not the model's noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from ._evaluate import EvalResult

__all__ = ["Difference", "paired_bootstrap"]

METRICS = ("top1", "dense", "fidelity")


@dataclass(frozen=True)
class Difference:
    """``b - a`` on the held-out groups, with a percentile interval of the bootstrap."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    confidence: float
    b_better: float  # share of bootstrap samples in which b scored higher
    groups: int  # resampling units: key-frame groups, or K-frame windows with several phases

    def as_dict(self) -> dict:
        return asdict(self)


def _sums(result: EvalResult) -> np.ndarray:
    """(units, 6): each resampling unit's sums. A unit is a key-frame group, or with several key-frame
    phases (``evaluate(phases=...)``) the groups whose key frames fall in one K-frame window: they
    overlap the same frames, so they are drawn together."""
    sums = np.array([[g.frames, g.top1_hits, g.dense_hits, g.positions, g.err_sq, g.delta_sq]
                     for g in result.groups], dtype=np.float64).reshape(-1, 6)
    if not result.blocks:
        return sums
    units, index = np.unique(np.asarray(result.blocks), return_inverse=True)
    pooled = np.zeros((len(units), 6))
    np.add.at(pooled, index, sums)
    return pooled


def _metric(sums: np.ndarray, metric: str) -> np.ndarray:
    """Pooled metric per bootstrap sample; ``sums`` is (samples, 6)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "top1":
            return sums[:, 1] / sums[:, 0]
        if metric == "dense":
            return sums[:, 2] / sums[:, 3]
        return 1.0 - sums[:, 4] / sums[:, 5]


def paired_bootstrap(a: EvalResult, b: EvalResult, metrics=METRICS, samples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> list[Difference]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    sa, sb = _sums(a), _sums(b)
    if (len(sa) == 0 or sa.shape != sb.shape or a.blocks != b.blocks
            or not np.array_equal(sa[:, [0, 3]], sb[:, [0, 3]])):
        raise ConfigError("paired_bootstrap: both results must come from the same clips and key frames "
                          f"({len(sa)} against {len(sb)} groups)")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sa), size=(samples, len(sa)))
    counts = np.stack([np.bincount(d, minlength=len(sa)) for d in draws]).astype(np.float64)
    pooled_a, pooled_b = counts @ sa, counts @ sb
    out = []
    for metric in metrics:
        va, vb = _metric(sa.sum(0, keepdims=True), metric)[0], _metric(sb.sum(0, keepdims=True), metric)[0]
        diff = _metric(pooled_b, metric) - _metric(pooled_a, metric)
        diff = diff[np.isfinite(diff)]
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(diff, [tail, 100 - tail]) if len(diff) else (np.nan, np.nan)
        out.append(Difference(metric, float(va), float(vb), float(vb - va), float(low), float(high), confidence,
                              float((diff > 0).mean()) if len(diff) else float("nan"), len(sa)))
    return out
