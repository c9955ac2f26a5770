"""Searches at several budgets on EfficientNet-Lite0, against uniform designs trained with the same steps.

    python benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes soft --steps 40 --finetune-steps 40 \
        --uniform ... --out benchmarks/results/search_moving.md

For each target: where the derived architecture lands (delta-frame MACs / target, with and without
--hard), MACs per frame at K, held-out top-1 / dense agreement, fidelity, wall time. Then every
uniform design of the search space trained for steps + finetune-steps, the same number of updates.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from deltanas._run import RunDir
from deltanas.analysis import evaluate
from deltanas.delta import SearchSpace, convert
from deltanas.search import SearchConfig, search
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, TrainConfig, load_video_data, train


def _row(label, cost_ratio, per_frame, speedup, test, steps, seconds) -> str:
    a = test.pooled
    return (f"| {label} | {cost_ratio} | {per_frame / 1e6:.0f} | {speedup:.2f}x | {100 * a.top1:.1f} | "
            f"{100 * a.dense:.1f} | {a.fidelity:.3f} | {steps} | {seconds:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--targets", nargs="+", default=["0.1x", "0.2x", "0.35x"])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--finetune-steps", type=int, default=60)
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--space", default="default")
    p.add_argument("--uniform", nargs="*", default=None, help="uniform designs (default: the space's ops)")
    p.add_argument("--modes", nargs="+", default=["soft", "hard"], choices=["soft", "hard"],
                   help="derive without (soft) and with --hard")
    p.add_argument("--per-frame", action="store_true", help="targets are MACs averaged per frame at K (--target-frame)")
    p.add_argument("--runs-dir", default="runs/bench-search")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/search_budgets.md"))
    args = p.parse_args()

    teacher = create_teacher("efficientnet_lite0")
    data_config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(data_config)
    k, size = data_config.keyframe_interval, data_config.eval_size
    header = [
        f"EfficientNet-Lite0 on {', '.join(data.names)}; held-out = last 30% of each clip at {size[0]}x{size[1]}, "
        f"K={k}; {platform.machine()}, {torch.get_num_threads()} threads. "
        f"`python benchmarks/search_budgets.py --targets {' '.join(args.targets)} --steps {args.steps} "
        f"--finetune-steps {args.finetune_steps} --videos {' '.join(args.videos)}`",
        "",
        "| model | delta MACs / target | MMACs/frame (avg at K) | speed-up | top-1 % | dense % | fidelity | updates | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def flush() -> None:
        args.out.write_text("\n".join(header + rows) + "\n")
        print(rows[-1], flush=True)

    for target in args.targets:
        for hard in [mode == "hard" for mode in args.modes]:
            name = f"search-{target}{'-hard' if hard else ''}"
            budget = {"target_frame": target} if args.per_frame else {"target": target}
            config = SearchConfig(space=args.space, data=data_config, hard=hard, steps=args.steps,
                                  warmup_steps=min(10, args.steps // 4), finetune_steps=args.finetune_steps, **budget)
            started = time.time()
            result = search(config, RunDir.create(name, args.runs_dir), data=data, teacher=teacher, progress=False)
            cost = result.test.cost(result.model.cost(size))  # gated layers: as spent on the held-out frames
            chosen = json.loads((result.run.path / "summary.json").read_text()).get("chosen", "logits")
            rows.append(_row(f"search {target}{' per frame' if args.per_frame else ''}{' --hard' if hard else ''} "
                             f"(chose: {chosen})",
                             f"{result.delta_macs / result.budget.delta_macs:.3f}", cost.per_frame(k),
                             cost.speedup(k), result.test, args.steps + args.finetune_steps, time.time() - started))
            flush()

    space = SearchSpace.load(args.space)
    designs = args.uniform if args.uniform is not None else [s for s in space.dense if s != "full"]
    for design in ["full", *designs]:
        started = time.time()
        trainable = design not in ("full", "zero")
        if trainable:
            config = TrainConfig(arch=f"uniform:{design}", data=data_config, steps=args.steps + args.finetune_steps)
            name = "uniform-" + design.replace(":", "-").replace("(", "_").replace(")", "")
            res = train(config, RunDir.create(name, args.runs_dir), data=data, teacher=teacher, progress=False)
            model, test = res.model, res.test
        else:
            model = convert(teacher, design, input_hw=size)
            test = evaluate(model, data.test_clips(), k, progress=False)
        cost = test.cost(model.cost(size))
        rows.append(_row(f"uniform {design}", f"{cost.delta_macs / cost.teacher_macs:.3f}x teacher",
                         cost.per_frame(k), cost.speedup(k), test, config.steps if trainable else 0,
                         time.time() - started))
        flush()


if __name__ == "__main__":
    main()
