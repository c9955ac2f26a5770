"""Skip-convolutions: a student applied only at the output positions whose input changed.

Spec: ``gated:GATE[:run][:bB][:fF](OP[,REST])``, the arguments in this order:

* ``GATE``: ``pP`` the top ``P`` fraction of positions (or blocks) per frame, a fixed budget
  (``gated:p0.25(full)``); ``tT`` a threshold ``T`` on the per-position delta norm relative to the
  frame's mean norm (``gated:t1(full)``; ``t0`` is exact); ``learned`` a learned gate. See ``_gates``.
  ``aA`` (with ``run`` only): a threshold ``A`` relative to the key frame's mean per-position input
  norm, which lets a frame that barely changed (sensor noise) cost nothing; ``wA`` the same with each
  input channel weighted by its share of the layer's weight (squared column norm, mean 1), so that
  the gate measures the change a position makes to the output rather than to the input.
  ``changed`` (with ``run`` only): every input position whose change is not zero, exact. Behind a gated
  layer a change is sparse already; testing it takes comparisons, not multiplies (a sparse
  implementation reads the mask the layer before wrote), so this gate adds no MACs. The search's
  running candidate gives it to the depthwise convolutions, whose threshold costs nearly what they do.
* ``run``: a running reference per position (DeltaCNN, Parger et al. 2022) instead of the key frame:
  see :class:`RunningGatedDelta`.
* ``bB``: gate ``B x B`` blocks of output positions instead of single positions (``B >= 2``).
* ``fF``: the expected active fraction of a threshold or learned gate, which the analytic MACs use
  (default 0.25). Calibrate it with :func:`deltanas.analysis.measure_gating` on your footage and
  write it into the spec (``gated:t1:f0.31(full)``); a top-p gate's fraction is ``P``, except with
  ``run``: it passes the top P of the input positions, whose receptive fields touch more outputs
  (up to 9x on a 3 x 3 conv; that bound without f, the measured fraction with it).
* ``OP``: the student computed at the active units (``full``, ``lowrank:R``, ``channel:C``,
  ``depthwise``, ``zero``); ``REST`` (optional): a cheap student for the inactive units, which
  otherwise keep their key-frame output (a zero update).

MACs of one delta frame (what the sparse path computes, block and receptive-field aware):
``gate + k x macs(OP on one unit's patch) + (units - k) x macs(REST on one unit's patch)`` with
``k = ceil(fraction x units)``. On a unit's patch (the tile plus the conv's halo) a separable student
such as ``lowrank`` recomputes part of its first conv per tile, which this count includes.

The module has two paths computing the same thing: ``sparse=False`` (default; any device, trains)
runs the students densely and masks their outputs; ``sparse=True`` gathers the active units' input
patches, runs the students on that batch and scatters the results back (CPU inference that really
skips work; a learned gate then gets gradient only from its expected fraction). Each call records
the measured fraction of active units (``last_active_fraction``) and the MACs the sparse path spends
(``last_macs``); ``expected_macs()`` is differentiable for a learned gate.
"""

from __future__ import annotations

import math
import zlib
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArchError
from ._gates import (
    Gate,
    GateDecision,
    LearnedGate,
    ThresholdGate,
    TopPGate,
    active_units,
    pool_to_units,
    top_mask,
    unit_grid,
    unit_layer,
    units_to_positions,
)
from ._layers import LayerInfo
from ._ops import StudentOp, make_op, register_op
from ._spec import OpSpec
from ._students import FullDelta, ZeroDelta

__all__ = ["Gated", "GatedDelta", "RunningGatedDelta", "DEFAULT_EXPECTED_FRACTION", "gated_layers"]

DEFAULT_EXPECTED_FRACTION = 0.25
_GATES: dict[str, type[Gate]] = {"p": TopPGate, "t": ThresholdGate, "learned": LearnedGate}


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
_RUNNING_GATES: dict[str, type[Gate]] = {"p": TopPGate, "t": ThresholdGate, "a": ThresholdGate,
                                         "w": _WeightedNormGate, "c": _ChangedGate}
_FORM = ("write gated:GATE[:run][:bB][:fF](OP[,REST]) with GATE one of pP, tT, learned (or aA, wA, changed "
         "with run)")


class GatedDelta(nn.Module):
    """``inner`` at the active output units of ``gate``, ``rest`` (or nothing) at the others.

    ``inner`` and ``rest`` are built for the layer *without* padding: this module pads ``dx`` once
    (as the teacher conv pads) so that the same students run on the whole map or on unit patches.
    """

    def __init__(self, gate: Gate, inner: nn.Module, rest: nn.Module | None, layer: LayerInfo, block: int,
                 padding_mode: str, unit_macs: tuple[int, int], sparse: bool = False) -> None:
        super().__init__()
        self.gate = gate
        self.inner = inner
        self.rest = rest
        self.layer = layer
        self.block = block
        self.padding_mode = padding_mode
        self.unit_macs = unit_macs  # (inner, rest) on one unit's patch
        self.sparse = sparse
        self.expected_fraction: torch.Tensor | None = None  # of the last call
        self._last: tuple[torch.Tensor, LayerInfo] | None = None  # active units per frame, geometry

    def extra_repr(self) -> str:
        return f"block={self.block}, sparse={self.sparse}"

    # -- measurements of the last call --------------------------------------------------------
    def _units(self, layer: LayerInfo) -> int:
        uh, uw = unit_grid(layer, self.block)
        return uh * uw

    def _macs(self, layer: LayerInfo, active: "float | torch.Tensor") -> "float | torch.Tensor":
        inner, rest = self.unit_macs
        return type(self.gate).macs(layer) + active * inner + (self._units(layer) - active) * rest

    @property
    def last_active_fraction(self) -> float | None:
        """Mean fraction of active units (positions, or blocks) over the frames of the last call."""
        if self._last is None:
            return None
        active, layer = self._last
        return float(active.float().mean()) / self._units(layer)

    @property
    def last_macs(self) -> float | None:
        """MACs per frame of the last call, as the sparse path spends them (gate included)."""
        if self._last is None:
            return None
        active, layer = self._last
        return float(self._macs(layer, float(active.float().mean())))

    def expected_macs(self) -> torch.Tensor:
        """MACs per frame at the last call's size and expected fraction (differentiable when learned)."""
        if self._last is None or self.expected_fraction is None:
            raise RuntimeError("GatedDelta.expected_macs: run the layer on a delta first")
        layer = self._last[1]
        return self._macs(layer, self.expected_fraction * self._units(layer))  # type: ignore[return-value]

    @property
    def last_teacher_macs(self) -> int:
        """The dense teacher layer's MACs at the last call's size (what ``expected_macs`` compares to)."""
        if self._last is None:
            raise RuntimeError("GatedDelta.last_teacher_macs: run the layer on a delta first")
        return self._last[1].teacher_macs

    def reset_measurements(self) -> None:
        self._last, self.expected_fraction = None, None

    # -- computing ----------------------------------------------------------------------------
    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        hw = tuple(dx.shape[-2:])
        layer = self.layer if hw == self.layer.in_hw else self.layer.with_input(hw)  # type: ignore[arg-type]
        decision: GateDecision = self.gate(dx, layer, self.block, self.padding_mode)
        self.expected_fraction = decision.expected_fraction
        self._last = ((decision.mask.detach() > 0.5).sum(dim=(1, 2)), layer)
        (ph, pw) = layer.padding
        if ph or pw:
            pads = (pw, pw, ph, ph)
            dx = F.pad(dx, pads) if self.padding_mode == "zeros" else F.pad(dx, pads, mode=self.padding_mode)
        if self.sparse:
            return self._sparse(dx, decision.mask, layer)
        return self._dense(dx, decision.mask, layer)

    def _dense(self, dx: torch.Tensor, mask: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
        m = units_to_positions(mask, self.block, layer.out_hw)
        out = None if isinstance(self.inner, ZeroDelta) else self.inner(dx) * m
        if self.rest is not None:
            rest = self.rest(dx) * (1 - m)
            out = rest if out is None else out + rest
        if out is None:
            out = dx.new_zeros(dx.shape[0], layer.out_channels, *layer.out_hw)
        return out

    def _sparse(self, dx: torch.Tensor, mask: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
        b, n = self.block, dx.shape[0]
        (uh, uw), patch = unit_grid(layer, b), unit_layer(layer, b).in_hw
        (sh, sw), (dh, dw), (kh, kw) = layer.stride, layer.dilation, layer.kernel
        # Pad bottom/right so that the border units' patches exist (their extra outputs are cropped).
        need_h, need_w = (uh * b - 1) * sh + dh * (kh - 1) + 1, (uw * b - 1) * sw + dw * (kw - 1) + 1
        have_h, have_w = (size + 2 * p for size, p in zip(layer.in_hw, layer.padding))
        if need_h > have_h or need_w > have_w:
            dx = F.pad(dx, (0, max(0, need_w - have_w), 0, max(0, need_h - have_h)))
        patches = dx.unfold(2, patch[0], b * sh).unfold(3, patch[1], b * sw)  # (N, C, uh', uw', ph, pw), a view
        out = dx.new_zeros(n, layer.out_channels, uh, b, uw, b)
        tiles = out.permute(0, 2, 4, 1, 3, 5)  # (N, uh, uw, C_out, b, b), a view of out
        active = mask.detach() > 0.5
        for module, where in ((self.inner, active), (self.rest, ~active)):
            if module is None or isinstance(module, ZeroDelta):
                continue
            index = where.nonzero(as_tuple=True)
            if index[0].numel():
                tiles[index] = self._run_on_patches(module, patches[index[0], :, index[1], index[2]])
        return out.view(n, layer.out_channels, uh * b, uw * b)[:, :, : layer.out_hw[0], : layer.out_hw[1]]

    def _run_on_patches(self, module: nn.Module, patches: torch.Tensor) -> torch.Tensor:
        """``module(patches)``; the exact teacher copy as a matrix product where that is what it is
        (one output per patch, or a 1x1 kernel): about 2x faster on CPU than a batch of small convs,
        and a depthwise one with one output per patch as a weighted sum (~8x faster)."""
        if isinstance(module, FullDelta) and module.layer.is_depthwise and module.layer.out_channels == \
                module.layer.in_channels and patches.shape[-2:] == module.weight.shape[-2:]:
            return (patches * module.weight[:, 0]).sum(dim=(2, 3))[:, :, None, None]
        if isinstance(module, FullDelta) and module.layer.groups == 1:
            w = module.weight
            if patches.shape[-2:] == w.shape[-2:]:
                return F.linear(patches.flatten(1), w.flatten(1)).view(-1, w.shape[0], 1, 1)
            if w.shape[-2:] == (1, 1):
                (sh, sw) = module.layer.stride
                patches = patches[:, :, ::sh, ::sw]
                k, c, bh, bw = patches.shape
                y = F.linear(patches.permute(0, 2, 3, 1).reshape(-1, c), w.flatten(1))
                return y.view(k, bh, bw, -1).permute(0, 3, 1, 2)
        return module(patches)


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
    """

    sequential = True

    def __init__(self, kind: str, value: float, inner: nn.Module, layer: LayerInfo, padding_mode: str,
                 unit_macs: tuple[int, int], sparse: bool = False, channel_weight: torch.Tensor | None = None) -> None:
        gate = _RUNNING_GATES[kind](value)  # holds the value; its .macs() counts the norm
        super().__init__(gate, inner, None, layer, 1, padding_mode, unit_macs, sparse)
        self.kind = kind
        self.register_buffer("channel_weight", channel_weight, persistent=False)
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None  # (x_ref - x_key, z - z_key)
        self._counts: list[torch.Tensor] = []  # touched output positions per frame, this call
        self._layer = layer  # the geometry of this call's frames

    def extra_repr(self) -> str:
        gate = "changed" if self.kind == "c" else f"{self.kind}{self.value:g}"
        return f"gate={gate}, running reference, sparse={self.sparse}"

    @property
    def value(self) -> float:
        """The gate's fraction p or threshold (set ``gate.p`` / ``gate.t`` to change it)."""
        return self.gate.p if self.kind == "p" else self.gate.t  # type: ignore[return-value]

    def _squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_weight is None:
            return (x * x).sum(dim=1)
        return (x * x * self.channel_weight[:, None, None]).sum(dim=1)

    def _input_mask(self, d: torch.Tensor, key_norm: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) 0/1: the input positions whose change passes the gate."""
        if self.kind == "c":  # a nonzero test: no norm
            return d.ne(0).any(dim=1, keepdim=True).to(d.dtype)
        sq = self._squared_norm(d)
        if self.kind == "p":
            flat = sq.flatten(1)
            k = active_units(self.value, flat.shape[1])
            mask = top_mask(flat, k)
            return mask.view_as(sq)[:, None]
        norm = sq.sqrt()
        scale = norm.mean(dim=(1, 2)) if self.kind == "t" else key_norm
        return (norm > self.value * scale[:, None, None]).to(d.dtype)[:, None]

    def _propagate(self, dx: torch.Tensor, ref: torch.Tensor,
                   key_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame's change since the key frame ``dx`` against the reference ``ref``: the new reference
        (``dx`` where the gate passed: exactly, so an unchanged position stays at zero change) and the
        output update the passed part makes."""
        d = dx - ref
        hw = tuple(d.shape[-2:])
        layer = self.layer if hw == self.layer.in_hw else self.layer.with_input(hw)  # type: ignore[arg-type]
        mask = self._input_mask(d, key_norm)
        passed = d * mask
        touched = (pool_to_units(passed.abs().amax(dim=1), layer, 1, 0.0, self.padding_mode) > 0)
        self._counts.append(touched.sum(dim=(1, 2)))
        self._layer = layer
        (ph, pw) = layer.padding
        padded = passed
        if ph or pw:
            pads = (pw, pw, ph, ph)
            padded = F.pad(passed, pads) if self.padding_mode == "zeros" else \
                F.pad(passed, pads, mode=self.padding_mode)
        out_mask = touched.to(d.dtype)
        update = self._sparse(padded, out_mask, layer) if self.sparse else self._dense(padded, out_mask, layer)
        return torch.where(mask > 0, dx, ref), update

    def _key_norm(self, x_key: torch.Tensor) -> torch.Tensor:
        return self._squared_norm(x_key).sqrt().mean(dim=(1, 2))

    def _finish(self) -> None:
        counts = torch.cat(self._counts) if self._counts else torch.zeros(0)
        self._last = (counts, self._layer)
        fraction = counts.float().mean() / self._units(self._layer) if counts.numel() else torch.tensor(0.0)
        self.expected_fraction = fraction

    def run_group(self, dx: torch.Tensor, x_key: torch.Tensor) -> torch.Tensor:
        """``dx`` (G, T-1, C, H, W): changes since each group's key frame ``x_key`` (G, C, H, W), in
        order -> the output updates since the key frame (G, T-1, C_out, H_out, W_out)."""
        self._counts, key_norm = [], self._key_norm(x_key)
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
        self._counts, key_norm = [], self._key_norm(x_key)
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


def _column_energy(conv: nn.Conv2d) -> torch.Tensor:
    """Per input channel, the squared norm of the weights it feeds (its share of the output)."""
    w = conv.weight.detach().pow(2).sum(dim=(2, 3))  # (C_out, C_in / groups)
    g = conv.groups
    return w.view(g, w.shape[0] // g, w.shape[1]).sum(dim=1).flatten()


def gated_layers(model: nn.Module) -> dict[str, GatedDelta]:
    """The gated students of a (delta) model by name of their module."""
    return {name: m for name, m in model.named_modules() if isinstance(m, GatedDelta)}


# -- the operator ---------------------------------------------------------------------------------

def _fraction(spec: OpSpec, text: str, what: str, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArchError(f"operator {spec}: {what} {text!r} is not a number; {_FORM}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ArchError(f"operator {spec}: {what} must be " + ("non-negative" if allow_zero else "positive"))
    return value


@register_op
class Gated(StudentOp):
    """``gated:GATE[:bB][:fF](OP[,REST])``: a skip-convolution (see the module docstring)."""

    name = "gated"
    arity = (1, 3)
    takes_inner = True
    max_inners = 2

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        args = list(spec.args)
        gate = args.pop(0)
        self.kind = {"learned": "learned", "changed": "c"}.get(gate, gate[:1])
        self.running = bool(args) and args[0] == "run"
        if self.running:
            args.pop(0)
        if self.running and self.kind == "learned":
            raise ArchError(f"operator {spec}: a running reference takes the gates p, t, a, w or changed, "
                            f"not learned")
        misspelt = self.kind == "c" and gate != "changed"
        if misspelt or self.kind not in (_RUNNING_GATES if self.running else _GATES):
            name, needs_run = ("changed" if self.kind == "c" else self.kind), self.kind in _RUNNING_GATES
            hint = f" (the gate {name} needs run: gated:{gate}:run(OP))" if needs_run and not misspelt else ""
            raise ArchError(f"operator {spec}: unknown gate {gate!r}{hint}; {_FORM}")
        self.value: float | None = 0.0 if self.kind == "c" else None
        if self.kind == "p":
            self.value = _fraction(spec, gate[1:], "the fraction p")
            if self.value > 1:
                raise ArchError(f"operator {spec}: the fraction p must be in (0, 1]")
        elif self.kind in ("t", "a", "w"):
            self.value = _fraction(spec, gate[1:], f"the threshold {self.kind}", allow_zero=True)
        self.block = 1
        if args and args[0].startswith("b"):
            text = args.pop(0)[1:]
            if not text.isdigit() or int(text) < 2:
                raise ArchError(f"operator {spec}: the block size must be an integer >= 2 (leave it out "
                                f"to gate single positions)")
            self.block = int(text)
        self.calibrated: float | None = None
        if args and args[0].startswith("f"):
            if self.kind == "p" and not self.running:
                raise ArchError(f"operator {spec}: a top-p gate's fraction is p; f is for t and learned gates "
                                f"(and for the touched outputs of gated:pP:run)")
            self.calibrated = _fraction(spec, args.pop(0)[1:], "the expected fraction f")
            if self.calibrated > 1:
                raise ArchError(f"operator {spec}: the expected fraction f must be in (0, 1]")
        if args:
            raise ArchError(f"operator {spec}: unexpected argument {args[0]!r}; {_FORM}")
        self.inner = make_op(spec.inners[0])
        self.rest = make_op(spec.inners[1]) if len(spec.inners) > 1 else None
        if self.running and (self.block > 1 or self.rest is not None):
            raise ArchError(f"operator {spec}: a running reference gates single positions and takes no REST "
                            f"student (what it skips stays in the reference for a later frame)")
        for op in (self.inner, self.rest):
            if op is not None and op.name in ("subsample", "gated"):
                raise ArchError(f"operator {spec}: {op.name} cannot run inside gated (the students run on "
                                f"patches of the input); use full, zero, lowrank, channel or depthwise")

    def fraction_for(self, layer: LayerInfo) -> float:
        """The active fraction of output units the analytic MACs assume on ``layer``: f when given, p for
        a top-p gate, else 0.25. A running top-p gate passes the top p of the *input* positions, and each
        touches up to ``ceil(k / s)`` output positions per axis (9 for a 3 x 3 convolution): without a
        measured f its count is that upper bound, so that it never under-reports (measured on real
        footage it spends less)."""
        if self.calibrated is not None:
            return self.calibrated
        if self.kind != "p":
            return DEFAULT_EXPECTED_FRACTION
        if not self.running:
            return self.value  # type: ignore[return-value]
        passed = active_units(self.value, layer.in_hw[0] * layer.in_hw[1])  # type: ignore[arg-type]
        reach = math.prod(math.ceil((d * (k - 1) + 1) / s)
                          for k, s, d in zip(layer.kernel, layer.stride, layer.dilation))
        return min(1.0, passed * reach / (layer.out_hw[0] * layer.out_hw[1]))

    def units(self, layer: LayerInfo) -> int:
        uh, uw = unit_grid(layer, self.block)
        return uh * uw

    def unit_layer(self, layer: LayerInfo) -> LayerInfo:
        return unit_layer(layer, self.block)

    def unfit_reason(self, layer: LayerInfo) -> str | None:
        for op in (self.inner, self.rest):
            if op is not None:
                reason = op.unfit_reason(layer)
                if reason:
                    return reason
        return None

    def macs(self, layer: LayerInfo) -> int:
        units, unit = self.units(layer), self.unit_layer(layer)
        active = active_units(self.fraction_for(layer), units)
        rest = self.rest.macs(unit) if self.rest is not None else 0
        gate = (_RUNNING_GATES if self.running else _GATES)[self.kind]
        return gate.macs(layer) + active * self.inner.macs(unit) + (units - active) * rest

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        (h, w), (ph, pw) = layer.in_hw, layer.padding
        unpadded = layer.with_input((h + 2 * ph, w + 2 * pw), padding=(0, 0))
        if self.running:
            unit = self.unit_layer(layer)
            weight = None
            if self.kind == "w":
                weight = _column_energy(conv)
                weight = weight / weight.mean().clamp_min(1e-12)
            return RunningGatedDelta(self.kind, self.value, self.inner.build(unpadded, conv),  # type: ignore[arg-type]
                                     layer, conv.padding_mode, (self.inner.macs(unit), 0), channel_weight=weight)
        if self.kind == "learned":  # its noise comes from its own generator, seeded per layer
            gate: Gate = LearnedGate(seed=zlib.crc32(layer.name.encode()))
        else:
            gate = _GATES[self.kind](self.value)
        inner = self.inner.build(unpadded, conv)
        rest = None
        if self.rest is not None and self.rest.name != "zero":
            rest = self.rest.build(unpadded, conv)
        unit = self.unit_layer(layer)
        unit_macs = (self.inner.macs(unit), self.rest.macs(unit) if rest is not None else 0)
        return GatedDelta(gate, inner, rest, layer, self.block, conv.padding_mode, unit_macs)

    @property
    def trainable(self) -> bool:
        return self.kind == "learned" or self.inner.trainable or (self.rest is not None and self.rest.trainable)
