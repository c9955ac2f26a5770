"""A skip-convolution against a running reference per input position (DeltaCNN, Parger et al. 2022): what
a gate holds back stays in the reference for a later frame, so errors never accumulate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._gated import GatedDelta
from ._gates import Gate, ThresholdGate, TopPGate, active_units, pool_to_units, top_mask
from ._layers import LayerInfo

__all__ = ["RUNNING_GATES", "RelaxedThreshold", "RunningGatedDelta", "column_energy"]


class _WeightedNormGate(ThresholdGate):
    """Stands for the ``w`` gate of a running reference in MAC counts: the weighted squared norm
    ``sum_c w_c d_c^2`` takes two multiplies per channel and position."""

    @classmethod
    def macs(cls, layer: LayerInfo) -> int:
        return 2 * super().macs(layer)


class _ChangedGate(ThresholdGate):
    """Stands for the ``changed`` gate of a running reference (threshold 0): a nonzero test, no multiplies."""

    @classmethod
    def macs(cls, layer: LayerInfo) -> int:
        return 0


# the gates of a running reference (the decision itself is RunningGatedDelta's: on input positions)
RUNNING_GATES: dict[str, type[Gate]] = {"p": TopPGate, "t": ThresholdGate, "a": ThresholdGate,
                                         "w": _WeightedNormGate, "c": _ChangedGate}


class RelaxedThreshold(nn.Module):
    """A learnable threshold ``T = exp(log_value)`` of a running ``t``/``a``/``w`` gate, relaxed for a search.

    A relaxed gate passes the share ``soft = sigmoid((log norm - log scale - log T) / temperature)`` of each
    input change (and moves its reference by as much); as ``temperature`` falls it tends to the hard gate
    ``norm > T x scale``, and the relaxed cost counted from ``soft`` to the measured one. A straight-through
    mask (hard forward, soft gradient) is biased here: at a passed position it measures scaling a change that
    already passed, and on real gates its gradient pointed the wrong way (tests/search/test_learned_gates.py).
    """

    def __init__(self, value: float, temperature: float = 1.0) -> None:
        super().__init__()
        if value <= 0:
            raise ValueError("a relaxed threshold must be positive")
        self.log_value = nn.Parameter(torch.tensor(math.log(value)))
        self.temperature = temperature

    @property
    def value(self) -> float:
        return float(self.log_value.detach().exp())

    def extra_repr(self) -> str:
        return f"value={self.value:.4g}, temperature={self.temperature:g}"

    def masks(self, norm: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``norm`` (N, H, W) and the per-frame ``scale`` (N,) -> (hard 0/1 mask, soft mask), (N, H, W); only the
        soft one carries a gradient, the threshold's alone."""
        norm, scale = norm.detach(), scale.detach()[:, None, None]
        hard = (norm > self.log_value.detach().exp() * scale).to(norm.dtype)
        logit = (torch.log(norm + 1e-12) - torch.log(scale + 1e-12) - self.log_value) / self.temperature
        return hard, torch.sigmoid(logit)


class RunningGatedDelta(GatedDelta):
    """A skip-convolution against a running reference per input position (DeltaCNN).

    The key-frame reference (:class:`GatedDelta`) recomputes a position on every frame of a group
    once it differs from the key frame, even if it has not changed since. Here each layer keeps the
    input ``x_ref`` its output was last brought up to date with; a frame's change ``d = x_t - x_ref``
    passes the gate at some input positions, only that part is propagated,
    ``z += inner(d * mask)``, and ``x_ref += d * mask``. For a linear student (the exact teacher copy
    in particular) the output then always equals ``z_key + inner(x_ref - x_key)``: the error at a
    position is bounded by the change that has not passed the gate yet, and never accumulates.

    The gate decides on input positions (``pP`` top fraction, ``tT`` relative to the frame's mean of
    ``||d||``, ``aA`` relative to the key frame's mean per-position input norm, ``wA`` as ``a`` with
    the channels weighted by ``channel_weight``, ``changed`` wherever ``d`` is not zero); an output position
    is computed when its receptive field holds a passed position, and those are what the MACs count,
    with the gate's norm (the key frame's norm for ``a``/``w``, once per key frame, is not counted).
    Frames run in order: in a group (``run_group``) and in a stream (``step``, whose state the key
    frame resets with ``reset``).

    With ``relax`` (a :class:`RelaxedThreshold`, for a search of the thresholds) a threshold gate takes its
    value from it and passes the relaxation's soft share of each change; ``expected_fraction`` then carries the
    gradient of the soft touched fraction (its value stays the one the hard gate would measure) and
    ``relaxed_fraction`` is the soft fraction itself.
    """

    sequential = True

    def __init__(self, kind: str, value: float, inner: nn.Module, layer: LayerInfo, padding_mode: str,
                 unit_macs: tuple[int, int], sparse: bool = False, channel_weight: torch.Tensor | None = None) -> None:
        gate = RUNNING_GATES[kind](value)  # holds the value; its .macs() counts the norm
        super().__init__(gate, inner, None, layer, 1, padding_mode, unit_macs, sparse)
        self.kind = kind
        self.register_buffer("channel_weight", channel_weight, persistent=False)
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None  # (x_ref - x_key, z - z_key)
        self._counts: list[torch.Tensor] = []  # touched output positions per frame, this call
        self._soft_counts: list[torch.Tensor] = []  # the same, relaxed (with ``relax``)
        self._layer = layer  # the geometry of this call's frames
        self.relax: RelaxedThreshold | None = None
        self.relaxed_fraction: torch.Tensor | None = None

    def extra_repr(self) -> str:
        gate = "changed" if self.kind == "c" else f"{self.kind}{self.value:g}"
        return f"gate={gate}, running reference, sparse={self.sparse}"

    @property
    def value(self) -> float:
        """The gate's fraction p or threshold (set ``gate.p`` / ``gate.t`` to change it; with ``relax``, its value)."""
        if self.relax is not None:
            return self.relax.value
        return self.gate.p if self.kind == "p" else self.gate.t  # type: ignore[return-value]

    def relax_threshold(self, temperature: float = 1.0) -> RelaxedThreshold:
        """Make the threshold learnable (from its current value): the module :attr:`relax` holds it."""
        if self.kind not in ("t", "a", "w"):
            raise ValueError(f"only a threshold gate can be relaxed, not {self.kind!r}")
        self.relax = RelaxedThreshold(self.value, temperature)
        return self.relax

    def _squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_weight is None:
            return (x * x).sum(dim=1)
        return (x * x * self.channel_weight[:, None, None]).sum(dim=1)

    def _input_mask(self, d: torch.Tensor, key_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, 1, H, W) 0/1: the input positions whose change passes the gate; with ``relax``, also the soft
        mask (N, H, W) (else None)."""
        if self.kind == "c":  # a nonzero test: no norm
            return d.ne(0).any(dim=1, keepdim=True).to(d.dtype), None
        sq = self._squared_norm(d)
        if self.kind == "p":
            flat = sq.flatten(1)
            k = active_units(self.value, flat.shape[1])
            mask = top_mask(flat, k)
            return mask.view_as(sq)[:, None], None
        norm = sq.sqrt()
        scale = norm.mean(dim=(1, 2)) if self.kind == "t" else key_norm
        if self.relax is not None:
            mask, soft = self.relax.masks(norm, scale)
            return mask[:, None], soft
        return (norm > self.value * scale[:, None, None]).to(d.dtype)[:, None], None

    def _propagate(self, dx: torch.Tensor, ref: torch.Tensor,
                   key_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame's change since the key frame ``dx`` against the reference ``ref``: the new reference
        (``dx`` where the gate passed: exactly, so an unchanged position stays at zero change) and the
        output update the passed part makes."""
        d = dx - ref
        hw = tuple(d.shape[-2:])
        layer = self.layer if hw == self.layer.in_hw else self.layer.with_input(hw)  # type: ignore[arg-type]
        mask, soft = self._input_mask(d, key_norm)
        passed = d * mask if soft is None else d * soft[:, None]
        touched = (pool_to_units((d * mask).detach().abs().amax(dim=1), layer, 1, 0.0, self.padding_mode) > 0)
        self._counts.append(touched.sum(dim=(1, 2)))
        if soft is not None:  # an output position is as touched as its most passed input position
            self._soft_counts.append(pool_to_units(soft, layer, 1, 0.0, self.padding_mode).sum(dim=(1, 2)))
        self._layer = layer
        (ph, pw) = layer.padding
        padded = passed
        if ph or pw:
            pads = (pw, pw, ph, ph)
            padded = F.pad(passed, pads) if self.padding_mode == "zeros" else \
                F.pad(passed, pads, mode=self.padding_mode)
        # relaxed, every output position takes its (soft) share
        out_mask = touched.to(d.dtype) if soft is None else torch.ones_like(touched, dtype=d.dtype)
        update = self._sparse(padded, out_mask, layer) if self.sparse else self._dense(padded, out_mask, layer)
        new_ref = torch.where(mask > 0, dx, ref) if soft is None else ref + passed
        return new_ref, update

    def _key_norm(self, x_key: torch.Tensor) -> torch.Tensor:
        return self._squared_norm(x_key).sqrt().mean(dim=(1, 2))

    def _finish(self) -> None:
        counts = torch.cat(self._counts) if self._counts else torch.zeros(0)
        self._last = (counts, self._layer)
        units = self._units(self._layer)
        fraction = counts.float().mean() / units if counts.numel() else torch.tensor(0.0)
        self.relaxed_fraction = None
        if self._soft_counts:
            self.relaxed_fraction = torch.cat(self._soft_counts).mean() / units
            fraction = fraction + self.relaxed_fraction - self.relaxed_fraction.detach()
        self.expected_fraction = fraction

    def run_group(self, dx: torch.Tensor, x_key: torch.Tensor) -> torch.Tensor:
        """``dx`` (G, T-1, C, H, W): changes since each group's key frame ``x_key`` (G, C, H, W), in
        order -> the output updates since the key frame (G, T-1, C_out, H_out, W_out)."""
        self._counts, self._soft_counts, key_norm = [], [], self._key_norm(x_key)
        ref = torch.zeros_like(dx[:, 0])
        total, outs = None, []
        for t in range(dx.shape[1]):
            ref, update = self._propagate(dx[:, t], ref, key_norm)
            total = update if total is None else total + update
            outs.append(total)
        self._finish()
        return torch.stack(outs, dim=1)

    def reset(self) -> None:
        """A new key frame: the reference is the key frame again."""
        self._state = None

    def step(self, dx: torch.Tensor, x_key: torch.Tensor) -> torch.Tensor:
        """Streaming: the frames of ``dx`` (N, C, H, W) follow the previous call's, in order."""
        self._counts, self._soft_counts, key_norm = [], [], self._key_norm(x_key)
        outs = []
        for frame in dx.split(1):
            ref, total = self._state if self._state is not None else (torch.zeros_like(frame), None)
            ref, update = self._propagate(frame, ref, key_norm)
            self._state = (ref, update if total is None else total + update)
            outs.append(self._state[1])
        self._finish()
        return torch.cat(outs)

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("RunningGatedDelta runs frames in order: call run_group or step (DeltaConv does)")


def column_energy(conv: nn.Conv2d) -> torch.Tensor:
    """Per input channel, the squared norm of the weights it feeds (its share of the output)."""
    w = conv.weight.detach().pow(2).sum(dim=(2, 3))  # (C_out, C_in / groups)
    g = conv.groups
    return w.view(g, w.shape[0] // g, w.shape[1]).sum(dim=1).flatten()
