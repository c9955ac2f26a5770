"""Verbs of the core: info, train, evaluate, run, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ._args import (add_data_options, add_engine_options, add_run_options, add_teacher_options, data_config,
                    engine_from_args, fallback_from_args, given_teacher, print_json, size_type, teacher_from_args)

__all__ = ["register"]

ONLINE_ARCH = "uniform:gated:w0.04:run(full)"


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

    p = verbs.add_parser("run", help="stream a video through a delta model: agreement and speed; with --online, "
                                     "hold an accuracy target on the live stream")
    p.add_argument("video", nargs="+", help="a video file, frame folder or bundled clip name (with --online, "
                                            "several: streamed one after another, as one stream with cuts)")
    p.add_argument("--model", help="a run or export folder (default: --arch untrained)")
    p.add_argument("--arch", default=None,
                   help=f"default: full; with --online, {ONLINE_ARCH} (running gates whose scale the controller "
                        f"sets)")
    add_teacher_options(p)
    p.add_argument("--keyframe", type=int, default=8, metavar="K")
    p.add_argument("--adaptive", type=float, default=None, metavar="TAU",
                   help="also take a key frame when the input changed by more than TAU (relative energy)")
    p.add_argument("--size", type=size_type, default=(256, 448), metavar="HxW")
    p.add_argument("--max-frames", type=int, default=None, help="frames read per video (default 64; --online 2000)")
    p.add_argument("--csv", type=Path, help="write per-frame results here (key, ms, macs, top-1 of both)")
    p.add_argument("--threads", type=int, default=None, help="threads of the engine and the dense runtimes")
    add_engine_options(p, reference=True, fallback=True)
    g = p.add_argument_group("online")
    g.add_argument("--online", action="store_true",
                   help="every key frame checks the delta model against the teacher; the key-frame interval and the "
                        "gate scale adapt to hold the target at the least cost; scene cuts force key frames")
    g.add_argument("--target-fidelity", type=float, default=None, metavar="F",
                   help="the target: fidelity of the logits on the checks (default 0.85)")
    g.add_argument("--target-top1", type=float, default=None, metavar="A", help="or: top-1 agreement on the checks")
    g.add_argument("--min-interval", type=int, default=2)
    g.add_argument("--max-interval", type=int, default=64)
    g.add_argument("--cut-threshold", type=float, default=0.1, metavar="C",
                   help="relative change between consecutive frames that counts as a scene cut (default 0.1)")
    g.add_argument("--cost", choices=["ms", "macs"], default="ms", help="what the controller saves (default ms)")
    g.add_argument("--no-probes", action="store_true",
                   help="no exact probe (a group run beside the teacher, whose outputs are given, until its check) "
                        "at the start, at scene cuts and after spells of the teacher alone")
    g.add_argument("--train-steps", type=int, default=0, metavar="N",
                   help="optimiser steps on each key frame's teacher output (a model with students; default 0)")
    g.add_argument("--train-lr", type=float, default=1e-4)
    g.add_argument("--check", action="store_true",
                   help="evaluation: also run the teacher on every frame (not counted) for per-frame agreement")
    g.add_argument("--out", type=Path, help="write frames.csv, summary.json, log.txt and the plot here")
    g.add_argument("--no-progress", action="store_true")
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
    from ..errors import ConfigError
    from ..video import read_frames

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.online:
        return _run_online(args)
    given = [name for name, value in (("--target-fidelity", args.target_fidelity), ("--target-top1", args.target_top1),
                                      ("--out", args.out), ("--check", args.check or None),
                                      ("--train-steps", args.train_steps or None)) if value is not None]
    if given or len(args.video) > 1:
        raise ConfigError(f"{', '.join(given) or 'several videos'}: only with --online")
    args.arch = args.arch or "full"
    _, model = _teacher_and_model(args, args.size)
    frames = read_frames(args.video[0], args.size, max_frames=args.max_frames or 64).float().div(255)
    report = run_stream(model, frames, KeyframePolicy(args.keyframe, args.adaptive),
                        engine=engine_from_args(args, model), fallback=fallback_from_args(args))
    if args.csv:
        report.write_csv(args.csv)
    print(f"{args.video[0]}: " + "\n".join(report.summary()))
    return 0


def _run_online(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..online import OnlineConfig, OnlineTrainer, run_online
    from ..video import read_frames

    if args.engine == "reference":
        raise ConfigError("--online runs on the sparse engine: --engine auto, native or torch")
    if args.adaptive is not None or args.dense_fallback:
        raise ConfigError(f"{'--adaptive' if args.adaptive is not None else '--dense-fallback'} is the fixed policy's; "
                          f"--online sets its own key frames (and runs the teacher alone where delta groups cost more)")
    args.arch = args.arch or ONLINE_ARCH
    _, model = _teacher_and_model(args, args.size)
    target = {"target_fidelity": None, "target_top1": args.target_top1} if args.target_top1 is not None else {}
    if args.target_fidelity is not None:  # both given: the config refuses them
        target["target_fidelity"] = args.target_fidelity
    config = OnlineConfig(**target, min_interval=args.min_interval, max_interval=args.max_interval,
                          start_interval=min(max(args.keyframe, args.min_interval), args.max_interval),
                          cut_threshold=args.cut_threshold, cost=args.cost, probes=not args.no_probes)
    trainer = OnlineTrainer(model, args.train_steps, args.train_lr) if args.train_steps else None

    def frames():
        for video in args.video:  # decoded one video at a time: a long stream is not held in memory at once
            yield from read_frames(video, args.size, max_frames=args.max_frames or 2000).float().div(255)

    report = run_online(model, frames(), config, engine=engine_from_args(args, model), evaluate=args.check,
                        trainer=trainer, progress=not args.no_progress)
    for line in report.log:
        print(line)
    print(f"{' + '.join(args.video)}: " + "\n".join(report.lines()))
    if args.csv:
        report.write_csv(args.csv)
    if args.out:
        report.write(args.out)
        print(f"written to {args.out}: frames.csv, summary.json, log.txt, online.png")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model, load_model

    model = load_model(args.model)
    export_model(model, args.out, extra={"source": str(args.model)})
    print(f"exported {args.model} -> {args.out} (arch.json, students.safetensors)")
    return 0
