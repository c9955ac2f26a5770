"""Milliseconds per frame of delta models in the sparse engine against the dense teacher in PyTorch eager,
ONNX Runtime and OpenVINO, on the held-out frames, in one run per thread count.

    python benchmarks/engine_speed.py --videos shared --out benchmarks/results/engine_static.md
    python benchmarks/engine_speed.py --videos bundled --out benchmarks/results/engine_moving.md

Designs use the grammar of ``allocation.py`` (a base operator, then ``REGEX=OP`` rules on layer names). For
each design, key-frame interval and thread count, every contender streams every held-out clip once per
repeat, in turn (``deltanas.analysis.bench``); the table gives medians over the repeats, the engine's
agreement with the teacher on the same frames and the MACs it did.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from deltanas.analysis import bench
from deltanas.engine import SparseEngine, available_key_runtimes, dense_runtime
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["shared"])
    p.add_argument("--designs", nargs="+", default=DESIGNS)
    p.add_argument("--keyframes", nargs="+", type=int, default=[8, 16, 32])
    p.add_argument("--threads", nargs="+", type=int, default=[2, 1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-clip-frames", type=int, default=None, help="held-out frames per clip (default all)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    teacher = create_teacher("efficientnet_lite0")
    rows = [f"Held-out frames of `{' '.join(args.videos)}`, EfficientNet-Lite0 at 256x448, "
            f"{platform.machine()} {platform.processor() or ''}, torch {torch.__version__}; medians of "
            f"{args.repeats} runs; every contender streams the same frames, batch 1.", "",
            "| design | K | threads | engine ms/frame | delta frame ms | key frame ms | " +
            " | ".join(f"{rt} ms" for rt in available_key_runtimes()) + " | vs fastest dense | vs torch | "
            "MAC ratio | torch speed-up / MAC ratio | top-1 % | fidelity |",
            "|---" * (12 + len(available_key_runtimes())) + "|"]
    results = []
    for k in args.keyframes:
        config = DataConfig(videos=tuple(args.videos), keyframe_interval=k)
        data = load_video_data(config, need_train=False)
        clips = [(frames[:args.max_clip_frames] if args.max_clip_frames else frames).float() / 255
                 for _, frames in data.test_clips()]
        size = config.eval_size
        for threads in args.threads:
            torch.set_num_threads(threads)
            teachers = {rt: dense_runtime(build(teacher, "full", [], size), rt, size, threads).run
                        for rt in available_key_runtimes()}
            for design in args.designs:
                names = [layer.name for layer in build(teacher, "full", [], size).layers]
                model = build(teacher, design, names, size)
                r = bench(model, clips, k, args.repeats, teachers=teachers, engine=SparseEngine(model, threads=threads))
                results.append(r)
                ms = " | ".join(f"{r.teacher_ms_per_frame[rt]:.1f}" for rt in teachers)
                fastest = r.fastest_runtime
                row = (f"| `{design}` | {k} | {threads} | {r.delta_ms_per_frame:.2f} | {r.delta_ms_per_delta_frame:.2f} | "
                       f"{r.key_ms_per_key_frame:.1f} | {ms} | {r.speedup(fastest):.2f}x ({fastest}) | "
                       f"{r.speedup('torch'):.2f}x | {r.macs_ratio:.2f}x | {r.speedup('torch') / r.macs_ratio:.2f} | "
                       f"{100 * r.top1:.1f} | {r.fidelity:.3f} |")
                print(row, flush=True)
                rows.append(row)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
