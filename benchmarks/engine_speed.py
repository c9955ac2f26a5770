"""Milliseconds per frame of delta models in the sparse engine against the dense teacher in PyTorch eager,
ONNX Runtime and OpenVINO, on the held-out frames, in one run per thread count.

    python benchmarks/engine_speed.py --videos shared --out benchmarks/results/engine_static.md
    python benchmarks/engine_speed.py --videos bundled --out benchmarks/results/engine_moving.md

Designs use the grammar of ``allocation.py`` (a base operator, then ``REGEX=OP`` rules on layer names). For
each design, key-frame interval and thread count, every contender streams every held-out clip once per
repeat, in turn (``deltanas.analysis.bench``): the dense teacher in each runtime is timed with the first
design of each thread count and its times serve the other rows and key-frame intervals; the table gives
medians over the repeats, the engine's agreement with the teacher on the same frames and the MACs it did.
The held-out frames are the same for every K (the split's gaps are those of the smallest K, or of
``--split-keyframes``); each held-out clip starts with a key frame, so short clips take more key frames
than one in K (the ``key frames`` column).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from deltanas.analysis import bench, machine_name
from deltanas.engine import BF16_RUNTIME, DenseFallback, SparseEngine, available_dense_runtimes, dense_runtime
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import write_rows
from allocation import build

# the static-camera operating point (held-out fidelity >= 0.8, top-1 >= 90% on the reference path:
# BENCHMARKS.md, running reference, early layers finer) and the plain running gates around it
DESIGNS = [
    r"gated:w0.06:run(full);_conv_stem|_blocks\.[0-3]\.=gated:w0.025:run(full)",
    "gated:w0.04:run(full)",
    "gated:w0.1:run(full)",
    "zero",
]


def _cell(text: str) -> str:
    """A table cell: the rules' alternations must not end the cell."""
    return text.replace("|", "\\|")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["shared"])
    p.add_argument("--designs", nargs="+", default=DESIGNS)
    p.add_argument("--keyframes", nargs="+", type=int, default=[8, 16, 32])
    p.add_argument("--threads", nargs="+", type=int, default=[2, 1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-clip-frames", type=int, default=None, help="held-out frames per clip (default all)")
    p.add_argument("--split-keyframes", type=int, default=None, metavar="K",
                   help="the split's gaps (default the smallest --keyframes): the same held-out frames as a run at K")
    p.add_argument("--dense-fallback", action="store_true",
                   help="the teacher alone where delta groups cost more (the `dense frames` column counts them)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    runtimes = available_dense_runtimes()
    fallback = DenseFallback() if args.dense_fallback else None
    teacher = create_teacher("efficientnet_lite0")
    rows = [f"Held-out frames of `{' '.join(args.videos)}`, EfficientNet-Lite0 at 256x448, "
            f"{machine_name()}, {os.cpu_count()} cores, torch {torch.__version__}; medians of "
            f"{args.repeats} runs; every contender streams the same frames, batch 1.", "",
            "| design | K | key frames | dense frames | threads | engine ms/frame | delta frame ms | key frame ms | " +
            " | ".join(f"{rt} ms" for rt in runtimes) + " | vs fastest float32 dense | vs torch | "
            "MAC ratio | torch speed-up / MAC ratio | top-1 % | fidelity |",
            "|---" * (14 + len(runtimes)) + "|"]
    teacher_ms_at: dict[int, dict[str, float]] = {}  # the dense teacher's time does not depend on K
    # one split for every K (its gaps those of the smallest): every row streams the same held-out frames
    config = DataConfig(videos=tuple(args.videos), keyframe_interval=args.split_keyframes or min(args.keyframes))
    data = load_video_data(config, need_train=False)
    clips = [(frames[:args.max_clip_frames] if args.max_clip_frames else frames).float() / 255
             for _, frames in data.test_clips()]
    size = config.eval_size
    for k in args.keyframes:
        for threads in args.threads:
            torch.set_num_threads(threads)
            full = build(teacher, "full", [], size)
            names = [layer.name for layer in full.layers]
            teacher_ms = teacher_ms_at.setdefault(threads, {})
            for design in args.designs:
                model = build(teacher, design, names, size)
                dense = {} if teacher_ms else \
                    {rt: dense_runtime(full, rt, size, threads).run for rt in runtimes}
                r = bench(model, clips, k, args.repeats, teachers=dense, engine=SparseEngine(model, threads=threads),
                          fallback=fallback)
                teacher_ms.update(teacher_ms or r.teacher_ms_per_frame)
                ms = " | ".join(f"{teacher_ms[rt]:.1f}" for rt in runtimes)
                fastest = min((rt for rt in teacher_ms if rt != BF16_RUNTIME), key=teacher_ms.get)
                vs = {rt: teacher_ms[rt] / r.delta_ms_per_frame for rt in teacher_ms}
                row = (f"| `{_cell(design)}` | {k} | {r.key_frames}/{r.frames} | {r.dense_frames} | {threads} | {r.delta_ms_per_frame:.2f} | "
                       f"{r.delta_ms_per_delta_frame:.2f} | {r.key_ms_per_key_frame:.1f} | {ms} | "
                       f"{vs[fastest]:.2f}x ({fastest}) | {vs['torch']:.2f}x | {r.macs_ratio:.2f}x | "
                       f"{vs['torch'] / r.macs_ratio:.2f} | {100 * r.top1:.1f} | {r.fidelity:.3f} |")
                print(row, flush=True)
                rows.append(row)
                write_rows(args.out, rows)  # each row as it comes: a long run that stops keeps what it measured


if __name__ == "__main__":
    main()
