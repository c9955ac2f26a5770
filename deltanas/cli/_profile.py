"""The ``profile`` verb: a per-layer latency cost model of delta frames, measured here on the sparse engine."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from ..errors import ConfigError
from ._args import add_teacher_options, size_type

__all__ = ["register"]

PROFILE_ARCH = "uniform:gated:w0.04:run(full)"


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("profile", help="per-layer latency cost model of delta frames (for latency budgets), "
                                         "measured on this machine by the sparse engine")
    p.add_argument("--model", help="a run or export folder (default: --arch, untrained)")
    p.add_argument("--arch", default=None, help=f"an architecture to profile (default {PROFILE_ARCH}: running gates "
                                                f"on every convolution, whose scale the profile sweeps)")
    add_teacher_options(p)
    p.add_argument("--videos", nargs="+", default=["static"], metavar="SRC",
                   help="clip names, groups (static, bundled, shared), video files or frame folders (default: static, "
                        "the two static-camera clips shipped in the package)")
    p.add_argument("--size", type=size_type, default=(256, 448), metavar="HxW")
    p.add_argument("-K", "--keyframe", type=int, default=8, metavar="K", help="key-frame interval (default 8)")
    p.add_argument("--frames", type=int, default=48, help="frames read per clip (default 48)")
    p.add_argument("--holdout", type=float, default=1 / 3, metavar="SHARE",
                   help="share of each clip's key-frame groups, at its end, held out to check the predictions "
                        "(default 1/3; 0: no check)")
    p.add_argument("--scales", type=float, nargs="+", default=None, metavar="S",
                   help="gate scales swept: factors on every running gate's threshold, 0 (every change passes) "
                        "to sparse (default deltanas.engine.DEFAULT_SCALES: 0 0.25 0.5 1 2)")
    p.add_argument("--repeats", type=int, default=3, help="each frame timed this often, medians (default 3)")
    p.add_argument("--threads", type=int, default=None, help="threads of the engine and key frames (default: torch's)")
    p.add_argument("--keyframes", choices=["auto", "openvino", "onnxruntime", "torch"], default="auto",
                   help="runtime of the key frames (default auto: the fastest installed)")
    p.add_argument("--out", type=Path, help="the JSON file written (default: MODEL/latency.json with --model, "
                                            "else RUNS_DIR/NAME/latency.json)")
    p.add_argument("--name", help="run folder name (default profile-TEACHER-HxW)")
    p.add_argument("--runs-dir", default="runs", help="where run folders go (default ./runs)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_profile)


def _out_path(args: argparse.Namespace) -> Path:
    if args.out is not None:
        return args.out
    if args.model:
        return Path(args.model) / "latency.json"
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", f"profile-{args.teacher}-{args.size[0]}x{args.size[1]}")
    return Path(args.runs_dir) / name / "latency.json"


def _split(clips: list[torch.Tensor], k: int, holdout: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each clip's first key-frame groups to fit, its last ``holdout`` share of groups to check."""
    fit, check = [], []
    for clip in clips:
        groups = -(-clip.shape[0] // k)
        held = round(holdout * groups) if holdout > 0 else 0
        held = min(max(held, 1 if holdout > 0 else 0), groups - 1)
        if groups - held < 1 or clip.shape[0] < 2:
            continue
        cut = (groups - held) * k
        fit.append(clip[:cut])
        if held and clip.shape[0] - cut >= 2:
            check.append(clip[cut:])
    if holdout > 0 and not check:
        raise ConfigError(f"no frames left to hold out: read more frames per clip (--frames) than K = {k}, "
                          f"or --holdout 0")
    return fit, check


def cmd_profile(args: argparse.Namespace) -> int:
    from ..engine import DEFAULT_SCALES, SparseEngine, check_latency, profile_latency
    from ..video import read_frames, resolve_sources
    from ._core import _teacher_and_model

    if args.model and args.arch:
        raise ConfigError("give --model or --arch, not both")
    if not 0 <= args.holdout < 1:
        raise ConfigError(f"--holdout must be in [0, 1), got {args.holdout}")
    if args.keyframe < 2:
        raise ConfigError(f"-K must be >= 2 (delta frames to time), got {args.keyframe}")
    if args.frames < 2:
        raise ConfigError(f"--frames must be >= 2, got {args.frames}")
    if args.threads:
        torch.set_num_threads(args.threads)
    sources = resolve_sources(args.videos)  # a bad path fails here, before the model is built
    args.arch = None if args.model else (args.arch or PROFILE_ARCH)
    _, model = _teacher_and_model(args, args.size)
    clips = [read_frames(s, args.size, max_frames=args.frames).float().div(255) for s in sources]
    fit, check = _split(clips, args.keyframe, args.holdout)
    engine = SparseEngine(model, backend="native", keyframes=args.keyframes, threads=args.threads)
    progress, scales = not args.no_progress, args.scales or DEFAULT_SCALES
    latency = profile_latency(model, fit, args.keyframe, scales, args.repeats, engine=engine, progress=progress)
    result = None
    if check:
        result = check_latency(latency, model, check, args.keyframe, scales, args.repeats, engine=engine,
                               progress=progress)
        latency = latency.with_report(check=result.as_dict())
    out = latency.save(_out_path(args))
    _print(latency, result, args)
    print(f"written to {out}")
    return 0


def _print(latency, result, args: argparse.Namespace) -> None:
    r = latency.report["profile"]
    h, w = latency.input_hw
    print(f"{latency.teacher} at {h}x{w} ({args.model or args.arch}), {latency.threads} thread(s), {latency.machine}; "
          f"{r['delta_frames']} delta frames x {len(r['scales'])} gate scales x {r['repeats']} repeats "
          f"in {r['seconds']:.0f} s")
    print(f"{'layer':32s} {'fixed ms':>9s} {'ms/1000 pos':>11s} {'R^2':>6s} {'positions':>9s}")
    for name, layer in latency.layers.items():
        r2 = "-" if layer.r2 is None else f"{layer.r2:.2f}"
        print(f"{name:32s} {layer.fixed_ms:9.3f} {1e3 * layer.ms_per_position:11.4f} {r2:>6s} {layer.positions:9d}")
    fit = r["fit"]
    print(f"key frame {latency.key_ms:.2f} ms ({latency.key_runtime}); delta frame: fixed {latency.fixed_ms:.3f} ms, "
          f"conv layers {100 * r['conv_share']:.0f}% of the time, node-by-node timing {r['node_timing_ratio']:.3f}x "
          f"ordinary frames (calibration {latency.calibration:.3f}); on the profiled frames: median error "
          f"{100 * fit['median_error']:.1f}%, worst {100 * fit['worst_error']:.1f}%")
    if result is not None:
        c, scales = result.as_dict(), len(r["scales"])
        print(f"held out ({c['frames'] // scales} delta frames at {scales} gate scales): predicted "
              f"{c['predicted_ms_median']:.2f} vs measured {c['measured_ms_median']:.2f} ms per delta frame "
              f"(medians); relative error median {100 * c['median_error']:.1f}%, worst {100 * c['worst_error']:.1f}%")
