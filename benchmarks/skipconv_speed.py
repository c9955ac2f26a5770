"""Skip-convolutions on CPU: does computing fewer output positions take less time?

    python benchmarks/skipconv_speed.py --out benchmarks/results/skipconv_speed.md

On real frames (the bundled ``bikes`` clip and, when present, ``../shared/video/one-by-one-person-detection.mp4``)
this takes the input delta of EfficientNet-Lite0 layers between a key frame and the frame 4 later, and
times, in the same run and on one thread:

* the dense teacher layer on the delta (``W dx``, the exact update a ``full`` student computes),
* a gated op's dense path (the students on the whole map, then masked) and its sparse path (gather the
  active blocks with their halo, compute them as one batch, scatter back),
* the gate alone,

and the whole network on a delta frame (``delta_frames``) against the teacher on the same frame.
Times are the minimum over interleaved rounds (the machine may be shared). MACs are what the sparse
path computes (``GatedDelta.last_macs``), as a fraction of the teacher layer's.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deltanas.delta import GatedDelta, LayerInfo, convert, gated_layers, make_op
from deltanas.teachers import create_teacher
from deltanas.video import read_frames

LAYERS = ["_conv_stem", "_blocks.1._expand_conv", "_blocks.1._depthwise_conv", "_blocks.2._project_conv",
          "_blocks.9._expand_conv", "_blocks.9._project_conv", "_blocks.15._project_conv", "_conv_head"]
LAYER_OPS = ["gated:p0.25(full)", "gated:p0.25:b4(full)", "gated:p0.25:b8(full)", "gated:p0.1:b8(full)",
             "gated:t2:b8(full)"]
NET_OPS = ["gated:p0.25(full)", "gated:p0.25:b8(full)", "gated:t2:b8(full)"]
SHARED_CLIP = Path(__file__).resolve().parents[2] / "shared" / "video" / "one-by-one-person-detection.mp4"


def best_times(fns: dict[str, callable], rounds: int) -> dict[str, float]:
    """Minimum wall time (ms) per function over ``rounds`` interleaved rounds, after one warm-up."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: 1e3 * t for name, t in best.items()}


def layer_inputs(teacher: nn.Module, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every conv's input on ``frames`` (a batch), by layer name."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: inputs.__setitem__(name, args[0]))
             for name, m in teacher.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        teacher.forward_features(teacher.normalize(frames))
    finally:
        for h in hooks:
            h.remove()
    return inputs


@torch.no_grad()
def bench_layers(teacher, key: torch.Tensor, frame: torch.Tensor, rounds: int, stats: list) -> list[str]:
    inputs = layer_inputs(teacher, torch.cat([key, frame]))
    rows = []
    for name in LAYERS:
        conv = teacher.get_submodule(name)
        x = inputs[name]
        dx = (x[1:] - x[:1]).contiguous()
        layer = LayerInfo.from_conv(name, conv, tuple(dx.shape[-2:]))
        fns = {"teacher": lambda: F.conv2d(dx, conv.weight, None, conv.stride, conv.padding, conv.dilation,
                                           conv.groups)}
        modules: dict[str, GatedDelta] = {}
        for spec in LAYER_OPS:
            m = make_op(spec).build(layer, conv).eval()
            dense, sparse = m, make_op(spec).build(layer, conv).eval()
            sparse.sparse = True
            modules[spec] = m
            fns[f"{spec} dense"] = lambda m=dense: m(dx)
            fns[f"{spec} sparse"] = lambda m=sparse: m(dx)
            fns[f"{spec} gate"] = lambda m=m: m.gate(dx, layer, m.block)
        t = best_times(fns, rounds)
        shape = f"{layer.in_channels}->{layer.out_channels} k{layer.kernel[0]} s{layer.stride[0]}" + \
                (" dw" if layer.is_depthwise else "") + f" @{layer.in_hw[0]}x{layer.in_hw[1]}"
        for spec, m in modules.items():
            m(dx)
            macs = m.last_macs / layer.teacher_macs
            sparse_ms = t[spec + " sparse"]
            stats.append((name, spec, macs, sparse_ms / t["teacher"], sparse_ms / t[spec + " dense"]))
            rows.append(f"| {name} | {shape} | {spec} | {m.last_active_fraction:.2f} | {macs:.2f} | "
                        f"{t['teacher']:.2f} | {t[spec + ' gate']:.2f} | {t[spec + ' dense']:.2f} | "
                        f"{t[spec + ' sparse']:.2f} | **{t[spec + ' sparse'] / t['teacher']:.2f}** |")
    return rows


def fidelity(out: torch.Tensor, ref: torch.Tensor, ref_key: torch.Tensor) -> float:
    return float(1 - (out - ref).pow(2).sum() / (ref - ref_key).pow(2).sum().clamp_min(1e-12))


@torch.no_grad()
def bench_network(teacher, key: torch.Tensor, frame: torch.Tensor, size: tuple[int, int], rounds: int) -> list[str]:
    rows = []
    reference = convert(teacher, "full", input_hw=size).eval()
    ref_key, ref = reference.teacher_forward(key), reference.teacher_forward(frame)
    for spec in NET_OPS:
        models = {}
        for sparse in (False, True):
            model = convert(teacher, spec, input_hw=size).eval()
            for m in gated_layers(model).values():
                m.sparse = sparse
            model.key_frame(key)
            models[sparse] = model
        t = best_times({"teacher": lambda: reference.teacher_forward(frame),
                        "dense": lambda: models[False].delta_frames(frame),
                        "sparse": lambda: models[True].delta_frames(frame)}, rounds)
        model = models[True]
        out = model.delta_frames(frame)
        gated = gated_layers(model).values()
        macs = sum(m.last_macs for m in gated)
        cost = model.cost(size)
        ungated = sum(c.student_macs for c in cost.layers if not c.op.startswith("gated"))
        measured = cost.linear_macs + macs + ungated
        rows.append(f"| {spec} | {measured / cost.teacher_macs:.2f} | {fidelity(out, ref, ref_key):.3f} | "
                    f"{t['teacher']:.1f} | {t['dense']:.1f} | {t['sparse']:.1f} | **{t['sparse'] / t['teacher']:.2f}** |")
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=(256, 448), metavar=("H", "W"))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    started = time.time()
    teacher = create_teacher("efficientnet_lite0").eval()
    clips = {"bikes": "bikes"}
    if SHARED_CLIP.is_file():
        clips["one-by-one-person-detection"] = str(SHARED_CLIP)
    stats: list[tuple[str, str, float, float, float]] = []
    lines = [
        "# Skip-convolutions on CPU: sparse vs dense paths (EfficientNet-Lite0)",
        "",
        f"`python benchmarks/skipconv_speed.py{' --out ' + str(args.out) if args.out else ''}` "
        f"({size[0]}x{size[1]}, {args.rounds} rounds, min time); {cpu_name()}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}, load average at start {os.getloadavg()[0]:.1f} (shared machine).",
        "Delta = frame 4 minus frame 0 (key frame) of each clip. *sparse / teacher* < 1 means the sparse path is",
        "faster than the dense teacher layer on the same delta. *dense* is the masked dense path (the reference and",
        "training path: it computes everything). *fidelity* is of this one frame's output features only (a",
        "near-static frame has a tiny teacher delta, so it is noisy): a sanity column, not a quality claim.",
        "",
        "SUMMARY",
    ]
    for clip, source in clips.items():
        frames = read_frames(source, size, max_frames=5).float().div_(255)
        key, frame = frames[:1], frames[4:5]
        lines += ["", f"## {clip}: single layers", "",
                  "| layer | shape | op | active | MACs / teacher | teacher ms | gate ms | dense ms | sparse ms "
                  "| sparse / teacher |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += bench_layers(teacher, key, frame, args.rounds, stats)
        lines += ["", f"## {clip}: whole network, one delta frame", "",
                  "| op (every conv) | MACs / teacher | fidelity (this frame) | teacher ms | dense ms | sparse ms "
                  "| sparse / teacher |",
                  "|---|---|---|---|---|---|---|"]
        lines += bench_network(teacher, key, frame, size, max(2, args.rounds // 2))
        print(f"{clip} done after {time.time() - started:.0f} s", flush=True)
    faster = [r for r in stats if r[3] < 1]
    sparse_wins = [r for r in stats if r[4] < 1]
    best = min(stats, key=lambda r: r[3])
    summary = [
        "## Summary (computed from the tables below)",
        "",
        f"- Single layers: the sparse path beat the dense teacher layer in {len(faster)} of {len(stats)} cases"
        + (" (" + "; ".join(f"{n} {o}: {r:.2f}x the time at {m:.2f}x the MACs" for n, o, m, r, _ in faster) + ")"
           if faster else "") + f"; best ratio {best[3]:.2f} ({best[0]}, {best[1]}, MACs {best[2]:.2f}).",
        f"- It beat the dense masked path in {len(sparse_wins)} of {len(stats)} cases.",
        "- Why sparsity does not turn into time here: Lite0's layers are memory-bound on one CPU thread (1x1 convs",
        "  with few input channels, depthwise convs), so a pass over the data costs about as much as the conv. The",
        "  gate reads dx once (as much as a depthwise conv or a narrow 1x1 conv by itself), the update is written",
        "  into a zeroed dense NCHW output (a full pass), and the scatter of C_out-strided tiles and the gather of",
        "  patches with their halo add more. Per-position gating (no block) makes the scatter/gather the most",
        "  irregular; blocks help it, but on the 8x14 maps of the last stages one 8x8 block is half the map.",
        "  Only compute-heavy 1x1 convs (many input channels) come near parity, and a layer wins outright only",
        "  when the gate leaves (almost) nothing to compute.",
        "- MACs count the gate (C_in H W) and whole blocks (a border block counts in full). On a depthwise conv",
        "  the gate is a large share of the layer (4/9 of a 3x3 stride-2 one), so gating it saves little even in MACs.",
        "",
    ]
    lines[lines.index("SUMMARY"):lines.index("SUMMARY") + 1] = summary
    lines += ["", f"Total benchmark time {time.time() - started:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
