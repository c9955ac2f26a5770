"""Trial objectives: (agreement up, MACs per frame down).

``arch``: one categorical per layer (or per group of layers) over the candidates the search space
offers it; MACs are known before training, so a trial above ``max_macs`` is pruned before it trains.
``search-hparams``: each trial is a short ``deltanas search`` with sampled target, penalty, weight
and temperature schedule. ``gates``: continuous per-stage gate thresholds, see ``_gate_objective``.

A trial stores plain Optuna data only (params, two values, user attrs: MACs, the architecture,
validation and test metrics, its run folder), so the study opens in optuna-dashboard as it is.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna

from .._run import RunDir
from ..analysis import EvalResult, evaluate
from ..delta import Arch, LayerInfo, SearchSpace, convert, cost_report
from ..search import Budget, parse_macs
from ..teachers import Teacher, create_teacher
from ..training import TrainConfig, VideoData, load_video_data, train
from ._config import SweepConfig

__all__ = ["LayerChoices", "ArchObjective", "SearchHparamsObjective", "make_objective", "ObjectiveFactory"]

Objective = Callable[[optuna.Trial], Sequence[float]]
ObjectiveFactory = Callable[[SweepConfig, RunDir], Objective]


@dataclass(frozen=True)
class LayerChoices:
    """Optuna parameters -> layers: ``groups`` maps a parameter name to its layers and their
    shared candidate specs (``full`` first)."""

    groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]

    @classmethod
    def build(cls, infos: Sequence[LayerInfo], space: SearchSpace, granularity: str = "layer") -> "LayerChoices":
        """``layer``: one parameter per convolution. ``block``: the layers of one block (the name up
        to its last dot, e.g. ``_blocks.3``) that are offered the same candidates share one parameter
        (an MBConv block's expand/project pair; its depthwise conv keeps its own)."""
        by_key: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for info in infos:
            specs = tuple(str(op) for op in space.candidates(info))
            prefix = info.name.rpartition(".")[0] if granularity == "block" else info.name
            by_key.setdefault((prefix or info.name, specs), []).append(info.name)
        groups = {}
        for (prefix, specs), layers in by_key.items():
            if len(layers) == 1:
                name = layers[0]
            else:
                name = prefix + "." + "+".join(layer.rpartition(".")[2] for layer in layers)
            groups[name] = (tuple(layers), specs)
        return cls(groups)

    def suggest(self, trial: optuna.Trial) -> dict[str, str]:
        choice = {}
        for name, (layers, specs) in self.groups.items():
            spec = trial.suggest_categorical(name, list(specs))
            choice.update({layer: spec for layer in layers})
        return choice


def _metrics(result: EvalResult | None) -> dict[str, float]:
    if result is None:
        return {}
    a = result.pooled
    return {"top1": a.top1, "dense": a.dense, "miou": a.miou, "fidelity": a.fidelity, "frames": a.frames}


def _record(trial: optuna.Trial, prefix: str, metrics: dict[str, float]) -> None:
    for key, value in metrics.items():
        trial.set_user_attr(f"{prefix}_{key}", value)


class _Base:
    def __init__(self, config: SweepConfig, run: RunDir, teacher: Teacher | None = None,
                 data: VideoData | None = None) -> None:
        self.config = config
        self.run = run
        self.teacher = teacher if teacher is not None else create_teacher(config.teacher)
        self.space = SearchSpace.load(config.space)
        self.data = data if data is not None else load_video_data(config.data, teacher=config.teacher)
        k = config.data.keyframe_interval
        self.k = k
        model = convert(self.teacher, "full", input_hw=config.data.eval_size)
        self.infos, self.linear_macs = model.layer_infos(config.data.eval_size)
        self.teacher_macs = float(model.cost(config.data.eval_size).teacher_macs)

    def trial_run(self, trial: optuna.Trial) -> RunDir:
        """``trials/<number>``; trial numbers are never reused within a study, so a folder found
        there is left over from an earlier study of the same name (its journal deleted): replaced."""
        run = RunDir(self.run.path / "trials" / f"{trial.number:05d}")
        if run.path.exists():
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True)
        return run

    def finish(self, trial: optuna.Trial, model, test: EvalResult | None, macs: float, started: float,
               run: RunDir) -> tuple[float, float]:
        val = evaluate(model, self.data.val_clips(), self.k, progress=False)
        val_metrics, test_metrics = _metrics(val), _metrics(test)
        _record(trial, "val", val_metrics)
        _record(trial, "test", test_metrics)
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        trial.set_user_attr("run", str(run.path))
        value = val_metrics[self.config.metric]
        if value != value:  # NaN: no delta frame in the validation split
            raise optuna.TrialPruned("the validation split has no delta frames: use more --max-frames")
        return value, macs


class ArchObjective(_Base):
    """A per-layer architecture, trained ``config.steps`` steps, scored on held-out frames."""

    def __init__(self, config: SweepConfig, run: RunDir, teacher: Teacher | None = None,
                 data: VideoData | None = None) -> None:
        super().__init__(config, run, teacher, data)
        self.choices = LayerChoices.build(self.infos, self.space, config.granularity)
        self.max_macs = parse_macs(config.max_macs, self.teacher_macs) if config.max_macs else None

    def cost(self, arch: Arch):
        return cost_report(self.infos, arch.resolve(self.infos), self.linear_macs, self.config.data.eval_size)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        started = time.time()
        arch = Arch(layers=self.choices.suggest(trial), teacher=self.config.teacher)
        cost = self.cost(arch)
        per_frame = cost.per_frame(self.k)
        trial.set_user_attr("macs_per_frame", per_frame)
        trial.set_user_attr("delta_macs", cost.delta_macs)
        trial.set_user_attr("teacher_macs", cost.teacher_macs)
        trial.set_user_attr("speedup", cost.speedup(self.k))
        trial.set_user_attr("arch", {n: s for n, s in arch.layers.items() if s != "full"})
        if self.max_macs is not None and per_frame > self.max_macs:
            trial.set_user_attr("over_budget", True)
            raise optuna.TrialPruned(f"{per_frame / 1e6:.1f}M MACs per frame > max {self.max_macs / 1e6:.1f}M")
        run = self.trial_run(trial)
        arch_path = arch.save(run.path / "trial_arch.json")
        c = self.config
        train_config = TrainConfig(teacher=c.teacher, arch=str(arch_path.resolve()), data=c.data, steps=c.steps,
                                   batch_groups=c.batch_groups, lr=c.lr, warmup_steps=min(20, c.steps // 4),
                                   val_every=c.steps, patience=0, checkpoint_every=c.steps, seed=c.seed)
        result = train(train_config, run, data=self.data, teacher=self.teacher, progress=False)
        return self.finish(trial, result.model, result.test, per_frame, started, run)


class SearchHparamsObjective(_Base):
    """A short differentiable search per trial; the sampled knobs are the search's own."""

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        from ..search import SearchConfig, search

        started = time.time()
        c = self.config
        target = trial.suggest_categorical("target", list(c.targets))
        penalty = trial.suggest_categorical("penalty", list(c.penalties))
        weight = trial.suggest_float("penalty_weight", 0.1, 10.0, log=True)
        tau_start = trial.suggest_float("tau_start", 1.0, 10.0, log=True)
        tau_end = trial.suggest_float("tau_end", 0.05, 1.0, log=True)
        budget = Budget.parse(target, self.teacher_macs, self.k)
        trial.set_user_attr("target_delta_macs", budget.delta_macs)
        search_config = SearchConfig(teacher=c.teacher, space=c.space, data=c.data, target=target, penalty=penalty,
                                     penalty_weight=weight, tau_start=tau_start, tau_end=tau_end,
                                     steps=c.search_steps, warmup_steps=min(20, c.search_steps // 4),
                                     batch_groups=c.batch_groups, weight_lr=c.lr, finetune_steps=c.steps,
                                     prior=c.prior, seed=c.seed)
        run = self.trial_run(trial)
        result = search(search_config, run, data=self.data, teacher=self.teacher, progress=False)
        cost = result.model.cost(c.data.eval_size)
        per_frame = cost.per_frame(self.k)
        trial.set_user_attr("macs_per_frame", per_frame)
        trial.set_user_attr("delta_macs", cost.delta_macs)
        trial.set_user_attr("teacher_macs", cost.teacher_macs)
        trial.set_user_attr("speedup", cost.speedup(self.k))
        trial.set_user_attr("arch", {n: s for n, s in result.arch.layers.items() if s != "full"})
        return self.finish(trial, result.model, result.test, per_frame, started, run)


def make_objective(config: SweepConfig, run: RunDir) -> Objective:
    """The default objective factory (what every worker process calls once)."""
    if config.mode == "gates":
        from ._gate_objective import GateObjective

        return GateObjective(config, run)
    cls = ArchObjective if config.mode == "arch" else SearchHparamsObjective
    return cls(config, run)
