"""``deltanas sweep --mode gates``: one continuous threshold per stage of the weighted running gate.

A study is calibrated once (:meth:`GateObjective.prepare`): the search's calibrated candidate, the
threshold ``T0 x s^0.25`` at each layer of input stride ``s`` whose measured MACs land in the budget
on the validation groups (``uniform_threshold_for_budget(..., gate="wc", profile=0.25)``), is stored in
the study's user attrs and enqueued as its first trial. A trial then samples ``T`` per stage log-uniformly
in ``[t0 / 10, 10 t0]``, converts the teacher (nothing is trained), evaluates it on the same validation
groups and measures the MACs its gates spent there. Objectives: validation ``metric`` (fidelity by
default) up and measured MACs per frame averaged at K down, the budget a constraint (``macs <= target``,
``Trial.set_constraint`` where Optuna has it, else the sampler's ``constraints_func`` reading the user attr
``constraint``); with the single-objective CMA-ES, the metric minus ``over_budget_weight`` per unit of
relative excess over the budget. Each range is centred on the calibrated value in log scale, so CMA-ES
starts its search there.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .._run import RunDir
from ..analysis import EvalResult, evaluate
from ..delta import Arch, CostReport, convert
from ..errors import ConfigError
from ..search import Budget
# the search's calibration of a uniform threshold (not re-exported by deltanas.search)
from ..search._uniform import calibration_groups, uniform_threshold_for_budget
from ..teachers import Teacher, create_teacher
from ..training import VideoData, load_video_data
from ._config import SweepConfig
from ._gates import gate_arch, gate_stages, layer_thresholds, stage_stride, stage_thresholds

__all__ = ["CALIBRATION_ATTR", "GateObjective", "best_feasible", "gate_param", "trial_constraint"]

CALIBRATION_ATTR = "deltanas_gates_calibration"  # study user attr: the calibrated profile (a dict)
T0_ATTR = "gates_T0"  # study user attr: the calibrated base threshold
GATE, PROFILE = "wc", 0.25  # the search's best calibrated candidate: weighted running gate, stride profile
CALIBRATION_TOLERANCE = 0.03  # the calibrated MACs land in [(1 - this) x budget, budget] on the groups
SPAN = 10.0  # a stage's threshold ranges over [t0 / SPAN, t0 x SPAN]
_ALL = 1 << 30


def gate_param(stage: str) -> str:
    """The Optuna parameter of a stage's threshold (``t_s4``)."""
    return f"t_{stage}"


def trial_constraint(trial: FrozenTrial) -> Sequence[float]:
    """The ``constraints_func`` of the samplers: ``[MACs per frame / budget - 1]`` (> 0: over budget)."""
    return tuple(trial.user_attrs.get("constraint", (0.0,)))


def _metrics(result: EvalResult) -> dict[str, float]:
    a = result.pooled
    return {"top1": a.top1, "dense": a.dense, "miou": a.miou, "fidelity": a.fidelity, "frames": a.frames}


class GateObjective:
    """The objective of ``--mode gates`` (see the module docstring); ``teacher`` and ``data`` default to
    those ``config`` names (only the validation and test splits are decoded)."""

    def __init__(self, config: SweepConfig, run: RunDir, teacher: Teacher | None = None,
                 data: VideoData | None = None) -> None:
        if config.mode != "gates":
            raise ConfigError(f"GateObjective needs a config of mode 'gates', not {config.mode!r}")
        self.config = config
        self.run = run
        self.teacher = teacher if teacher is not None else create_teacher(config.teacher)
        self.data = data if data is not None else load_video_data(config.data, need_train=False, teacher=config.teacher)
        self.k = config.data.keyframe_interval
        self.size = tuple(config.data.eval_size)
        model = convert(self.teacher, "full", input_hw=self.size)
        self.infos, self.linear_macs = model.layer_infos(self.size)
        self.teacher_macs = float(model.cost(self.size).teacher_macs)
        self.budget = Budget.parse(None, self.teacher_macs, self.k, target_frame=config.target)
        if self.budget.delta_macs >= self.teacher_macs:
            raise ConfigError(f"--target {config.target} is at or above the teacher's "
                              f"{self.teacher_macs / 1e6:.1f}M MACs per frame: nothing to save")
        self.target = self.budget.per_frame()  # MACs per frame averaged at K
        self.stages = gate_stages(self.infos, self.size)
        self.clips = self.data.val_clips()
        self.groups = calibration_groups(self.clips, self.k, config.max_groups or _ALL)
        if not self.groups:
            raise ConfigError("the validation split holds no key-frame group with a delta frame: use more "
                              "--max-frames or a smaller --keyframe")
        self._calibration: dict | None = None

    # -- calibration (once per study) -------------------------------------------------------------
    def calibrate(self) -> dict[str, Any]:
        """The calibrated profile on the validation groups: ``T0``, per stage ``t0`` (and its stride), per
        layer the calibrated thresholds, the MACs they spent, the seconds it took. ``ConfigError`` when no
        threshold lands in the budget band."""
        started = time.time()
        found = uniform_threshold_for_budget(self.teacher, self.infos, self.linear_macs, self.budget.delta_macs,
                                             CALIBRATION_TOLERANCE, self.groups, self.size, gate=GATE,
                                             profile=PROFILE)
        if found is None:
            raise ConfigError(f"no threshold of the weighted running gate lands within {CALIBRATION_TOLERANCE:.0%} "
                              f"below the budget ({self.budget.describe()}) on the validation frames: "
                              f"choose another --target")
        arch, delta_macs = found
        per_layer = layer_thresholds(arch)
        strides = {i.name: i.input_stride(self.size) for i in self.infos}
        t0 = math.exp(sum(math.log(v / strides[n] ** PROFILE) for n, v in per_layer.items()) / len(per_layer))
        first = {stage: next(i for i in self.infos if i.name == names[0]) for stage, names in self.stages.items()}
        return {"T0": t0, "gate": GATE, "profile": PROFILE, "span": SPAN,
                "stage_t0": stage_thresholds(per_layer, self.stages),
                "stage_stride": {stage: stage_stride(info, self.size) for stage, info in first.items()},
                "layer_thresholds": per_layer, "calibrated_delta_macs": delta_macs,
                "calibrated_macs_per_frame": (self.teacher_macs + (self.k - 1) * delta_macs) / self.k,
                "target_macs_per_frame": self.target, "groups": len(self.groups),
                "seconds": round(time.time() - started, 2)}

    def prepare(self, study: optuna.Study) -> dict[str, Any] | None:
        """Calibrate a study that is not yet: store the profile (user attrs ``deltanas_gates_calibration``
        and ``gates_T0``) and enqueue it as the next trial. Returns the profile, or None when the study
        held one already. Run it once per study, before any worker starts."""
        if CALIBRATION_ATTR in study.user_attrs:
            return None
        calibration = self.calibrate()
        study.set_user_attr(CALIBRATION_ATTR, calibration)
        study.set_user_attr(T0_ATTR, calibration["T0"])
        study.enqueue_trial({gate_param(s): t for s, t in calibration["stage_t0"].items()},
                            user_attrs={"calibrated": True})
        self._calibration = calibration
        return calibration

    def calibration(self, study: optuna.Study) -> dict[str, Any]:
        if self._calibration is None:
            found = study.user_attrs.get(CALIBRATION_ATTR)
            if found is None:
                raise ConfigError(f"study {study.study_name!r} holds no gate calibration: run it with "
                                  f"deltanas.sweep.run_sweep (or GateObjective.prepare) first")
            if sorted(found["stage_t0"]) != sorted(self.stages):
                raise ConfigError(f"study {study.study_name!r} was calibrated for stages {sorted(found['stage_t0'])}, "
                                  f"this teacher has {sorted(self.stages)}")
            self._calibration = found
        return self._calibration

    # -- trials -------------------------------------------------------------------------------------
    def arch(self, thresholds: dict[str, float]) -> Arch:
        return gate_arch(self.infos, thresholds, self.stages, teacher=self.config.teacher)

    def measure(self, arch: Arch, clips: Sequence | None = None) -> tuple[EvalResult, CostReport]:
        """``arch`` converted and evaluated on ``clips`` (the validation clips by default; ``max_groups`` of
        each), with its cost as measured there."""
        model = convert(self.teacher, arch, input_hw=self.size)
        result = evaluate(model, self.clips if clips is None else clips, self.k, progress=False,
                          max_groups=self.config.max_groups)
        return result, result.cost(model.cost(self.size))

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        started = time.time()
        calibration = self.calibration(trial.study)
        thresholds = {stage: trial.suggest_float(gate_param(stage), t0 / SPAN, t0 * SPAN, log=True)
                      for stage, t0 in calibration["stage_t0"].items()}
        arch = self.arch(thresholds)
        result, cost = self.measure(arch)
        per_frame = cost.per_frame(self.k)
        excess = per_frame / self.target - 1
        trial.set_user_attr("thresholds", thresholds)
        trial.set_user_attr("macs_per_frame", per_frame)
        trial.set_user_attr("delta_macs", cost.delta_macs)
        trial.set_user_attr("teacher_macs", cost.teacher_macs)
        trial.set_user_attr("speedup", cost.speedup(self.k))
        trial.set_user_attr("arch", dict(arch.layers))
        trial.set_user_attr("constraint", [excess])
        trial.set_user_attr("feasible", excess <= 0)
        single = len(trial.study.directions) == 1  # CMA-ES, which ignores constraints: a penalty instead
        if hasattr(trial, "set_constraint") and not single:  # optuna >= 5.0; before, samplers read the user
            trial.set_constraint("macs", excess)  # attr "constraint" (trial_constraint)
        metrics = _metrics(result)
        for key, value in metrics.items():
            trial.set_user_attr(f"val_{key}", value)
        seconds = time.time() - started
        trial.set_user_attr("seconds", round(seconds, 2))
        trial.set_user_attr("compute_seconds", round(self._spent(trial.study, trial.number) + seconds, 2))
        value = metrics[self.config.metric]
        if value != value:  # NaN: no delta frame in the validation split
            raise optuna.TrialPruned("the validation split has no delta frames: use more --max-frames")
        if single:
            return value - self.config.over_budget_weight * max(excess, 0.0)
        return value, per_frame

    def _spent(self, study: optuna.Study, number: int) -> float:
        """Seconds the study spent before this trial ended: calibration and every other finished trial."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        return (float(self.calibration(study).get("seconds", 0.0))
                + sum(float(t.user_attrs.get("seconds", 0.0)) for t in done if t.number != number))

    # -- the end of a study -------------------------------------------------------------------------
    def finish(self, study: optuna.Study, run: RunDir) -> dict[str, Any] | None:
        """Write the best feasible trial's architecture (``arch.json``, thresholds per layer) and
        ``best.json`` (its thresholds, validation figures and, measured here, those on the test split, with
        ``max_groups`` per clip), log one line; returns ``best.json``'s content, None without a feasible
        trial."""
        calibration = self.calibration(study)
        best = best_feasible(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), self.config.metric)
        if best is None:
            run.log(f"gates sweep: no feasible trial (all above {self.target / 1e6:.1f}M MACs per frame)")
            return None
        thresholds = {stage: best.params[gate_param(stage)] for stage in calibration["stage_t0"]}
        arch = self.arch(thresholds)
        arch.save(run.arch)
        test, cost = self.measure(arch, self.data.test_clips())
        a = best.user_attrs
        record = {"trial": best.number, "calibrated": bool(a.get("calibrated", False)), "thresholds": thresholds,
                  "T0": calibration["T0"], "stage_t0": calibration["stage_t0"],
                  "target_macs_per_frame": self.target, "macs_per_frame": a["macs_per_frame"],
                  "val": {k: a.get(f"val_{k}") for k in ("top1", "dense", "miou", "fidelity", "frames")},
                  "test": test.pooled.as_dict(), "test_macs_per_frame": cost.per_frame(self.k),
                  "compute_seconds": a.get("compute_seconds"), "arch": str(run.arch)}
        run.write_json(run.path / "best.json", record)
        stages = " ".join(f"{s}={t:.3g}" for s, t in thresholds.items())
        run.log(f"best feasible trial {best.number}{' (the calibrated profile)' if record['calibrated'] else ''}: "
                f"validation {self.config.metric} {a.get('val_' + self.config.metric):.4f}, top-1 "
                f"{a.get('val_top1'):.3f} at {a['macs_per_frame'] / 1e6:.1f}M MACs/frame (budget "
                f"{self.target / 1e6:.1f}M); test fidelity {test.pooled.fidelity:.4f}, top-1 {test.pooled.top1:.3f}; "
                f"thresholds {stages}; {run.arch.name}")
        return record


def best_feasible(trials: Sequence[FrozenTrial], metric: str) -> FrozenTrial | None:
    """The complete trial within the budget (user attr ``constraint`` <= 0) with the highest validation
    ``metric`` (fewer MACs per frame, then the earlier trial, break ties); None when there is none."""
    feasible = [t for t in trials if t.state == TrialState.COMPLETE and "constraint" in t.user_attrs
                and max(trial_constraint(t)) <= 0
                and t.user_attrs.get(f"val_{metric}") == t.user_attrs.get(f"val_{metric}")]  # not NaN
    if not feasible:
        return None
    return min(feasible, key=lambda t: (-t.user_attrs[f"val_{metric}"], t.user_attrs["macs_per_frame"], t.number))
