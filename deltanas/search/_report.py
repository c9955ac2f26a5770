"""What a finished search writes: its summary, the per-layer choice plot, the speed on the sparse engine."""

from __future__ import annotations

from .._io import atomic_write_text
from .._run import RunDir, RunSummary
from ..analysis import EvalResult, speed_summary
from ..analysis.plots import plot_arch_choice
from ..delta import CostReport, DeltaModel, averaged_macs
from ..errors import DeltaNASError
from ..training import VideoData
from ._budget import Budget
from ._config import SearchConfig
from ._derive import Derived
from ._supernet import Supernet

__all__ = ["speed_report", "write_outputs"]


def speed_report(model: DeltaModel, data: VideoData, k: int, run: RunDir) -> tuple[dict, str] | None:
    """The result on the sparse engine against the fastest dense runtime (None, logged, where the engine cannot
    run the network)."""
    try:
        return speed_summary(model, [frames for _, frames in data.test_clips()], k)
    except DeltaNASError as exc:
        run.log(f"speed not measured: {exc}")
        return None


def write_outputs(run: RunDir, config: SearchConfig, supernet: Supernet, derived: Derived, budget: Budget,
                  test: EvalResult | None, measured: CostReport | None, adaptive: dict | None,
                  seconds: dict[str, float], wall: float, speed: tuple[dict, str] | None = None) -> None:
    """A finished search's ``summary.json``, ``summary.txt``, the last log line and ``arch_choice.png``."""
    k, delta_macs = budget.keyframe_interval, derived.delta_macs
    rows = []
    probs = supernet.probabilities()
    ops = derived.arch.resolve(supernet.layers)
    for info in supernet.layers:
        op = str(ops[info.name])
        specs = supernet.mixed[info.name].specs
        prob = float(probs[info.name][specs.index(op)]) if op in specs else None  # outside the supernet
        rows.append({"layer": info.name, "op": op, "macs": float(ops[info.name].macs(info)),
                     "teacher_macs": info.teacher_macs, "prob": prob})
    plot_arch_choice(rows, run.path / "arch_choice")
    per_frame = averaged_macs(budget.teacher_macs, delta_macs, k)
    extra = {
        "space": config.space, "budget": budget.describe(), "asked": budget.asked,
        "target_delta_macs": budget.delta_macs, "delta_macs": delta_macs,
        "delta_over_target": delta_macs / budget.delta_macs, "hard": config.hard, "chosen": derived.label,
        "speedup": budget.teacher_macs / per_frame,
        "seconds": {**{n: round(s, 1) for n, s in seconds.items()}, "total": round(wall, 1)}, "layers": rows,
    }
    spent = None
    if test is not None:
        if measured is not None:  # gated layers: what they spent on the held-out frames
            spent = measured.per_frame(k)
            extra["test_speedup"] = measured.speedup(k)
        extra["test_per_clip"] = {n: a.as_dict() for n, a in test.per_clip.items()}
    if adaptive is not None:
        extra["test_adaptive"] = adaptive
    if speed is not None:
        extra["engine"] = speed[0]
    run.write_summary(RunSummary("search", config.teacher, k, budget.teacher_macs, per_frame, spent,
                                 test.pooled.as_dict() if test is not None else None, extra))
    line = (f"searched: {per_frame / 1e6:.1f} MMACs/frame at K={k} ({extra['speedup']:.2f}x), "
            f"delta frame {delta_macs / 1e6:.1f}M = {delta_macs / budget.delta_macs:.3f} x target")
    if test is not None:
        a = test.pooled
        line += (f"; held-out top-1 {100 * a.top1:.1f}% (key-frame reuse {100 * a.reuse_top1:.1f}%), "
                 f"dense {100 * a.dense:.1f}%")
    if measured is not None and measured.delta_macs != round(delta_macs):
        line += f" (spent there: {measured.per_frame(k) / 1e6:.1f} MMACs/frame, {measured.speedup(k):.2f}x)"
    if adaptive is not None:
        line += (f"; adaptive key frames ({adaptive['key_frames']}/{adaptive['frames']}): "
                 f"{adaptive['speedup']:.2f}x, top-1 {100 * adaptive['pooled']['top1']:.1f}%")
    line += f"; {wall:.0f} s"
    if speed is not None:
        line += "\n" + speed[1]
    run.log(line)
    atomic_write_text(run.path / "summary.txt", line + "\n")
