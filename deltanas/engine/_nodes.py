"""The engine's nodes: what each op does to a sparse change, in plain PyTorch (the reference path).

A delta frame carries, per tensor, a :class:`Message`: the positions that changed since the last frame
(``idx``, row-major) and the change there (``val``, ``[n, C]``, channels last). Positions not listed did
not change. Each node turns the messages of its inputs into the message of its output:

* linear ops (convolutions with BatchNorm folded, per-channel scales, adds, concatenation, average
  pooling, upsampling, Linear) compute the change of their output at the positions their input reaches;
* nonlinear ops keep the current value of their input (``state``) and output ``f(state + d) - f(state)``
  at the changed positions only, dropping positions whose output did not change (a saturated or
  negative ReLU6 input): sparsity flows on;
* a gate in front of a convolution decides which changes it passes on; against a running reference
  (:class:`~deltanas.delta.RunningGatedDelta`) what it holds back waits in ``acc`` for a later frame.

Every node also says which of its state a key frame fills (:meth:`Node.key_exports`), so that a dense
runtime can run the key frame and hand the engine what it needs. ``_native`` runs the same nodes in C++;
a node it does not implement runs here, between native segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..delta import (FullDelta, GatedDelta, LayerInfo, RunningGatedDelta, StudentOp, ThresholdGate, TopPGate,
                     ZeroDelta, top_mask)
from ..errors import ArchError
from ._geometry import Geometry, pair

__all__ = [
    "Message", "KeyExport", "Node", "InputNode", "ConvNode", "conv_node", "GateSpec", "AffineNode", "ActivationNode",
    "AliasNode", "AddNode", "CatNode", "MaxPoolNode", "AvgPoolNode", "GlobalPoolNode", "UpsampleNode", "ACTIVATIONS",
]


class Message(NamedTuple):
    idx: torch.Tensor  # (n,) int64 positions
    val: torch.Tensor  # (n, C)


def empty_message(channels: int, dtype: torch.dtype) -> Message:
    return Message(torch.zeros(0, dtype=torch.long), torch.zeros(0, channels, dtype=dtype))


@dataclass(frozen=True)
class KeyExport:
    """State a key frame fills: ``kind='map'`` the value of tensor ``tensor`` (positions x channels, into
    ``buffer``), ``kind='norm'`` the mean over positions of its per-position L2 norm, channels weighted by
    ``weight`` (a scalar, as the running gates' ``a``/``w`` thresholds take it)."""

    buffer: str
    tensor: int
    kind: str = "map"
    weight: torch.Tensor | None = None


class Frame:
    """The torch path's working set for one delta frame: messages by tensor, the engine's state, MACs."""

    def __init__(self, state: dict[str, torch.Tensor], tensors: list, dtype: torch.dtype) -> None:
        self.state = state
        self.tensors = tensors
        self.dtype = dtype
        self.msgs: dict[int, Message] = {}
        self.macs: dict[str, float] = {}

    def message(self, tensor: int) -> Message:
        return self.msgs[tensor]

    def count(self, name: str, macs: float) -> None:
        self.macs[name] = self.macs.get(name, 0.0) + macs


@dataclass
class Node:
    name: str
    inputs: tuple[int, ...]
    output: int
    uid: int = -1  # position in the graph, set by the engine; prefixes the node's buffers

    def buffer(self, what: str) -> str:
        return f"{self.uid}:{what}"

    def buffers(self, tensors: list) -> dict[str, tuple[tuple[int, ...], float]]:
        """State buffers this node keeps: name -> (shape, initial value)."""
        return {}

    def key_exports(self) -> list[KeyExport]:
        return []

    def reset(self, state: dict[str, torch.Tensor]) -> None:
        """A key frame: clear what the node held for the last group (buffers a key frame does not fill)."""

    def load_key(self, state: dict[str, torch.Tensor], export: KeyExport, value: torch.Tensor) -> None:
        """Put a key frame's ``value`` of ``export`` (positions x channels, or a scalar) into its buffer."""
        state[export.buffer].copy_(value.reshape(state[export.buffer].shape))

    def run(self, frame: Frame) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# -- input ---------------------------------------------------------------------------------------------

@dataclass
class InputNode(Node):
    """The frame: its change since the last frame, at the positions where any channel changed. Its state is
    the last frame, planar (C, positions) as frames arrive."""

    def buffers(self, tensors):
        t = tensors[self.output]
        return {self.buffer("x"): ((t.c, t.positions), 0.0)}

    def load_frame(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        """A key frame ``x`` (1, C, H, W) becomes the reference of the next frame."""
        state[self.buffer("x")].copy_(x.reshape(state[self.buffer("x")].shape))

    def run(self, frame: Frame) -> None:
        raise RuntimeError("InputNode runs through SparseEngine, which hands it the frame")

    def feed(self, frame: Frame, x: torch.Tensor) -> None:
        """``x`` (1, C, H, W)."""
        state = frame.state[self.buffer("x")]
        planar = x.reshape(state.shape)
        d = planar - state
        idx = d.ne(0).any(dim=0).nonzero().flatten()
        frame.msgs[self.output] = Message(idx, d.index_select(1, idx).t())
        state.copy_(planar)


# -- convolutions ------------------------------------------------------------------------------------------

@dataclass
class GateSpec:
    """A running-reference gate (see :class:`~deltanas.delta.RunningGatedDelta`): ``kind`` p (top fraction of
    the held-back positions), t (norm above ``value`` x the frame's mean norm), a / w (above ``value`` x the
    key frame's mean input norm; w weights channels by ``channel_weight``)."""

    kind: str
    value: float
    channel_weight: torch.Tensor | None = None

    @property
    def needs_key_norm(self) -> bool:
        return self.kind in ("a", "w")

    def norm_macs(self, rows: int, channels: int) -> int:
        return (2 if self.channel_weight is not None else 1) * rows * channels


@dataclass
class ConvNode(Node):
    """A convolution (or Linear, as 1 x 1 on a vector) and the rule by which it updates on a delta frame.

    ``rule``: ``exact`` (every change passes), ``zero`` (the key frame's output is kept), ``gate`` (a running
    gate ``gate`` passes changes, the rest wait in the reference), ``student`` (the layer's student ``module``
    runs densely on the change since the key frame: any other operator, correct but not sparse).
    ``inner`` is None when the update is the teacher's own weights (sparse), else a module run densely on
    the passed change (a running gate with a trained inner student). ``out_scale`` is a folded BatchNorm's
    scale for what runs as a module (the weights already hold it).
    """

    geometry: Geometry = None  # type: ignore[assignment]
    groups: int = 1
    weight: torch.Tensor = None  # type: ignore[assignment]  # (C_out, C_in / groups, kh, kw), BN folded
    rule: str = "exact"
    gate: GateSpec | None = None
    module: nn.Module | None = None
    inner: nn.Module | None = None
    out_scale: torch.Tensor | None = None
    op: StudentOp | None = None
    padding_mode: str = "zeros"
    is_linear: bool = False
    folded_bn: str | None = None
    # an a / w gate whose input is an activation's output derives the key frame's norm from that activation's
    # kept input (cheaper than a dense runtime exporting it)
    norm_source: "ActivationNode | None" = None

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def linear(cls, name: str, inp: int, out: int, fc: nn.Linear) -> "ConvNode":
        weight = fc.weight.detach().float()[:, :, None, None]
        geometry = Geometry(1, 1, fc.in_features, 1, 1, fc.out_features)
        return cls(name=name, inputs=(inp,), output=out, geometry=geometry, weight=weight, is_linear=True)

    def scale_output(self, scale: torch.Tensor) -> None:
        """Fold a following BatchNorm's scale (per output channel)."""
        self.weight = self.weight * scale.view(-1, 1, 1, 1).to(self.weight.dtype)
        if self.rule in ("student",) or self.inner is not None:
            self.out_scale = scale if self.out_scale is None else self.out_scale * scale

    # -- facts ---------------------------------------------------------------------------------
    @property
    def is_depthwise(self) -> bool:
        g = self.geometry
        return self.groups > 1 and self.groups == g.in_c == g.out_c

    @property
    def position_macs(self) -> int:
        """Multiply-adds of one output position (the teacher's, per position)."""
        g = self.geometry
        return g.taps * (g.in_c // self.groups) * g.out_c

    def layer_info(self) -> LayerInfo:
        g = self.geometry
        return LayerInfo(self.name, g.in_c, g.out_c, g.kernel, g.stride, g.padding, g.dilation, self.groups,
                         (g.in_h, g.in_w), (g.out_h, g.out_w))

    def buffers(self, tensors):
        g = self.geometry
        hw, c = g.in_h * g.in_w, g.in_c
        if self.rule == "gate":  # dirty: positions that held a change since the key frame (what t and p scan)
            return {self.buffer("acc"): ((hw, c), 0.0), self.buffer("key_norm"): ((1,), 0.0),
                    self.buffer("dirty"): ((hw,), 0.0)}
        if self.rule == "student":
            o = (g.out_h * g.out_w, g.out_c)
            return {self.buffer("since_key"): ((1, c, g.in_h, g.in_w), 0.0), self.buffer("out"): (o, 0.0)}
        if self.rule == "keygate":  # the change since the key frame (padded), the selected units' outputs
            hp, wp = g.padded_hw
            units = g.out_h * g.out_w
            return {self.buffer("since"): ((hp * wp, c), 0.0), self.buffer("dirty"): ((hw,), 0.0),
                    self.buffer("out"): ((units, g.out_c), 0.0), self.buffer("selected"): ((units,), 0.0)}
        return {}

    def key_exports(self):
        if self.rule == "gate" and self.gate.needs_key_norm and self.norm_source is None:
            return [KeyExport(self.buffer("key_norm"), self.inputs[0], "norm", self.gate.channel_weight)]
        return []

    def derive_key_norm(self, state: dict[str, torch.Tensor]) -> None:
        """The key frame's mean input norm from ``norm_source``'s state (after the key frame loaded it)."""
        src = self.norm_source
        y = ACTIVATIONS[src.kind](state[src.buffer("state")], **src.params)
        state[self.buffer("key_norm")].fill_(float(_norm(y, self.gate.channel_weight).mean()))

    def reset(self, state):
        if self.rule == "gate":
            state[self.buffer("acc")].zero_()
            state[self.buffer("dirty")].zero_()
        elif self.rule == "student":
            state[self.buffer("since_key")].zero_()
            state[self.buffer("out")].zero_()
        elif self.rule == "keygate":
            for what in ("since", "dirty", "out", "selected"):
                state[self.buffer(what)].zero_()

    # -- running -------------------------------------------------------------------------------
    def run(self, frame: Frame) -> None:
        msg = frame.message(self.inputs[0])
        g = self.geometry
        if self.rule == "zero" or (msg.idx.numel() == 0 and self.rule != "gate"):
            frame.msgs[self.output] = empty_message(g.out_c, frame.dtype)
            return
        if self.rule == "student":
            frame.msgs[self.output] = self._student(frame, msg)
            return
        if self.rule == "keygate":
            frame.msgs[self.output] = self._keygate(frame, msg)
            return
        if self.rule == "gate":
            msg = self._gate(frame, msg)
            if msg.idx.numel() == 0:
                frame.msgs[self.output] = empty_message(g.out_c, frame.dtype)
                return
        if self.inner is not None:
            out = self._dense_inner(msg)
        else:
            out = conv_message(msg, self.geometry, self._weights(frame.dtype), self.groups)
        g = self.geometry
        if self.is_depthwise and self.inner is None:
            frame.count(self.name, g.reach(msg.idx) * g.in_c)  # each output sums its changed inputs' taps
        else:
            frame.count(self.name, out.idx.numel() * self.position_macs)
        frame.msgs[self.output] = out

    def _weights(self, dtype: torch.dtype, window: bool = False) -> torch.Tensor:
        """In :func:`conv_weights`' layout (``window``: the k x k one, which pointwise convolutions take too when
        they compute whole windows)."""
        cached = getattr(self, "_cache", None)
        key = (dtype, window)
        if cached is None or cached[0] != key:
            self._cache = (key, conv_weights(self.weight.to(dtype), self.groups, self.is_depthwise,
                                             self.geometry.is_pointwise and not window))
        return self._cache[1]

    def _gate(self, frame: Frame, msg: Message) -> Message:
        """Add the change into the held-back reference; pass on what the gate lets through."""
        gate, acc = self.gate, frame.state[self.buffer("acc")]
        acc.index_add_(0, msg.idx, msg.val)
        c = acc.shape[1]
        if gate.kind in ("a", "w"):
            rows = msg.idx
            held = acc.index_select(0, rows)
            frame.count(self.name, gate.norm_macs(rows.numel(), c))
            norm = _norm(held, gate.channel_weight)
            limit = gate.value * frame.state[self.buffer("key_norm")]
            passed = norm > limit
        else:  # frame-relative (t) and top-p: over every position that held back a change since the key frame
            dirty = frame.state[self.buffer("dirty")]
            dirty[msg.idx] = 1.0
            rows = dirty.nonzero().flatten()
            held = acc.index_select(0, rows)
            frame.count(self.name, gate.norm_macs(rows.numel(), c))
            if gate.kind == "t":
                norm = _norm(held, None)
                passed = norm > gate.value * norm.sum() / acc.shape[0]
            else:
                k = max(1, min(acc.shape[0], math.ceil(round(gate.value * acc.shape[0], 6))))
                sq = (held * held).sum(dim=1)
                passed = torch.zeros_like(sq, dtype=torch.bool)
                if rows.numel():
                    passed = top_mask(sq[None], min(k, rows.numel()))[0].bool() & (sq > 0)  # ties: lower position
        keep = rows[passed]
        out = Message(keep, held[passed])
        acc.index_fill_(0, keep, 0.0)
        return out

    def _keygate(self, frame: Frame, msg: Message) -> Message:
        """A skip-convolution against the key frame (:class:`~deltanas.delta.GatedDelta`): a selected output
        unit's value is the teacher's update from the change since the key frame, any other unit's zero; the
        message is the output's change since the last frame at the units selected now or before."""
        g, st = self.geometry, frame.state
        since, dirty = st[self.buffer("since")], st[self.buffer("dirty")]
        kept, selected = st[self.buffer("out")], st[self.buffer("selected")]
        since.index_add_(0, g.to_padded(msg.idx), msg.val)
        dirty[msg.idx] = 1.0
        rows = dirty.nonzero().flatten()
        frame.count(self.name, rows.numel() * g.in_c)
        vals = since.index_select(0, g.to_padded(rows))
        sq = (vals * vals).sum(dim=1)
        rows, sq = rows[sq > 0], sq[sq > 0]
        score = sq if self.gate.kind == "p" else sq.sqrt()
        units = g.out_h * g.out_w
        pooled = score.new_zeros(units)
        out, valid = g.reached(rows)
        reached = out[valid]
        pooled.scatter_reduce_(0, reached, score[:, None, None].expand_as(out)[valid], "amax")
        touched = torch.unique(reached)
        if self.gate.kind == "p":
            want = max(1, min(units, math.ceil(round(self.gate.value * units, 6))))
            scores = pooled[touched]
            now = touched[top_mask(scores[None], min(want, touched.numel()))[0].bool()]  # ties: lower position
        else:
            limit = self.gate.value * sq.sqrt().sum() / (g.in_h * g.in_w)
            now = touched[pooled[touched] > limit]
        fresh = window_values(since, g, self._weights(frame.dtype, window=True), self.groups, now)
        frame.count(self.name, now.numel() * self.position_macs)
        before = selected.nonzero().flatten()
        idx = torch.unique(torch.cat([now, before]))
        value = kept.new_zeros(idx.numel(), g.out_c)
        value[torch.searchsorted(idx, now)] = fresh
        d = value - kept.index_select(0, idx)
        kept.index_copy_(0, idx, value)
        selected.zero_()
        selected[now] = 1.0
        keep = d.ne(0).any(dim=1)
        return Message(idx[keep], d[keep])

    def _dense_inner(self, msg: Message) -> Message:
        """The passed change through a trained inner student, densely; rows where its window reached."""
        g = self.geometry
        dense = scatter_map(msg, g.in_h, g.in_w)
        (ph, pw) = g.padding
        if ph or pw:
            dense = F.pad(dense, (pw, pw, ph, ph)) if self.padding_mode == "zeros" else \
                F.pad(dense, (pw, pw, ph, ph), mode=self.padding_mode)
        y = _run_module(self.inner, dense)
        out_idx = g.touched(msg.idx)
        val = y.flatten(2)[0].t().index_select(0, out_idx)
        if self.out_scale is not None:
            val = val * self.out_scale.to(val.dtype)
        return Message(out_idx, val)

    def _student(self, frame: Frame, msg: Message) -> Message:
        g = self.geometry
        since_key = frame.state[self.buffer("since_key")]
        flat = since_key.view(g.in_c, -1)
        flat.index_add_(1, msg.idx, msg.val.t())
        y = _run_module(self.module, since_key)
        if self.out_scale is not None:
            y = y * self.out_scale.view(1, -1, 1, 1).to(y.dtype)
        y = y.flatten(2)[0].t()
        prev = frame.state[self.buffer("out")]
        d = y - prev
        idx = d.ne(0).any(dim=1).nonzero().flatten()
        prev.copy_(y)
        frame.count(self.name, self._student_macs())
        return Message(idx, d.index_select(0, idx))

    def _student_macs(self) -> float:
        if isinstance(self.module, GatedDelta) and self.module.last_macs is not None:
            return float(self.module.last_macs)
        if self.op is not None:
            return float(self.op.macs(self.layer_info()))
        return float(self.geometry.out_h * self.geometry.out_w * self.position_macs)


def conv_node(name: str, inp: int, out: int, in_info, out_info, conv: nn.Conv2d, student: nn.Module | None,
              op: StudentOp | None) -> ConvNode:
    """The node of a teacher convolution whose delta-frame update is ``student`` (None: exact)."""
    geometry = Geometry.make(in_info, out_info, conv.kernel_size, conv.stride, _padding(conv), conv.dilation)
    weight = conv.weight.detach().float()
    node = ConvNode(name=name, inputs=(inp,), output=out, geometry=geometry, groups=conv.groups, weight=weight,
                    op=op, padding_mode=conv.padding_mode)
    zero_padded = conv.padding_mode == "zeros" or geometry.padding == (0, 0)
    if student is None or isinstance(student, FullDelta):
        node.rule = "exact" if zero_padded else "student"
        node.module = None if zero_padded else _BiasFree(conv)
    elif isinstance(student, ZeroDelta):
        node.rule = "zero"
    elif isinstance(student, RunningGatedDelta):
        if not zero_padded:
            raise ArchError(f"layer {name}: the engine runs running-reference gates on zero-padded convolutions "
                            f"only (padding_mode {conv.padding_mode!r})")
        node.rule = "gate"
        node.gate = GateSpec(student.kind, float(student.value),
                             None if student.channel_weight is None else student.channel_weight.detach().float())
        if student.kind == "c":
            node.rule, node.gate = "exact", None  # every change passes: exact, and no norm
        if not isinstance(student.inner, FullDelta):
            node.inner = student.inner
    elif (isinstance(student, GatedDelta) and isinstance(student.gate, (TopPGate, ThresholdGate))
          and student.block == 1 and student.rest is None and isinstance(student.inner, FullDelta) and zero_padded):
        node.rule = "keygate"
        node.gate = GateSpec("p" if isinstance(student.gate, TopPGate) else "t",
                             float(student.gate.p if isinstance(student.gate, TopPGate) else student.gate.t))
    else:
        node.rule, node.module = "student", student
    return node


class _BiasFree(nn.Module):
    """A teacher convolution without its bias: the exact update of a non-zero-padded layer."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return c._conv_forward(dx, c.weight.to(dx.dtype), None)


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        k, d = pair(conv.kernel_size), pair(conv.dilation)
        total = [dd * (kk - 1) for dd, kk in zip(d, k)]
        if any(t % 2 for t in total):
            raise ArchError(f"{conv}: padding='same' with an even kernel is not supported")
        return (total[0] // 2, total[1] // 2)
    return pair(conv.padding)


def _run_module(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A student on ``x`` in the student's own dtype (the engine may compute in another)."""
    p = next(iter(module.parameters()), None)
    if p is None:
        p = next(iter(module.buffers()), None)
    if p is None or p.dtype == x.dtype:
        return module(x)
    return module(x.to(p.dtype)).to(x.dtype)


def _norm(rows: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    sq = rows * rows
    if weight is not None:
        sq = sq * weight.to(rows.dtype)
    return sq.sum(dim=1).sqrt()


def conv_weights(weight: torch.Tensor, groups: int, depthwise: bool, pointwise: bool) -> torch.Tensor:
    """The weight laid out for gathered rows: pointwise (C_in, C_out); depthwise (taps, C); otherwise
    (groups, taps x C_in/g, C_out/g), rows ordered tap-major as :meth:`Geometry.patch_index` gathers."""
    c_out, c_in_g, kh, kw = weight.shape
    if pointwise and groups == 1:
        return weight[:, :, 0, 0].t().contiguous()
    if depthwise:
        return weight[:, 0].reshape(c_out, kh * kw).t().contiguous()
    w = weight.view(groups, c_out // groups, c_in_g, kh, kw).permute(0, 3, 4, 2, 1)
    return w.reshape(groups, kh * kw * c_in_g, c_out // groups).contiguous()


def scatter_map(msg: Message, h: int, w: int) -> torch.Tensor:
    """A message as a dense (1, C, h, w) map, zero where nothing changed."""
    c = msg.val.shape[1]
    dense = msg.val.new_zeros(c, h * w)
    dense.index_copy_(1, msg.idx, msg.val.t())
    return dense.view(1, c, h, w)


def padded_rows(msg: Message, g: Geometry, fill: float = 0.0) -> torch.Tensor:
    """A message scattered into a (Hp * Wp, C) zero-padded frame."""
    hp, wp = g.padded_hw
    frame = msg.val.new_full((hp * wp, msg.val.shape[1]), fill)
    frame.index_copy_(0, g.to_padded(msg.idx), msg.val)
    return frame


def conv_message(msg: Message, g: Geometry, w: torch.Tensor, groups: int) -> Message:
    """The change of a convolution's output at the positions its window reaches, from a sparse input change."""
    if g.is_pointwise and groups == 1:
        if g.stride == (1, 1):
            return Message(msg.idx, msg.val @ w)
        y, x = msg.idx // g.in_w, msg.idx % g.in_w
        (sh, sw) = g.stride
        keep = (y % sh == 0) & (x % sw == 0) & (y // sh < g.out_h) & (x // sw < g.out_w)
        rows = keep.nonzero().flatten()
        out_idx = (y[rows] // sh) * g.out_w + x[rows] // sw
        return Message(out_idx, msg.val.index_select(0, rows) @ w)
    out_idx = g.touched(msg.idx)
    return Message(out_idx, window_values(padded_rows(msg, g), g, w, groups, out_idx))


def window_values(padded: torch.Tensor, g: Geometry, w: torch.Tensor, groups: int, out_idx: torch.Tensor) -> torch.Tensor:
    """The convolution of a zero padded (Hp * Wp, C) frame at the output positions ``out_idx``; ``w`` as
    :func:`conv_weights` lays it out for a k x k (or depthwise) kernel."""
    patches = padded[g.patch_index(out_idx)]  # (m, taps, C_in)
    if w.ndim == 2:  # depthwise: (taps, C)
        return (patches * w[None]).sum(dim=1)
    m, c_in = patches.shape[0], patches.shape[2]
    step = c_in // groups
    parts = [patches[:, :, i * step:(i + 1) * step].reshape(m, -1) @ w[i] for i in range(groups)]
    return parts[0] if groups == 1 else torch.cat(parts, dim=1)


# -- passthrough and per-channel scale ----------------------------------------------------------------------

@dataclass
class AliasNode(Node):
    """An op that does not change a delta but does change the value (adding a constant): a tensor of its own,
    so that a key frame exports its value, with its input's message."""

    def run(self, frame: Frame) -> None:
        frame.msgs[self.output] = frame.message(self.inputs[0])


@dataclass
class AffineNode(Node):
    """``y = scale * x + shift``: the change scales (a BatchNorm not after a conv, a normalisation)."""

    scale: torch.Tensor = None  # type: ignore[assignment]
    batchnorm: bool = False

    def run(self, frame: Frame) -> None:
        msg = frame.message(self.inputs[0])
        frame.msgs[self.output] = Message(msg.idx, msg.val * self.scale.to(msg.val.dtype))


# -- activations -------------------------------------------------------------------------------------------

def _hardtanh(x: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    return x.clamp(low, high)


ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": lambda x: F.relu(x),
    "hardtanh": _hardtanh,
    "silu": F.silu,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky_relu": lambda x, slope=0.01: F.leaky_relu(x, slope),
    "gelu": F.gelu,
}


@dataclass
class ActivationNode(Node):
    """``f(state + d) - f(state)`` at the changed positions; positions whose output did not move drop out."""

    kind: str = "relu"
    params: dict[str, float] = field(default_factory=dict)

    def buffers(self, tensors):
        t = tensors[self.inputs[0]]
        return {self.buffer("state"): ((t.positions, t.c), 0.0)}

    def key_exports(self):
        return [KeyExport(self.buffer("state"), self.inputs[0])]

    def run(self, frame: Frame) -> None:
        msg = frame.message(self.inputs[0])
        state = frame.state[self.buffer("state")]
        f = ACTIVATIONS[self.kind]
        old = state.index_select(0, msg.idx)
        new = old + msg.val
        state.index_copy_(0, msg.idx, new)
        d = f(new, **self.params) - f(old, **self.params)
        keep = d.ne(0).any(dim=1)
        frame.msgs[self.output] = Message(msg.idx[keep], d[keep])


# -- joins -------------------------------------------------------------------------------------------------

@dataclass
class AddNode(Node):
    """``a + sign x b`` over the union of the changed positions."""

    sign: float = 1.0

    def run(self, frame: Frame) -> None:
        a, b = (frame.message(t) for t in self.inputs)
        idx, inverse = torch.unique(torch.cat([a.idx, b.idx]), return_inverse=True)
        val = a.val.new_zeros(idx.numel(), a.val.shape[1])
        val.index_add_(0, inverse[:a.idx.numel()], a.val)
        val.index_add_(0, inverse[a.idx.numel():], b.val, alpha=self.sign)
        frame.msgs[self.output] = Message(idx, val)


@dataclass
class CatNode(Node):
    """Channel concatenation over the union of the changed positions (zero change where one input did not)."""

    def run(self, frame: Frame) -> None:
        msgs = [frame.message(t) for t in self.inputs]
        idx, inverse = torch.unique(torch.cat([m.idx for m in msgs]), return_inverse=True)
        widths = [frame.tensors[t].c for t in self.inputs]
        val = msgs[0].val.new_zeros(idx.numel(), sum(widths))
        start = offset = 0
        for m, c in zip(msgs, widths):
            n = m.idx.numel()
            val[inverse[start:start + n], offset:offset + c] = m.val
            start, offset = start + n, offset + c
        frame.msgs[self.output] = Message(idx, val)


# -- pooling and resampling ------------------------------------------------------------------------------

@dataclass
class MaxPoolNode(Node):
    """Keeps its input (padded with -inf) and output; recomputes the windows a change reaches."""

    geometry: Geometry = None  # type: ignore[assignment]

    def buffers(self, tensors):
        g = self.geometry
        hp, wp = g.padded_hw
        return {self.buffer("input"): ((hp * wp, g.in_c), -math.inf),
                self.buffer("output"): ((g.out_h * g.out_w, g.out_c), 0.0)}

    def key_exports(self):
        return [KeyExport(self.buffer("input"), self.inputs[0]), KeyExport(self.buffer("output"), self.output)]

    def load_key(self, state, export, value):
        if export.buffer != self.buffer("input"):
            return super().load_key(state, export, value)
        g = self.geometry
        hp, wp = g.padded_hw
        (ph, pw) = g.padding
        frame = state[export.buffer].view(hp, wp, g.in_c)
        frame[ph:ph + g.in_h, pw:pw + g.in_w] = value.view(g.in_h, g.in_w, g.in_c)

    def run(self, frame: Frame) -> None:
        msg, g = frame.message(self.inputs[0]), self.geometry
        inp, out = frame.state[self.buffer("input")], frame.state[self.buffer("output")]
        inp.index_add_(0, g.to_padded(msg.idx), msg.val)
        out_idx = g.touched(msg.idx)
        new = inp[g.patch_index(out_idx)].amax(dim=1)
        d = new - out.index_select(0, out_idx)
        out.index_copy_(0, out_idx, new)
        keep = d.ne(0).any(dim=1)
        frame.msgs[self.output] = Message(out_idx[keep], d[keep])


@dataclass
class AvgPoolNode(Node):
    """Linear: the sum of the change over each window it reaches, over the window's divisor."""

    geometry: Geometry = None  # type: ignore[assignment]
    divisor: torch.Tensor = None  # type: ignore[assignment]  # (out positions,)

    @classmethod
    def make(cls, name: str, inp: int, out: int, geometry: Geometry, pool: Callable) -> "AvgPoolNode":
        """``pool`` is the pooling as the model calls it: each window's divisor is its sum over its mean on a
        map of ones (exact for padding counted or not, and for ceil mode's clipped windows)."""
        ones = torch.ones(1, 1, geometry.in_h, geometry.in_w, dtype=torch.float64)
        mean = pool(ones)
        total = F.avg_pool2d(ones, geometry.kernel, geometry.stride, geometry.padding, ceil_mode=True,
                             count_include_pad=False, divisor_override=1)[..., :geometry.out_h, :geometry.out_w]
        return cls(name=name, inputs=(inp,), output=out, geometry=geometry, divisor=(total / mean).flatten().float())

    def run(self, frame: Frame) -> None:
        msg, g = frame.message(self.inputs[0]), self.geometry
        out_idx = g.touched(msg.idx)
        total = padded_rows(msg, g)[g.patch_index(out_idx)].sum(dim=1)
        frame.msgs[self.output] = Message(out_idx, total / self.divisor.to(total.dtype)[out_idx, None])


@dataclass
class GlobalPoolNode(Node):
    """The mean over all positions: one output position."""

    def run(self, frame: Frame) -> None:
        msg = frame.message(self.inputs[0])
        hw = frame.tensors[self.inputs[0]].positions
        if msg.idx.numel() == 0:
            frame.msgs[self.output] = empty_message(msg.val.shape[1], frame.dtype)
            return
        frame.msgs[self.output] = Message(msg.idx.new_zeros(1), msg.val.sum(dim=0, keepdim=True) / hw)


@dataclass
class UpsampleNode(Node):
    """Nearest: each output copies one input position (``source``). Bilinear: the interpolation of the
    change, at the outputs whose neighbourhood changed."""

    mode: str = "nearest"
    source: torch.Tensor | None = None  # nearest: (out positions,) input position of each output
    call: Any = None  # bilinear: the interpolation, as the model calls it
    in_hw: tuple[int, int] = (0, 0)

    @classmethod
    def make(cls, name: str, inp: int, out: int, in_info, call, mode: str, align_corners: bool) -> "UpsampleNode":
        node = cls(name=name, inputs=(inp,), output=out, mode=mode, call=call, in_hw=(in_info.h, in_info.w))
        if mode == "nearest":
            index = torch.arange(in_info.positions, dtype=torch.float64).view(1, 1, in_info.h, in_info.w)
            node.source = call(index).round().long().flatten()
        return node

    def run(self, frame: Frame) -> None:
        msg = frame.message(self.inputs[0])
        if self.mode == "nearest":
            changed = torch.zeros(frame.tensors[self.inputs[0]].positions, dtype=torch.long)
            changed[msg.idx] = torch.arange(1, msg.idx.numel() + 1)
            slot = changed[self.source]
            out_idx = slot.nonzero().flatten()
            frame.msgs[self.output] = Message(out_idx, msg.val.index_select(0, slot[out_idx] - 1))
            return
        h, w = self.in_hw
        dense = self.call(scatter_map(msg, h, w))
        reach = self.call(scatter_map(Message(msg.idx, msg.val.new_ones(msg.idx.numel(), 1)), h, w))
        out_idx = reach.flatten().ne(0).nonzero().flatten()
        frame.msgs[self.output] = Message(out_idx, dense.flatten(2)[0].t().index_select(0, out_idx))
