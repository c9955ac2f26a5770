"""The ``search`` verb."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_data_options, add_run_options, add_teacher_options, data_config, given_teacher

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("search", help="differentiable per-layer search under a MAC budget, then fine-tune")
    add_teacher_options(p)
    p.add_argument("--space", default="default", help="search space name or YAML path")
    budget = p.add_argument_group("budget")
    budget.add_argument("--target", help="MACs per delta frame: 0.2x of the teacher's, or absolute (150M)")
    budget.add_argument("--target-frame", help="MACs averaged per frame at --keyframe: 0.35x or 300M")
    budget.add_argument("--target-ms", type=float,
                        help="ms per frame averaged at --keyframe on this machine, predicted by --latency "
                             "(the gates are searched for it; no supernet)")
    budget.add_argument("--latency", metavar="FILE", help="the latency model deltanas profile wrote")
    budget.add_argument("--hard", action="store_true", help="never derive an architecture above the target")
    budget.add_argument("--penalty", default="lagrangian", choices=["lagrangian", "linear", "log", "absolute"])
    budget.add_argument("--penalty-weight", type=float, default=None,
                        help="lambda (beta for log); default 0 for lagrangian (it learns lambda), 2 otherwise")
    s = p.add_argument_group("search")
    s.add_argument("--steps", type=int, default=100)
    s.add_argument("--warmup-steps", type=int, default=20)
    s.add_argument("--finetune-steps", type=int, default=100)
    s.add_argument("--gumbel", default="soft", choices=["soft", "hard"],
                   help="soft: all candidates run, weighted; hard: straight-through, one runs (cheaper)")
    s.add_argument("--tau", type=float, nargs=2, default=(5.0, 0.2), metavar=("START", "END"))
    s.add_argument("--arch-lr", type=float, default=0.05)
    s.add_argument("--lr", type=float, default=1e-3, help="students' learning rate")
    s.add_argument("--prior", default="sensitivity", choices=["sensitivity", "none"])
    s.add_argument("--select-metric", default="fidelity", choices=["fidelity", "top1", "dense", "miou"],
                   help="what the final choice among the candidates ranks by on the selection frames (fidelity: "
                        "the logits' error, continuous; top1/dense/miou: agreement, ties broken by fidelity)")
    s.add_argument("--gate-steps", type=int, default=60,
                   help="steps learning a threshold per layer from the calibrated stride profile (0: not learned)")
    s.add_argument("--gate-lr", type=float, default=0.05)
    s.add_argument("--gate-frames", choices=("crops", "full"), default="crops",
                   help="learn the thresholds on training crops, or on whole training frames at the eval size")
    s.add_argument("--no-supernet", action="store_true",
                   help="search the gates only: skip the supernet of operators")
    s.add_argument("--quick", action="store_true", help="a usable result in about five minutes on 2 cores")
    s.add_argument("--no-speed", action="store_true",
                   help="skip the last step: timing the result on the sparse engine against the fastest dense runtime")
    s.add_argument("--adaptive-eval", action="store_true",
                   help="also evaluate with adaptive key frames at the key budget of K (summary: test_adaptive)")
    add_data_options(p, default=("static",))
    add_run_options(p)
    p.set_defaults(run=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from .._run import RunDir
    from ..errors import ConfigError
    from ..search import SearchConfig, init_distributed, quick, search

    if args.target_ms is not None and (args.target or args.target_frame):
        raise ConfigError("name one budget: --target, --target-frame or --target-ms")
    if args.target is None and args.target_frame is None and args.target_ms is None:
        args.target = "0.2x"
    weight = args.penalty_weight if args.penalty_weight is not None else (0.0 if args.penalty == "lagrangian" else 2.0)
    config = SearchConfig(teacher=args.teacher, space=args.space, data=data_config(args), target=args.target,
                          target_frame=args.target_frame, hard=args.hard, penalty=args.penalty,
                          penalty_weight=weight, gumbel=args.gumbel, tau_start=args.tau[0], tau_end=args.tau[1],
                          steps=args.steps, warmup_steps=min(args.warmup_steps, args.steps),
                          finetune_steps=args.finetune_steps, weight_lr=args.lr, arch_lr=args.arch_lr,
                          prior=args.prior, seed=args.seed, threads=args.threads, adaptive_eval=args.adaptive_eval,
                          select_metric=args.select_metric, speed_report=not args.no_speed,
                          supernet=not args.no_supernet and args.target_ms is None,
                          learn_gates=args.gate_steps > 0, gate_steps=max(1, args.gate_steps), gate_lr=args.gate_lr,
                          gate_frames=args.gate_frames,
                          cost="latency" if args.target_ms is not None else "macs", latency=args.latency,
                          target_ms=args.target_ms)
    if args.quick:
        config = quick(config)
    asked = args.target or args.target_frame or f"{args.target_ms:g}ms"
    name = args.name or f"search-{asked.replace('.', 'p')}"
    ctx = init_distributed()  # under torchrun: rank 0 owns the run folder
    run = RunDir.create(name, args.runs_dir, resume=args.resume) if ctx.is_main else RunDir(Path(args.runs_dir) / name)
    ctx.barrier()
    search(config, run, resume=args.resume, teacher=given_teacher(args), progress=not args.no_progress)
    if ctx.is_main:
        print((run.path / "summary.txt").read_text().strip())
        print(f"run folder: {run.path} (arch.json, students.safetensors, arch_choice.png, summary.json)")
    return 0
