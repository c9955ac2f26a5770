"""Threshold gates calibrated to a budget on validation frames, judged on held-out frames.

    python benchmarks/threshold_profiles.py --videos shared --per-frame 0.4 \
        --gates t:0 w:0 w:0.5 w:1 --out benchmarks/results/threshold_profiles_static.md

Each ``GATE:PROFILE`` is what the search's calibrated candidates are (``deltanas.search._uniform``):
``t`` the frame-relative threshold against the key frame, ``w`` the weighted threshold against a
running reference; ``PROFILE`` scales each layer's threshold by its input stride to that power.
The threshold is calibrated on two key-frame groups per validation clip so that the MACs averaged per
frame at K land at ``--per-frame`` of the teacher's (the search tops few validation frames up with
training frames: BENCHMARKS.md section 2d); the table gives what it spent and its agreement on the
held-out frames.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deltanas.analysis import keyframe_groups
from deltanas.delta import convert
from deltanas.search._uniform import uniform_threshold_for_budget
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import val_and_test, write_rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--per-frame", type=float, default=0.4, help="MACs per frame at K, as a fraction of the teacher")
    p.add_argument("--gates", nargs="+", default=["t:0", "w:0", "w:0.5", "w:1"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(config)
    teacher = create_teacher("efficientnet_lite0")
    k, size = config.keyframe_interval, config.eval_size
    probe = convert(teacher, "full", input_hw=size)
    layers, linear = probe.layer_infos(size)
    target = (args.per_frame * k - 1) / (k - 1) * probe.cost(size).teacher_macs  # per delta frame
    groups = [g for _, frames in data.val_clips()
              for i, g in enumerate(keyframe_groups(frames, k)) if i < 2 and len(g) > 1]
    rows = [f"Target {args.per_frame:g}x per frame at K={k} ({target / 1e6:.0f} MMACs per delta frame); "
            f"calibrated on {len(groups)} validation groups. `python benchmarks/threshold_profiles.py --videos "
            f"{' '.join(args.videos)} --per-frame {args.per_frame:g} --gates {' '.join(args.gates)}`", "",
            "| gate | profile | first layer's spec | MMACs/frame | speed-up | val fidelity | test fidelity | "
            "test top-1 % | test dense % | calibration s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for item in args.gates:
        gate, profile = item.split(":")
        start = time.perf_counter()
        found = uniform_threshold_for_budget(teacher, layers, linear, target, 0.03, groups, size, gate,
                                             float(profile))
        seconds = time.perf_counter() - start
        if found is None:
            rows.append(f"| {gate} | {profile} | no threshold lands in the band | | | | | | | {seconds:.0f} |")
            continue
        model = convert(teacher, found[0], input_hw=size)
        val, test, cost = val_and_test(model, data, k, size, val_groups=4)
        first = next(iter(found[0].layers.values()))
        rows.append(f"| {gate} | {profile} | `{first}` | {cost.per_frame(k) / 1e6:.0f} | {cost.speedup(k):.2f}x | "
                    f"{val.fidelity:.3f} | {test.fidelity:.3f} | {100 * test.top1:.1f} | {100 * test.dense:.1f} | "
                    f"{seconds:.0f} |")
        print(rows[-1], flush=True)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
