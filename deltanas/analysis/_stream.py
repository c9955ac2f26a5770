"""A video streamed frame by frame through a delta model, with its agreement and speed against the dense
teacher on the same frames: what ``deltanas run`` reports."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .._io import atomic_write_csv
from ..delta import DeltaModel, KeyframePolicy, stream
from ..engine import DenseFallback, FrameSchedule, SparseEngine, dense_runtime, engine_stream
from ..errors import ConfigError
from ._bench import speed_words
from ._gating import GatedSpend, measured_cost
from ._metrics import Agreement, AgreementMeter

__all__ = ["StreamReport", "run_stream"]


@dataclass
class StreamReport:
    """Per frame (``rows``: frame, key, ms, macs, teacher and model top-1) and in all (averaged over every
    frame, key frames included): the delta model's ms and MACs, the dense teacher's ms in ``teacher_runtime``
    timed on the same frames in the same run, and the agreement on the delta frames."""

    frames: int
    key_frames: int
    input_hw: tuple[int, int]
    threads: int
    path: str  # "engine (native, key frames in openvino)" or "reference"
    ms_per_frame: float
    teacher_runtime: str
    teacher_ms_per_frame: float
    macs_per_frame: float
    teacher_macs: int
    agreement: Agreement
    rows: list[dict] = field(default_factory=list)
    dense_frames: int = 0  # frames the teacher alone ran (the dense fallback)

    @property
    def speedup(self) -> float:
        return self.teacher_ms_per_frame / self.ms_per_frame

    @property
    def macs_ratio(self) -> float:
        return self.teacher_macs / max(self.macs_per_frame, 1.0)

    def write_csv(self, path: "str | Path") -> Path:
        return atomic_write_csv(path, self.rows)

    def summary(self) -> list[str]:
        a = self.agreement
        dense = f", {self.dense_frames} of the teacher alone (delta frames cost more)" if self.dense_frames else ""
        return [f"{self.frames} frames, {self.key_frames} key frames{dense}; agreement on the delta frames: top-1 "
                f"{100 * a.top1:.1f}% (key-frame reuse {100 * a.reuse_top1:.1f}%), fidelity {a.fidelity:.3f}",
                f"{self.ms_per_frame:.2f} ms/frame ({self.path}) vs the dense teacher in {self.teacher_runtime} "
                f"{self.teacher_ms_per_frame:.2f} ms/frame: {speed_words(self.speedup)}; MACs/frame "
                f"{self.macs_per_frame / 1e6:.1f}M vs {self.teacher_macs / 1e6:.1f}M ({self.macs_ratio:.2f}x fewer); "
                f"batch 1, {self.threads} thread(s)"]


@torch.no_grad()
def run_stream(model: DeltaModel, frames: Sequence[torch.Tensor] | torch.Tensor, policy: KeyframePolicy, *,
               engine: SparseEngine | None = None, teacher_runtime: str = "auto",
               fallback: DenseFallback | None = None) -> StreamReport:
    """Stream ``frames`` (T, 3, H, W) float in [0, 1] through ``model``: in ``engine`` (the sparse engine; with
    ``fallback``, the teacher alone where delta frames cost more), or on the reference path without one. The
    dense teacher runs the same frames in ``teacher_runtime`` (``auto``: the fastest installed) for the speed,
    and in PyTorch as the reference. Agreement counts the delta frames."""
    if fallback is not None and engine is None:
        raise ConfigError("the dense fallback needs the sparse engine")
    teacher = model.teacher
    frames = torch.as_tensor(frames) if not isinstance(frames, torch.Tensor) else frames
    hw = (int(frames.shape[-2]), int(frames.shape[-1]))
    threads = torch.get_num_threads()
    dense_teacher = dense_runtime(model, teacher_runtime, hw, threads)
    dense, runtime = dense_teacher.run, dense_teacher.name
    single = [f[None].contiguous() for f in frames]
    dense(single[0])  # warm-up
    if engine is not None:  # built and warmed up before the clock runs
        engine.key_frame(single[0])
        engine.delta_frame(single[min(1, len(single) - 1)])
        engine.reset()
    start = time.perf_counter()
    for x in single:
        dense(x)
    teacher_ms = 1e3 * (time.perf_counter() - start) / len(single)
    ref = model.teacher_forward(frames)  # the reference outputs (PyTorch, batched: not timed)

    outputs, kinds, seconds, macs = [], [], [], []
    cost = model.cost(hw)
    spend = GatedSpend(model)
    if engine is None:
        frames_iter = iter(stream(model, frames, policy))
    else:
        dense_seconds = engine.dense_seconds(hw) if fallback is not None else None
        frames_iter = iter(engine_stream(engine, single, FrameSchedule(policy, fallback, dense_seconds)))
    for _ in single:
        t0 = time.perf_counter()
        out = next(frames_iter)
        kind = "key" if out.is_key else "dense" if engine is not None and out.dense else "delta"
        if engine is None and kind == "delta":
            spend.record()
        seconds.append(time.perf_counter() - t0)
        outputs.append(out.output)
        kinds.append(kind)
        macs.append(cost.teacher_macs if kind != "delta" else
                    (sum(out.macs.values()) if engine is not None else None))
    if engine is None:  # the reference path's delta frames: analytic, gated layers as spent
        delta = measured_cost(cost, spend.macs()).delta_macs
        macs = [m if m is not None else delta for m in macs]
    out = torch.cat(outputs)
    meter = AgreementMeter(teacher.info.num_classes)
    logits, ref_logits = teacher.logits_from_features(out), teacher.logits_from_features(ref)
    for a in (i for i, kind in enumerate(kinds) if kind == "key"):  # each key frame and the delta frames after it
        b = a + 1
        while b < len(kinds) and kinds[b] == "delta":
            b += 1
        meter.update(ref_logits[a:b], logits[a:b])
    rows = [{"frame": i, "key": int(k == "key"), "dense": int(k == "dense"), "ms": round(1e3 * s, 3),
             "macs": int(m), "teacher_top1": int(ref_logits[i].argmax()), "model_top1": int(logits[i].argmax())}
            for i, (k, s, m) in enumerate(zip(kinds, seconds, macs))]
    path = "reference" if engine is None else f"engine ({engine.backend}, key frames in {engine.key_runtime})"
    return StreamReport(len(single), kinds.count("key"), hw, threads, path, 1e3 * sum(seconds) / len(single),
                        runtime, teacher_ms, sum(macs) / len(macs), cost.teacher_macs, meter.result(), rows,
                        kinds.count("dense"))
