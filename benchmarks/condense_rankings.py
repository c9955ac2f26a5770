"""Condensed footage against the full footage: do designs rank alike, and does a gate calibrated on N groups
do on real held-out frames what one calibrated on all the footage does?

    python benchmarks/condense_rankings.py --regimes static:shared moving:bundled --groups 8 --steps 200 \
        --out benchmarks/results/condense_rankings.md --json benchmarks/results/condense_rankings.json

For each regime (``NAME:VIDEO[,VIDEO...]``: static and moving footage are reported apart) three sets of
``--groups`` groups are made from the footage's training and validation parts (``deltanas condense``, written
under ``--work`` and reused from there): ``distill`` (synthetic, matched to the teacher's statistics), ``random``
and ``kcenter`` (real groups). Every design is then calibrated (where it has a threshold to calibrate: budget
``--per-frame``) on each source, the full footage's selection frames included, and scored

- on that source (what a selection or a sweep would rank it by there), and
- on the real held-out frames (the test part of every clip, which no source has seen).

The reference ranking is the designs' held-out fidelity when calibrated on the full footage; each source gets
Kendall's tau-b of its own two rankings against it. The designs: the calibrated gates of ``--gates`` x
``--profiles`` (the search's threshold candidates and their relatives, ``deltanas.search._uniform``), fixed
thresholds ``--fixed`` (not calibrated: what they spend depends on the footage) and manual designs ``--manual``
(``deltanas.sweep.manual_designs`` of the default space, untrained).

End to end: the search's running-profiled gate (``wc``, profile 0.25) calibrated on each source, its thresholds
then learned per layer on that source's training groups and rescaled onto the budget (``--learn-steps``, the
search's learned gates; 0: the calibration alone, whose one threshold scale is all a source can change),
evaluated on the held-out frames, with the compute seconds of calibration and learning (the condensing's
seconds apart: made once, used by every calibration), and its held-out fidelity at the full-footage result's
held-out MACs (its thresholds rescaled until they spend them, within 3%): the issue's target is
within 0.02 of the full footage at a tenth of its compute, ahead of random and kcenter.

Tiny check that it starts (about two minutes on one thread; no figures):

    python benchmarks/condense_rankings.py --regimes static:static --size 64x112 --max-frames 40 --groups 2 \
        --steps 2 --real-groups 4 --gates wc --profiles 0.25 --fixed "uniform:gated:w0.05:run(full)" \
        --manual zero --learn-steps 2 --work /tmp/condense-check
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import torch

from deltanas._io import atomic_write_text
from deltanas.analysis import evaluate, machine_name
from deltanas.condense import CondenseConfig, condense, condense_footage
from deltanas.delta import Arch, convert
from deltanas.search import SearchConfig
from deltanas.search._derive import _CALIBRATION_GROUPS, _SELECTION_GROUPS
from deltanas.search._learned_gates import GateSchedule, learn_gates, macs_cost, relative_scales
from deltanas.search._uniform import calibration_groups, uniform_threshold_for_budget
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

from _heldout import write_rows

_SELECT_GROUPS = SearchConfig().select_groups  # the full footage is scored on the default search's frames
SOURCES = ("full", "distill", "random", "kcenter")
GATES = ("t", "w", "wc", "p")
PROFILES = (0.0, 0.5, 1.0)
FIXED = ("uniform:gated:w0.02:run(full)", "uniform:gated:w0.05:run(full)", "uniform:gated:w0.1:run(full)",
         "uniform:gated:t0.5(full)", "uniform:gated:t1(full)")
MANUAL = ("zero", "lowrank:0.5", "lowrank:0.25", "subsample(full)", "gated:p0.25(full)", "gated:p0.1(full)")
END_TO_END = ("wc", 0.25)  # the search's running-profiled candidate (deltanas.search._derive)
_RUNNING_W = re.compile(r"^gated:w([0-9.eE+-]+):run(?::f[0-9.eE+-]+)?\(full\)$")


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two score lists (ties in either count as neither concordant nor discordant)."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else float("nan")


class Regime:
    """One footage: its real data, its condensed sets, and the calibration and scoring frames of each source."""

    def __init__(self, name: str, videos: list[str], args: argparse.Namespace, teacher) -> None:
        self.name, self.videos, self.args, self.teacher = name, videos, args, teacher
        k, size = args.keyframe, args.size
        d = DataConfig()  # training frames and crops in the default proportions to the size
        frame = tuple(-(-v * f // e) for v, f, e in zip(size, d.frame_size, d.eval_size))
        crop = tuple(v * c // e for v, c, e in zip(size, d.crop, d.eval_size))
        config = DataConfig(videos=tuple(videos), eval_size=size, frame_size=frame, crop=crop, keyframe_interval=k,
                            max_frames=args.max_frames)
        self.config, learn = config, args.learn_steps > 0
        self.data = load_video_data(config, need_train=learn)
        self.training = {"full": self.data}  # what the gate learning trains on, per source
        selection = self.data.selection_clips(k, _SELECT_GROUPS, _SELECTION_GROUPS * _SELECT_GROUPS)
        self.calibration = {"full": calibration_groups(selection, k, _CALIBRATION_GROUPS)}
        self.scoring = {"full": (selection, _SELECT_GROUPS)}
        self.condense_seconds: dict[str, float] = {}
        self._calibrated: dict[tuple[str, float, str], tuple[Arch | None, float]] = {}
        footage = condense_footage(videos, size, k, args.max_frames)
        for method in SOURCES[1:]:
            folder = args.work / (f"{name}-{method}-n{args.groups}-k{k}-{size[0]}x{size[1]}-f{args.max_frames}"
                                  + (f"-s{args.steps}-r{args.real_groups}" if method == "distill" else "")
                                  + f"-seed{args.seed}")
            started = time.perf_counter()
            made = condense(teacher, footage, CondenseConfig(
                groups=args.groups, method=method, keyframe_interval=k, size=size, steps=args.steps,
                real_groups=args.real_groups, seed=args.seed), folder, resume=True, progress=not args.no_progress)
            self.condense_seconds[method] = float(made.info.get("seconds", time.perf_counter() - started))
            condensed = load_video_data(config.replace(videos=(f"condensed:{folder}",)), need_train=learn,
                                        teacher=teacher.info.name)
            self.training[method] = condensed
            self.calibration[method] = calibration_groups(condensed.val_clips(), k, 1)
            self.scoring[method] = (condensed.val_clips(), None)
        probe = convert(teacher, "full", input_hw=size)
        self.layers, self.linear = probe.layer_infos(size)
        self.teacher_macs = probe.cost(size).teacher_macs
        self.target = ((args.per_frame * k - 1) / (k - 1)) * self.teacher_macs  # per delta frame

    def calibrate(self, gate: str, profile: float, source: str) -> tuple[Arch | None, float]:
        """The gate calibrated onto the budget on ``source``'s calibration groups (None: nothing lands in the
        band), and the seconds that took (once: a second call returns the first's)."""
        key = (gate, profile, source)
        if key not in self._calibrated:
            started = time.perf_counter()
            found = uniform_threshold_for_budget(self.teacher, self.layers, self.linear, self.target,
                                                 self.args.tolerance,
                                                 self.calibration[source], self.args.size, gate, profile)
            self._calibrated[key] = (found[0] if found else None), time.perf_counter() - started
        return self._calibrated[key]

    def learned(self, start: Arch, source: str) -> Arch | None:
        """The search's learned gates from the calibrated ``start``: thresholds learned per layer on ``source``'s
        training groups, then rescaled onto the budget on its calibration groups (``deltanas.search._derive``)."""
        schedule = GateSchedule(steps=self.args.learn_steps, seed=self.args.seed)
        found = learn_gates(self.teacher, start, macs_cost(self.layers, start, self.linear), self.target,
                            self.training[source], self.config, schedule, progress=not self.args.no_progress)
        again = uniform_threshold_for_budget(self.teacher, self.layers, self.linear, self.target, self.args.tolerance,
                                             self.calibration[source], self.args.size, END_TO_END[0],
                                             scales=relative_scales(found.thresholds))
        return again[0] if again else None

    def score(self, arch: Arch | str, source: str) -> float:
        clips, groups = self.scoring[source]
        model = convert(self.teacher, arch, input_hw=self.args.size)
        return evaluate(model, clips, self.args.keyframe, progress=False, max_groups=groups).pooled.fidelity

    def held_out(self, arch: Arch | str) -> tuple[float, float]:
        """(fidelity, MACs per frame at K as spent) on the real held-out frames."""
        model = convert(self.teacher, arch, input_hw=self.args.size)
        result = evaluate(model, self.data.test_clips(), self.args.keyframe, progress=False,
                          max_groups=self.args.test_groups)
        return result.pooled.fidelity, result.cost(model.cost(self.args.size)).per_frame(self.args.keyframe)


def rankings(regime: Regime, args: argparse.Namespace) -> dict:
    """Per design and source: the fidelity on the source and on the held-out frames; taus against the full
    footage's held-out ranking; calibration seconds per source."""
    designs = [(f"{g}:{p:g}", (g, p)) for g in args.gates for p in args.profiles]
    designs += [(d, None) for d in [*args.fixed, *(f"uniform:{m}" for m in args.manual)]]
    rows, seconds = [], dict.fromkeys(SOURCES, 0.0)
    fixed_held: dict[str, tuple[float, float]] = {}
    for label, calibrated in designs:
        row = {"design": label}
        for source in SOURCES:
            if calibrated is not None:
                arch, spent = regime.calibrate(*calibrated, source)
                seconds[source] += spent
                if arch is None:
                    row[source] = None
                    continue
            else:
                arch = label
            held = fixed_held.get(label) if calibrated is None else None
            if held is None:
                held = regime.held_out(arch)
                if calibrated is None:
                    fixed_held[label] = held
            row[source] = {"on_source": regime.score(arch, source), "held_out": held[0], "held_out_macs": held[1]}
        rows.append(row)
        print(regime.name, json.dumps(row), flush=True)
    complete = [r for r in rows if all(r[s] is not None for s in SOURCES)]
    reference = [r["full"]["held_out"] for r in complete]
    taus = {s: {"on_source": kendall_tau([r[s]["on_source"] for r in complete], reference),
                "held_out": kendall_tau([r[s]["held_out"] for r in complete], reference)} for s in SOURCES}
    return {"designs": rows, "ranked": len(complete), "taus": taus, "calibration_seconds": seconds}


def end_to_end(regime: Regime) -> dict:
    """The running-profiled gate calibrated on each source (with ``--learn-steps``, its thresholds then learned
    per layer there and rescaled onto the budget), judged on the held-out frames."""
    gate, profile = END_TO_END
    out: dict[str, dict] = {}
    for source in SOURCES:
        arch, seconds = regime.calibrate(gate, profile, source)
        if arch is not None and regime.args.learn_steps:
            started = time.perf_counter()
            arch = regime.learned(arch, source)
            seconds += time.perf_counter() - started
        if arch is None:
            out[source] = {"calibrated": False, "seconds": seconds}
            continue
        fidelity, macs = regime.held_out(arch)
        out[source] = {"calibrated": True, "seconds": seconds, "fidelity": fidelity, "macs": macs, "arch": arch}
    full = out["full"]
    for source, entry in out.items():
        if not entry["calibrated"]:
            continue
        entry["fidelity_at_full_macs"] = (None if not full["calibrated"] else entry["fidelity"] if source == "full"
                                          else _at_macs(regime, entry["arch"], entry, full["macs"]))
        entry["arch"] = entry["arch"].to_dict() if hasattr(entry["arch"], "to_dict") else str(entry["arch"])
    return out


def _at_macs(regime: Regime, arch: Arch, entry: dict, macs: float, tolerance: float = 0.03,
             tries: int = 8) -> float | None:
    """Held-out fidelity of ``arch``'s thresholds rescaled until they spend ``macs`` on the held-out frames
    (within ``tolerance``): secant steps in log threshold against log MACs from the calibrated point. None
    where no scale reaches it in ``tries`` evaluations (nothing is extrapolated)."""
    points = [(0.0, math.log(entry["macs"]), entry["fidelity"])]  # (log factor, log MACs, fidelity)
    goal = math.log(macs)
    for _ in range(tries):
        log_f, log_m, fidelity = min(points, key=lambda p: abs(p[1] - goal))
        if abs(log_m - goal) <= math.log1p(tolerance):
            return fidelity
        others = [p for p in points if p[1] != log_m]
        # a coarser threshold spends less: without a slope yet, assume MACs fall as the factor's square root
        slope = (-0.5 if not others else
                 min(-0.05, (log_m - others[-1][1]) / (log_f - others[-1][0] or 1e-9)))
        factor = log_f + max(-1.5, min(1.5, (goal - log_m) / slope))
        fidelity, spent = regime.held_out(_scaled(arch, math.exp(factor)))
        points.append((factor, math.log(spent), fidelity))
    return None


def _scaled(arch: Arch, factor: float) -> Arch:
    """Every running weighted threshold of ``arch`` times ``factor`` (its measured fraction dropped)."""
    layers = {}
    for name, spec in arch.layers.items():
        match = _RUNNING_W.match(spec)
        layers[name] = f"gated:w{float(match.group(1)) * factor:.4g}:run(full)" if match else spec
    return Arch(layers=layers, default=arch.default)


def _table(result: dict, args: argparse.Namespace) -> list[str]:
    rows = []
    for name, regime in result["regimes"].items():
        ranks, e2e, made = regime["rankings"], regime["end_to_end"], regime["condense_seconds"]
        rows += [f"### {name} ({', '.join(regime['videos'])})", "",
                 f"{ranks['ranked']} designs ranked (calibrated on each source where they calibrate, budget "
                 f"{args.per_frame:g}x of the teacher per frame at K={args.keyframe}); reference: held-out fidelity "
                 f"when calibrated on the full footage. Sets of {args.groups} groups; condensing took "
                 + ", ".join(f"{m} {s:.0f} s" for m, s in made.items()) + ".", "",
                 "| source | tau, scored on the source | tau, held-out | calibration s (all designs) |",
                 "|---|---|---|---|"]
        for source in SOURCES:
            t = ranks["taus"][source]
            rows.append(f"| {source} | {t['on_source']:.3f} | {t['held_out']:.3f} | "
                        f"{ranks['calibration_seconds'][source]:.0f} |")
        learned = (f", its thresholds then learned per layer ({args.learn_steps} steps) and rescaled onto the budget"
                   if args.learn_steps else "")
        rows += ["", f"End to end: `{END_TO_END[0]}` profile {END_TO_END[1]:g} calibrated on each source{learned}, "
                     "on the held-out frames.", "",
                 "| source | fidelity | MMACs/frame | fidelity at the full footage's MACs | compute s | "
                 "share of the full footage's compute |", "|---|---|---|---|---|---|"]
        full_s = e2e["full"]["seconds"]
        for source in SOURCES:
            e = e2e[source]
            if not e["calibrated"]:
                rows.append(f"| {source} | nothing lands in the band | | | {e['seconds']:.1f} | |")
                continue
            at = e["fidelity_at_full_macs"]
            rows.append(f"| {source} | {e['fidelity']:.3f} | {e['macs'] / 1e6:.0f} | "
                        f"{'-' if at is None else f'{at:.3f}'} | {e['seconds']:.1f} | "
                        f"{e['seconds'] / max(full_s, 1e-9):.2f} |")
        rows += [_verdict(e2e), ""]
    return rows


def _verdict(e2e: dict) -> str:
    """The issue's target for the distilled set: within 0.02 held-out fidelity of the full footage (at its
    MACs), at a tenth of its calibration compute or less, ahead of random and kcenter."""
    full, mine = e2e["full"], e2e["distill"]
    if not (full["calibrated"] and mine["calibrated"]):
        return "Target: not judged (a calibration did not land in the band)."
    if mine["fidelity_at_full_macs"] is None:
        return "Target missed: no scale of distill's thresholds spends the full footage's MACs on held-out frames."
    gap = mine["fidelity_at_full_macs"] - full["fidelity"]
    share = mine["seconds"] / max(full["seconds"], 1e-9)
    others = [e2e[m]["fidelity_at_full_macs"] for m in ("random", "kcenter")
              if e2e[m]["calibrated"] and e2e[m]["fidelity_at_full_macs"] is not None]
    ahead = all(mine["fidelity_at_full_macs"] > o for o in others)
    met = gap >= -0.02 and share <= 0.1 and ahead
    return (f"Target {'met' if met else 'missed'}: distill {gap:+.3f} fidelity against the full footage at its "
            f"MACs (needs >= -0.02), {share:.2f} of its compute (needs <= 0.10), "
            f"{'ahead of' if ahead else 'not ahead of'} random and kcenter.")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--regimes", nargs="+", default=["static:shared", "moving:bundled"], metavar="NAME:VIDEOS",
                   help="footage per regime, videos comma-separated (default static:shared moving:bundled)")
    p.add_argument("--teacher", default="efficientnet_lite0")
    p.add_argument("--size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=(256, 448))
    p.add_argument("-K", "--keyframe", type=int, default=8)
    p.add_argument("--max-frames", type=int, default=300)
    p.add_argument("--groups", type=int, default=8, help="groups per condensed set")
    p.add_argument("--steps", type=int, default=CondenseConfig().steps, help="matching steps (distill)")
    p.add_argument("--real-groups", type=int, default=CondenseConfig().real_groups)
    p.add_argument("--per-frame", type=float, default=0.4, help="budget: MACs per frame at K, share of the teacher")
    p.add_argument("--tolerance", type=float, default=0.03,
                   help="a calibration lands in [(1 - tolerance) x budget, budget] on its frames (default 0.03)")
    p.add_argument("--gates", nargs="+", default=list(GATES))
    p.add_argument("--profiles", nargs="+", type=float, default=list(PROFILES))
    p.add_argument("--fixed", nargs="*", default=list(FIXED))
    p.add_argument("--manual", nargs="*", default=list(MANUAL))
    p.add_argument("--learn-steps", type=int, default=GateSchedule().steps,
                   help="end to end: steps of the search's gate learning after the calibration (0: calibration only; "
                        f"default {GateSchedule().steps}, the search's)")
    p.add_argument("--test-groups", type=int, default=None, help="held-out groups per clip (default all)")
    p.add_argument("--work", type=Path, default=Path("runs/bench-condense"), help="where the sets are kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = create_teacher(args.teacher)
    started = time.perf_counter()
    result = {"machine": machine_name(), "threads": torch.get_num_threads(), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "regimes": {}}
    for item in args.regimes:
        name, _, videos = item.partition(":")
        regime = Regime(name, videos.split(","), args, teacher)
        result["regimes"][name] = {"videos": regime.videos, "condense_seconds": regime.condense_seconds,
                                   "rankings": rankings(regime, args), "end_to_end": end_to_end(regime)}
    result["seconds"] = time.perf_counter() - started
    rows = [f"Measured on {result['machine']}, {result['threads']} thread(s), in {result['seconds']:.0f} s: "
            f"`python benchmarks/condense_rankings.py --regimes {' '.join(args.regimes)} --groups {args.groups} "
            f"--steps {args.steps}`", "", *_table(result, args)]
    print("\n".join(rows))
    write_rows(args.out, rows)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
