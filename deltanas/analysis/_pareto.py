"""Pareto front of (MACs per frame, agreement): gathering points from run folders, the non-dominated
set, the hypervolume. Computing only; :mod:`deltanas.analysis._pareto_plot` draws the result.

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

import json
import math
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["ParetoResult", "non_dominated", "hypervolume", "gather_points", "study_points", "pareto_analysis",
           "POINT_METRICS"]

POINT_METRICS = ("top1", "dense", "miou", "fidelity")
COLUMNS = ["family", "label", "macs_per_frame", *POINT_METRICS, "teacher_macs", "keyframe", "source"]


class ParetoResult(NamedTuple):
    points: pd.DataFrame  # COLUMNS + on_front, sorted by family then MACs
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


# -- gathering ----------------------------------------------------------------------------------
def _row(family: str, label: str, macs, metrics: dict, teacher_macs, keyframe, source) -> dict:
    row = {"family": family, "label": label, "macs_per_frame": _num(macs), "teacher_macs": _num(teacher_macs),
           "keyframe": _num(keyframe), "source": str(source)}
    row.update({k: _num(metrics.get(k)) for k in POINT_METRICS})
    return row


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None


def _summary_points(folder: Path) -> list[dict]:
    s = _read_json(folder / "summary.json")
    if "macs_per_frame" not in s:
        raise ConfigError(f"{folder / 'summary.json'}: no macs_per_frame (not a train or search run)")
    family = "search" if "target_delta_macs" in s or "budget" in s else "train"
    macs = s.get("test_macs_per_frame", s["macs_per_frame"])  # gated layers: as spent on the held-out frames
    return [_row(family, folder.name, macs, s.get("test") or {}, s.get("teacher_macs"),
                 s.get("keyframe_interval"), folder)]


def _baseline_points(csv_path: Path) -> list[dict]:
    frame = pd.read_csv(csv_path)
    missing = {"family", "label", "macs_per_frame"} - set(frame.columns)
    if missing:
        raise ConfigError(f"{csv_path}: not a points.csv (no {', '.join(sorted(missing))} column)")
    config = csv_path.parent / "baselines.json"
    k = _read_json(config).get("data", {}).get("keyframe_interval") if config.is_file() else None
    return [_row(r["family"], r["label"], r["macs_per_frame"], r, r.get("teacher_macs"), k, csv_path.parent)
            for r in frame.to_dict("records")]


def study_points(study, family: str = "optuna", keyframe=None, source: str = "") -> list[dict]:
    """The complete trials of an Optuna study of ``deltanas sweep``, with their *test* metrics."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        metrics = {k: a.get(f"test_{k}") for k in POINT_METRICS}
        rows.append(_row(family, f"trial {t.number}", a.get("macs_per_frame"), metrics, a.get("teacher_macs"),
                         keyframe, source or study.study_name))
    return rows


def _sweep_points(folder: Path, storage: str | None) -> list[dict]:
    from ..sweep import open_storage
    import optuna

    info = _read_json(folder / "sweep.json")
    where = storage if storage is not None else info.get("storage", "study.journal")
    if where == "study.journal":
        where = None
    elif "***" in where:
        raise ConfigError(f"{folder}: its study is stored at {where}: pass the full URL with --storage")
    try:
        study = optuna.load_study(study_name=info["study"], storage=open_storage(where, folder))
    except KeyError:
        raise ConfigError(f"{folder}: study {info.get('study')!r} not found in its storage") from None
    family = "optuna" if info.get("mode", "arch") == "arch" else "optuna-hparams"
    k = info.get("config", {}).get("data", {}).get("keyframe_interval")
    return study_points(study, family, k, str(folder))


def _folder_points(folder: Path, storage: str | None) -> list[dict] | None:
    if (folder / "points.csv").is_file():
        return _baseline_points(folder / "points.csv")
    if (folder / "sweep.json").is_file():
        return _sweep_points(folder, storage)
    if (folder / "summary.json").is_file():
        return _summary_points(folder)
    return None


def gather_points(paths: Iterable["str | Path"], *, storage: str | None = None) -> pd.DataFrame:
    """Every point of the given run folders (baselines, sweeps, searches, trainings; a folder of
    such folders is read one level deep), plus the teacher once; one row per point (``COLUMNS``).

    Refuses to mix runs whose teacher MACs (teacher, frame size) or keyframe interval differ.
    """
    rows: list[dict] = []
    for p in map(Path, paths):
        if p.is_file() and p.name == "points.csv":
            rows += _baseline_points(p)
            continue
        if not p.is_dir():
            raise ConfigError(f"{p}: no such run folder")
        found = _folder_points(p, storage)
        if found is None:
            found = []
            for child in sorted(c for c in p.iterdir() if c.is_dir()):
                found += _folder_points(child, storage) or []
            if not found:
                raise ConfigError(f"{p}: no points here (a run folder has points.csv, sweep.json or summary.json)")
        rows += found
    frame = pd.DataFrame(rows, columns=COLUMNS)
    _check_comparable(frame)
    teachers = frame["family"] == "teacher"
    if teachers.any():  # one teacher point (several baselines runs each have one)
        frame = pd.concat([frame[teachers].head(1), frame[~teachers]], ignore_index=True)
    elif frame["teacher_macs"].notna().any():
        t = float(frame["teacher_macs"].dropna().iloc[0])
        teacher = _row("teacher", "teacher", t, {k: 1.0 for k in POINT_METRICS}, t,
                       frame["keyframe"].dropna().iloc[0] if frame["keyframe"].notna().any() else None, "")
        frame = pd.concat([pd.DataFrame([teacher], columns=COLUMNS), frame], ignore_index=True)
    return frame


def _check_comparable(frame: pd.DataFrame) -> None:
    t = frame["teacher_macs"].dropna()
    if len(t) and (t.max() - t.min()) > 1e-3 * t.max():
        raise ConfigError(f"these runs measured different teachers or frame sizes (teacher MACs from "
                          f"{t.min() / 1e6:.1f}M to {t.max() / 1e6:.1f}M): their points are not comparable")
    k = frame["keyframe"].dropna().unique()
    if len(k) > 1:
        raise ConfigError(f"these runs use different keyframe intervals ({sorted(int(x) for x in k)}): "
                          f"MACs per frame are not comparable")


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
