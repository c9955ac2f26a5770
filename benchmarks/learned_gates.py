"""The learned per-layer gates against the calibrated stride profile, the per-stage gate sweep and the manual
designs, on held-out frames at each budget.

    python benchmarks/learned_gates.py --videos shared --targets 0.1 0.2 0.35 \
        --out benchmarks/results/learned_gates_static.md
    python benchmarks/learned_gates.py --videos bundled --targets 0.1 0.2 0.35 \
        --out benchmarks/results/learned_gates_moving.md

Per budget (``--targets``: MACs per delta frame as a fraction of the teacher's, as ``deltanas search --target``):
the gates-only search (``derive`` without a supernet: the calibrated stride profile ``T x s^0.25``, and the
thresholds learned per layer from it and rescaled onto the budget, compete on the selection frames); the
per-stage gate sweep (``deltanas sweep --mode gates``, TPE, the budget as a constraint) given at least
``--sweep-factor`` times the search's compute, its best feasible trial; and every manual design of
``--manual`` whose MACs spent on the held-out frames are at least the learned model's. Every design is
evaluated on the held-out frames pooled over ``--phases`` key-frame phases; the paired bootstrap (over
held-out key-frame groups) gives learned minus each other design, 95% intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deltanas.analysis import evaluate
from deltanas.analysis._compare import paired_bootstrap
from deltanas.delta import Arch, convert
from deltanas.search import SearchConfig
from deltanas.search._learned_gates import GATE_FRAMES
from deltanas.sweep import SweepConfig, run_sweep
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import gates_search, write_rows

MANUAL = ("zero", "subsample(full)", "gated:p0.05(full)", "gated:p0.1(full)", "gated:p0.15(full)",
          "gated:p0.25(full)", "gated:p0.35(full)", "gated:t3(full)", "gated:t2(full)", "gated:t1(full)",
          "gated:w0.1:run(full)", "gated:w0.05:run(full)", "gated:w0.03:run(full)", "gated:w0.02:run(full)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--targets", type=float, nargs="+", default=[0.1, 0.2, 0.35])
    p.add_argument("--gate-steps", type=int, default=SearchConfig().gate_steps)
    p.add_argument("--gate-frames", choices=GATE_FRAMES, default=SearchConfig().gate_frames)
    p.add_argument("--sweep-factor", type=float, default=5.0, help="the sweep's compute over the search's")
    p.add_argument("--max-trials", type=int, default=200)
    p.add_argument("--phases", type=int, default=1, help="key-frame phases the held-out frames are pooled over")
    p.add_argument("--manual", nargs="*", default=list(MANUAL))
    p.add_argument("--runs-dir", default="runs/bench-learned-gates")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    data_config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(data_config)
    teacher = create_teacher("efficientnet_lite0")
    k, size = data_config.keyframe_interval, data_config.eval_size
    test = data.test_clips()
    regime = " ".join(args.videos)
    rows = [f"`python benchmarks/learned_gates.py --videos {regime} --targets {' '.join(map(str, args.targets))} "
            f"--gate-steps {args.gate_steps} --gate-frames {args.gate_frames} --sweep-factor {args.sweep_factor:g} "
            f"--phases {args.phases}` (K={k}, {size[0]}x{size[1]}); held-out frames pooled over {args.phases} "
            f"key-frame phase(s); learned minus each design, paired bootstrap over held-out key-frame groups, 95% "
            f"intervals", ""]
    results_json = {}
    for fraction in args.targets:
        tag = f"{fraction:g}x"
        chosen, search_seconds, budget, designs = gates_search(teacher, data, data_config, tag, f"search-{tag}",
                                                               args.runs_dir, args.gate_steps, args.gate_frames)
        compute = dict.fromkeys(designs, search_seconds)

        # the sweep, until it has spent sweep_factor x the search's compute
        per_frame = budget.per_frame() / budget.teacher_macs
        sweep_config = SweepConfig(mode="gates", data=data_config, target=f"{per_frame:.4f}x")
        trials, sweep = 0, None
        while trials < args.max_trials:
            trials = min(args.max_trials, trials + 10)
            sweep = run_sweep(sweep_config, f"sweep-{tag}", trials=trials, runs_dir=args.runs_dir, progress=False)
            spent = json.loads((sweep.run.path / "summary.json").read_text())["extra"]["compute_seconds"]
            if spent >= args.sweep_factor * search_seconds:
                break
        if sweep is not None and sweep.best is not None:
            designs[f"gate sweep best of {len(sweep.completed)} trials"] = Arch.load(sweep.run.path / "arch.json")
            compute[f"gate sweep best of {len(sweep.completed)} trials"] = spent

        scored = {}
        for label, arch in designs.items():
            model = convert(teacher, arch, input_hw=size)
            result = evaluate(model, test, k, progress=False, phases=args.phases)
            scored[label] = (result, result.cost(model.cost(size)).per_frame(k))
            print(tag, label, f"{scored[label][1] / 1e6:.0f}M", f"{result.pooled.fidelity:.4f}", flush=True)
        floor = scored["learned gates"][1]
        for spec in args.manual:
            model = convert(teacher, spec, input_hw=size)
            result = evaluate(model, test, k, progress=False, phases=args.phases)
            macs = result.cost(model.cost(size)).per_frame(k)
            if macs >= floor:
                scored[f"manual {spec}"] = (result, macs)
                compute[f"manual {spec}"] = 0.0
                print(tag, spec, f"{macs / 1e6:.0f}M", f"{result.pooled.fidelity:.4f}", flush=True)

        learned = scored["learned gates"][0]
        rows += [f"### {tag} of the teacher per delta frame ({budget.per_frame() / 1e6:.0f}M MACs per frame at K; "
                 f"chosen by the search: {chosen})", "",
                 "| design | MMACs/frame (held out) | spend / budget | fidelity | top-1 % | dense % | "
                 "learned - this: fidelity [95%] | top-1 pts [95%] | dense pts [95%] | compute s |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        results_json[tag] = {}
        for label, (result, macs) in sorted(scored.items(), key=lambda kv: kv[1][1]):
            a = result.pooled
            diffs = "| | |" if label == "learned gates" else " | ".join(
                f"{s * d.difference:+.{n}f} [{s * d.low:+.{n}f}, {s * d.high:+.{n}f}]"
                for d, s, n in ((d, 1 if d.metric == "fidelity" else 100, 3 if d.metric == "fidelity" else 1)
                                for d in paired_bootstrap(result, learned, metrics=("fidelity", "top1", "dense"))))
            rows.append(f"| {label} | {macs / 1e6:.0f} | {macs / budget.per_frame():.3f} | {a.fidelity:.3f} | "
                        f"{100 * a.top1:.1f} | {100 * a.dense:.1f} | {diffs} | {compute[label]:.0f} |")
            results_json[tag][label] = {"macs_per_frame": macs, **a.as_dict(), "compute_seconds": compute[label]}
        rows.append("")
        write_rows(args.out, rows)
        if args.out:
            args.out.with_suffix(".json").write_text(json.dumps(results_json, indent=1, default=str))


if __name__ == "__main__":
    main()
