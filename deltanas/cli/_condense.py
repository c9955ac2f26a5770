"""The ``condense`` verb: a few key-frame groups that stand for the footage (``--videos condensed:DIR``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import ConfigError
from ._args import add_teacher_options, size_type

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    from ..condense import CONDENSE_METHODS, CondenseConfig

    d = CondenseConfig()
    p = verbs.add_parser("condense", help="condense footage into N key-frame groups that calibrate, select and "
                                          "train as the footage does (use them as --videos condensed:DIR)")
    p.add_argument("footage", nargs="+", metavar="FOOTAGE",
                   help="clip names, groups (static, bundled, shared), video files or frame folders")
    p.add_argument("--groups", type=int, required=True, metavar="N", help="groups of K frames in the set")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder the set is written to")
    p.add_argument("--method", choices=CONDENSE_METHODS, default=d.method,
                   help="distill: synthetic groups whose teacher statistics match the footage's (learned); "
                        "random: N real groups at random; kcenter: N real groups by k-center greedy on the "
                        f"teacher's pooled features (default {d.method})")
    add_teacher_options(p)
    p.add_argument("--size", type=size_type, default=d.size, metavar="HxW",
                   help=f"frame size of the set: the --eval-size of the runs that use it (default "
                        f"{d.size[0]}x{d.size[1]})")
    p.add_argument("-K", "--keyframe", type=int, default=d.keyframe_interval, metavar="K",
                   help=f"key-frame interval: frames per group (default {d.keyframe_interval})")
    p.add_argument("--max-frames", type=int, default=300, help="frames read per clip (default 300)")
    p.add_argument("--all-frames", action="store_true",
                   help="condense every frame read; by default each clip's test part (the last 30%%, as the "
                        "other verbs split it) is left out, so the set can be judged on it")
    g = p.add_argument_group("matching (distill)")
    g.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    g.add_argument("--batch-groups", type=int, default=d.batch_groups,
                   help=f"synthetic groups per step (default {d.batch_groups})")
    g.add_argument("--later-frames", type=int, default=d.later_frames,
                   help=f"later frames per synthetic group and step (default {d.later_frames})")
    g.add_argument("--real-groups", type=int, default=d.real_groups,
                   help=f"real groups, spread over the footage, whose statistics are matched (default "
                        f"{d.real_groups})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue an unfinished job in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_condense)


def cmd_condense(args: argparse.Namespace) -> int:
    from ..condense import CondenseConfig, condense, condense_footage
    from ..video import resolve_sources
    from ._args import teacher_from_args

    if args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    if any(s.kind == "condensed" for s in resolve_sources(args.footage)):  # a bad path fails here too
        raise ConfigError("condense real footage, not a condensed set")
    config = CondenseConfig(groups=args.groups, method=args.method, keyframe_interval=args.keyframe,
                            size=tuple(args.size), steps=args.steps, batch_groups=args.batch_groups,
                            later_frames=args.later_frames, real_groups=args.real_groups, seed=args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = teacher_from_args(args)
    footage = condense_footage(args.footage, config.size, config.keyframe_interval, args.max_frames,
                               split=None if args.all_frames else (0.6, 0.1, 0.3))
    result = condense(teacher, footage, config, args.out, resume=args.resume, progress=not args.no_progress)
    h, w = result.size
    line = (f"{args.out}: {result.groups} groups of K={result.keyframe_interval} at {h}x{w} for {result.teacher} "
            f"({result.method}, {result.storage_bytes / 1024:.0f} KiB")
    distance = result.info.get("distance")
    if distance:
        line += f"; statistic distance {distance['start']:.3f} -> {distance['end']:.3f}"
    line += f"; {result.info.get('seconds', 0):.0f} s); use it as --videos condensed:{args.out}"
    print(line)
    return 0
