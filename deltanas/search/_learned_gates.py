"""Learned per-layer gate thresholds: every running threshold gate relaxed, trained end to end against the
teacher under a cost budget (MACs, or ms from a measured latency model), then rescaled by one global factor
on validation frames so that the spend lands in the budget band."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .._run import RunDir
from ..delta import Arch, DeltaModel, Gated, GatedDelta, LayerInfo, RelaxedThreshold, RunningGatedDelta, convert
from ..errors import ConfigError, TrainingError
from ..training import DistillLoss, LossWeights, VideoData
from ..video import GroupSampler
from ._penalty import LagrangianPenalty

__all__ = ["GATE_FRAMES", "GateBudget", "GateCost", "GateSchedule", "LearnedGates", "arch_fractions", "gate_table",
           "latency_budget", "latency_cost", "learn_gates", "macs_cost", "relative_scales", "relax_gates"]

GATE_FRAMES = ("crops", "full")


@dataclass(frozen=True)
class GateCost:
    """A cost linear in the output positions each layer computes on a delta frame:
    ``fixed + sum_l (layer_fixed[l] + per_position[l] x positions_l)``; ``unit`` names it (``MACs``, ``ms``).
    Layers it does not name cost nothing."""

    unit: str
    fixed: float
    layer_fixed: Mapping[str, float]
    per_position: Mapping[str, float]

    def of_fractions(self, fractions: Mapping[str, "float | torch.Tensor"],
                     positions: Mapping[str, int]) -> "float | torch.Tensor":
        """The cost of a delta frame where layer ``l`` computes ``fractions[l]`` of its ``positions[l]`` output
        positions (a layer missing from ``fractions`` computes none); differentiable in tensor fractions."""
        total: "float | torch.Tensor" = self.fixed + sum(self.layer_fixed.values())
        for name, fraction in fractions.items():
            total = total + self.per_position.get(name, 0.0) * fraction * positions[name]
        return total


def macs_cost(layers: Sequence[LayerInfo], arch: Arch, linear_macs: float) -> GateCost:
    """The MACs of ``arch`` at the layers' size as a :class:`GateCost`: a skip-convolution of single positions
    by its :meth:`~deltanas.delta.Gated.unit_cost`, any other layer by its MACs."""
    ops = arch.resolve(layers)
    layer_fixed, per_position = {}, {}
    for info in layers:
        op = ops[info.name]
        if isinstance(op, Gated) and op.block == 1:
            layer_fixed[info.name], per_position[info.name] = map(float, op.unit_cost(info))
        else:
            layer_fixed[info.name] = float(op.macs(info))
    return GateCost("MACs", float(linear_macs), layer_fixed, per_position)


def arch_fractions(arch: Arch, layers: Sequence[LayerInfo]) -> dict[str, float]:
    """The fraction of output positions each skip-convolution of ``arch`` computes (its calibrated ``f``)."""
    ops = arch.resolve(layers)
    return {i.name: ops[i.name].fraction_for(i) for i in layers if isinstance(ops[i.name], Gated)}


@dataclass(frozen=True)
class GateBudget:
    """What the threshold candidates land on: ``target`` per delta frame, in MACs, or in ms where ``latency``
    (a :class:`GateCost` in ms, from ``deltanas profile``) predicts a delta frame's time."""

    target: float
    latency: GateCost | None = None

    @classmethod
    def macs(cls, target: float) -> "GateBudget":
        return cls(target)

    def cost_of(self, layers: Sequence[LayerInfo]) -> Callable[[Arch], float] | None:
        """An arch with calibrated fractions -> its predicted ms per delta frame; None for MACs (analytic)."""
        if self.latency is None:
            return None
        latency, positions = self.latency, {i.name: i.out_hw[0] * i.out_hw[1] for i in layers}
        return lambda arch: float(latency.of_fractions(arch_fractions(arch, layers), positions))

    def linear_cost(self, layers: Sequence[LayerInfo], start: Arch, linear_macs: float) -> GateCost:
        """The cost the gate learning drives onto the target, from the calibrated ``start``."""
        return self.latency if self.latency is not None else macs_cost(layers, start, linear_macs)

    def describe(self) -> str:
        if self.latency is None:
            return f"{self.target / 1e6:.1f}M MACs per delta frame"
        return f"{self.target:.2f} ms per delta frame (predicted)"


def latency_cost(model) -> GateCost:
    """A :class:`~deltanas.engine.LatencyModel` (``deltanas profile``) as a :class:`GateCost` in ms per delta
    frame, its calibration folded into every term."""
    c = model.calibration
    return GateCost("ms", c * model.fixed_ms, {n: c * layer.fixed_ms for n, layer in model.layers.items()},
                    {n: c * layer.ms_per_position for n, layer in model.layers.items()})


def latency_budget(config) -> GateBudget:
    """``config.target_ms`` (ms per frame averaged at K, the key frame at the latency model's key-frame ms) as a
    :class:`GateBudget` per delta frame, predicted by the model in ``config.latency``; refused where even a delta
    frame of the model's fixed cost alone, or the key frame alone, is over it."""
    from ..engine import LatencyModel  # the engine is needed only for a latency budget

    model = LatencyModel.load(config.latency, teacher=config.teacher, input_hw=config.data.eval_size)
    k = config.data.keyframe_interval
    delta_ms = (k * config.target_ms - model.key_ms) / (k - 1)
    cost = latency_cost(model)
    floor = cost.fixed + sum(cost.layer_fixed.values())  # a delta frame where nothing changed
    if delta_ms <= floor:
        raise ConfigError(f"--target-ms {config.target_ms:g} is out of reach at K={k}: the key frame takes "
                          f"{model.key_ms:.2f} ms and a delta frame at least {floor:.2f} ms on this machine "
                          f"({config.latency})")
    return GateBudget(delta_ms, cost)


def relax_gates(model: DeltaModel, temperature: float = 1.0) -> dict[str, RelaxedThreshold]:
    """Make every running threshold gate of ``model`` learnable (see ``RunningGatedDelta.relax_threshold``) and
    freeze every other parameter: ``{layer: its relaxed threshold}``."""
    for p in model.parameters():
        p.requires_grad_(False)
    relaxed = {}
    for name, layer in model.delta_layers().items():
        student = layer.student
        if isinstance(student, RunningGatedDelta) and student.kind in ("t", "a", "w"):
            relaxed[name] = student.relax_threshold(temperature)
    return relaxed


def _fractions(model: DeltaModel) -> dict[str, torch.Tensor]:
    """Each gated layer's fraction of computed positions in the last group (with the relaxation's gradient)."""
    out = {}
    for name, layer in model.delta_layers().items():
        if isinstance(layer.student, GatedDelta) and layer.student.expected_fraction is not None:
            out[name] = layer.student.expected_fraction
    return out


def _relaxed_fractions(model: DeltaModel) -> dict[str, float]:
    """The soft fractions of the relaxed layers and the measured ones of the others, last group."""
    out, layers = {}, model.delta_layers()
    for name, fraction in _fractions(model).items():
        soft = getattr(layers[name].student, "relaxed_fraction", None)
        out[name] = float((soft if soft is not None else fraction).detach())
    return out


@dataclass(frozen=True)
class LearnedGates:
    """What :func:`learn_gates` found: the threshold per relaxed layer, and its spend on the last training batch
    (measured, and as the relaxation estimates it) over the target."""

    thresholds: dict[str, float]
    spend_over_target: float
    relaxed_over_target: float
    steps: int
    seconds: float


@dataclass(frozen=True)
class GateSchedule:
    """The optimisation of the thresholds: ``steps`` Adam steps at ``lr`` on ``batch_groups`` whole key-frame
    groups per step, the relaxation's temperature annealed exponentially from ``tau_start`` to ``tau_end``;
    ``frames``: the groups are training crops (``"crops"``) or whole training frames at the eval size
    (``"full"``: what the gates see on held-out frames; crops of a static camera often miss the one place
    that moves)."""

    steps: int = 60
    lr: float = 0.05
    batch_groups: int = 2
    tau_start: float = 1.0
    tau_end: float = 0.05
    dual_rate: float = 0.5
    checkpoint_every: int = 20
    seed: int = 0
    frames: str = "crops"

    def __post_init__(self) -> None:
        if self.frames not in GATE_FRAMES:
            raise ConfigError(f"unknown gate frames {self.frames!r}; choose from {', '.join(GATE_FRAMES)}")

    def tau(self, step: int) -> float:
        return self.tau_start * (self.tau_end / self.tau_start) ** (step / max(1, self.steps - 1))


def learn_gates(teacher: nn.Module, start: Arch, cost: GateCost, target: float, data: VideoData,
                data_config, schedule: GateSchedule, run: RunDir | None = None, resume: bool = False,
                progress: bool = True, weights: LossWeights | None = None) -> LearnedGates:
    """Learn a threshold per running threshold gate of ``start`` (the calibrated profile) on whole key-frame
    groups of the training split (crops of ``data_config``): the distillation loss on the teacher's output plus
    an augmented Lagrangian that drives ``cost`` (straight-through: its value is the spend measured on the
    batch, scaled to the eval size's positions) onto ``target``. Checkpoints to ``run`` and resumes from it."""
    started = time.time()
    size = data_config.eval_size
    model = convert(teacher, start, input_hw=size)
    relaxed = relax_gates(model, schedule.tau_start)
    if not relaxed:
        raise TrainingError("the architecture has no running threshold gate to learn")
    positions = {i.name: i.out_hw[0] * i.out_hw[1] for i in model.layers}
    k = data_config.keyframe_interval
    generator = torch.Generator().manual_seed(schedule.seed)
    sampler = _group_sampler(data, data_config, schedule.frames, generator)
    loss_fn = DistillLoss(model, weights or LossWeights(layer=0.0, anchor=0.0, gate=0.0))
    params = [r.log_value for r in relaxed.values()]
    optimizer = torch.optim.Adam(params, lr=schedule.lr, betas=(0.5, 0.999))
    penalty = LagrangianPenalty(0.0, schedule.dual_rate)
    ckpt = run.path / "gates_checkpoint.pt" if run is not None else None
    metrics = run.path / "gates_metrics.csv" if run is not None else None
    step = 0
    if resume and ckpt is not None and ckpt.is_file():
        state = run.load_checkpoint(ckpt)
        with torch.no_grad():
            for name, r in relaxed.items():
                r.log_value.copy_(state["log_values"][name])
        optimizer.load_state_dict(state["optimizer"])
        penalty.load_state(state["penalty"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        run.truncate_metrics(step, metrics)
        run.log(f"gate learning resumed at step {step}")

    def checkpoint() -> None:
        if ckpt is not None:
            run.save_checkpoint({"step": step, "optimizer": optimizer.state_dict(), "penalty": penalty.state(),
                                 "generator": generator.get_state(),
                                 "log_values": {n: r.log_value.detach().clone() for n, r in relaxed.items()}}, ckpt)

    model.train()
    spend = relaxed_spend = float("nan")
    bar = tqdm(total=schedule.steps, initial=step, desc="learn gates", unit="step", disable=not progress)
    while step < schedule.steps:
        tau = schedule.tau(step)
        for r in relaxed.values():
            r.temperature = tau
        frames = sampler.sample(schedule.batch_groups).frames
        terms = loss_fn(frames)
        expected = cost.of_fractions(_fractions(model), positions)
        total = penalty.combine(terms.total, expected, target)
        if not torch.isfinite(total):
            raise TrainingError(f"gate learning loss became {float(total.detach())} at step {step + 1}: lower the gate lr")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        spend = float(expected.detach()) / target
        relaxed_spend = float(cost.of_fractions(_relaxed_fractions(model), positions)) / target
        penalty.after_step(float(expected.detach()), target)
        step += 1
        if metrics is not None:
            run.append_metrics({"step": step, "tau": tau, **terms.as_dict(), "spend_over_target": spend,
                                "relaxed_over_target": relaxed_spend, "multiplier": penalty.weight}, metrics)
        if step % schedule.checkpoint_every == 0 or step == schedule.steps:
            checkpoint()
        bar.update()
        bar.set_postfix(loss=f"{terms.output:.3f}", spend=f"{spend:.2f}T", tau=f"{tau:.2f}")
    bar.close()
    thresholds = {name: r.value for name, r in relaxed.items()}
    return LearnedGates(thresholds, spend, relaxed_spend, step, time.time() - started)


def _group_sampler(data: VideoData, data_config, frames: str, generator: torch.Generator) -> GroupSampler:
    """Whole key-frame groups, in order: crops of the training frames, or (``"full"``) the training frames at the
    eval size, where they were decoded (a condensed set has none: its groups are crops then)."""
    k = data_config.keyframe_interval
    if frames == "full" and any(c.shape[0] >= k for c in data.train_eval):
        return GroupSampler(data.train_eval, k, k - 1, flip=data_config.flip, generator=generator)
    return data.sampler(data_config.replace(later_frames=k - 1), generator)


def gate_table(layers: Sequence[LayerInfo], archs: Mapping[str, Arch]) -> list[dict]:
    """Per gated layer, each calibrated arch's threshold (None where the layer passes every change) and the
    fraction of output positions it computed on the calibration frames: ``{"layer", "<label> threshold",
    "<label> fraction", ...}`` (what ``plot_learned_gates`` draws)."""
    resolved = {label: arch.resolve(layers) for label, arch in archs.items()}
    rows = []
    for info in layers:
        ops = {label: r[info.name] for label, r in resolved.items()}
        if not all(isinstance(op, Gated) for op in ops.values()):
            continue
        row: dict = {"layer": info.name, "depthwise": info.is_depthwise}
        for label, op in ops.items():
            row[f"{label} threshold"] = op.value if op.kind in ("t", "a", "w") else None
            row[f"{label} fraction"] = op.fraction_for(info)
        rows.append(row)
    return rows


def relative_scales(thresholds: Mapping[str, float]) -> dict[str, float]:
    """The thresholds over their geometric mean: a per-layer profile that one global value scales."""
    mean = math.exp(sum(math.log(t) for t in thresholds.values()) / len(thresholds))
    return {name: t / mean for name, t in thresholds.items()}

