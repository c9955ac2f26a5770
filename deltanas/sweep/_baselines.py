"""``deltanas baselines``: the manual designs the search must beat, each trained with the same budget.

A manual design is one operator everywhere it fits (``uniform:OP``, ``full`` elsewhere): every
operator of the search space but ``full``/``zero``, plus ``zero`` (reuse the key frame's features,
nothing to train) and the teacher itself (``full``: exact, the top point). Each becomes one row of
``runs/<name>/points.csv``; trained designs get a sub-run folder. ``resume`` skips the designs that
already have a row (and resumes a design whose training was killed from its checkpoint).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._config import JsonConfig
from .._io import atomic_write_text
from .._run import RunDir, RunSummary
from ..analysis import evaluate
from ..delta import SearchSpace, convert, make_op
from ..errors import ArchError, ConfigError
from ..teachers import Teacher, create_teacher
from ..training import DataConfig, TrainConfig, VideoData, load_video_data, train

__all__ = ["BaselinesConfig", "manual_designs", "run_baselines", "POINT_COLUMNS", "design_family", "design_slug"]

POINT_COLUMNS = ["family", "label", "design", "macs_per_frame", "delta_macs", "teacher_macs", "speedup",
                 "top1", "dense", "miou", "fidelity", "frames", "steps", "seconds", "run"]


def manual_designs(space: SearchSpace) -> list[str]:
    """Every operator of the space (all layer kinds, in order) except ``full`` and ``zero``."""
    specs = dict.fromkeys(space.dense + space.spatial + space.depthwise)
    return [s for s in specs if s not in ("full", "zero")]


def design_family(design: str) -> str:
    """``teacher``, ``skipconv`` (the teacher copy gated: skip-convolutions) or ``manual`` (students)."""
    if design == "full":
        return "teacher"
    return "skipconv" if design.startswith("gated") and design.endswith("(full)") else "manual"


def design_slug(design: str) -> str:
    return "uniform-" + design.replace(":", "-").replace("(", "_").replace(")", "").replace(",", "_")


@dataclass(frozen=True)
class BaselinesConfig(JsonConfig):
    teacher: str = "efficientnet_lite0"
    space: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    designs: tuple[str, ...] | None = None  # None: manual_designs(space)
    steps: int = 300
    batch_groups: int = 2
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError("steps must be >= 1")
        for design in self.designs or ():
            try:
                make_op(design)
            except ArchError as exc:
                raise ConfigError(f"design {design!r}: {exc}") from None

    def design_list(self) -> list[str]:
        trained = list(self.designs) if self.designs is not None else manual_designs(SearchSpace.load(self.space))
        return ["full", "zero"] + [d for d in dict.fromkeys(trained) if d not in ("full", "zero")]

    def comparable(self) -> dict:
        """What every row of one points.csv shares (everything but the list of designs)."""
        d = json.loads(json.dumps(self.to_dict()))
        d.pop("designs")
        return d


def _read_points(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_points(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=POINT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def _open_run(config: BaselinesConfig, root: str | Path, name: str, resume: bool) -> tuple[RunDir, BaselinesConfig]:
    run = RunDir(Path(root) / name)
    saved = run.path / "baselines.json"
    if resume:
        if not saved.is_file():
            raise ConfigError(f"{run.path}: no baselines run to resume (baselines.json is missing)")
        old = BaselinesConfig.load(saved)
        if old.comparable() != config.comparable():
            diff = sorted(k for k, v in config.comparable().items() if old.comparable().get(k) != v)
            raise ConfigError(f"{run.path} was made with other settings ({', '.join(diff)} differ): its points "
                              f"would not be comparable; use the same options or another --name")
        if config.designs is None:  # the saved list (None: the whole space)
            config = config.replace(designs=old.designs)
        else:  # --designs adds to it
            config = config.replace(designs=tuple(dict.fromkeys([*old.design_list()[2:], *config.designs])))
    elif run.path.exists() and any(run.path.iterdir()):
        raise ConfigError(f"{run.path} exists already: pass --resume to continue it, or another --name")
    run.path.mkdir(parents=True, exist_ok=True)
    config.save(saved)
    return run, config


def run_baselines(config: BaselinesConfig, name: str, runs_dir: str | Path = "runs", *, resume: bool = False,
                  teacher: Teacher | None = None, data: VideoData | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """Train/evaluate every design not yet in ``points.csv``; return all rows as a DataFrame."""
    run, config = _open_run(config, runs_dir, name, resume)
    points_path = run.path / "points.csv"
    rows = _read_points(points_path)
    done = {r["design"] for r in rows}
    todo = [d for d in config.design_list() if d not in done]
    run.log(f"baselines: {len(done)} designs done, {len(todo)} to go: {', '.join(todo) or '-'}")
    if todo:
        teacher = teacher if teacher is not None else create_teacher(config.teacher)
        data = data if data is not None else load_video_data(config.data, teacher=config.teacher)
    k = config.data.keyframe_interval
    for design in todo:
        started = time.time()
        row: dict = {"design": design, "family": design_family(design),
                     "label": {"full": "teacher", "zero": "zero (reuse)"}.get(design, design)}
        if design == "full":  # the reference agrees with itself exactly: nothing to measure
            model, test, steps, where = convert(teacher, "full", input_hw=config.data.eval_size), None, 0, ""
            row.update(top1=1.0, dense=1.0, miou=1.0, fidelity=1.0, frames="")
        elif design == "zero":
            model = convert(teacher, "zero", input_hw=config.data.eval_size)
            test = evaluate(model, data.test_clips(), k, progress=progress)
            steps, where = 0, ""
        else:
            sub = RunDir(run.path / design_slug(design))
            again = sub.checkpoint.is_file() and sub.config.is_file()  # killed mid-training
            sub.path.mkdir(parents=True, exist_ok=True)
            train_config = TrainConfig(teacher=config.teacher, arch=f"uniform:{design}", data=config.data,
                                       steps=config.steps, batch_groups=config.batch_groups, lr=config.lr,
                                       warmup_steps=min(20, config.steps // 4), seed=config.seed)
            result = train(train_config, sub, resume=again, data=data, teacher=teacher, progress=progress)
            model, test, steps, where = result.model, result.test, result.steps_done, sub.path.name
        cost = model.cost(config.data.eval_size)
        if test is not None:
            cost = test.cost(cost)  # gated layers: what they spent on the held-out frames
        row.update(macs_per_frame=cost.per_frame(k), delta_macs=cost.delta_macs, teacher_macs=cost.teacher_macs,
                   speedup=cost.speedup(k), steps=steps, seconds=round(time.time() - started, 1), run=where)
        if test is not None:
            a = test.pooled
            row.update(top1=a.top1, dense=a.dense, miou=a.miou, fidelity=a.fidelity, frames=a.frames)
        rows.append(row)
        _write_points(points_path, rows)  # after every design: a killed run loses at most one
        run.log(f"{row['label']}: {row['macs_per_frame'] / 1e6:.1f} MMACs/frame, top-1 {float(row['top1']):.3f}, "
                f"fidelity {float(row['fidelity']):.3f}, {row['seconds']} s")
        if progress:
            print(f"{row['label']:28s} {row['macs_per_frame'] / 1e6:9.1f} MMACs/frame ({row['speedup']:.2f}x)  "
                  f"top-1 {float(row['top1']):.3f}  fidelity {float(row['fidelity']):.3f}  {row['seconds']} s",
                  flush=True)
    frame = pd.read_csv(points_path)
    teacher_macs = float(frame["teacher_macs"].iloc[0]) if len(frame) else None
    run.write_summary(RunSummary("baselines", config.teacher, k, teacher_macs,
                                 extra={"points": points_path.name, "designs": len(frame)}))
    return frame
