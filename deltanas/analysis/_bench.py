"""Wall-clock of a delta model in the sparse engine against its dense teacher in every installed runtime,
measured in the same run on the same frames (ratios, not seconds).

Each repeat streams the frames once through every contender in turn (the dense teacher in PyTorch eager,
ONNX Runtime and OpenVINO where installed; the delta model in the engine, key frames every K frames), so
that the machine's noise falls on all of them alike, with a pause between contenders so that one's idle
threads do not slow the next; the figures are medians over the repeats.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

from ..delta import DeltaModel, KeyframePolicy
from ..engine import (BF16_RUNTIME, DenseFallback, FrameSchedule, SparseEngine, available_dense_runtimes,
                      dense_runtime, engine_stream, machine_name)
from ._metrics import AgreementMeter

__all__ = ["BenchResult", "bench", "machine_name", "speed_summary"]


@dataclass(frozen=True)
class BenchResult:
    """Field names are stable (``deltanas bench --json``). Times are ms per frame, medians over repeats."""

    frames: int
    keyframe_interval: int
    key_frames: int  # every K frames and the first frame of each clip (with a fallback: of the last repeat)
    input_hw: tuple[int, int]
    threads: int
    machine: str
    engine_backend: str  # native or torch
    key_runtime: str  # the runtime that ran the engine's key frames
    teacher_ms_per_frame: dict[str, float]  # runtime (torch, onnxruntime, openvino) -> the dense teacher
    delta_ms_per_frame: float  # the engine, averaged at K, key frames included
    delta_ms_per_delta_frame: float  # the engine on frames after a key frame
    key_ms_per_key_frame: float  # the engine's key frames (dense, filling the engine's state)
    teacher_macs: int
    macs_per_frame: float  # what the engine did, averaged at K
    state_mib: float  # what the engine keeps between frames (its scratch included)
    peak_rss_mib: float  # the process's peak resident memory
    top1: float  # the engine's agreement with the teacher on the delta frames benched
    fidelity: float
    repeats: int
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)  # contender -> (min, max) ms per frame
    dense_frames: int = 0  # frames the teacher alone ran (the dense fallback), of the last repeat

    @property
    def macs_ratio(self) -> float:
        return self.teacher_macs / max(self.macs_per_frame, 1.0)

    def speedup(self, runtime: str) -> float:
        """How many times faster than the dense teacher in ``runtime``, per frame (key frames included)."""
        return self.teacher_ms_per_frame[runtime] / self.delta_ms_per_frame

    @property
    def fastest_runtime(self) -> str:
        """The float32 dense runtime the teacher ran fastest in (timed in this run): the engine computes in
        float32; ``openvino_bf16``, where timed, is beside it in ``teacher_ms_per_frame``."""
        f32 = {rt: ms for rt, ms in self.teacher_ms_per_frame.items() if rt != BF16_RUNTIME}
        return min(f32, key=f32.get)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["input_hw"] = list(self.input_hw)
        out["macs_ratio"] = self.macs_ratio
        out["speedup"] = {rt: self.speedup(rt) for rt in self.teacher_ms_per_frame}
        return out


@torch.no_grad()
def bench(model: DeltaModel, frames: "torch.Tensor | Sequence[torch.Tensor]", keyframe_interval: int,
          repeats: int = 5, *, runtimes: list[str] | None = None, engine: SparseEngine | None = None,
          teachers: dict[str, Callable] | None = None, fallback: DenseFallback | None = None) -> BenchResult:
    """``frames``: one clip (T, 3, H, W) float in [0, 1], or several of one size (each starts with a key
    frame). ``runtimes``: the dense teacher's runtimes to time (default every installed one, bfloat16 OpenVINO
    included where the CPU computes it), or ``teachers`` already built (:func:`~deltanas.engine.dense_runtime`,
    by runtime); ``engine``: the engine to time (default: native where built, key frames in the fastest
    installed runtime); ``fallback``: the teacher alone where delta frames cost more (decided as it runs, so
    each repeat may decide differently: the counts and agreement are the last repeat's)."""
    model.eval()
    clips = [frames] if isinstance(frames, torch.Tensor) else list(frames)
    k, hw = keyframe_interval, (int(clips[0].shape[-2]), int(clips[0].shape[-1]))
    threads = torch.get_num_threads()
    engine = engine or SparseEngine(model)
    if teachers is None:
        teachers = {name: dense_runtime(model, name, hw, threads).run
                    for name in runtimes or available_dense_runtimes()}
    single = [[f[None].contiguous() for f in clip] for clip in clips]
    engine.key_frame(single[0][0])  # builds the engine; warm-up below
    dense_seconds = engine.dense_seconds(hw) if fallback is not None else None

    def run_engine() -> tuple[float, list[FrameSchedule], list[float]]:
        schedules, macs = [], []
        start = time.perf_counter()
        for clip in single:
            schedule = FrameSchedule(KeyframePolicy(k), fallback, dense_seconds)
            macs += [sum(f.macs.values()) for f in engine_stream(engine, clip, schedule) if f.macs]
            schedules.append(schedule)
        return time.perf_counter() - start, schedules, macs

    def run_teacher(fn) -> float:
        start = time.perf_counter()
        for clip in single:
            for x in clip:
                fn(x)
        return time.perf_counter() - start

    for fn in teachers.values():  # warm-up
        fn(single[0][0])
    run_engine()
    totals: dict[str, list[float]] = {name: [] for name in [*teachers, "engine"]}
    key_ms, delta_ms = [], []  # per repeat, the mean over its frames (what adds up to ms per frame)
    for _ in range(repeats):
        for name, fn in teachers.items():
            _settle()
            totals[name].append(run_teacher(fn))
        _settle()
        total, schedules, macs = run_engine()
        totals["engine"].append(total)
        spent = {kind: [sec for s in schedules for kd, sec in zip(s.kinds, s.seconds) if kd == kind]
                 for kind in ("key", "delta")}
        key_ms.append(1e3 * statistics.fmean(spent["key"]))
        delta_ms.append(1e3 * statistics.fmean(spent["delta"]) if spent["delta"] else float("nan"))
    n = sum(len(clip) for clip in single)
    per = {name: [1e3 * t / n for t in ts] for name, ts in totals.items()}
    kinds = [s.kinds for s in schedules]
    top1, fidelity = _agreement(model, engine, single, kinds)
    cost = model.cost(hw)
    delta_macs = statistics.fmean(macs) if macs else 0.0
    count = {kind: sum(ks.count(kind) for ks in kinds) for kind in ("key", "delta", "dense")}
    return BenchResult(
        frames=n, keyframe_interval=k, key_frames=count["key"], input_hw=hw, threads=threads,
        machine=machine_name(),
        engine_backend=engine.backend, key_runtime=engine.key_runtime,
        teacher_ms_per_frame={name: statistics.median(per[name]) for name in teachers},
        delta_ms_per_frame=statistics.median(per["engine"]),
        delta_ms_per_delta_frame=statistics.median(delta_ms),
        key_ms_per_key_frame=statistics.median(key_ms),
        teacher_macs=cost.teacher_macs,
        macs_per_frame=((n - count["delta"]) * cost.teacher_macs + count["delta"] * delta_macs) / n,
        state_mib=engine.state_bytes(hw) / 2**20,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        top1=top1, fidelity=fidelity, repeats=repeats,
        spread={name: (min(v), max(v)) for name, v in per.items()},
        dense_frames=count["dense"],
    )


def speed_words(ratio: float) -> str:
    """A time ratio (dense / engine) in words: ``1.52x faster`` or, below 1, ``1.14x slower``."""
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def _settle() -> None:
    """Let the last contender's worker threads stop spinning (OpenMP, TBB and ONNX Runtime pools busy-wait for a
    while after their work) before the next contender's clock starts."""
    time.sleep(0.2)


def _agreement(model: DeltaModel, engine: SparseEngine, clips: list[list[torch.Tensor]],
               kinds: list[list[str]]) -> tuple[float, float]:
    """Top-1 and fidelity on the delta frames, each group replayed as the benched stream ran it (frames of the
    teacher alone are its outputs: not counted)."""
    teacher = model.teacher
    if teacher is None:
        return float("nan"), float("nan")
    meter = AgreementMeter(teacher.info.num_classes)
    for clip, clip_kinds in zip(clips, kinds):
        starts = [i for i, kind in enumerate(clip_kinds) if kind == "key"]
        for start in starts:
            end = start + 1
            while end < len(clip) and clip_kinds[end] == "delta":
                end += 1
            group = clip[start:end]
            ref = teacher.logits_from_features(model.teacher_forward(torch.cat(group)))
            outs = [engine.key_frame(group[0])[0]] + [engine.delta_frame(x)[0] for x in group[1:]]
            meter.update(ref, teacher.logits_from_features(torch.cat(outs)))
    result = meter.result()
    return result.top1, result.fidelity


def speed_summary(model: DeltaModel, clips: Sequence[torch.Tensor], keyframe_interval: int) -> tuple[dict, str]:
    """What a user came for, on ``clips`` (uint8 (T, 3, H, W), e.g. the held-out frames): ms per frame of
    ``model`` in the sparse engine against the dense teacher in the fastest installed runtime, one run each,
    and the agreement kept. Returns (a JSON-able record, one line)."""
    frames = [c.float() / 255 for c in clips]
    hw = (int(frames[0].shape[-2]), int(frames[0].shape[-1]))
    dense = dense_runtime(model, "auto", hw, torch.get_num_threads())
    r = bench(model, frames, keyframe_interval, repeats=1, teachers={dense.name: dense.run})
    record = {"ms_per_frame": r.delta_ms_per_frame, "teacher_runtime": dense.name,
              "teacher_ms_per_frame": r.teacher_ms_per_frame[dense.name], "speedup": r.speedup(dense.name),
              "macs_ratio": r.macs_ratio, "top1": r.top1, "fidelity": r.fidelity, "frames": r.frames,
              "threads": r.threads, "engine_backend": r.engine_backend, "key_runtime": r.key_runtime}
    line = (f"on the sparse engine ({r.engine_backend}): {r.delta_ms_per_frame:.1f} ms/frame against the dense "
            f"teacher's {record['teacher_ms_per_frame']:.1f} in {dense.name} ({speed_words(record['speedup'])}, "
            f"{r.macs_ratio:.2f}x fewer MACs), keeping top-1 {100 * r.top1:.1f}% and fidelity {r.fidelity:.3f} "
            f"on {r.frames} held-out frames, {r.threads} thread(s)")
    return record, line
