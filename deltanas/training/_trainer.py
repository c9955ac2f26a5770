"""Train the students of a fixed architecture by delta distillation, with checkpoints and resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping

import torch
from tqdm.auto import tqdm

from .._run import RunDir, RunSummary
from ..analysis import EvalResult, evaluate
from ..delta import Arch, DeltaModel, convert
from ..errors import TrainingError
from ..export import export_model, load_student_state, student_state
from ..teachers import Teacher, create_teacher
from ._config import TrainConfig
from ._data import VideoData, load_video_data
from ._loss import DistillLoss, LossWeights

__all__ = ["TrainResult", "train", "build_model", "lr_at"]


@dataclass
class TrainResult:
    model: DeltaModel
    run: RunDir
    steps_done: int
    best_step: int
    best_val: float
    test: EvalResult | None
    seconds: float


def build_model(config: TrainConfig, teacher: Teacher | None = None) -> DeltaModel:
    teacher = teacher if teacher is not None else create_teacher(config.teacher)
    return convert(teacher, Arch.parse(config.arch, teacher=config.teacher), input_hw=config.data.eval_size)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def validation_score(model: DeltaModel, data: VideoData, config: TrainConfig) -> float:
    result = evaluate(model, data.val_clips(), config.data.keyframe_interval,
                      progress=False, max_groups=config.val_groups)
    return result.pooled.fidelity


def train(config: TrainConfig, run: RunDir, *, resume: bool = False, data: VideoData | None = None,
          teacher: Teacher | None = None, progress: bool = True, evaluate_test: bool = True,
          init_state: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
    """Train ``config.arch`` and write the run folder. A killed run resumes from its last checkpoint.

    ``init_state`` starts the students from given weights (e.g. a supernet's) instead of the
    teacher-derived initialisation; it also becomes the anchor of the regulariser.
    """
    started = time.time()
    if resume:
        config = TrainConfig.load(run.config)
    else:
        config.save(run.config)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = build_model(config, teacher)
    if init_state is not None:
        load_student_state(model, init_state, "initial student weights")
    data = data if data is not None else load_video_data(config.data)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = data.sampler(config.data, generator)
    loss_fn = DistillLoss(model, LossWeights(config.output_weight, config.kl_weight, config.layer_weight,
                                             config.anchor_weight, config.gate_weight))
    params = model.student_parameters()
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) if params else None

    step, best_step, bad = 0, 0, 0
    best_val = -math.inf
    best_state = student_state(model)
    if resume and run.checkpoint.is_file():  # killed before its first checkpoint: starts over
        ckpt = run.load_checkpoint()
        load_student_state(model, ckpt["students"], str(run.checkpoint))
        best_state = ckpt["best_students"]
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        generator.set_state(ckpt["generator"])
        step, best_step, bad, best_val = ckpt["step"], ckpt["best_step"], ckpt["bad"], ckpt["best_val"]
        run.truncate_metrics(step)
        run.log(f"resumed at step {step}")
    else:
        run.log(f"train {config.arch} on {list(config.data.videos)}, {config.steps} steps, seed {config.seed}")

    def checkpoint() -> None:
        run.save_checkpoint({
            "step": step, "students": student_state(model), "best_students": best_state,
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "generator": generator.get_state(), "best_step": best_step, "bad": bad, "best_val": best_val,
        })

    stop = optimizer is None
    bar = tqdm(total=config.steps, initial=step, desc=f"train {run.path.name}", unit="step",
               disable=not progress or stop)
    model.train()
    while not stop and step < config.steps:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = sampler.sample(config.batch_groups).frames
        terms = loss_fn(batch)
        if not torch.isfinite(terms.total):
            run.log(f"loss is not finite at step {step}; stopped (checkpoint of step {step} kept)")
            raise TrainingError(f"loss became {float(terms.total.detach())} at step {step + 1}: lower --lr "
                                f"(the run folder keeps the last good checkpoint; --resume continues it)")
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        row = {"step": step, "lr": lr, **terms.as_dict(), "val_fidelity": ""}
        if step % config.val_every == 0 or step == config.steps:
            model.eval()
            score = validation_score(model, data, config)
            model.train()
            row["val_fidelity"] = score
            if score > best_val:
                best_val, best_step, bad, best_state = score, step, 0, student_state(model)
            else:
                bad += 1
                stop = config.patience > 0 and bad >= config.patience
                if stop:
                    run.log(f"early stop at step {step}: no better validation for {bad} checks")
        run.append_metrics(row)
        if step % config.checkpoint_every == 0 or step == config.steps or stop:
            checkpoint()
        bar.update()
        bar.set_postfix(loss=f"{terms.total.item():.3f}", val=f"{best_val:.3f}")
    bar.close()
    if optimizer is not None:
        load_student_state(model, best_state, "best checkpoint")
    model.eval()
    if optimizer is None or not run.checkpoint.exists():
        checkpoint()
    export_model(model, run.path)
    test = None
    if evaluate_test:
        test = evaluate(model, data.test_clips(), config.data.keyframe_interval, progress=progress)
    result = TrainResult(model, run, step, best_step, best_val, test, time.time() - started)
    write_summary(result, config)
    return result


def write_summary(result: TrainResult, config: TrainConfig) -> None:
    k = config.data.keyframe_interval
    cost = result.model.cost(config.data.eval_size)
    if result.test is not None:
        cost = result.test.cost(cost)  # gated layers: what they spent on the held-out frames
    extra = {
        "arch": config.arch,
        "eval_size": list(config.data.eval_size),
        "delta_macs": cost.delta_macs,
        "speedup": cost.speedup(k),
        "cache_bytes": cost.cache_bytes,
        "steps": result.steps_done,
        "best_step": result.best_step,
        "best_val_fidelity": result.best_val if math.isfinite(result.best_val) else None,
        "seconds": round(result.seconds, 1),
    }
    if result.test is not None:
        extra["test_per_clip"] = {n: a.as_dict() for n, a in result.test.per_clip.items()}
    summary = RunSummary("train", config.teacher, k, cost.teacher_macs, cost.per_frame(k),
                         test=result.test.pooled.as_dict() if result.test is not None else None, extra=extra)
    result.run.write_summary(summary)
    result.run.log(f"done: {summary.macs_per_frame / 1e6:.1f} MMACs/frame at K={k}")


