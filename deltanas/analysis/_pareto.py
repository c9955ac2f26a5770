"""Pareto front of (MACs per frame, agreement): the non-dominated set, the hypervolume. Computing only;
:func:`deltanas.runs.gather_points` reads the points from run folders, :mod:`deltanas.analysis._pareto_plot`
draws the result.

Conventions (tests pin them):

- a point dominates another if its MACs are <= and its metric >=, one of them strictly; so exact
  duplicates do not dominate each other and are both on the front;
- points whose metric is NaN are never on the front and add nothing;
- the hypervolume is the area, in (MACs per frame) x (metric) units, of the region that some point
  dominates inside the reference box ``MACs <= ref_macs, metric >= ref_metric``; points outside the
  box (more MACs than the reference, or a lower metric) add nothing. By default the reference is
  the teacher's MACs per frame and metric 0, so the teacher itself adds nothing and a model adds the
  more the cheaper and the more faithful it is.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["ParetoResult", "non_dominated", "hypervolume", "pareto_analysis", "POINT_METRICS", "PARETO_COLUMNS"]

POINT_METRICS = ("top1", "dense", "miou", "fidelity")
PARETO_COLUMNS = ["family", "label", "macs_per_frame", *POINT_METRICS, "teacher_macs", "keyframe", "source"]


class ParetoResult(NamedTuple):
    points: pd.DataFrame  # PARETO_COLUMNS + on_front, sorted by family then MACs
    metric: str
    reference: tuple[float, float]  # (MACs per frame, metric)
    hypervolume: float
    hypervolume_share: float  # of the box [0, ref MACs] x [ref metric, 1]
    by_family: dict[str, float]  # hypervolume of each family's points alone
    teacher_macs: float | None


def non_dominated(macs: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (minimise ``macs``, maximise ``values``)."""
    m = np.asarray(macs, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = ~(np.isnan(m) | np.isnan(v))
    mi, vi = m[:, None], v[:, None]  # row i: the point judged; column j: a possible dominator
    dominated = ((m[None, :] <= mi) & (v[None, :] >= vi) & ((m[None, :] < mi) | (v[None, :] > vi))
                 & ok[None, :]).any(axis=1)
    return ok & ~dominated


def hypervolume(macs: Sequence[float], values: Sequence[float], reference: tuple[float, float]) -> float:
    """Area dominated by the points within the reference box (see the module's conventions)."""
    ref_m, ref_v = float(reference[0]), float(reference[1])
    m = np.asarray(macs, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = ~(np.isnan(m) | np.isnan(v)) & (m < ref_m) & (v > ref_v)
    m, v = m[keep], v[keep]
    if not len(m):
        return 0.0
    order = np.lexsort((-v, m))  # by MACs, the best metric first among equal MACs
    m, v = m[order], v[order]
    best = np.maximum.accumulate(v)  # the best metric reachable at each MACs level
    edges = np.append(m[1:], ref_m)
    return float(np.sum((edges - m) * (best - ref_v)))


def pareto_analysis(points: pd.DataFrame, metric: str = "top1",
                    reference: tuple[float, float] | None = None) -> ParetoResult:
    """Front, hypervolume (overall and per family) of ``points`` for ``metric``.

    ``reference`` defaults to (the teacher's MACs per frame, 0).
    """
    if metric not in POINT_METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose from {', '.join(POINT_METRICS)}")
    frame = points.copy()
    teacher = frame["teacher_macs"].dropna()
    teacher_macs = float(teacher.iloc[0]) if len(teacher) else None
    if reference is None:
        if teacher_macs is None and not frame["macs_per_frame"].notna().any():
            raise ConfigError("no point has MACs: nothing to analyse")
        ref_macs = teacher_macs if teacher_macs is not None else float(frame["macs_per_frame"].max())
        reference = (ref_macs, 0.0)
    macs, values = frame["macs_per_frame"].to_numpy(float), frame[metric].to_numpy(float)
    frame["on_front"] = non_dominated(macs, values)
    hv = hypervolume(macs, values, reference)
    box = reference[0] * (1.0 - reference[1])
    by_family = {}
    for family, group in frame.groupby("family", sort=False):
        by_family[str(family)] = hypervolume(group["macs_per_frame"], group[metric], reference)
    frame = frame.sort_values(["family", "macs_per_frame"], kind="stable").reset_index(drop=True)
    return ParetoResult(frame, metric, (float(reference[0]), float(reference[1])), hv,
                        hv / box if box > 0 else math.nan, by_family, teacher_macs)
