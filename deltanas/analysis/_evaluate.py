"""Run a delta model and its teacher over held-out footage and measure agreement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..delta import DeltaModel
from ..errors import ConfigError
from ..video import iter_groups
from ._metrics import Agreement, AgreementMeter

__all__ = ["EvalResult", "evaluate"]


@dataclass(frozen=True)
class EvalResult:
    keyframe_interval: int
    per_clip: dict[str, Agreement]
    pooled: Agreement  # ratios of sums over all clips' frames


@torch.no_grad()
def evaluate(model: DeltaModel, clips: Sequence[tuple[str, torch.Tensor]], keyframe_interval: int,
             *, progress: bool = True, max_groups: int | None = None) -> EvalResult:
    """Agreement on ``clips`` (name, uint8 frames (T,3,H,W)), in consecutive groups of K frames."""
    teacher = model.teacher
    if teacher is None:
        raise ConfigError("evaluation needs a classifier teacher (deltanas.teachers.Teacher)")
    model.eval()
    pooled = AgreementMeter(teacher.info.num_classes)
    per_clip: dict[str, Agreement] = {}
    total = sum(min(-(-len(f) // keyframe_interval), max_groups or 1 << 30) for _, f in clips)
    bar = tqdm(total=total, desc="evaluate", unit="group", disable=not progress, leave=False)
    for name, frames in clips:
        meter = AgreementMeter(teacher.info.num_classes)
        for i, group in enumerate(iter_groups(frames, keyframe_interval)):
            if max_groups is not None and i >= max_groups:
                break
            ref = model.teacher_forward(group)
            out = model.forward_group(group[None])[0]
            outputs = dict(
                teacher_logits=teacher.logits_from_features(ref),
                model_logits=teacher.logits_from_features(out),
                teacher_dense=teacher.dense_logits_from_features(ref),
                model_dense=teacher.dense_logits_from_features(out),
                teacher_features=ref,
                model_features=out,
            )
            meter.update(**outputs)
            pooled.update(**outputs)
            bar.update()
        per_clip[name] = meter.result()
    bar.close()
    return EvalResult(keyframe_interval, per_clip, pooled.result())
