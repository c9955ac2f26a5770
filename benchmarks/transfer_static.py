"""Footage the gate never saw: calibrate the search's profiled running gate (``w``, profile 0.25) on the 15
ASL clips' validation frames to 0.39x per frame, then evaluate it on the held-out frames of the ASL clips and
of the three clips it never saw (bottle, car, one-by-one). Needs ``../shared/video``.

    python benchmarks/transfer_static.py

Prints table rows: footage | MMACs/frame | speed-up | fidelity | top-1 % | dense % | frames.
"""
import glob
from deltanas.analysis import evaluate
from deltanas.delta import convert
from deltanas.search._uniform import calibration_groups, uniform_threshold_for_budget
from deltanas.teachers import create_teacher
from deltanas.training import DataConfig, load_video_data

asl = sorted(glob.glob("../shared/video/asl-*.mkv"))
other = ["../shared/video/bottle-detection.mp4", "../shared/video/car-detection.mp4",
         "../shared/video/one-by-one-person-detection.mp4"]
teacher = create_teacher("efficientnet_lite0")
cal_cfg = DataConfig(videos=tuple(asl))
cal = load_video_data(cal_cfg)
k, size = cal_cfg.keyframe_interval, cal_cfg.eval_size
probe = convert(teacher, "full", input_hw=size)
layers, linear = probe.layer_infos(size)
target = (0.39 * k - 1) / (k - 1) * probe.cost(size).teacher_macs
groups = calibration_groups(cal.val_clips(), k, 2)
arch, macs = uniform_threshold_for_budget(teacher, layers, linear, target, 0.03, groups, size, "w", 0.25)
print("calibrated on ASL:", next(iter(arch.layers.values())), flush=True)
model = convert(teacher, arch, input_hw=size)
new = load_video_data(DataConfig(videos=tuple(other)))
for name, data in (("ASL (calibration clips), held-out frames", cal), ("bottle+car+one-by-one (unseen clips)", new)):
    r = evaluate(model, data.test_clips(), k, progress=False)
    c, a = r.cost(model.cost(size)), r.pooled
    print(f"| {name} | {c.per_frame(k)/1e6:.0f} | {c.speedup(k):.2f}x | {a.fidelity:.3f} | {100*a.top1:.1f} | {100*a.dense:.1f} | {a.frames} |", flush=True)
