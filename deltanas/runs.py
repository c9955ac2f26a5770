"""Run folders: what a run writes (:class:`RunDir`, ``summary.json`` as :class:`RunSummary`) and reading
their points back (:func:`gather_points`; :func:`pareto_report`, what ``deltanas pareto`` writes).

Layering: the writers (training, search, baselines, sweeps) use :mod:`deltanas._run`, below them; this
module reads what they wrote and sits above :mod:`deltanas.analysis` (the points' columns) and
:mod:`deltanas.sweep` (a sweep's study storage), so neither of those imports the other to read runs.

What a folder holds decides how it is read: ``points.csv`` (a baselines run, one point per design),
``sweep.json`` (an Optuna study, one point per complete trial, read live from its storage), else
``summary.json`` (a train or search run, one point).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pandas as pd

from ._run import RUN_KINDS, SUMMARY_VERSION, RunDir, RunSummary, default_runs_root
from .analysis import PARETO_COLUMNS, POINT_METRICS
from .errors import ConfigError

if TYPE_CHECKING:
    from .analysis import ParetoResult

__all__ = ["RunDir", "RunSummary", "RUN_KINDS", "SUMMARY_VERSION", "default_runs_root", "gather_points",
           "pareto_report", "study_points"]


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
    s = RunSummary.read(folder / "summary.json")
    if s.kind not in ("train", "search") or s.macs_per_frame is None:
        raise ConfigError(f"{folder / 'summary.json'}: a {s.kind} run without its points file "
                          f"(points.csv or sweep.json)")
    return [_row(s.kind, folder.name, s.spent_macs_per_frame, s.test or {}, s.teacher_macs, s.keyframe_interval,
                 folder)]


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
    import optuna

    from .sweep import open_storage

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
    such folders is read one level deep), plus the teacher once; one row per point (``PARETO_COLUMNS``).

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
    frame = pd.DataFrame(rows, columns=PARETO_COLUMNS)
    _check_comparable(frame)
    teachers = frame["family"] == "teacher"
    if teachers.any():  # one teacher point (several baselines runs each have one)
        frame = pd.concat([frame[teachers].head(1), frame[~teachers]], ignore_index=True)
    elif frame["teacher_macs"].notna().any():
        t = float(frame["teacher_macs"].dropna().iloc[0])
        teacher = _row("teacher", "teacher", t, {k: 1.0 for k in POINT_METRICS}, t,
                       frame["keyframe"].dropna().iloc[0] if frame["keyframe"].notna().any() else None, "")
        frame = pd.concat([pd.DataFrame([teacher], columns=PARETO_COLUMNS), frame], ignore_index=True)
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


def pareto_report(paths: Iterable["str | Path"], out: "str | Path", *, metric: str = "top1",
                  ref: tuple[str, str] | None = None, storage: str | None = None,
                  title: str | None = None) -> "ParetoResult":
    """The Pareto front of every point in ``paths`` (see :func:`gather_points`) for ``metric``, written to
    ``out``: ``pareto.csv`` (every point, ``on_front``), ``pareto.json`` (hypervolumes, overall and by
    family) and the plot as ``pareto.png`` / ``pareto.svg``.

    ``ref``: the hypervolume's reference point as (MACs per frame: a number, ``300M`` or ``0.5x`` of the
    teacher; the metric's floor), by default (the teacher's MACs, 0)."""
    from ._io import atomic_write
    from .analysis import pareto_analysis
    from .analysis._pareto_plot import plot_pareto
    from .search import parse_macs

    paths, out = [Path(p) for p in paths], Path(out)
    points = gather_points(paths, storage=storage)
    reference = None
    if ref is not None:
        teacher = points["teacher_macs"].dropna()
        if not len(teacher) and ref[0].strip().lower().endswith("x"):
            raise ConfigError("--ref in x of the teacher needs a run that knows the teacher's MACs")
        try:
            reference = (parse_macs(ref[0], float(teacher.iloc[0]) if len(teacher) else 0.0), float(ref[1]))
        except ValueError:
            raise ConfigError(f"--ref METRIC must be a number, got {ref[1]!r}") from None
    result = pareto_analysis(points, metric, reference)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "pareto.csv", lambda tmp: result.points.to_csv(tmp, index=False))
    RunDir(out).write_json(out / "pareto.json", {
        "metric": result.metric, "reference": {"macs_per_frame": result.reference[0], "metric": result.reference[1]},
        "hypervolume": result.hypervolume, "hypervolume_share": result.hypervolume_share,
        "hypervolume_by_family": result.by_family, "teacher_macs": result.teacher_macs,
        "points": len(result.points), "on_front": int(result.points["on_front"].sum()),
        "runs": [str(p) for p in paths]})
    plot_pareto(result, out / "pareto", title=title)
    return result
