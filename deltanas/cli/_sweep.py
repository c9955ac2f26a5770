"""Verbs of the baselines the search must beat: baselines, sweep, pareto."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_data_options, add_run_options, add_teacher_options, data_config, given_teacher

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("baselines", help="train every manual design (one operator everywhere) with the same "
                                           "budget; points.csv for `deltanas pareto`")
    add_teacher_options(p)
    p.add_argument("--space", default="default", help="its operators are the manual designs (default: default)")
    p.add_argument("--designs", nargs="+", metavar="OP",
                   help="train these operators instead of the space's (with --resume: added to the run)")
    p.add_argument("--skipconv", action="store_true",
                   help="add the skip-convolution family: the teacher copy gated everywhere, over top-p budgets "
                        "and thresholds (deltanas.delta.skipconv_designs)")
    p.add_argument("--steps", type=int, default=300, help="training steps of every design (default 300)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-groups", type=int, default=2)
    add_data_options(p)
    add_run_options(p)
    p.set_defaults(run=cmd_baselines)

    p = verbs.add_parser("sweep", help="Optuna multi-objective study (agreement up, MACs down) over per-layer "
                                       "operators, the search's hyper-parameters or per-stage gate thresholds")
    p.add_argument("--mode", default="arch", choices=["arch", "search-hparams", "gates"],
                   help="arch: per-layer operators, each trial trained briefly; search-hparams: each trial a "
                        "short `deltanas search` with sampled target, penalty, weight, tau schedule; gates: one "
                        "threshold per stage of the weighted running gate, untrained, the budget --target a "
                        "constraint, the calibrated profile the first trial")
    add_teacher_options(p, weights=False)  # workers rebuild a registered teacher by name
    p.add_argument("--space", default="default", help="search space name or YAML path")
    p.add_argument("--metric", choices=["top1", "dense", "miou", "fidelity"],
                   help="agreement to maximise, on the validation split (default top1; gates: fidelity)")
    p.add_argument("--granularity", default="layer", choices=["layer", "block"],
                   help="block: one choice per block for its layers with the same candidates (fewer parameters)")
    p.add_argument("--max-macs", metavar="MACS",
                   help="arch mode: MACs per frame averaged at K (0.5x of the teacher, or 300M); a trial above "
                        "it is pruned before training")
    p.add_argument("--steps", type=int, default=30,
                   help="training steps per trial (search-hparams: fine-tuning steps) (default 30)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-groups", type=int, default=2)
    h = p.add_argument_group("search-hparams mode")
    h.add_argument("--targets", nargs="+", default=["0.1x", "0.2x", "0.35x"], metavar="T",
                   help="budgets per delta frame to choose from (default 0.1x 0.2x 0.35x)")
    h.add_argument("--penalties", nargs="+", default=["lagrangian", "linear", "log", "absolute"])
    h.add_argument("--search-steps", type=int, default=40)
    h.add_argument("--prior", default="sensitivity", choices=["sensitivity", "none"])
    g = p.add_argument_group("gates mode")
    g.add_argument("--target", metavar="MACS",
                   help="the budget: MACs per frame averaged at K (0.3x of the teacher, or 250M); trials above it "
                        "are infeasible")
    g.add_argument("--max-groups", type=int, metavar="N",
                   help="key-frame groups per validation clip that calibrate and score a trial (default: all)")
    g.add_argument("--over-budget-weight", type=float, default=10.0, metavar="W",
                   help="--sampler cmaes: score = metric - W x (MACs / target - 1) above the budget (default 10)")
    s = p.add_argument_group("study")
    s.add_argument("--trials", type=int, default=20,
                   help="finished trials the study should hold; running again adds only the missing (default 20)")
    s.add_argument("--workers", type=int, default=1, help="processes sharing the study (default 1)")
    s.add_argument("--storage", help="an Optuna storage URL (sqlite:///x.db, postgresql://user:pw@host/db) or a "
                                     "*.journal file (default: runs/NAME/study.journal)")
    s.add_argument("--study", help="study name (default: the run name)")
    s.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "random", "cmaes"],
                   help="tpe (default), nsga2, random; cmaes (gates mode, single objective: needs "
                        "pip install 'deltanas[cmaes]')")
    s.add_argument("--stale-after", type=float, metavar="SECONDS",
                   help="also fail and retry trials RUNNING longer than this (e.g. of a dead machine)")
    add_data_options(p)
    add_run_options(p)
    p.set_defaults(run=cmd_sweep)

    p = verbs.add_parser("pareto", help="Pareto front and hypervolume of runs: pareto.csv, pareto.png/.svg")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (baselines, sweep, search, train), or "
                                                         "folders of them")
    p.add_argument("--metric", default="top1", choices=["top1", "dense", "miou", "fidelity"])
    p.add_argument("--ref", nargs=2, metavar=("MACS", "METRIC"),
                   help="hypervolume reference point: MACs per frame (1.0x of the teacher, or 300M) and metric "
                        "(default: 1.0x 0)")
    p.add_argument("--storage", help="storage URL of a sweep run whose sweep.json has a masked password")
    p.add_argument("--out", type=Path, default=Path("runs/pareto"), help="output folder (default runs/pareto)")
    p.add_argument("--title", help="plot title")
    p.set_defaults(run=cmd_pareto)


def cmd_baselines(args: argparse.Namespace) -> int:
    from ..sweep import BaselinesConfig, run_baselines

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    designs = list(args.designs) if args.designs else None
    if args.skipconv:
        from ..delta import SearchSpace, skipconv_designs
        from ..sweep import manual_designs

        designs = (designs if designs is not None else manual_designs(SearchSpace.load(args.space)))
        designs += [d for d in skipconv_designs() if d not in designs]
    config = BaselinesConfig(teacher=args.teacher, space=args.space, data=data_config(args),
                             designs=tuple(designs) if designs else None, steps=args.steps,
                             batch_groups=args.batch_groups, lr=args.lr, seed=args.seed)
    name = args.name or "baselines"
    points = run_baselines(config, name, args.runs_dir, resume=args.resume, teacher=given_teacher(args),
                           progress=not args.no_progress)
    print(f"{len(points)} points: {Path(args.runs_dir) / name / 'points.csv'}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import optuna

    from ..sweep import SweepConfig, run_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints one line per trial itself

    config = SweepConfig(mode=args.mode, teacher=args.teacher, space=args.space, data=data_config(args),
                         metric=args.metric, granularity=args.granularity, steps=args.steps,
                         batch_groups=args.batch_groups, lr=args.lr, max_macs=args.max_macs,
                         targets=tuple(args.targets), penalties=tuple(args.penalties), search_steps=args.search_steps,
                         prior=args.prior, target=args.target, max_groups=args.max_groups,
                         over_budget_weight=args.over_budget_weight, seed=args.seed)
    name = args.name or {"arch": "sweep", "search-hparams": "sweep-hparams", "gates": "sweep-gates"}[args.mode]
    result = run_sweep(config, name, trials=args.trials, workers=args.workers, storage=args.storage,
                       study_name=args.study, runs_dir=args.runs_dir, sampler=args.sampler, threads=args.threads,
                       stale_after=args.stale_after, progress=not args.no_progress)
    if config.mode == "gates":
        return _print_gates(result, config)
    best = sorted(result.study.best_trials, key=lambda t: t.values[1]) if result.completed else []
    print(f"study {result.study.study_name!r}: {len(result.completed)} complete trials ({result.new_trials} new"
          + (f", {len(result.recovered)} left running by a dead process retried" if result.recovered else "")
          + f"); Pareto-optimal on validation {config.metric}:")
    for t in best:
        print(f"  trial {t.number:4d}: {config.metric} {t.values[0]:.3f} at {t.values[1] / 1e6:.1f} MMACs/frame")
    print(f"run folder: {result.run.path} (sweep.json, trials/, trials.csv)")
    return 0


def _print_gates(result, config) -> int:
    b = result.best
    print(f"study {result.study.study_name!r}: {len(result.completed)} complete trials ({result.new_trials} new)")
    if b is None:
        print(f"no trial within the budget {config.target}")
    else:
        stages = " ".join(f"{s}={t:.3g}" for s, t in b["thresholds"].items())
        print(f"best within {b['target_macs_per_frame'] / 1e6:.1f} MMACs/frame: trial {b['trial']}"
              f"{' (the calibrated profile)' if b['calibrated'] else ''}, validation {config.metric} "
              f"{b['val'][config.metric]:.4f} at {b['macs_per_frame'] / 1e6:.1f} MMACs/frame; test fidelity "
              f"{b['test']['fidelity']:.4f}, top-1 {b['test']['top1']:.3f}; thresholds {stages}")
    print(f"run folder: {result.run.path} (sweep.json, trials.csv, arch.json, best.json)")
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from ..runs import pareto_report

    result = pareto_report(args.runs, args.out, metric=args.metric, ref=args.ref, storage=args.storage,
                           title=args.title)
    front = result.points[result.points["on_front"]].sort_values("macs_per_frame")
    print(f"{len(result.points)} points, {len(front)} on the front ({args.metric}); hypervolume "
          f"{result.hypervolume:.4g} ({100 * result.hypervolume_share:.1f}% of the reference box "
          f"{result.reference[0] / 1e6:.1f}M MACs x {args.metric} >= {result.reference[1]:g})")
    for family, hv in result.by_family.items():
        print(f"  {family:16s} hypervolume {hv:.4g}")
    for _, r in front.iterrows():
        print(f"  front: {r['family']:14s} {str(r['label']):28s} {r['macs_per_frame'] / 1e6:8.1f} MMACs/frame  "
              f"{args.metric} {r[args.metric]:.3f}")
    print(f"wrote {args.out / 'pareto.csv'}, pareto.json, pareto.png, pareto.svg")
    return 0
