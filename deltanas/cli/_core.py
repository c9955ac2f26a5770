"""Verbs of the core: info, train, evaluate, run, export."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ._args import (add_data_options, add_engine_options, add_run_options, add_teacher_options, data_config,
                    engine_from_args, given_teacher, print_json, size_type, teacher_from_args)

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("info", help="teacher layers, their MACs and each candidate's MACs")
    add_teacher_options(p)
    p.add_argument("--size", type=size_type, default=(256, 448), metavar="HxW")
    p.add_argument("--space", default="default", help="search space name or YAML path")
    p.add_argument("--arch", help="also show this architecture's choice and cost")
    p.add_argument("--arch-format", choices=["compact", "fields"], default="compact",
                   help="write the architecture's operators as spec strings (gated:w0.02:run(full)) or as objects "
                        "with named fields, the two forms arch.json reads (default compact)")
    p.add_argument("--keyframe", type=int, default=8, metavar="K")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_info)

    p = verbs.add_parser("train", help="train the students of a fixed architecture (delta distillation)")
    add_teacher_options(p)
    p.add_argument("--arch", default="uniform:lowrank:0.25",
                   help="uniform:OP (one operator wherever it fits) or an arch.json")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-groups", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a short run for a first look (40 steps, 120 frames)")
    add_data_options(p)
    add_run_options(p)
    p.set_defaults(run=cmd_train)

    p = verbs.add_parser("evaluate", help="agreement with the teacher on held-out frames, and MACs")
    p.add_argument("model", nargs="?", help="a run or export folder (with arch.json); or use --arch")
    p.add_argument("--arch", help="an untrained architecture instead of a folder")
    add_teacher_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--adaptive", action="store_true",
                   help="adaptive key frames at the key-frame budget of K: a key frame when the input changed "
                        "most, the threshold calibrated on the training split (at most --max-interval apart)")
    p.add_argument("--max-interval", type=int, default=None, metavar="N",
                   help="with --adaptive: the longest run between key frames (default 2K)")
    _add_phases_option(p)
    add_data_options(p)
    add_engine_options(p, reference=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_evaluate)

    p = verbs.add_parser("compare", help="is model B better than model A on the same held-out frames? "
                                         "(paired bootstrap over key-frame groups)")
    p.add_argument("a", help="a run or export folder, or an architecture (uniform:lowrank:0.25, arch.json)")
    p.add_argument("b", help="the same, compared with A")
    add_teacher_options(p, note="for architectures given as text")
    p.add_argument("--samples", type=int, default=2000, help="bootstrap samples")
    p.add_argument("--seed", type=int, default=0, help="of the bootstrap")
    p.add_argument("--json", action="store_true")
    _add_phases_option(p)
    add_data_options(p)
    add_engine_options(p, reference=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_compare)

    p = verbs.add_parser("run", help="stream a video through a delta model: agreement and speed")
    p.add_argument("video", help="a video file, frame folder or bundled clip name")
    p.add_argument("--model", help="a run or export folder (default: --arch untrained)")
    p.add_argument("--arch", default="full")
    add_teacher_options(p)
    p.add_argument("--keyframe", type=int, default=8, metavar="K")
    p.add_argument("--adaptive", type=float, default=None, metavar="TAU",
                   help="also take a key frame when the input changed by more than TAU (relative energy)")
    p.add_argument("--size", type=size_type, default=(256, 448), metavar="HxW")
    p.add_argument("--max-frames", type=int, default=64)
    p.add_argument("--csv", type=Path, help="write per-frame results here (key, ms, macs, top-1 of both)")
    p.add_argument("--threads", type=int, default=None, help="threads of the engine and the dense runtimes")
    add_engine_options(p, reference=True)
    p.set_defaults(run=cmd_run)

    p = verbs.add_parser("export", help="copy a model's arch.json and student weights into a folder")
    p.add_argument("model", help="a run folder")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=cmd_export)


def _add_phases_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phases", type=int, default=1, metavar="N",
                   help="pool the key frames at each of the first N offsets (1..K; K: every frame is a delta "
                        "frame at each distance), so the fixed grid's choice of key frames does not decide")


def _teacher_and_model(args: argparse.Namespace, size: tuple[int, int] | None = None):
    from ..delta import Arch, convert
    from ..export import load_model

    folder = getattr(args, "model", None)
    if folder:
        model = load_model(folder)
        return model.teacher, model
    teacher = teacher_from_args(args)
    return teacher, convert(teacher, Arch.parse(args.arch or "full", teacher=args.teacher), input_hw=size)


def cmd_info(args: argparse.Namespace) -> int:
    from ..analysis import model_table
    from ..delta import Arch, SearchSpace, convert

    space = SearchSpace.load(args.space)
    model = convert(teacher_from_args(args), Arch.parse(args.arch or "full", teacher=args.teacher),
                    input_hw=args.size)
    table = model_table(model, args.size, space, args.keyframe, op_fields=args.arch_format == "fields")
    rows, totals, engine = table["layers"], table["totals"], table["engine"]
    if args.json:
        print_json({"teacher": args.teacher, **table})
        return 0
    print(f"{args.teacher} at {args.size[0]}x{args.size[1]}: {totals['layers']} convolutions, "
          f"search space {space.name}")
    print(f"{'layer':32s} {'shape':34s} {'teacher':>9s} {'share':>6s}  candidates (MMACs)")
    for row in rows:
        cands = " ".join(f"{k}={v / 1e6:.2f}" for k, v in row["candidates"].items() if k != "full")
        print(f"{row['layer']:32s} {row['shape']:34s} {row['teacher_macs'] / 1e6:9.2f} "
              f"{100 * row['teacher_macs'] / totals['teacher_macs']:5.1f}%  {cands}")
    print(f"teacher: {totals['teacher_macs'] / 1e6:.1f} MMACs/frame "
          f"(linear layers {totals['linear_macs'] / 1e6:.2f})")
    if args.arch:
        chosen = [row for row in rows if row["op"] != "full"]
        print(f"arch {args.arch}: {len(chosen)} of {len(rows)} layers not full" + (":" if chosen else ""))
        for row in chosen:
            op = json.dumps(row["op"]) if args.arch_format == "fields" else row["op"]
            print(f"  {row['layer']:32s} {op}")
        print(f"arch {args.arch}: {totals['delta_macs'] / 1e6:.1f} MMACs per delta frame, "
              f"{totals['per_frame'] / 1e6:.1f} averaged at K={args.keyframe} ({totals['speedup']:.2f}x), "
              f"key-frame cache {totals['cache_bytes'] / 2**20:.1f} MiB")
    print("sparse engine: " + ("native kernels" if engine["native"] else
                               f"pure-PyTorch path (native kernels unavailable: {engine['native_unavailable']})")
          + f"; dense runtimes for key frames: {', '.join(engine['key_runtimes'])}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .._run import RunDir
    from ..training import TrainConfig, train

    overrides = {"max_frames": 120} if args.quick else {}
    config = TrainConfig(teacher=args.teacher, arch=args.arch, data=data_config(args, **overrides),
                         steps=40 if args.quick else args.steps, lr=args.lr, batch_groups=args.batch_groups,
                         val_every=20 if args.quick else 50, seed=args.seed, threads=args.threads)
    name = args.name or f"train-{args.arch.replace(':', '-').replace('/', '_')}"
    run = RunDir.create(name, args.runs_dir, resume=args.resume)
    result = train(config, run, resume=args.resume, teacher=given_teacher(args), progress=not args.no_progress)
    _print_summary(run.path, result.model, result.test, config.data.keyframe_interval, config.data.eval_size)
    print(f"run folder: {run.path} ({result.steps_done} steps, {result.seconds:.0f} s)")
    return 0


def _print_summary(where, model, test, k: "int | float", size: tuple[int, int], adaptive: bool = False,
                   phases: int = 1) -> None:
    cost = model.cost(size) if test is None else test.cost(model.cost(size))
    at = (f"adaptive key frames (one per {k:.2f} frames)" if adaptive
          else f"K={k}" + (f", pooled over {phases} key-frame phases" if phases > 1 else ""))
    line = (f"{where}: {cost.per_frame(k) / 1e6:.1f} MMACs/frame at {at} ({cost.speedup(k):.2f}x fewer than "
            f"the teacher's {cost.teacher_macs / 1e6:.1f})")
    if test is not None:
        a = test.pooled
        line += (f"; held-out: top-1 {100 * a.top1:.1f}% (key-frame reuse {100 * a.reuse_top1:.1f}%), "
                 f"dense {100 * a.dense:.1f}%, mIoU {100 * a.miou:.1f}%, "
                 f"fidelity {a.fidelity:.3f} ({a.frames} delta frames)")
    print(line)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..analysis import evaluate, evaluate_adaptive
    from ..errors import ConfigError
    from ..training import load_video_data

    if bool(args.model) == bool(args.arch):
        raise ConfigError("give a model folder or --arch (one of them)")
    _, model = _teacher_and_model(args, args.eval_size)
    config = data_config(args)
    if args.max_interval is not None and not args.adaptive:
        raise ConfigError("--max-interval goes with --adaptive")
    if args.phases != 1 and args.adaptive:
        raise ConfigError("--phases goes with fixed key frames, not --adaptive")
    data = load_video_data(config, need_train=args.adaptive)
    progress = not args.no_progress
    engine = engine_from_args(args, model)
    if args.adaptive:
        result, keyframes = evaluate_adaptive(model, data.train, data.test_clips(), config.keyframe_interval,
                                              max_interval=args.max_interval, progress=progress, engine=engine)
        k = result.effective_interval
    else:
        result = evaluate(model, data.test_clips(), config.keyframe_interval, progress=progress,
                          phases=args.phases, engine=engine)
        keyframes = {"policy": "fixed", "interval": config.keyframe_interval, "phases": args.phases}
        k = config.keyframe_interval
    report = result.report(model.cost(config.eval_size), k, keyframes)
    if args.model:
        from .._run import RunDir

        name = "eval-adaptive.json" if args.adaptive else "eval.json"
        RunDir(Path(args.model)).write_json(Path(args.model) / name, report)
    if args.json:
        print_json(report)
    else:
        for name, a in result.per_clip.items():
            print(f"  {name:24s} top-1 {100 * a.top1:5.1f}% (reuse {100 * a.reuse_top1:5.1f}%)  "
                  f"dense {100 * a.dense:5.1f}%  "
                  f"mIoU {100 * a.miou:5.1f}%  fidelity {a.fidelity:6.3f}  ({a.frames} frames)")
        _print_summary(args.model or args.arch, model, result, k, config.eval_size, adaptive=args.adaptive,
                       phases=args.phases)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..analysis import evaluate, paired_bootstrap
    from ..training import load_video_data

    config = data_config(args)
    data = load_video_data(config, need_train=False)
    results, costs = {}, {}
    for which in ("a", "b"):
        source = getattr(args, which)
        folder = Path(source).is_dir()
        ns = argparse.Namespace(model=source if folder else None, arch=None if folder else source,
                                teacher=args.teacher, teacher_weights=args.teacher_weights)
        _, model = _teacher_and_model(ns, config.eval_size)
        results[which] = evaluate(model, data.test_clips(), config.keyframe_interval, progress=not args.no_progress,
                                  phases=args.phases, engine=engine_from_args(args, model))
        costs[which] = results[which].cost(model.cost(config.eval_size)).per_frame(config.keyframe_interval)
    differences = paired_bootstrap(results["a"], results["b"], samples=args.samples, seed=args.seed)
    if args.json:
        print_json({"a": args.a, "b": args.b, "phases": args.phases, "macs_per_frame": costs,
                    "differences": [d.as_dict() for d in differences]})
        return 0
    print(f"A = {args.a}: {costs['a'] / 1e6:.1f} MMACs/frame;  B = {args.b}: {costs['b'] / 1e6:.1f} MMACs/frame "
          f"(K={config.keyframe_interval}, {results['a'].pooled.frames} held-out delta frames, "
          + (f"{differences[0].groups} held-out groups)" if args.phases == 1 else
             f"{args.phases} key-frame phases, {differences[0].groups} K-frame windows resampled)"))
    for d in differences:
        scale = 1 if d.metric == "fidelity" else 100
        print(f"  {d.metric:9s} A {scale * d.a:7.3f}  B {scale * d.b:7.3f}  B-A {scale * d.difference:+7.3f}  "
              f"{100 * d.confidence:.0f}% interval [{scale * d.low:+.3f}, {scale * d.high:+.3f}]  "
              f"B higher in {100 * d.b_better:.0f}% of resamples")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..analysis import run_stream
    from ..delta import KeyframePolicy
    from ..video import read_frames

    if args.threads:
        torch.set_num_threads(args.threads)
    _, model = _teacher_and_model(args, args.size)
    frames = read_frames(args.video, args.size, max_frames=args.max_frames).float().div(255)
    report = run_stream(model, frames, KeyframePolicy(args.keyframe, args.adaptive),
                        engine=engine_from_args(args, model))
    if args.csv:
        report.write_csv(args.csv)
    print(f"{args.video}: " + "\n".join(report.summary()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model, load_model

    model = load_model(args.model)
    export_model(model, args.out, extra={"source": str(args.model)})
    print(f"exported {args.model} -> {args.out} (arch.json, students.safetensors)")
    return 0
