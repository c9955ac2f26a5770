"""Fixed K against adaptive key frames at the same key-frame budget, per footage regime.

    python benchmarks/keyframes.py --videos shared --designs zero "gated:p0.25(full)" "gated:p0.5(full)"

The adaptive policy is calibrated on the training split of the same clips (`calibrate_keyframes`: a key
frame when the input changed most, at most 2K apart, held to 1/K key frames per frame) and evaluated on
the held-out split. MACs per frame count the key frames each policy really ran. Top-1 and dense
agreement compare directly; fidelity is measured against reusing the key frame *under the same key
frames*, so the reuse rows give each policy's floor; `err/K-floor` (1 - logit error over the fixed-K
reuse error) compares both policies on one scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deltanas.analysis import evaluate, keyframe_groups
from deltanas.delta import calibrate_keyframes, convert
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data


@torch.no_grad()
def logit_error(model, clips, k, policy) -> float:
    """Sum of squared logit errors against the teacher over the clips' frames."""
    teacher, total = model.teacher, 0.0
    for _, frames in clips:
        for group in keyframe_groups(frames, k, policy):
            ref = teacher.logits_from_features(model.teacher_forward(group))
            out = teacher.logits_from_features(model.forward_group(group[None])[0])
            total += float((out - ref).pow(2).sum())
    return total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", nargs="+", default=["bundled"])
    p.add_argument("--designs", nargs="+", default=["zero", "gated:p0.25(full)", "gated:p0.5(full)"])
    p.add_argument("--keyframe", type=int, default=8)
    p.add_argument("--max-frames", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    config = DataConfig(videos=tuple(args.videos), keyframe_interval=args.keyframe, max_frames=args.max_frames)
    data = load_video_data(config)
    clips, k = data.test_clips(), args.keyframe
    policy = calibrate_keyframes(data.train, k)
    teacher = create_teacher("efficientnet_lite0")
    floor = logit_error(convert(teacher, "zero", input_hw=config.eval_size), clips, k, None)
    rows = [f"Footage: {', '.join(data.names)} (held-out frames: {sum(len(f) for _, f in clips)}); adaptive policy: "
            f"threshold {policy.threshold:.3g}, at most {policy.interval} apart, key rate 1/{k}.", "",
            "| design | key frames | MMACs/frame | speed-up | top-1 % | dense % | fidelity (own floor) | "
            "err/K-floor |", "|---|---|---|---|---|---|---|---|"]
    for design in args.designs:
        model = convert(teacher, design, input_hw=config.eval_size)
        for label, pol in (("fixed K=%d" % k, None), ("adaptive", policy)):
            result = evaluate(model, clips, k, progress=False, policy=pol)
            a, interval = result.pooled, result.effective_interval
            cost = result.cost(model.cost(config.eval_size))
            rel = 1 - logit_error(model, clips, k, pol) / floor
            rows.append(f"| {design} | {label}: {result.key_frames}/{result.frames} | "
                        f"{cost.per_frame(interval) / 1e6:.0f} | {cost.speedup(interval):.2f}x | {100 * a.top1:.1f} | "
                        f"{100 * a.dense:.1f} | {a.fidelity:.3f} | {rel:.3f} |")
            print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
