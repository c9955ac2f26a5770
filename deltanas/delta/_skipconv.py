"""The skip-convolution operator ``gated:...`` (a student applied only at the output positions whose input
changed) and the skip-convolution designs built from it.

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

The modules: :class:`~deltanas.delta.GatedDelta` (against the key frame) and
:class:`~deltanas.delta.RunningGatedDelta` (against a running reference).
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

from torch import nn

from ..errors import ArchError
from ._arch import Arch
from ._gated import DEFAULT_EXPECTED_FRACTION, GatedDelta
from ._gates import Gate, LearnedGate, ThresholdGate, TopPGate, active_units, unit_grid, unit_layer
from ._layers import LayerInfo
from ._ops import StudentOp, make_op, register_op
from ._running import RUNNING_GATES, RunningGatedDelta, column_energy
from ._spec import OpSpec

__all__ = ["Gated", "skipconv_designs"]

_GATES: dict[str, type[Gate]] = {"p": TopPGate, "t": ThresholdGate, "learned": LearnedGate}
_FORM = ("write gated:GATE[:run][:bB][:fF](OP[,REST]) with GATE one of pP, tT, learned (or aA, wA, changed "
         "with run)")



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
        if misspelt or self.kind not in (RUNNING_GATES if self.running else _GATES):
            name, needs_run = ("changed" if self.kind == "c" else self.kind), self.kind in RUNNING_GATES
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

    def unit_cost(self, layer: LayerInfo) -> tuple[int, int]:
        """``(fixed, per active unit)``: the MACs on ``layer`` are ``fixed + per_unit x active units`` (the gate
        and every unit's ``rest``, and what ``inner`` costs beyond ``rest`` on one unit)."""
        units, unit = self.units(layer), self.unit_layer(layer)
        rest = self.rest.macs(unit) if self.rest is not None else 0
        gate = (RUNNING_GATES if self.running else _GATES)[self.kind]
        return gate.macs(layer) + units * rest, self.inner.macs(unit) - rest

    def macs(self, layer: LayerInfo) -> int:
        fixed, per_unit = self.unit_cost(layer)
        return fixed + active_units(self.fraction_for(layer), self.units(layer)) * per_unit

    def build(self, layer: LayerInfo, conv: nn.Conv2d) -> nn.Module:
        (h, w), (ph, pw) = layer.in_hw, layer.padding
        unpadded = layer.with_input((h + 2 * ph, w + 2 * pw), padding=(0, 0))
        if self.running:
            unit = self.unit_layer(layer)
            weight = None
            if self.kind == "w":
                weight = column_energy(conv)
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


def skipconv_designs(ps: Sequence[float] = (0.5, 0.35, 0.25, 0.15), thresholds: Sequence[float] = (1.0, 2.0, 3.0),
                     running: Sequence[float] = (0.03, 0.05), *, block: int | None = None, learned: bool = False,
                     teacher: str | None = None) -> dict[str, Arch]:
    """The teacher copy gated everywhere: ``uniform:gated:pP(full)`` per ``P`` in ``ps``,
    ``uniform:gated:tT(full)`` per ``T`` in ``thresholds``, ``uniform:gated:wA:run(full)`` (a running
    reference) per ``A`` in ``running`` (not with ``block``) and ``gated:learned(full)`` with
    ``learned``, keyed by their operator spec (a valid ``--arch`` value). Every conv is gated,
    depthwise ones included. ``full`` has nothing to train; a learned gate does, and needs a MAC
    penalty on its expected fraction (:meth:`GatedDelta.expected_macs`) or it learns to update everything.
    """
    suffix = f":b{block}" if block is not None else ""
    specs = [f"gated:p{p:g}{suffix}(full)" for p in ps] + [f"gated:t{t:g}{suffix}(full)" for t in thresholds]
    if block is None:
        specs += [f"gated:w{a:g}:run(full)" for a in running]
    if learned:
        specs.append(f"gated:learned{suffix}(full)")
    designs: dict[str, Arch] = {}
    for spec in specs:
        op = make_op(spec)  # validates p, t and the block
        designs[str(op)] = Arch.uniform(str(op), teacher=teacher)
    return designs
