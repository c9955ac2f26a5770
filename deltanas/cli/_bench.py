"""The ``bench`` verb: speed and memory of a delta model as ratios against its teacher, same run."""

from __future__ import annotations

import argparse

import torch

from ._args import add_engine_options, add_teacher_options, engine_from_args, fallback_from_args, print_json, size_type

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("bench", help="ms per frame of a delta model in the sparse engine against the dense "
                                       "teacher in PyTorch, ONNX Runtime and OpenVINO, in the same run")
    p.add_argument("--model", help="a run or export folder (default: --arch, untrained)")
    p.add_argument("--arch", default="uniform:gated:w0.04:run(full)")
    add_teacher_options(p)
    p.add_argument("--video", default="bottle-detection", help="a video file, frame folder or clip name "
                                                                "(default: the shipped static-camera clip)")
    p.add_argument("--start", type=int, default=0, help="first frame of the video benched")
    p.add_argument("--size", type=size_type, default=(256, 448), metavar="HxW")
    p.add_argument("--keyframe", type=int, default=8, metavar="K")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5, help="median over this many runs of each contender")
    p.add_argument("--threads", type=int, default=None, help="threads of every runtime (default: torch's)")
    p.add_argument("--runtimes", nargs="+", choices=["torch", "onnxruntime", "openvino", "openvino_bf16"],
                   default=None, help="the dense teacher's runtimes to time (default: every installed one; "
                                      "openvino_bf16, OpenVINO's default precision, where the CPU computes bfloat16)")
    add_engine_options(p, fallback=True)
    p.add_argument("--json", action="store_true", help="machine-readable output (stable field names)")
    p.set_defaults(run=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..analysis import bench, speed_words
    from ..video import read_frames
    from ._core import _teacher_and_model

    if args.threads:
        torch.set_num_threads(args.threads)
    _, model = _teacher_and_model(args, args.size)
    frames = read_frames(args.video, args.size, max_frames=args.frames, start=args.start).float().div(255)
    r = bench(model, frames, args.keyframe, args.repeats, runtimes=args.runtimes,
              engine=engine_from_args(args, model), fallback=fallback_from_args(args))
    if args.json:
        print_json(r.as_dict())
        return 0
    print(f"{args.model or args.arch} on {args.video} {args.size[0]}x{args.size[1]}, K={r.keyframe_interval}, "
          f"{r.frames} frames, {r.threads} thread(s), {r.machine}; medians of {r.repeats} runs")
    print(f"  engine ({r.engine_backend}, key frames in {r.key_runtime}): {r.delta_ms_per_frame:.2f} ms/frame "
          f"(delta frames {r.delta_ms_per_delta_frame:.2f}, key frames {r.key_ms_per_key_frame:.1f}"
          + (f"; {r.dense_frames} of {r.frames} frames the teacher alone" if args.dense_fallback else "") + ")")
    for runtime, ms in sorted(r.teacher_ms_per_frame.items(), key=lambda kv: kv[1]):
        print(f"  dense teacher in {runtime:11s} {ms:7.2f} ms/frame -> the engine is "
              f"{speed_words(r.speedup(runtime))}")
    print(f"  MACs: {r.macs_ratio:.2f}x fewer than the teacher (averaged at K, as the engine spent them); "
          f"agreement on these frames: top-1 {100 * r.top1:.1f}%, fidelity {r.fidelity:.3f}")
    print(f"  memory: engine state {r.state_mib:.1f} MiB, process peak {r.peak_rss_mib:.0f} MiB")
    return 0
