"""Run a delta model and its teacher over held-out footage and measure agreement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..delta import CostReport, DeltaModel, KeyframePolicy, calibrate_keyframes
from ..errors import ConfigError
from ..video import iter_groups
from ._gating import GatedSpend, measured_cost
from ._metrics import Agreement, AgreementMeter, GroupSums

__all__ = ["EvalResult", "evaluate", "evaluate_adaptive", "keyframe_groups"]


@dataclass(frozen=True)
class EvalResult:
    keyframe_interval: int  # the fixed K, or an adaptive policy's longest interval
    per_clip: dict[str, Agreement]
    pooled: Agreement  # ratios of sums over all clips' frames
    key_frames: int = 0  # how many frames ran the teacher
    frames: int = 0
    groups: tuple[GroupSums, ...] = ()  # per key-frame group, all clips in order (see ``compare``)
    gated_macs: dict[str, float] | None = None  # gated layers: measured MACs per delta frame, at the clips' size
    # per group, the unit a bootstrap resamples: the K-frame window (of key frames at phase 0) that holds its
    # key frame, numbered over all clips; groups of several phases share a window's unit
    blocks: tuple[int, ...] = ()
    linear_macs: float | None = None  # the engine's: its linear layers' MACs per delta frame

    def cost(self, analytic: CostReport) -> CostReport:
        """``analytic`` (``model.cost(size)`` at the clips' size) with the gated layers' MACs as measured
        on these frames: a threshold or learned gate's active fraction depends on the footage, and only
        the measurement says what it spent (a top-p gate measures exactly its analytic count)."""
        return measured_cost(analytic, self.gated_macs, self.linear_macs)

    def report(self, analytic: CostReport, keyframe_interval: "int | float", keyframes: dict) -> dict:
        """The JSON record of an evaluation (``deltanas evaluate --json``, ``eval.json``): MACs as spent, at the
        key-frame interval reached, the key-frame policy, pooled and per-clip agreement."""
        cost = self.cost(analytic)
        k = keyframe_interval
        return {"macs_per_frame": cost.per_frame(k), "delta_macs": cost.delta_macs, "teacher_macs": cost.teacher_macs,
                "speedup": cost.speedup(k),
                "keyframes": {n: v for n, v in keyframes.items() if n not in ("pooled", "macs_per_frame", "speedup")},
                "pooled": self.pooled.as_dict(), "per_clip": {n: a.as_dict() for n, a in self.per_clip.items()}}

    @property
    def effective_interval(self) -> float:
        """Frames per key frame (K for a fixed interval, up to the clips' ends): use it for
        ``CostReport.per_frame`` to get the MACs an adaptive policy really spent."""
        return self.frames / max(self.key_frames, 1)


def keyframe_groups(frames: torch.Tensor, keyframe_interval: int,
                    policy: KeyframePolicy | None = None, phase: int = 0) -> Iterator[torch.Tensor]:
    """Groups ``[key, ...]`` as float32 (T, 3, H, W) in [0, 1]: every K frames from frame ``phase`` (the
    frames before it one group), or where ``policy`` puts the key frames (what
    :func:`~deltanas.delta.stream` would choose)."""
    if policy is None and phase == 0:
        yield from iter_groups(frames, keyframe_interval)
        return
    keys = (policy.key_indices(frames) if policy is not None
            else sorted({0, *range(phase, frames.shape[0], keyframe_interval)}))
    keys = [k for k in keys if k < frames.shape[0]] + [frames.shape[0]]
    for start, end in zip(keys[:-1], keys[1:]):
        yield frames[start:end].to(torch.float32).div_(255)


@torch.no_grad()
def evaluate(model: DeltaModel, clips: Sequence[tuple[str, torch.Tensor]], keyframe_interval: int,
             *, progress: bool = True, max_groups: int | None = None,
             policy: KeyframePolicy | None = None, phases: int = 1, engine=None) -> EvalResult:
    """Agreement on ``clips`` (name, uint8 frames (T,3,H,W)), in consecutive groups of K frames, or
    with key frames where ``policy`` (adaptive) puts them. Fidelity compares with reusing the key
    frame under the same key frames; top-1 and dense agreement do not depend on them.

    ``engine``: a :class:`~deltanas.engine.SparseEngine` of ``model`` streams each group (key frame, then
    delta frames), and the MACs are the work it did; without one the groups run on the dense-masked
    reference path (the same outputs, gated layers' MACs as the sparse path would spend them).

    ``phases`` > 1 (at most K; fixed key frames only) pools the key frames at every K-th frame from each
    of the offsets ``0 .. phases - 1`` (``max_groups`` per clip and phase): with ``phases = K`` every frame
    is a delta frame at each distance from its key frame, and which frames the fixed grid made key
    frames no longer decides the figures (BENCHMARKS.md, every key-frame phase)."""
    teacher = model.teacher
    if teacher is None:
        raise ConfigError("evaluation needs a classifier teacher (deltanas.teachers.Teacher)")
    if not 1 <= phases <= keyframe_interval or (phases > 1 and policy is not None):
        raise ConfigError(f"phases must be 1..K={keyframe_interval}, with fixed key frames only (got {phases})")
    model.eval()
    pooled = AgreementMeter(teacher.info.num_classes)
    per_clip: dict[str, Agreement] = {}
    blocks: list[int] = []
    key_frames = frame_count = block_base = 0
    spend = GatedSpend(model)
    total = sum(min(-(-(len(f) - phase) // keyframe_interval) + (phase > 0), max_groups or 1 << 30)
                for _, f in clips for phase in range(phases))
    bar = tqdm(total=total, desc="evaluate", unit="group", disable=not progress, leave=False)
    for name, frames in clips:
        meter = AgreementMeter(teacher.info.num_classes)
        for group, key in _groups(frames, keyframe_interval, policy, phases, max_groups):
            if len(group) > 1:  # the meter keeps groups with a delta frame
                blocks.append(block_base + key // keyframe_interval)
            key_frames, frame_count = key_frames + 1, frame_count + len(group)
            ref = model.teacher_forward(group)
            out = spend.forward_group(group) if engine is None else spend.engine_group(engine, group)
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
        block_base += -(-len(frames) // keyframe_interval)
    bar.close()
    interval = keyframe_interval if policy is None else policy.interval
    return EvalResult(interval, per_clip, pooled.result(), key_frames, frame_count, tuple(pooled.groups),
                      spend.macs() or None, tuple(blocks), spend.linear_macs)


def _groups(frames: torch.Tensor, keyframe_interval: int, policy: KeyframePolicy | None, phases: int,
            max_groups: int | None) -> Iterator[tuple[torch.Tensor, int]]:
    """``(group, index of its key frame)`` for each phase in turn, up to ``max_groups`` per phase."""
    for phase in range(phases):
        key = 0
        for i, group in enumerate(keyframe_groups(frames, keyframe_interval, policy, phase)):
            if max_groups is not None and i >= max_groups:
                break
            yield group, key
            key += len(group)


def evaluate_adaptive(model: DeltaModel, calibration: Sequence[torch.Tensor],
                      clips: Sequence[tuple[str, torch.Tensor]], keyframe_interval: int, *,
                      max_interval: int | None = None, progress: bool = True,
                      engine=None) -> tuple[EvalResult, dict]:
    """Agreement with adaptive key frames at the key budget of a fixed K: the policy is calibrated on
    ``calibration`` clips (the training split), then run on ``clips``. Returns the result and a report
    (policy, key frames spent, MACs per frame and speed-up at the key rate reached)."""
    policy = calibrate_keyframes(calibration, keyframe_interval, max_interval)
    result = evaluate(model, clips, keyframe_interval, progress=progress, policy=policy, engine=engine)
    cost = result.cost(model.cost(tuple(clips[0][1].shape[-2:])))
    interval = result.effective_interval
    report = {"policy": "adaptive", "threshold": policy.threshold, "max_interval": policy.interval,
              "key_rate": policy.key_rate, "key_frames": result.key_frames, "frames": result.frames,
              "macs_per_frame": cost.per_frame(interval), "speedup": cost.speedup(interval),
              "pooled": result.pooled.as_dict()}
    return result, report
