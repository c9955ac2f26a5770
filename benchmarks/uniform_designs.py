"""Teacher and uniform manual designs, trained with the same short budget, on the bundled clips.

    python benchmarks/uniform_designs.py --steps 150 --out benchmarks/results/uniform_designs.md

Prints (and writes) a markdown table: MACs per frame averaged at K, speed-up, held-out top-1 and
dense agreement, mIoU, delta fidelity, training time.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from deltanas._run import RunDir
from deltanas.analysis import evaluate
from deltanas.delta import convert
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, TrainConfig, load_video_data, train

DESIGNS = ["full", "zero", "lowrank:0.5", "lowrank:0.25", "subsample(full)"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--designs", nargs="+", default=DESIGNS)
    p.add_argument("--runs-dir", default="runs/bench-uniform")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/uniform_designs.md"))
    args = p.parse_args()

    teacher = create_teacher("efficientnet_lite0")
    data_config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(data_config)
    k = data_config.keyframe_interval
    rows = []
    for design in args.designs:
        started = time.time()
        trainable = design not in ("full", "zero")
        if trainable:
            name = design.replace(":", "-").replace("(", "_").replace(")", "")
            config = TrainConfig(arch=f"uniform:{design}", data=data_config, steps=args.steps)
            result = train(config, RunDir.create(name, args.runs_dir, resume=False), data=data, teacher=teacher,
                           progress=False)
            model, test = result.model, result.test
        else:
            model = convert(teacher, design, input_hw=data_config.eval_size)
            test = evaluate(model, data.test_clips(), k, progress=False)
        cost = test.cost(model.cost(data_config.eval_size))  # gated layers: as spent on these frames
        a = test.pooled
        label = {"full": "teacher (full)", "zero": "zero (key-frame reuse)"}.get(design, design)
        rows.append(f"| {label} | {cost.per_frame(k) / 1e6:.0f} | {cost.speedup(k):.2f}x | {100 * a.top1:.1f} | "
                    f"{100 * a.dense:.1f} | {100 * a.miou:.1f} | {a.fidelity:.3f} | "
                    f"{args.steps if trainable else 0} | {time.time() - started:.0f} |")
        print(rows[-1], flush=True)
    header = [
        f"EfficientNet-Lite0, clips {', '.join(data.names)}, held-out (last 30% of each clip), "
        f"{data_config.eval_size[0]}x{data_config.eval_size[1]}, K={k}; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads",
        "",
        "| design | MMACs/frame (avg at K) | speed-up | top-1 agr. % | dense agr. % | mIoU % | fidelity | steps | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + rows) + "\n")


if __name__ == "__main__":
    main()
