"""``deltanas search``: supernet training with a MAC budget, derive, fine-tune, evaluate, report."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from .._run import RunDir
from ..analysis import EvalResult, evaluate_adaptive
from ..delta import Arch, DeltaModel, SearchSpace
from ..export import export_model, load_model
from ..teachers import Teacher, create_teacher
from ..training import VideoData, load_video_data, train
from ._budget import Budget
from ._config import SearchConfig
from ._derive import derive
from ._learned_gates import latency_budget
from ._distributed import init_distributed
from ._report import speed_report, write_outputs
from ._supernet import build_supernet
from ._train import train_supernet

__all__ = ["SearchResult", "search"]


@dataclass
class SearchResult:
    arch: Arch
    model: DeltaModel
    budget: Budget
    delta_macs: float
    test: EvalResult | None
    seconds: dict[str, float]
    run: RunDir
    probabilities: dict[str, dict[str, float]]  # final softmax(alpha) per layer and candidate


def search(config: SearchConfig, run: RunDir, *, resume: bool = False, data: VideoData | None = None,
           teacher: Teacher | None = None, progress: bool = True) -> SearchResult:
    ctx = init_distributed()
    if resume:
        config = SearchConfig.load(run.config)
    elif ctx.is_main:
        config.save(run.config)
    if config.threads:
        torch.set_num_threads(config.threads)
    seconds: dict[str, float] = {}
    started = time.time()
    teacher = teacher if teacher is not None else create_teacher(config.teacher)
    space = SearchSpace.load(config.space)
    supernet = build_supernet(teacher, space, config.data.eval_size)
    teacher_macs = float(sum(m[supernet.mixed[n].specs.index("full")] for n, m in supernet.macs.items())
                         + supernet.linear_macs)
    k = config.data.keyframe_interval
    gate_budget = None
    if config.cost == "latency":
        gate_budget = latency_budget(config)
        budget = None
    else:
        target = config.target if (config.target or config.target_frame) else "0.2x"
        budget = Budget.parse(target, teacher_macs, k, config.target_frame)
        budget.check_reachable(supernet.cheapest_macs())  # refused before any training
    data = data if data is not None else load_video_data(config.data, teacher=config.teacher)
    if ctx.is_main:
        asked = budget.describe() if budget is not None else gate_budget.describe()
        run.log(f"search {config.teacher} space={space.name} budget {asked} world={ctx.world_size}")

    if config.supernet and budget is not None:
        train_supernet(config, run, supernet, budget, data, ctx, resume, progress, seconds)
    t0 = time.time()
    derived = derive(supernet, budget, replace(config, supernet=config.supernet and budget is not None), data,
                     run if ctx.is_main else None, config.teacher, gate_budget, resume, progress and ctx.is_main)
    seconds["select"] = time.time() - t0  # calibrating, learning and scoring the candidates
    arch, delta_macs = derived.arch, derived.delta_macs
    if budget is None:  # a latency budget: the MACs it lands on
        budget = Budget(delta_macs, teacher_macs, k, f"--target-ms {config.target_ms:g}")
    arch_path = run.path / "derived_arch.json"
    if ctx.is_main:
        arch.save(arch_path)
        run.log(f"derived: {delta_macs / 1e6:.1f}M MACs per delta frame (target {budget.delta_macs / 1e6:.1f}M)")
    ctx.barrier()

    t0 = time.time()
    finetune_run = RunDir(run.path / "finetune")
    finetune_resume = resume and finetune_run.checkpoint.is_file()
    finetune_run.path.mkdir(parents=True, exist_ok=True)
    test = None
    if ctx.is_main:  # fine-tuning a fixed architecture is cheap: rank 0 does it, the others wait
        result = train(config.finetune_config(str(arch_path.resolve())), finetune_run, resume=finetune_resume,
                       data=data, teacher=teacher, progress=progress,
                       init_state=None if finetune_resume or derived.choice is None
                       else supernet.student_state_for(derived.choice))
        model, test = result.model, result.test
        seconds["finetune"] = time.time() - t0
        adaptive = None
        if config.adaptive_eval and test is not None:
            t0 = time.time()
            _, adaptive = evaluate_adaptive(model, data.train, data.test_clips(), config.data.keyframe_interval,
                                            progress=False)
            seconds["adaptive_eval"] = time.time() - t0
        export_model(model, run.path)
        measured = test.cost(model.cost(config.data.eval_size)) if test is not None and test.gated_macs else None
        speed = None
        if config.speed_report:
            t0 = time.time()
            speed = speed_report(model, data, config.data.keyframe_interval, run)
            seconds["speed"] = time.time() - t0
        write_outputs(run, config, supernet, derived, budget, test, measured, adaptive, seconds,
                       time.time() - started, speed)
    ctx.barrier()
    if not ctx.is_main:
        model = load_model(run.path, teacher)
    probs = {n: dict(zip(supernet.mixed[n].specs, p.tolist())) for n, p in supernet.probabilities().items()}
    return SearchResult(arch, model, budget, delta_macs, test, seconds, run, probs)
