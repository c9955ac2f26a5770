"""The search's budget-calibrated gates, judged on its selection frames and on held-out frames.

    python benchmarks/threshold_profiles.py --videos shared --per-frame 0.4 \
        --gates t:0 w:0 w:0.5 w:1 --out benchmarks/results/threshold_profiles_static.md
    python benchmarks/threshold_profiles.py --videos bundled --delta 0.1 \
        --gates top-p:0 t:0 t:-0.5 w:0.25 w:0 p:0 --out benchmarks/results/threshold_profiles_bundled_0.1x.md

Each ``GATE:PROFILE`` is what the search's calibrated candidates are (``deltanas.search._uniform``):
``t`` the frame-relative threshold against the key frame, ``w`` the weighted threshold against a
running reference, ``r`` the frame-relative threshold against a running reference, ``wc`` and ``rc``
those two with the depthwise layers passing every change (``wc`` is the search's), ``p`` the top-p
fraction of the input positions against a running reference (``pc`` with changed depthwise layers);
``PROFILE`` scales each layer's value by its input stride (a positive one updates early layers more
finely). ``top-p`` is the uniform top-p fraction against the key frame (analytic, not calibrated).
Each is calibrated on two key-frame groups per selection clip so that it spends the budget
(``--per-frame``: MACs averaged per frame at K, or ``--delta``: per delta frame, as a fraction of the
teacher's), on the frames the search selects on (``VideoData.selection_clips``: the validation split,
topped up with training groups when it holds few); the table gives its agreement there and on the
held-out frames, with what it spent on them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deltanas.analysis import evaluate
from deltanas.delta import convert
from deltanas.search import SearchConfig
from deltanas.search._derive import _CALIBRATION_GROUPS, _SELECTION_GROUPS
from deltanas.search._uniform import calibration_groups, uniform_for_budget, uniform_threshold_for_budget
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import write_rows

_SELECT_GROUPS = SearchConfig().select_groups  # the selection frames are the default search's


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["bundled"])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--per-frame", type=float, default=0.4,
                        help="MACs per frame at K, as a fraction of the teacher")
    budget.add_argument("--delta", type=float, help="MACs per delta frame, as a fraction of the teacher (--target)")
    p.add_argument("--gates", nargs="+", default=["t:0", "w:0", "w:0.5", "w:1"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    config = DataConfig(videos=tuple(args.videos))
    data = load_video_data(config)
    teacher = create_teacher("efficientnet_lite0")
    k, size = config.keyframe_interval, config.eval_size
    probe = convert(teacher, "full", input_hw=size)
    layers, linear = probe.layer_infos(size)
    teacher_macs = probe.cost(size).teacher_macs
    fraction = args.delta if args.delta is not None else (args.per_frame * k - 1) / (k - 1)
    target = fraction * teacher_macs  # per delta frame
    selection = data.selection_clips(k, _SELECT_GROUPS, _SELECTION_GROUPS * _SELECT_GROUPS)
    groups = calibration_groups(selection, k, _CALIBRATION_GROUPS)
    asked = f"--delta {args.delta:g}" if args.delta is not None else f"--per-frame {args.per_frame:g}"
    rows = [f"Target {fraction:.3g}x of the teacher per delta frame ({target / 1e6:.0f} MMACs; K={k}); calibrated on "
            f"{len(groups)} groups of the selection frames, scored on up to {_SELECT_GROUPS} groups per selection clip "
            f"({len(selection)} clips). `python benchmarks/threshold_profiles.py --videos {' '.join(args.videos)} "
            f"{asked} --gates {' '.join(args.gates)}`", "",
            "| gate | profile | first layer's spec | MMACs/frame | speed-up | selection fidelity | selection top-1 % | "
            "selection dense % | test fidelity | test top-1 % | test dense % | calibration s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for item in args.gates:
        gate, profile = item.split(":")
        start = time.perf_counter()
        if gate == "top-p":
            found = uniform_for_budget("gated:p{}(full)", layers, linear, target, 0.03)
        else:
            found = uniform_threshold_for_budget(teacher, layers, linear, target, 0.03, groups, size, gate,
                                                 float(profile))
        seconds = time.perf_counter() - start
        if found is None:
            rows.append(f"| {gate} | {profile} | nothing lands in the band | | | | | | | | | {seconds:.0f} |")
            continue
        model = convert(teacher, found[0], input_hw=size)
        chosen = evaluate(model, selection, k, progress=False, max_groups=_SELECT_GROUPS).pooled
        result = evaluate(model, data.test_clips(), k, progress=False)
        test, cost = result.pooled, result.cost(model.cost(size))
        first = found[0].default if gate == "top-p" else next(iter(found[0].layers.values()))
        rows.append(f"| {gate} | {profile} | `{first}` | {cost.per_frame(k) / 1e6:.0f} | {cost.speedup(k):.2f}x | "
                    f"{chosen.fidelity:.3f} | {100 * chosen.top1:.1f} | {100 * chosen.dense:.1f} | "
                    f"{test.fidelity:.3f} | {100 * test.top1:.1f} | {100 * test.dense:.1f} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
