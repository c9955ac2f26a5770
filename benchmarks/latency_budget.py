"""Latency budgets end to end on EfficientNet-Lite0: profile this machine, search for a few ms targets, then time
the derived models on held-out frames and set the latency model's prediction against the measurement.

    python benchmarks/latency_budget.py --threads 2 --targets 0.3x 0.4x 0.5x --quick \
        --out benchmarks/results/latency_budget.json

1. ``deltanas profile`` on the static clips at --size and --threads: the first --profile-frames frames of each
   clip (inside the search's training split), its last key-frame groups held out to check the fit.
2. per target, ``deltanas search --target-ms X --latency FILE --no-speed`` (``--quick`` with --quick). A target
   is ms per frame averaged at K, or ``0.4x``: that share of the profiled key frame (the dense runtime's ms).
3. ``deltanas bench --json`` on the derived model, per static clip, on the search's held-out (test) frames.

Predicted: ms per frame averaged at K from the latency model and the derived arch's calibrated fractions
(``GateBudget.cost_of``: what the search landed on; the search's own figure, ``selection.json`` cost, beside it),
against bench's measured ``delta_ms_per_frame``; and, to separate the model's error from the fractions' transfer
to other frames, ``check_latency`` of the derived model on the same held-out frames (predicted from the positions
each layer computed there). Writes a JSON file and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from deltanas._io import atomic_write_text
from deltanas.delta import Arch, convert
from deltanas.engine import LatencyModel, check_latency
from deltanas.export import load_model
from deltanas.search import SearchConfig
from deltanas.search._learned_gates import GateBudget, latency_cost
from deltanas.teachers import create_teacher
from deltanas.video import load_clips, split_in_time

TEACHER = "efficientnet_lite0"


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def _run(argv: list[str], log: list[str], capture: bool = False) -> str:
    """A deltanas verb in a subprocess (its own threads, its own peak memory); refused runs stop the benchmark."""
    line = " ".join(shlex.quote(a) for a in ["deltanas", *argv])
    log.append(line)
    print(f"$ {line}", flush=True)
    done = subprocess.run([sys.executable, "-m", "deltanas", *argv], text=True,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {line}")
    return done.stdout or ""


def _target_ms(text: str, key_ms: float) -> float:
    return float(text[:-1]) * key_ms if text.endswith("x") else float(text)


def _heldout(config: SearchConfig, most: int) -> list[tuple[str, Path, int, torch.Tensor]]:
    """(clip, its file, first frame, up to ``most`` frames from there) of each clip's test split, decoded and cut
    as the search cut it."""
    data, k = config.data, config.data.keyframe_interval
    out = []
    for clip in load_clips(list(data.videos), data.eval_size, max_frames=data.max_frames):
        test = split_in_time(len(clip), data.split, gap=k).test
        frames = clip.frames[test.start:min(test.stop, test.start + most)].clone()
        if len(frames) >= 2:
            out.append((clip.name, clip.source, test.start, frames))
    return out


def _predicted(latency: LatencyModel, run: Path, k: int) -> dict:
    """The derived arch's predicted ms per delta frame and per frame at K, from its calibrated fractions."""
    arch = Arch.load(run / "derived_arch.json")
    layers, _ = convert(create_teacher(TEACHER), "full", input_hw=latency.input_hw).layer_infos(latency.input_hw)
    delta = GateBudget(0.0, latency_cost(latency)).cost_of(layers)(arch)
    selection = json.loads((run / "selection.json").read_text()) if (run / "selection.json").is_file() else {}
    chosen = selection.get("chosen")
    return {"chosen": chosen, "delta_ms": delta, "frame_ms": (latency.key_ms + (k - 1) * delta) / k,
            "search_delta_ms": selection.get("cost", {}).get(chosen)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", nargs="+", default=["0.3x", "0.4x", "0.5x"],
                   help="ms per frame at K, or a share of the profiled key frame's ms (0.4x)")
    p.add_argument("--threads", type=int, default=2, help="threads of the profile, the search and the bench")
    p.add_argument("--quick", action="store_true", help="deltanas search --quick")
    p.add_argument("--size", type=_size, default=(256, 448), metavar="HxW")
    p.add_argument("-K", "--keyframe", type=int, default=8)
    p.add_argument("--videos", nargs="+", default=["static"])
    p.add_argument("--profile-frames", type=int, default=48, help="frames per clip profiled (fit and check)")
    p.add_argument("--profile-repeats", type=int, default=3)
    p.add_argument("--scales", nargs="+", default=None, help="the profile's gate scales (default its own)")
    p.add_argument("--latency", type=Path, default=None, help="an existing latency model (skips the profile)")
    p.add_argument("--max-frames", type=int, default=None, help="the search's --max-frames (default its own)")
    p.add_argument("--bench-frames", type=int, default=64, help="held-out frames benched per clip (at most)")
    p.add_argument("--bench-repeats", type=int, default=5)
    p.add_argument("--search-args", default="", help="more options for deltanas search, one string")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench-latency"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_budget.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.size
    k, size, threads = args.keyframe, f"{h}x{w}", str(args.threads)
    commands: list[str] = []
    started = time.time()

    latency_path = args.latency or args.runs_dir / "latency.json"
    if args.latency is None:
        _run(["profile", "--teacher", TEACHER, "--videos", *args.videos, "--size", size, "-K", str(k),
              "--frames", str(args.profile_frames), "--repeats", str(args.profile_repeats), "--threads", threads,
              *(["--scales", *args.scales] if args.scales else []), "--out", str(latency_path), "--no-progress"],
             commands)
    latency = LatencyModel.load(latency_path, teacher=TEACHER, input_hw=args.size)
    check = latency.report.get("check", {})

    rows = []
    for text in args.targets:
        target = _target_ms(text, latency.key_ms)
        name = f"search-{target:.2f}ms".replace(".", "p")
        run = args.runs_dir / name
        _run(["search", "--teacher", TEACHER, "--target-ms", f"{target:.4g}", "--latency", str(latency_path),
              "--no-speed", "--videos", *args.videos, "--keyframe", str(k), "--eval-size", size, "--threads",
              threads, *(["--max-frames", str(args.max_frames)] if args.max_frames else []),
              *(["--quick"] if args.quick else []), *shlex.split(args.search_args), "--name", name,
              "--runs-dir", str(args.runs_dir), "--no-progress"], commands)
        config = SearchConfig.load(run / "config.json")
        predicted = _predicted(latency, run, k)
        model = load_model(run)
        benched, held = [], []
        for clip, source, start, frames in _heldout(config, args.bench_frames):
            out = _run(["bench", "--model", str(run), "--video", str(source), "--start", str(start), "--frames",
                        str(len(frames)), "--size", size, "--keyframe", str(k), "--threads", threads, "--repeats",
                        str(args.bench_repeats), "--keyframes", latency.key_runtime, "--json"],
                       commands, capture=True)  # the profile's key runtime: auto's one timing flips on a loaded machine
            benched.append({"clip": clip, "start": start, **json.loads(out)})
            held.append(frames.float().div(255))
        if not benched:
            raise SystemExit(f"{run}: no held-out frames to bench")
        # the same frames, predicted from the positions each layer computed there (the model's own error)
        own = check_latency(latency, model, held, k, (1.0,), args.bench_repeats, progress=False).as_dict()
        weights = [b["frames"] for b in benched]
        measured = sum(b["delta_ms_per_frame"] * n for b, n in zip(benched, weights)) / sum(weights)
        measured_delta = sum(b["delta_ms_per_delta_frame"] * n for b, n in zip(benched, weights)) / sum(weights)
        rows.append({"target": text, "target_ms": target, "run": str(run), **predicted,
                     "measured_frame_ms": measured, "measured_delta_ms": measured_delta,
                     "frame_error": predicted["frame_ms"] / measured - 1,
                     "delta_error": predicted["delta_ms"] / measured_delta - 1,
                     "on_target": measured <= target, "positions_check": own, "bench": benched})
        _write(args, latency, check, rows, commands, started)
    _print(latency, check, rows)


def _write(args, latency: LatencyModel, check: dict, rows: list[dict], commands: list[str], started: float) -> None:
    atomic_write_text(args.out, json.dumps({
        "teacher": TEACHER, "input_hw": list(latency.input_hw), "keyframe_interval": args.keyframe,
        "threads": latency.threads, "machine": latency.machine, "key_runtime": latency.key_runtime,
        "key_ms": latency.key_ms, "quick": args.quick, "profile_check": check, "rows": rows,
        "commands": commands, "seconds": time.time() - started}, indent=2) + "\n")


def _print(latency: LatencyModel, check: dict, rows: list[dict]) -> None:
    h, w = latency.input_hw
    print(f"\n{TEACHER} at {h}x{w}, {latency.threads} thread(s), {latency.machine}; key frame {latency.key_ms:.2f} ms "
          f"({latency.key_runtime})")
    if check:
        print(f"profile, held-out frames: median error {100 * check['median_error']:.1f}%, "
              f"worst {100 * check['worst_error']:.1f}%")
    print("| target | target ms/frame | chose | predicted ms/frame | measured ms/frame | error | predicted delta ms | "
          "measured delta ms | error | error from own positions | on target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['target_ms']:.2f} | {r['chosen']} | {r['frame_ms']:.2f} | "
              f"{r['measured_frame_ms']:.2f} | {100 * r['frame_error']:+.1f}% | {r['delta_ms']:.2f} | "
              f"{r['measured_delta_ms']:.2f} | {100 * r['delta_error']:+.1f}% | "
              f"{100 * r['positions_check']['median_error']:.1f}% | {'yes' if r['on_target'] else 'no'} |")
    if rows:
        errors = [abs(r["frame_error"]) for r in rows]
        print(f"median |error| per frame {100 * statistics.median(errors):.1f}%")


if __name__ == "__main__":
    main()
