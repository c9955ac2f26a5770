"""Shared by the benchmark scripts that judge untrained designs: agreement on the validation and the
held-out frames, and the table written out."""

from __future__ import annotations

from pathlib import Path

from deltanas._io import atomic_write_text
from deltanas.analysis import Agreement, evaluate
from deltanas.delta import CostReport, DeltaModel
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
