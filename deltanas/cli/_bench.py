"""The ``bench`` verb: speed and memory of a delta model as ratios against its teacher, same run."""

from __future__ import annotations

import argparse

import torch

from ._args import print_json, size_type

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("bench", help="wall-clock and memory of a delta model against the teacher (ratios)")
    p.add_argument("--model", help="a run or export folder (default: --arch, untrained)")
    p.add_argument("--arch", default="uniform:lowrank:0.25")
    p.add_argument("--teacher", default="efficientnet_lite0")
    p.add_argument("--video", default="bikes")
    p.add_argument("--size", type=size_type, default=(256, 448), metavar="HxW")
    p.add_argument("--keyframe", type=int, default=8, metavar="K")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..analysis import bench
    from ..video import read_frames
    from ._core import _teacher_and_model

    if args.threads:
        torch.set_num_threads(args.threads)
    _, model = _teacher_and_model(args, args.size)
    frames = read_frames(args.video, args.size, max_frames=args.frames).float().div(255)
    result = bench(model, frames, args.keyframe, args.repeats)
    if args.json:
        print_json(result.as_dict())
        return 0
    r = result
    print(f"{args.model or args.arch} on {args.video} {args.size[0]}x{args.size[1]}, K={r.keyframe_interval}, "
          f"{r.frames} frames, {r.threads} threads, {r.machine}")
    print(f"  MACs: {r.macs_ratio:.2f}x fewer than the teacher (averaged at K)")
    print(f"  streaming, batch 1: {r.stream_ms:.1f} ms/frame vs teacher {r.teacher_ms:.1f} -> {r.stream_speedup:.2f}x")
    print(f"  groups of K as one batch: {r.group_ms:.1f} ms/frame vs teacher {r.teacher_group_ms:.1f} "
          f"-> {r.group_speedup:.2f}x")
    print(f"  key-frame cache: {r.cache_mib:.1f} MiB")
    return 0
