"""The gates-only search at one budget: the thresholds learned per layer against the calibrated stride profile
they start from, on the held-out frames, paired bootstrap (learned minus profile, 95% intervals).

    python benchmarks/learned_vs_profile.py --videos bundled --target 0.2x --gate-steps 60 \
        --out benchmarks/results/learned_vs_profile_moving_0.2x.md

``derive`` without a supernet (what ``deltanas search --no-supernet`` selects with) writes ``selection.json``,
``learned_gates.json`` and ``learned_gates.png`` to ``--runs-dir``; both designs are then evaluated on the
held-out frames pooled over ``--phases`` key-frame phases.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deltanas.analysis import evaluate
from deltanas.analysis._compare import paired_bootstrap
from deltanas.delta import convert
from deltanas.search import SearchConfig
from deltanas.search._learned_gates import GATE_FRAMES
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import gates_search, write_rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--target", default="0.2x", help="MACs per delta frame (as deltanas search --target)")
    p.add_argument("--gate-steps", type=int, default=SearchConfig().gate_steps)
    p.add_argument("--gate-frames", choices=GATE_FRAMES, default=SearchConfig().gate_frames,
                   help="what the thresholds learn on: training crops or whole training frames at the eval size")
    p.add_argument("--phases", type=int, default=1)
    p.add_argument("--runs-dir", default="runs/bench-learned-gates")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    data_config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(data_config)
    teacher = create_teacher("efficientnet_lite0")
    k, size = data_config.keyframe_interval, data_config.eval_size
    chosen, seconds, budget, designs = gates_search(
        teacher, data, data_config, args.target, f"learned-{'_'.join(args.videos)}-{args.target}-{args.gate_frames}",
        args.runs_dir, args.gate_steps, args.gate_frames)
    results = {}
    rows = [f"`python benchmarks/learned_vs_profile.py --videos {' '.join(args.videos)} --target {args.target} "
            f"--gate-steps {args.gate_steps} --gate-frames {args.gate_frames} --phases {args.phases}`: K={k}, "
            f"{size[0]}x{size[1]}, selection {seconds:.0f} s in all (calibrations, {args.gate_steps} learning steps, "
            f"scoring); chosen: {chosen}",
            "", "| design | MMACs/frame (held out) | spend / budget | fidelity | top-1 % | dense % |", "|---|---|---|---|---|---|"]
    for label, arch in designs.items():
        model = convert(teacher, arch, input_hw=size)
        result = evaluate(model, data.test_clips(), k, progress=False, phases=args.phases)
        macs = result.cost(model.cost(size)).per_frame(k)
        results[label] = result
        a = result.pooled
        rows.append(f"| {label} | {macs / 1e6:.0f} | {macs / budget.per_frame():.3f} | {a.fidelity:.3f} | "
                    f"{100 * a.top1:.1f} | {100 * a.dense:.1f} |")
    rows += ["", "learned minus profile (paired bootstrap over held-out key-frame groups):", ""]
    for d in paired_bootstrap(results["stride profile (calibrated)"], results["learned gates"],
                              metrics=("fidelity", "top1", "dense")):
        rows.append(f"- {d.metric}: {d.difference:+.4f} [{d.low:+.4f}, {d.high:+.4f}] ({d.groups} groups)")
    print("\n".join(rows))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
