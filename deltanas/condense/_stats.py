"""What a delta model depends on in footage, measured on a teacher: per convolution, the distribution of the
per-position input-delta norms (what a gate compares with its threshold: since the key frame, and from one
frame to the next, which is what a running reference sees once a position has updated), the output deltas
(what fidelity divides by, per channel and per position) and the key frames' features (what the deltas are
added to). Input norms weigh the channels as the ``w`` gate does (by the weights each feeds), relative to the
key frame's mean position norm, as its threshold is.

:func:`group_statistics` measures them on a batch of groups, differentiably (the matching loop's side);
:class:`StatisticsPool` pools them over many batches of real groups (the target); :func:`statistic_distance`
compares the two, scale-free: logs of norms and energies, key-frame means in units of the target's spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from ..delta._running import column_energy

__all__ = ["FEATURES", "GroupStatistics", "LayerStatistics", "QUANTILES", "StatisticsPool", "group_statistics",
           "pool_statistics", "statistic_distance", "tapped_layers"]

# the levels of the per-position norm distributions: gates keep the top 5-50% of positions
QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
_EPS = 1e-3  # relative norms below this are "no change" to every gate
_POOL = 50_000  # per-position values a pool keeps per layer (a seeded random subset of those seen)
FEATURES = "features"  # the teacher's last feature map: its delta is what output fidelity measures


@dataclass
class LayerStatistics:
    """One layer's statistics. ``input_q``/``output_q``: quantiles (``QUANTILES``) of the per-position delta
    norm over channels (the input's weighted as the ``w`` gate weighs them), relative to the key frame's mean
    position norm (``input_q`` None for the last feature map, which feeds no convolution); ``step_q``: the
    same of the input's change between consecutive later frames (None where they were not consecutive);
    ``delta_energy``: per channel, the mean squared output delta over the key frames' mean square (averaged
    over the layer's channels); ``key_mean``, ``key_std``: per channel, of the key frames' outputs."""

    input_q: torch.Tensor | None
    step_q: torch.Tensor | None
    output_q: torch.Tensor
    delta_energy: torch.Tensor
    key_mean: torch.Tensor
    key_std: torch.Tensor

    def detach(self) -> "LayerStatistics":
        return LayerStatistics(*(None if v is None else v.detach() for v in self.__dict__.values()))

    def as_dict(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{k}": v for k, v in self.__dict__.items() if v is not None}


GroupStatistics = dict  # layer name -> LayerStatistics, in the teacher's order, then FEATURES


def tapped_layers(teacher: nn.Module) -> dict[str, nn.Conv2d]:
    """The teacher's convolutions (those a delta model converts), by module name, in definition order."""
    return {name: m for name, m in teacher.named_modules() if isinstance(m, nn.Conv2d)}


def _channel_weights(conv: nn.Conv2d) -> torch.Tensor:
    """(C_in,), mean 1: what the ``w`` gate weighs an input channel's squared change by."""
    w = column_energy(conv)
    return w / w.mean().clamp_min(1e-12)


class _Taps:
    """Forward hooks that keep every tapped convolution's input and output of one forward pass."""

    def __init__(self, teacher: nn.Module) -> None:
        convs = tapped_layers(teacher)
        self.seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.weights = {name: _channel_weights(m) for name, m in convs.items()}
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in convs.items()]

    def _hook(self, name: str):
        def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.seen[name] = (inputs[0], output)
        return keep

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _features(teacher: nn.Module, frames: torch.Tensor) -> tuple[_Taps, torch.Tensor]:
    taps = _Taps(teacher)
    try:
        out = teacher.forward_features(teacher.normalize(frames))
    finally:
        taps.close()
    return taps, out


def _norm(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """(..., C, h, w) -> (..., h, w): the (weighted) norm over channels; sqrt'(0) is infinite, hence the 1e-12."""
    sq = x.pow(2) if weight is None else x.pow(2) * weight[:, None, None]
    return sq.sum(-3).add(1e-12).sqrt()


def _position_norms(x: torch.Tensor, weight: torch.Tensor | None = None,
                    consecutive: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x (G, 1 + L, C, h, w) -> each later frame's delta norm per position (G, L, h, w), and with
    ``consecutive`` the norms of the changes between neighbouring later frames (G, L - 1, h, w), both relative
    to the mean over positions of the key frame's norm."""
    key = x[:, :1]
    scale = _norm(key, weight).mean(dim=(-2, -1), keepdim=True).clamp_min(1e-8)  # (G, 1, 1, 1)
    since_key = _norm(x[:, 1:] - key, weight) / scale
    steps = _norm(x[:, 2:] - x[:, 1:-1], weight) / scale if consecutive and x.shape[1] > 2 else None
    return since_key, steps


def _layer(inp: torch.Tensor | None, out: torch.Tensor, weight: torch.Tensor | None, consecutive: bool):
    """((input norms since the key frame, between later frames), output norms, (sum of delta^2, sum of key^2,
    sum of key, count of delta values, count of key values) per channel) of one layer's (G, 1 + L, C, h, w)
    input and output."""
    key, later = out[:, 0], out[:, 1:]
    delta = later - key.unsqueeze(1)
    sums = (delta.pow(2).sum(dim=(0, 1, 3, 4)), key.pow(2).sum(dim=(0, 2, 3)), key.sum(dim=(0, 2, 3)),
            torch.tensor(float(delta[:, :, 0].numel())), torch.tensor(float(key[:, 0].numel())))
    inputs = (None, None) if inp is None else _position_norms(inp, weight, consecutive)
    return inputs, _position_norms(out)[0], sums


def _layers(teacher: nn.Module, groups: torch.Tensor, consecutive: bool):
    """Per tapped layer (and FEATURES), :func:`_layer` of a forward pass of ``groups`` (G, 1 + L, 3, H, W)."""
    g, t = groups.shape[:2]
    taps, features = _features(teacher, groups.flatten(0, 1))
    shaped = lambda v: v.reshape(g, t, *v.shape[1:])  # noqa: E731
    for name, (inp, out) in taps.seen.items():
        yield name, _layer(shaped(inp), shaped(out), taps.weights[name], consecutive)
    yield FEATURES, _layer(None, shaped(features), None, False)


def _finish(input_q, step_q, output_q, sums) -> LayerStatistics:
    delta_sq, key_sq, key_sum, n_delta, n_key = sums
    mean = key_sum / n_key
    var = (key_sq / n_key - mean.pow(2)).clamp_min(0) + 1e-12
    energy = (delta_sq / n_delta) / (key_sq / n_key).mean().clamp_min(1e-12)  # the layer's key energy: a
    # channel silent on the key frames has no scale of its own
    return LayerStatistics(input_q, step_q, output_q, energy.float(), mean.float(), var.sqrt().float())


def _quantiles(values: torch.Tensor | None) -> torch.Tensor | None:
    if values is None:
        return None
    levels = torch.tensor(QUANTILES, dtype=values.dtype, device=values.device)
    return torch.quantile(values.flatten(), levels)


def group_statistics(teacher: nn.Module, groups: torch.Tensor, consecutive: bool = True) -> GroupStatistics:
    """The statistics of ``groups`` (float (G, 1 + L, 3, H, W) in [0, 1], key frame first), differentiable in
    them (the teacher's own weights need no gradient); ``consecutive``: the later frames follow each other."""
    stats: GroupStatistics = {}
    for name, ((since_key, steps), out, sums) in _layers(teacher, groups, consecutive):
        stats[name] = _finish(_quantiles(since_key), _quantiles(steps), _quantiles(out), sums)
    return stats


class StatisticsPool:
    """The statistics of many batches of real groups, pooled: sums add up; the per-position norms of each
    layer are kept as a seeded random subset of at most ``keep`` values, whose quantiles stand for all."""

    def __init__(self, teacher: nn.Module, generator: torch.Generator, keep: int = _POOL,
                 consecutive: bool = True) -> None:
        self.teacher, self.generator, self.keep, self.consecutive = teacher, generator, keep, consecutive
        self.norms: dict[str, list[torch.Tensor | None]] = {}
        self.sums: dict[str, list[torch.Tensor]] = {}
        self.groups = 0

    @torch.no_grad()
    def add(self, groups: torch.Tensor) -> None:
        """Pool a batch of groups, float (G, 1 + L, 3, H, W)."""
        for name, ((since_key, steps), out, sums) in _layers(self.teacher, groups, self.consecutive):
            kept = self.norms.setdefault(name, [None, None, None])
            for i, values in enumerate((since_key, steps, out)):
                if values is not None:
                    kept[i] = self._subset(values.flatten() if kept[i] is None else
                                           torch.cat([kept[i], values.flatten()]))
            sums = [v.double() for v in sums]  # sums over many frames: float64 keeps the variance exact
            total = self.sums.get(name)
            self.sums[name] = sums if total is None else [a + b for a, b in zip(total, sums)]
        self.groups += int(groups.shape[0])

    def _subset(self, values: torch.Tensor) -> torch.Tensor:
        if values.numel() <= self.keep:
            return values
        return values[torch.randperm(values.numel(), generator=self.generator)[: self.keep]]

    def result(self) -> GroupStatistics:
        if not self.groups:
            raise ValueError("no groups pooled")
        return {name: _finish(*(_quantiles(v) for v in kept), self.sums[name]) for name, kept in self.norms.items()}


def _log_gap(a: torch.Tensor, b: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    return (torch.log(a + eps) - torch.log(b + eps)).pow(2).mean()


def _energy_gap(mine: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-channel delta energies in log, a channel with under a tenth of the target's mean energy counting as
    quiet: a few groups leave some channels of the real footage inactive, and their log would outweigh all."""
    return _log_gap(mine, target, 0.1 * float(target.mean()) + 1e-8)


def statistic_distance(synthetic: Mapping[str, LayerStatistics], real: Mapping[str, LayerStatistics],
                       weights: Mapping[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``(distance, its terms)``: per layer, ``gate`` (input-delta norm quantiles since the key frame and, where
    both sides have them, between later frames, in log), ``delta`` (output-delta
    norm quantiles and per-channel energies, in log) and ``key`` (key-frame channel means in units of the real
    spread, and the log spreads), each averaged over the layers; the distance is their sum weighted by
    ``weights`` (default 1 each)."""
    w = {"gate": 1.0, "delta": 1.0, "key": 1.0, **(weights or {})}
    terms: dict[str, list[torch.Tensor]] = {"gate": [], "delta": [], "key": []}
    for name, target in real.items():
        mine = synthetic[name]
        if target.input_q is not None:
            gaps = [_log_gap(mine.input_q, target.input_q)]
            if target.step_q is not None and mine.step_q is not None:
                gaps.append(_log_gap(mine.step_q, target.step_q))
            terms["gate"].append(torch.stack(gaps).mean())
        terms["delta"].append(0.5 * (_log_gap(mine.output_q, target.output_q) +
                                     _energy_gap(mine.delta_energy, target.delta_energy)))
        spread = target.key_std.clamp_min(1e-3 * float(target.key_std.mean()) + 1e-8)
        terms["key"].append(0.5 * (((mine.key_mean - target.key_mean) / spread).pow(2).mean() +
                                   _log_gap(mine.key_std / spread, torch.ones_like(spread))))
    means = {k: torch.stack(v).mean() for k, v in terms.items() if v}
    total = sum(w[k] * v for k, v in means.items())
    return total, {k: float(v.detach()) for k, v in means.items()}


def pool_statistics(teacher: nn.Module, batches: Iterable[torch.Tensor], generator: torch.Generator) -> GroupStatistics:
    """:class:`StatisticsPool` over ``batches``."""
    pool = StatisticsPool(teacher, generator)
    for batch in batches:
        pool.add(batch)
    return pool.result()
