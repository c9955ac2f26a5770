"""``deltanas search``: supernet training with a MAC budget, derive, fine-tune, evaluate."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .._io import atomic_write_text
from .._run import RunDir, RunSummary
from ..analysis import EvalResult, evaluate, evaluate_adaptive, speed_summary
from ..analysis.plots import plot_arch_choice
from ..delta import Arch, CostReport, DeltaModel, SearchSpace, averaged_macs, convert
from ..errors import DeltaNASError, TrainingError
from ..export import export_model, load_model
from ..teachers import Teacher, create_teacher
from ..training import DistillLoss, LossWeights, VideoData, load_video_data, train
from ._budget import Budget
from ._config import SearchConfig
from ._derive import fit_to_budget
from ._select import SELECT_METRICS, candidate_choices, select_on_frames, selection_rank
from ._uniform import calibration_groups, uniform_for_budget, uniform_gated_template, uniform_threshold_for_budget
from ._distributed import DistContext, init_distributed
from ._penalty import make_penalty
from ._sensitivity import layer_sensitivity, logits_for_budget
from ._supernet import Supernet, build_supernet

__all__ = ["SearchResult", "search", "derive"]


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


class _Objective(nn.Module):
    """One search step's loss as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, supernet: Supernet, loss: DistillLoss) -> None:
        super().__init__()
        self.model = supernet.model
        self.supernet = supernet
        self.loss = loss

    def forward(self, frames: torch.Tensor):
        return self.loss(frames), self.supernet.expected_macs()


@dataclass(frozen=True)
class Derived:
    """The architecture a search fine-tunes: a choice among the supernet's candidates, or the
    budget-matched uniform skip-convolution (``choice`` None) when that won the selection."""

    arch: Arch
    delta_macs: float
    choice: dict[str, int] | None
    label: str


def derive(supernet: Supernet, budget: Budget, config: SearchConfig, data: VideoData | None = None,
           run: RunDir | None = None, teacher_name: str | None = None) -> Derived:
    """The architecture to fine-tune. Argmax per layer when it already lands within the tolerance of
    the budget (and, with ``hard``, not above it); else the best-scoring choice inside the band
    (exact knapsack). With ``config.select_groups`` and data, that choice competes with choices that
    prefer one operator family (see ``_select``) and with the uniform skip-convolutions that fit the
    budget (see ``_uniform``; the threshold ones not with ``hard``: their MACs on other footage are
    measured, not guaranteed), on up to ``select_groups`` key-frame groups per clip of the validation
    split, topped up with groups of the training split to ``6 x select_groups`` groups in all where the
    validation split holds fewer (``VideoData.selection_clips``), ranked by ``config.select_metric``
    (``selection_rank``; fidelity by default). The validation frames of short clips
    alone ranked the candidates by chance (BENCHMARKS.md section 2d); the skip-convolutions are
    untrained, and the students saw the training frames only as random crops at another size."""
    choice = supernet.argmax()
    macs = supernet.macs_of(choice)
    target = budget.delta_macs
    in_band = abs(macs / target - 1) <= config.tolerance and not (config.hard and macs > target)
    if not in_band:
        choice = fit_to_budget(choice, supernet.log_probabilities(), supernet.macs, supernet.linear_macs, target,
                               config.tolerance)
    derived = Derived(supernet.arch(choice, teacher_name), supernet.macs_of(choice), choice, "logits")
    if data is None or config.select_groups <= 0:
        return derived
    candidates = (candidate_choices(supernet, budget, config.tolerance, choice) if config.prefer_candidates
                  else {"logits": choice})
    k, size = config.data.keyframe_interval, config.data.eval_size
    clips = data.selection_clips(k, config.select_groups, _SELECTION_GROUPS * config.select_groups)
    metric = config.select_metric
    best, results = select_on_frames(supernet, candidates, clips, k, config.select_groups, metric)
    derived = Derived(supernet.arch(candidates[best], teacher_name), supernet.macs_of(candidates[best]),
                      candidates[best], best)
    for label, (arch, uniform_macs) in _uniform_candidates(supernet, config, clips, target).items():
        model = convert(supernet.teacher, arch, input_hw=size)
        results[label] = evaluate(model, clips, k, progress=False, max_groups=config.select_groups).pooled
        if selection_rank(results[label], metric) > selection_rank(results[best], metric):
            best = label
            derived = Derived(Arch(layers=arch.layers, default=arch.default, teacher=teacher_name), uniform_macs,
                              None, label)
    if run is not None:
        frames = {name: min(len(f), k * config.select_groups) for name, f in clips}
        scores = {m: {label: getattr(a, m) for label, a in results.items()} for m in SELECT_METRICS}
        reuse_top1 = results[best].reuse_top1  # the same frames for every candidate
        run.write_json(run.path / "selection.json", {"chosen": best, "metric": metric, **scores,
                                                     "reuse_top1": reuse_top1, "frames": frames})
        run.log(f"selection on {sum(frames.values())} frames ({len(frames)} clips) by {metric}: {best} "
                f"({metric} {scores[metric][best]:.3f}; logits {scores[metric]['logits']:.3f}; "
                f"key-frame reuse has top-1 {reuse_top1:.3f} there)")
    return derived


# (label, gate, profile) of the calibrated threshold candidates (see uniform_threshold_for_budget). The
# running gate without a profile is left out: it never scored above the profiled one (BENCHMARKS.md 6e, 2d);
# its depthwise layers pass every change (wc), which beat thresholding them at every budget (section 2f).
_THRESHOLD_CANDIDATES = (("threshold", "t", 0.0), ("running-profiled", "wc", 0.25))
_CALIBRATION_GROUPS = 2  # key-frame groups per selection clip that calibrate a threshold
# The selection holds at least this many times select_groups key-frame groups, topped up from the training
# split: the 7 validation groups of the bundled clips ranked candidates by chance, 19 did not (section 2d).
_SELECTION_GROUPS = 6


def _uniform_candidates(supernet: Supernet, config: SearchConfig, clips: list[tuple[str, torch.Tensor]],
                        target: float) -> dict[str, tuple[Arch, float]]:
    """``{label: (arch, delta MACs)}``: the uniform skip-convolutions in the budget band when the space
    gates the teacher copy: top-p, and without ``hard`` (their MACs on other footage are measured, not
    guaranteed) the frame-relative threshold and the weighted threshold against a running reference,
    profiled by layer stride (``_THRESHOLD_CANDIDATES``)."""
    template = uniform_gated_template([s for m in supernet.mixed.values() for s in m.specs])
    if template is None:
        return {}
    found = {"top-p": uniform_for_budget(template, supernet.layers, supernet.linear_macs, target, config.tolerance)}
    if config.threshold_candidate and not config.hard:
        groups = calibration_groups(clips, config.data.keyframe_interval,
                                    min(config.select_groups, _CALIBRATION_GROUPS))
        for kind, gate, profile in _THRESHOLD_CANDIDATES:
            found[kind] = uniform_threshold_for_budget(supernet.teacher, supernet.layers, supernet.linear_macs,
                                                       target, config.tolerance, groups, config.data.eval_size,
                                                       gate, profile)
    labelled = {}
    for kind, candidate in found.items():
        if candidate is not None:
            arch = candidate[0]
            spec = arch.default if kind == "top-p" else next(iter(arch.layers.values()))  # e.g. the stem's
            labelled[f"uniform {kind} {spec}"] = candidate
    return labelled


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
    target = config.target if (config.target or config.target_frame) else "0.2x"
    budget = Budget.parse(target, teacher_macs, config.data.keyframe_interval, config.target_frame)
    budget.check_reachable(supernet.cheapest_macs())  # refused before any training
    data = data if data is not None else load_video_data(config.data)
    if ctx.is_main:
        run.log(f"search {config.teacher} space={space.name} budget {budget.describe()} world={ctx.world_size}")

    derived = _supernet_phase(config, run, supernet, budget, data, ctx, resume, progress, seconds)
    arch, delta_macs = derived.arch, derived.delta_macs
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
            speed = _speed(model, data, config.data.keyframe_interval, run)
            seconds["speed"] = time.time() - t0
        _write_outputs(run, config, supernet, derived, budget, test, measured, adaptive, seconds,
                       time.time() - started, speed)
    ctx.barrier()
    if not ctx.is_main:
        model = load_model(run.path, teacher)
    probs = {n: dict(zip(supernet.mixed[n].specs, p.tolist())) for n, p in supernet.probabilities().items()}
    return SearchResult(arch, model, budget, delta_macs, test, seconds, run, probs)


def _supernet_phase(config: SearchConfig, run: RunDir, supernet: Supernet, budget: Budget, data: VideoData,
                    ctx: DistContext, resume: bool, progress: bool, seconds: dict[str, float]) -> Derived:
    ckpt_path = run.path / "search_checkpoint.pt"
    data_gen = torch.Generator().manual_seed(config.seed * 1000 + ctx.rank)
    arch_gen = torch.Generator().manual_seed(config.seed)  # the same on every rank: same sampled ops
    sampler = data.sampler(config.data, data_gen)
    loss = DistillLoss(supernet.model, LossWeights(config.output_weight, config.kl_weight, config.layer_weight,
                                                    config.anchor_weight))
    penalty = make_penalty(config.penalty, config.penalty_weight)
    if config.penalty == "lagrangian":
        penalty.rate = config.dual_rate
    weights_opt = torch.optim.AdamW(supernet.weight_parameters(), lr=config.weight_lr)
    arch_opt = torch.optim.Adam(supernet.alpha_parameters(), lr=config.arch_lr, betas=(0.5, 0.999))
    step = 0
    if resume and ckpt_path.is_file():
        state = run.load_checkpoint(ckpt_path)
        supernet.model.load_state_dict(state["supernet"], strict=False)
        weights_opt.load_state_dict(state["weights_opt"])
        arch_opt.load_state_dict(state["arch_opt"])
        data_gen.set_state(state["data_gen"])
        arch_gen.set_state(state["arch_gen"])
        penalty.load_state(state["penalty"])
        step = state["step"]
        run.truncate_metrics(step, run.path / "search_metrics.csv")
        run.truncate_metrics(step, run.path / "probs.csv")
        if ctx.is_main:
            run.log(f"search resumed at step {step}")
    else:
        t0 = time.time()
        if config.prior == "sensitivity":
            prior_gen = torch.Generator().manual_seed(config.seed + 7919)
            groups = data.sampler(config.data, prior_gen).sample(config.prior_groups).frames
            errors = layer_sensitivity(supernet, groups, progress=progress and ctx.is_main)
            logits, mu = logits_for_budget(errors, supernet.macs, supernet.linear_macs, budget.delta_macs,
                                           config.prior_scale)
            with torch.no_grad():
                for name, value in logits.items():
                    supernet.mixed[name].alpha.copy_(value)
            if ctx.is_main:
                run.log(f"sensitivity prior: mu={mu:.4g}, expected MACs at start "
                        f"{float(supernet.expected_macs().detach()) / budget.delta_macs:.3f} x target")
            if ctx.is_main:
                run.write_json(run.path / "sensitivity.json",
                               {n: dict(zip(supernet.mixed[n].specs, e.tolist())) for n, e in errors.items()})
        seconds["prior"] = time.time() - t0

    objective: nn.Module = _Objective(supernet, loss)
    if ctx.enabled:
        objective = nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True,
                                                        broadcast_buffers=False)

    def checkpoint() -> None:
        if ctx.is_main:
            students = {k: v for k, v in supernet.model.state_dict().items() if ".student." in k}
            run.save_checkpoint({"step": step, "supernet": students, "weights_opt": weights_opt.state_dict(),
                                 "arch_opt": arch_opt.state_dict(), "data_gen": data_gen.get_state(),
                                 "arch_gen": arch_gen.get_state(), "penalty": penalty.state()}, ckpt_path)

    t0 = time.time()
    target = budget.delta_macs
    supernet.model.train()
    bar = tqdm(total=config.steps, initial=step, desc=f"search {run.path.name}", unit="step",
               disable=not (progress and ctx.is_main))
    while step < config.steps:
        tau = config.tau(step)
        supernet.sample(tau, config.gumbel == "hard", arch_gen)
        frames = sampler.sample(config.batch_groups).frames
        terms, expected = objective(frames)
        total = penalty.combine(terms.total, expected.float(), target)
        if not torch.isfinite(total):
            raise TrainingError(f"search loss became {float(total)} at step {step + 1}: lower --arch-lr/--lr "
                                f"(--resume continues from the last checkpoint)")
        weights_opt.zero_grad(set_to_none=True)
        arch_opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(supernet.weight_parameters(), 1.0)
        weights_opt.step()
        arch_moves = step >= config.warmup_steps
        if arch_moves:
            arch_opt.step()
            with torch.no_grad():
                penalty.after_step(float(supernet.expected_macs()), target)
        step += 1
        supernet.clear_sample()
        e = float(expected.detach())
        if ctx.is_main:
            run.append_metrics({"step": step, "tau": tau, **terms.as_dict(), "objective": float(total.detach()),
                                "expected_macs": e, "expected_over_target": e / target,
                                "penalty_weight": penalty.weight}, run.path / "search_metrics.csv")
            if step % config.log_every == 0 or step == config.steps:
                for name, probs in supernet.probabilities().items():
                    for spec, p in zip(supernet.mixed[name].specs, probs.tolist()):
                        run.append_metrics({"step": step, "layer": name, "op": spec, "prob": p},
                                           run.path / "probs.csv")
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
        bar.update()
        bar.set_postfix(loss=f"{terms.total.item():.3f}", E=f"{e / target:.2f}T", tau=f"{tau:.2f}")
    bar.close()
    seconds["search"] = seconds.get("search", 0.0) + time.time() - t0
    supernet.model.eval()
    t0 = time.time()
    derived = derive(supernet, budget, config, data, run if ctx.is_main else None, config.teacher)
    seconds["select"] = time.time() - t0  # calibrating and scoring the candidates
    return derived


def _speed(model: DeltaModel, data: VideoData, k: int, run: RunDir) -> tuple[dict, str] | None:
    """The result on the sparse engine against the fastest dense runtime (None, logged, where the engine cannot
    run the network)."""
    try:
        return speed_summary(model, [frames for _, frames in data.test_clips()], k)
    except DeltaNASError as exc:
        run.log(f"speed not measured: {exc}")
        return None


def _write_outputs(run: RunDir, config: SearchConfig, supernet: Supernet, derived: Derived, budget: Budget,
                   test: EvalResult | None, measured: CostReport | None, adaptive: dict | None,
                   seconds: dict[str, float], wall: float, speed: tuple[dict, str] | None = None) -> None:
    k, delta_macs = budget.keyframe_interval, derived.delta_macs
    rows = []
    probs = supernet.probabilities()
    ops = derived.arch.resolve(supernet.layers)
    for info in supernet.layers:
        op = str(ops[info.name])
        specs = supernet.mixed[info.name].specs
        prob = float(probs[info.name][specs.index(op)]) if op in specs else None  # outside the supernet
        rows.append({"layer": info.name, "op": op, "macs": float(ops[info.name].macs(info)),
                     "teacher_macs": info.teacher_macs, "prob": prob})
    plot_arch_choice(rows, run.path / "arch_choice")
    per_frame = averaged_macs(budget.teacher_macs, delta_macs, k)
    extra = {
        "space": config.space, "budget": budget.describe(), "asked": budget.asked,
        "target_delta_macs": budget.delta_macs, "delta_macs": delta_macs,
        "delta_over_target": delta_macs / budget.delta_macs, "hard": config.hard, "chosen": derived.label,
        "speedup": budget.teacher_macs / per_frame,
        "seconds": {**{n: round(s, 1) for n, s in seconds.items()}, "total": round(wall, 1)}, "layers": rows,
    }
    spent = None
    if test is not None:
        if measured is not None:  # gated layers: what they spent on the held-out frames
            spent = measured.per_frame(k)
            extra["test_speedup"] = measured.speedup(k)
        extra["test_per_clip"] = {n: a.as_dict() for n, a in test.per_clip.items()}
    if adaptive is not None:
        extra["test_adaptive"] = adaptive
    if speed is not None:
        extra["engine"] = speed[0]
    run.write_summary(RunSummary("search", config.teacher, k, budget.teacher_macs, per_frame, spent,
                                 test.pooled.as_dict() if test is not None else None, extra))
    line = (f"searched: {per_frame / 1e6:.1f} MMACs/frame at K={k} ({extra['speedup']:.2f}x), "
            f"delta frame {delta_macs / 1e6:.1f}M = {delta_macs / budget.delta_macs:.3f} x target")
    if test is not None:
        a = test.pooled
        line += (f"; held-out top-1 {100 * a.top1:.1f}% (key-frame reuse {100 * a.reuse_top1:.1f}%), "
                 f"dense {100 * a.dense:.1f}%")
    if measured is not None and measured.delta_macs != round(delta_macs):
        line += f" (spent there: {measured.per_frame(k) / 1e6:.1f} MMACs/frame, {measured.speedup(k):.2f}x)"
    if adaptive is not None:
        line += (f"; adaptive key frames ({adaptive['key_frames']}/{adaptive['frames']}): "
                 f"{adaptive['speedup']:.2f}x, top-1 {100 * adaptive['pooled']['top1']:.1f}%")
    line += f"; {wall:.0f} s"
    if speed is not None:
        line += "\n" + speed[1]
    run.log(line)
    atomic_write_text(run.path / "summary.txt", line + "\n")

