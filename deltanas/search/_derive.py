"""The architecture a search fine-tunes: the supernet's choice fitted to the budget, against the uniform
skip-convolutions of the same budget, selected on frames."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._run import RunDir
from ..analysis import Agreement, evaluate
from ..analysis.plots import plot_learned_gates
from ..delta import Arch, convert
from ..errors import ConfigError
from ..training import VideoData
from ._budget import Budget
from ._config import SearchConfig
from ._knapsack import fit_to_budget
from ._learned_gates import GateBudget, gate_table, learn_gates, relative_scales
from ._select import SELECT_METRICS, candidate_choices, select_on_frames, selection_rank
from ._supernet import Supernet
from ._uniform import (arch_delta_macs, calibration_groups, uniform_for_budget, uniform_gated_template,
                       uniform_threshold_for_budget)

__all__ = ["Derived", "derive"]


@dataclass(frozen=True)
class Derived:
    """The architecture a search fine-tunes: a choice among the supernet's candidates, or the
    budget-matched uniform skip-convolution (``choice`` None) when that won the selection."""

    arch: Arch
    delta_macs: float
    choice: dict[str, int] | None
    label: str


def derive(supernet: Supernet, budget: Budget | None, config: SearchConfig, data: VideoData | None = None,
           run: RunDir | None = None, teacher_name: str | None = None, gate_budget: GateBudget | None = None,
           resume: bool = False, progress: bool = False) -> Derived:
    """The architecture to fine-tune. Argmax per layer when it already lands within the tolerance of
    the budget (and, with ``hard``, not above it); else the best-scoring choice inside the band
    (exact knapsack). With ``config.select_groups`` and data, that choice competes with choices that
    prefer one operator family (see ``_select``) and with the uniform skip-convolutions that fit the
    budget (see ``_uniform``; the threshold ones not with ``hard``: their MACs on other footage are
    measured, not guaranteed), and with ``config.learn_gates`` the per-layer thresholds learned from the
    calibrated stride profile (``_learned_gates``), on up to ``select_groups`` key-frame groups per clip of
    the validation split, topped up with groups of the training split to ``6 x select_groups`` groups in all
    where the validation split holds fewer (``VideoData.selection_clips``), ranked by ``config.select_metric``
    (``selection_rank``; fidelity by default). Training frames are fair for the candidates: the
    skip-convolutions are untrained, and the students saw the training frames only as random crops at
    another size (BENCHMARKS.md, selection frames). Without ``config.supernet`` only the skip-convolutions
    compete. ``gate_budget`` (default: the MACs of ``budget``) is what the threshold candidates land on."""
    results: dict[str, Agreement] = {}
    derived = None
    if config.supernet:
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
    elif data is None:
        raise ConfigError("a search without a supernet needs frames to calibrate its gates on")
    k, size = config.data.keyframe_interval, config.data.eval_size
    clips = data.selection_clips(k, config.select_groups, _SELECTION_GROUPS * max(1, config.select_groups))
    metric = config.select_metric
    best, candidates = None, {}
    if config.supernet:
        candidates = (candidate_choices(supernet, budget, config.tolerance, choice) if config.prefer_candidates
                      else {"logits": choice})
        best, results = select_on_frames(supernet, candidates, clips, k, config.select_groups, metric)
        derived = Derived(supernet.arch(candidates[best], teacher_name), supernet.macs_of(candidates[best]),
                          candidates[best], best)
    gate_budget = gate_budget or GateBudget.macs(budget.delta_macs)
    uniform = _uniform_candidates(supernet, config, clips, gate_budget, data, run, resume, progress)
    for label, (arch, uniform_macs) in uniform.items():
        model = convert(supernet.teacher, arch, input_hw=size)
        results[label] = evaluate(model, clips, k, progress=False, max_groups=max(1, config.select_groups)).pooled
        if best is None or selection_rank(results[label], metric) > selection_rank(results[best], metric):
            best = label
            if gate_budget.latency is not None:  # its cost is in ms: count its MACs
                uniform_macs = arch_delta_macs(arch, supernet.layers, supernet.linear_macs)
            derived = Derived(Arch(layers=arch.layers, default=arch.default, teacher=teacher_name), uniform_macs,
                              None, label)
    if derived is None:
        raise ConfigError(f"no skip-convolution lands in the budget ({gate_budget.describe()}) on these frames")
    if run is not None:
        frames = {name: min(len(f), k * max(1, config.select_groups)) for name, f in clips}
        scores = {m: {label: getattr(a, m) for label, a in results.items()} for m in SELECT_METRICS}
        reuse_top1 = results[best].reuse_top1  # the same frames for every candidate
        specs = {**{label: supernet.arch(c, teacher_name).to_dict() for label, c in candidates.items()},
                 **{label: arch.to_dict() for label, (arch, _) in uniform.items()}}
        run.write_json(run.path / "selection.json", {"chosen": best, "metric": metric, **scores,
                                                     "reuse_top1": reuse_top1, "frames": frames,
                                                     "budget": gate_budget.describe(),
                                                     "cost": {label: c for label, (_, c) in uniform.items()},
                                                     "archs": specs})
        reference = f"; logits {scores[metric]['logits']:.3f}" if "logits" in results else ""
        run.log(f"selection on {sum(frames.values())} frames ({len(frames)} clips) by {metric}: {best} "
                f"({metric} {scores[metric][best]:.3f}{reference}; key-frame reuse has top-1 {reuse_top1:.3f} there)")
    return derived


# (label, gate, profile) of the calibrated threshold candidates (see uniform_threshold_for_budget): the
# frame-relative threshold, and the weighted running gate profiled by stride, its depthwise layers passing
# every change (wc; BENCHMARKS.md, running reference and depthwise layers).
_THRESHOLD_CANDIDATES = (("threshold", "t", 0.0), ("running-profiled", "wc", 0.25))
_CALIBRATION_GROUPS = 2  # key-frame groups per selection clip that calibrate a threshold
# The selection holds at least this many times select_groups key-frame groups, topped up from the training
# split (BENCHMARKS.md, selection frames).
_SELECTION_GROUPS = 6


def _uniform_candidates(supernet: Supernet, config: SearchConfig, clips: list[tuple[str, torch.Tensor]],
                        gate_budget: GateBudget, data: VideoData, run: RunDir | None, resume: bool,
                        progress: bool) -> dict[str, tuple[Arch, float]]:
    """``{label: (arch, delta cost)}``: the uniform skip-convolutions in the budget band when the space
    gates the teacher copy: top-p (in MACs), and without ``hard`` (their spend on other footage is measured,
    not guaranteed) the frame-relative threshold and the weighted threshold against a running reference,
    profiled by layer stride (``_THRESHOLD_CANDIDATES``), and with ``learn_gates`` that gate's thresholds
    learned per layer from the profile, rescaled onto the budget on the calibration groups."""
    template = uniform_gated_template([s for m in supernet.mixed.values() for s in m.specs])
    if template is None:
        return {}
    layers, linear, size = supernet.layers, supernet.linear_macs, config.data.eval_size
    target, cost_of = gate_budget.target, gate_budget.cost_of(layers)
    found = {}
    if cost_of is None:  # top-p lands on MACs exactly, not on a measured cost
        found["top-p"] = uniform_for_budget(template, layers, linear, target, config.tolerance)
    if config.threshold_candidate and not config.hard:
        groups = calibration_groups(clips, config.data.keyframe_interval,
                                    min(max(1, config.select_groups), _CALIBRATION_GROUPS))
        for kind, gate, profile in _THRESHOLD_CANDIDATES:
            found[kind] = uniform_threshold_for_budget(supernet.teacher, layers, linear, target, config.tolerance,
                                                       groups, size, gate, profile, cost_of=cost_of)
        if config.learn_gates and found["running-profiled"] is not None:
            start = found["running-profiled"][0]
            learned = learn_gates(supernet.teacher, start, gate_budget.linear_cost(layers, start, linear), target,
                                  data, config.data, config.gate_schedule(), run, resume, progress)
            if run is not None:
                run.log(f"learned gates: {learned.steps} steps in {learned.seconds:.0f} s, spend on the last batch "
                        f"{learned.spend_over_target:.3f} x target (relaxed {learned.relaxed_over_target:.3f})")
            found["learned"] = uniform_threshold_for_budget(
                supernet.teacher, layers, linear, target, config.tolerance, groups, size, "wc",
                scales=relative_scales(learned.thresholds), cost_of=cost_of)
            if run is not None:
                archs = {"stride profile": start, **({"learned": found["learned"][0]} if found["learned"] else {})}
                rows = gate_table(layers, archs)
                run.write_json(run.path / "learned_gates.json", {"thresholds": learned.thresholds,
                                                                 "start": start.to_dict(), "layers": rows})
                plot_learned_gates(rows, list(archs), run.path / "learned_gates")
    labelled = {}
    for kind, candidate in found.items():
        if candidate is not None:
            arch = candidate[0]
            spec = arch.default if kind == "top-p" else next(iter(arch.layers.values()))  # e.g. the stem's
            label = "learned gates" if kind == "learned" else f"uniform {kind} {spec}"
            labelled[label] = candidate
    return labelled
