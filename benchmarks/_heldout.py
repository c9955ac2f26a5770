"""Shared by the benchmark scripts: agreement on the validation and the held-out frames, the gates-only search,
and the table written out."""

from __future__ import annotations

import json
import time
from pathlib import Path

from deltanas._io import atomic_write_text
from deltanas._run import RunDir
from deltanas.analysis import Agreement, evaluate
from deltanas.delta import Arch, CostReport, DeltaModel, SearchSpace, convert
from deltanas.search import Budget, SearchConfig, build_supernet
from deltanas.search._derive import derive
from deltanas.training import VideoData


def val_and_test(model: DeltaModel, data: VideoData, keyframe_interval: int, size: tuple[int, int],
                 val_groups: int | None = None) -> tuple[Agreement, Agreement, CostReport]:
    """Pooled agreement on the validation frames (up to ``val_groups`` groups per clip) and on the
    held-out frames, and the cost as spent on the held-out frames."""
    val = evaluate(model, data.val_clips(), keyframe_interval, progress=False, max_groups=val_groups).pooled
    result = evaluate(model, data.test_clips(), keyframe_interval, progress=False)
    return val, result.pooled, result.cost(model.cost(size))


def write_rows(out: Path | None, rows: list[str]) -> None:
    if out:
        atomic_write_text(out, "\n".join(rows) + "\n")


def gates_search(teacher, data: VideoData, data_config, target: str, run_name: str, runs_dir: str,
                 gate_steps: int, gate_frames: str = "crops") -> tuple[str, float, Budget, dict[str, Arch]]:
    """The gates-only search at ``target`` (``derive`` without a supernet, what ``deltanas search --no-supernet``
    selects with) into a fresh run folder: (the label it chose, its seconds, the budget, and the two designs it
    compared: ``"stride profile (calibrated)"`` and ``"learned gates"``)."""
    size, k = data_config.eval_size, data_config.keyframe_interval
    supernet = build_supernet(teacher, SearchSpace.load("default"), size)
    teacher_macs = float(convert(teacher, "full", input_hw=size).cost(size).teacher_macs)
    budget = Budget.parse(target, teacher_macs, k)
    config = SearchConfig(data=data_config, target=target, supernet=False, gate_steps=gate_steps,
                          gate_frames=gate_frames)
    run = RunDir.create(run_name, runs_dir)
    start = time.perf_counter()
    derived = derive(supernet, budget, config, data, run, teacher.info.name, progress=True)
    seconds = time.perf_counter() - start
    archs = json.loads((run.path / "selection.json").read_text())["archs"]
    profile = next(label for label in archs if label.startswith("uniform running-profiled"))
    return derived.label, seconds, budget, {"stride profile (calibrated)": Arch.from_dict(archs[profile]),
                                            "learned gates": Arch.from_dict(archs["learned gates"])}
