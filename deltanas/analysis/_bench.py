"""Wall-clock of a delta model against its teacher, measured in the same run (ratios, not seconds)."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass

import torch

from ..delta import DeltaModel, KeyframePolicy, stream
from ._gating import GatedSpend, measured_cost

__all__ = ["BenchResult", "bench"]


@dataclass(frozen=True)
class BenchResult:
    frames: int
    keyframe_interval: int
    threads: int
    machine: str
    teacher_ms: float  # per frame, batch 1
    stream_ms: float  # delta model per frame, batch 1, key frames included
    group_ms: float  # delta model per frame, a group of K frames as one batch
    teacher_group_ms: float  # teacher per frame, K frames as one batch
    macs_ratio: float  # teacher MACs / averaged delta-model MACs
    cache_mib: float

    @property
    def stream_speedup(self) -> float:
        return self.teacher_ms / self.stream_ms

    @property
    def group_speedup(self) -> float:
        return self.teacher_group_ms / self.group_ms

    def as_dict(self) -> dict:
        return {**asdict(self), "stream_speedup": self.stream_speedup, "group_speedup": self.group_speedup}


def _best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def bench(model: DeltaModel, frames: torch.Tensor, keyframe_interval: int, repeats: int = 3) -> BenchResult:
    """``frames`` float (T, 3, H, W). Best of ``repeats`` for each path, after one warm-up run."""
    model.eval()
    k = keyframe_interval
    n = frames.shape[0] - frames.shape[0] % k or frames.shape[0]
    frames = frames[:n]
    groups = frames.view(-1, k, *frames.shape[1:]) if n % k == 0 else frames[None]

    def teacher_single():
        for f in frames:
            model.teacher_forward(f[None])

    def delta_stream():
        for _ in stream(model, frames, KeyframePolicy(k)):
            pass

    def teacher_group():
        for g in groups:
            model.teacher_forward(g)

    def delta_group():
        for g in groups:
            model.forward_group(g[None])

    for fn in (teacher_single, delta_stream, teacher_group, delta_group):  # warm-up
        fn()
    spend = GatedSpend(model)  # what gated layers spend on these frames (a threshold's fraction follows them)
    for g in groups:
        spend.forward_group(g)
    cost = measured_cost(model.cost(tuple(frames.shape[-2:])), spend.macs())
    per = 1e3 / n
    return BenchResult(
        frames=n, keyframe_interval=k, threads=torch.get_num_threads(),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        teacher_ms=_best_of(repeats, teacher_single) * per, stream_ms=_best_of(repeats, delta_stream) * per,
        group_ms=_best_of(repeats, delta_group) * per, teacher_group_ms=_best_of(repeats, teacher_group) * per,
        macs_ratio=cost.speedup(k), cache_mib=cost.cache_bytes / 2**20,
    )
