"""Held-out agreement at every key-frame phase: how much of a comparison the fixed grid of key frames decides.

    python benchmarks/keyframe_phases.py runs/bench-search-v7/search-0.1x "gated:p0.1(full)" ... \
        --out benchmarks/results/keyframe_phases_bundled.md

Each model (a run or export folder, or an untrained architecture) is evaluated on the held-out frames with
the key frames at every K-th frame from each offset 0 .. K-1 (``evaluate(phases=K)``): phase 0 is what every
other table reports; pooled over the K phases every held-out frame is a delta frame at each distance from
its key frame (K times as many delta frames, overlapping). MACs are as spent, pooled the same way.
``--spread`` adds top-1 with the grid started at each offset alone (the frames before it left out): how far
one grid's figure can fall from the pooled one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deltanas.analysis import evaluate
from deltanas.delta import Arch, convert
from deltanas.export import load_model
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import write_rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+", help="run or export folders, or architectures")
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--spread", action="store_true",
                   help="also top-1 with the grid started at each offset alone (K more passes per model)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(config, need_train=False)
    teacher = create_teacher("efficientnet_lite0")
    k, size = config.keyframe_interval, config.eval_size
    clips = data.test_clips()
    rows = [f"Held-out frames of `{' '.join(args.videos)}` ({sum(len(f) for _, f in clips)} frames, K={k}). "
            f"`python benchmarks/keyframe_phases.py {' '.join(repr(m) if '(' in m else m for m in args.models)}"
            f"{' --spread' if args.spread else ''}`", "",
            "| model | MMACs/frame, phase 0 | all phases | top-1 %, phase 0 | all phases | dense %, phase 0 | "
            "all phases | fidelity, phase 0 | all phases |" + (" top-1 % from offset 0..K-1 |" if args.spread else ""),
            "|---|---|---|---|---|---|---|---|---|" + ("---|" if args.spread else "")]
    for source in args.models:
        model = load_model(source) if Path(source).is_dir() else convert(teacher, Arch.parse(source), input_hw=size)
        first, pooled = (evaluate(model, clips, k, progress=False, phases=n) for n in (1, k))
        cost = [r.cost(model.cost(size)).per_frame(k) / 1e6 for r in (first, pooled)]
        a, b = first.pooled, pooled.pooled
        rows.append(f"| {source} | {cost[0]:.0f} | {cost[1]:.0f} | {100 * a.top1:.1f} | {100 * b.top1:.1f} | "
                    f"{100 * a.dense:.1f} | {100 * b.dense:.1f} | {a.fidelity:.3f} | {b.fidelity:.3f} |"
                    + (f" {' '.join(_top1_from_each_offset(model, clips, k))} |" if args.spread else ""))
        print(rows[-1], flush=True)
    write_rows(args.out, rows)


def _top1_from_each_offset(model, clips, k: int) -> list[str]:
    """Top-1 with the grid of key frames started at each offset alone (the frames before it left out)."""
    return [f"{100 * evaluate(model, [(n, f[s:]) for n, f in clips], k, progress=False).pooled.top1:.1f}"
            for s in range(k)]


if __name__ == "__main__":
    main()
