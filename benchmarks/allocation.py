"""Per-layer allocation of skip-convolutions against one fraction everywhere, untrained, same footage.

    python benchmarks/allocation.py --out benchmarks/results/allocation.md

Each design is a base operator plus rules ``REGEX=OP`` applied to the layer names in order (the last
match wins), e.g. ``gated:p0.25(full);_blocks\\.(2|4|6|7|9|10|12|13|14)\\.=gated:p0.1(full)``.
Reports validation and held-out (test) fidelity and top-1, so that a choice made on validation frames
can be checked on the test frames.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from deltanas.delta import Arch, convert
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import val_and_test, write_rows

RESIDUAL = r"_blocks\.(2|4|6|7|9|10|12|13|14)\."  # Lite0 blocks with a skip connection
EARLY = r"_conv_stem|_blocks\.[0-7]\."
DESIGNS = [
    "gated:p0.25(full)",
    "gated:p0.35(full)",
    f"gated:p0.5(full);{RESIDUAL}=gated:p0.1(full)",
    f"gated:p0.35(full);{RESIDUAL}=gated:p0.15(full)",
    f"gated:p0.4(full);{EARLY}=gated:p0.15(full)",
    f"gated:p0.15(full);{EARLY}=gated:p0.4(full)",
    "gated:p0.25(full);_depthwise_conv=full",
]


def build(teacher, design: str, names: list[str], size) -> "torch.nn.Module":
    base, *rules = design.split(";")
    layers = {}
    for name in names:
        op = base
        for rule in rules:
            pattern, rule_op = rule.split("=", 1)
            if re.search(pattern, name):
                op = rule_op
        layers[name] = op
    return convert(teacher, Arch(layers=layers), input_hw=size)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--designs", nargs="+", default=DESIGNS)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(config)
    teacher = create_teacher("efficientnet_lite0")
    k, size = config.keyframe_interval, config.eval_size
    names = list(convert(teacher, "full", input_hw=size).delta_layers())
    rows = ["| design (base; rules) | MMACs/frame | speed-up | val fidelity | val top-1 % | test fidelity | "
            "test top-1 % | test dense % |", "|---|---|---|---|---|---|---|---|"]
    for design in args.designs:
        model = build(teacher, design, names, size)
        val, test, cost = val_and_test(model, data, k, size)
        cell = design.replace("|", "\\|")  # a regex alternation inside a table cell
        rows.append(f"| `{cell}` | {cost.per_frame(k) / 1e6:.0f} | {cost.speedup(k):.2f}x | {val.fidelity:.3f} | "
                    f"{100 * val.top1:.1f} | {test.fidelity:.3f} | {100 * test.top1:.1f} | {100 * test.dense:.1f} |")
        print(rows[-1], flush=True)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
