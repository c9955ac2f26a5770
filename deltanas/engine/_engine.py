"""The sparse delta engine: key frames dense in the fastest runtime, delta frames sparse end to end."""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch

from ..delta import DeltaModel, KeyframePolicy
from ..errors import ConfigError
from ._graph import EngineGraph, lower
from ._keyframes import KeyRuntime, create_key_runtime, dense_runtime, key_graph
from ._nodes import ConvNode, Frame, InputNode, KeyExport, Message
from ._schedule import DenseFallback, FrameKind, FrameSchedule
from . import _native

__all__ = ["EngineFrame", "SparseEngine", "engine_stream"]

BACKENDS = ("auto", "native", "torch")


@dataclass
class _Prepared:
    """Everything the engine holds for one input size."""

    graph: EngineGraph
    state: dict[str, torch.Tensor]
    exports: list[tuple[KeyExport, object]]  # (export, node that loads it)
    key_runtime: KeyRuntime
    program: object | None  # the native program, when the native backend runs
    keyed: bool = False
    # the key frame's mean input norm of each a / w gate, before the gate scale multiplies it
    key_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    dense: KeyRuntime | None = None  # the teacher alone (no state exported), made on first use
    dense_seconds: float | None = None  # what it takes per frame here, timed on first use


@dataclass
class EngineFrame:
    """One streamed frame: its outputs (a teacher: the last feature map, then the logits), whether it was a
    key frame, and the MACs per layer it spent (a key frame: the dense teacher's). ``dense``: the teacher alone
    ran it (the dense fallback; its outputs are the teacher's)."""

    index: int
    is_key: bool
    outputs: tuple[torch.Tensor, ...]
    macs: dict[str, float] = field(default_factory=dict)
    dense: bool = False

    @property
    def output(self) -> torch.Tensor:
        """The first output (a teacher's last feature map), batch of one, as ``DeltaModel`` returns it."""
        return self.outputs[0]


class SparseEngine:
    """Runs a :class:`~deltanas.delta.DeltaModel` frame by frame (batch one) without computing what did not
    change.

    ``key_frame(x)`` runs the dense teacher in ``keyframes`` (``auto``: the fastest installed of OpenVINO and
    ONNX Runtime, timed once per input size; PyTorch without them) and fills the engine's state; ``delta_frame(x)`` propagates only the change since the previous
    frame through every layer, each delta layer updating by its operator (exact, a gate, reuse, or its
    student run densely). ``backend``: ``native`` (the C++ kernels), ``torch`` (the pure-PyTorch reference
    path, same numbers), ``auto`` (native where built). After each frame ``last_macs`` holds the
    multiply-adds each layer did. ``gate_scale`` multiplies the thresholds of the running a / w gates (those
    relative to the key frame's input norm; 0: every change passes), and may change at any frame.
    """

    def __init__(self, model: DeltaModel, *, backend: str = "auto", keyframes: str = "auto",
                 threads: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown engine backend {backend!r}; known: {', '.join(BACKENDS)}")
        if backend == "native" and not _native.available():
            raise ConfigError(f"the native engine is not built here ({_native.why_unavailable()}); "
                              f"reinstall deltanas with a C++ compiler, or use backend='torch'")
        if backend == "auto":
            backend = "native" if _native.available() and dtype == torch.float32 else "torch"
        if backend == "native" and dtype != torch.float32:
            raise ConfigError("the native engine computes in float32")
        self.model = model.eval()
        self.backend = backend
        self.keyframes = keyframes
        self.threads = threads
        self.dtype = dtype
        self.last_macs: dict[str, float] = {}
        self._gate_scale = 1.0
        self._prepared: dict[tuple[int, int], _Prepared] = {}
        self._current: _Prepared | None = None

    # -- building ---------------------------------------------------------------------------------------
    def prepare(self, input_hw: tuple[int, int]) -> _Prepared:
        """Trace, lower and allocate for frames of ``input_hw`` (done once per size, on first use)."""
        input_hw = (int(input_hw[0]), int(input_hw[1]))
        if input_hw in self._prepared:
            return self._prepared[input_hw]
        graph = lower(self.model, input_hw)
        state: dict[str, torch.Tensor] = {}
        for node in graph.nodes:
            for name, (shape, fill) in node.buffers(graph.tensors).items():
                state[name] = torch.full(shape, fill, dtype=self.dtype)
        for t in graph.outputs:
            state[_out(t)] = torch.zeros(graph.tensors[t].positions, graph.tensors[t].c, dtype=self.dtype)
        exports = [(e, node) for node in graph.nodes for e in node.key_exports()]
        gm = key_graph(graph, [e for e, _ in exports])
        if self.dtype != torch.float32:
            gm = copy.deepcopy(gm).to(self.dtype)
        threads = self.threads or torch.get_num_threads()
        example = torch.zeros(1, self.model.in_channels, *input_hw, dtype=self.dtype)
        targets = [state[_out(t)] for t in graph.outputs]
        for export, _ in exports:  # written in place where the buffer is what the key graph returns
            buffer = state[export.buffer]
            rows = 1 if export.kind == "norm" else graph.tensors[export.tensor].positions
            targets.append(buffer if buffer.shape[0] == rows else None)
        runtime = create_key_runtime("torch" if self.dtype != torch.float32 else self.keyframes, gm, example,
                                     threads, targets)
        program = _native.build_program(graph, state) if self.backend == "native" else None
        prepared = _Prepared(graph, state, exports, runtime, program)
        self._prepared[input_hw] = prepared
        return prepared

    @property
    def key_runtime(self) -> str:
        """The dense runtime that runs key frames (of the last prepared size)."""
        if self._current is None:
            return self.keyframes
        return self._current.key_runtime.name

    # -- running ----------------------------------------------------------------------------------------
    def _frame(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != self.model.in_channels:
            raise ConfigError(f"the engine takes one frame (1, {self.model.in_channels}, H, W), got {tuple(x.shape)}")
        return x.to(self.dtype)

    @staticmethod
    def _check_finite(x: torch.Tensor) -> None:
        if not torch.isfinite(x).all():
            raise ConfigError("the frame holds NaN or infinite values")

    @torch.no_grad()
    def key_frame(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the dense teacher on ``x`` (1, C, H, W) and make it the reference of the next delta frames."""
        x = self._frame(x)
        self._check_finite(x)
        p = self.prepare(tuple(x.shape[-2:]))
        self._current = p
        values = p.key_runtime.run(x)
        for (export, node), value in zip(p.exports, values[len(p.graph.outputs):]):
            if value is not None:  # not written in place
                node.load_key(p.state, export, value)
        p.graph.nodes[0].load_frame(p.state, x)
        if p.program is not None:  # clears what the last group held back, derives the gates' key norms
            p.program.key_frame()
        else:
            for node in p.graph.nodes:
                node.reset(p.state)
                if isinstance(node, ConvNode) and node.norm_source is not None:
                    node.derive_key_norm(p.state)
        p.key_norms = {name: p.state[name].clone() for name in _scaled_norms(p.graph)}
        self._apply_gate_scale(p)
        p.keyed = True
        self.last_macs = {}
        return self._outputs(p)

    @property
    def gate_scale(self) -> float:
        return self._gate_scale

    def set_gate_scale(self, scale: float) -> None:
        """Multiply the model's running a / w gate thresholds by ``scale`` (>= 0) from the next frame on."""
        scale = float(scale)
        if not scale >= 0 or scale == float("inf"):
            raise ConfigError(f"gate scale must be a finite number >= 0, got {scale}")
        self._gate_scale = scale
        if self._current is not None and self._current.keyed:
            self._apply_gate_scale(self._current)

    def _apply_gate_scale(self, p: _Prepared) -> None:
        for name, norm in p.key_norms.items():
            p.state[name].copy_(norm * self._gate_scale)

    def scaled_gates(self, input_hw: tuple[int, int]) -> int:
        """How many gates ``gate_scale`` acts on at ``input_hw``."""
        return len(_scaled_norms(self.prepare(input_hw).graph))

    @torch.no_grad()
    def delta_frame(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Update the outputs from the change of ``x`` since the last frame (a key frame must come first)."""
        x = self._frame(x)
        p = self._current
        if p is None or not p.keyed:
            raise RuntimeError("SparseEngine: a delta frame came before any key frame")
        if tuple(x.shape[-2:]) != p.graph.input_hw:
            raise ConfigError(f"frame size {tuple(x.shape[-2:])} differs from the key frame's {p.graph.input_hw}")
        if p.program is not None:  # the native input op checks the frame as it reads it
            self.last_macs = p.program.delta_frame(x)
        else:
            self._check_finite(x)
            self.last_macs = _torch_delta_frame(p, x, self.dtype)
        return self._outputs(p)

    @torch.no_grad()
    def dense_frame(self, x: torch.Tensor, keep_reference: bool = False) -> tuple[torch.Tensor, ...]:
        """The dense teacher alone on ``x`` in the fastest installed runtime (as ``keyframes`` picks), without the
        state a key frame hands the delta frames (cheaper than :meth:`key_frame`): the next frame must be a key
        frame, unless ``keep_reference`` (the state is left as it was: delta frames may go on from it)."""
        x = self._frame(x)
        self._check_finite(x)
        p = self.prepare(tuple(x.shape[-2:]))
        values = self._dense(p).run(x)
        if not keep_reference:
            p.keyed = False
            self._current = p
            self.last_macs = {}
        return self._outputs(p, values)

    def _dense(self, p: _Prepared) -> KeyRuntime:
        if p.dense is None:  # the fastest runtime for the bare teacher (not necessarily the key frames')
            threads = self.threads or torch.get_num_threads()
            if self.dtype == torch.float32:
                p.dense = dense_runtime(self.model, self.keyframes, p.graph.input_hw, threads, alone=False)
            else:
                gm = copy.deepcopy(key_graph(p.graph, [])).to(self.dtype)
                example = torch.zeros(1, self.model.in_channels, *p.graph.input_hw, dtype=self.dtype)
                p.dense = create_key_runtime("torch", gm, example, threads, [None] * len(p.graph.outputs))
        return p.dense

    @torch.no_grad()
    def dense_seconds(self, input_hw: tuple[int, int], runs: int = 5) -> float:
        """Seconds per frame of :meth:`dense_frame` at ``input_hw`` here: the median of ``runs`` after a warm-up,
        timed once per size."""
        p = self.prepare(input_hw)
        if p.dense_seconds is None:
            dense = self._dense(p)
            x = torch.zeros(1, self.model.in_channels, *p.graph.input_hw, dtype=self.dtype)
            dense.run(x)
            spent = []
            for _ in range(runs):
                start = time.perf_counter()
                dense.run(x)
                spent.append(time.perf_counter() - start)
            p.dense_seconds = statistics.median(spent)
        return p.dense_seconds

    def run(self, kind: FrameKind, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """:meth:`key_frame`, :meth:`delta_frame` or :meth:`dense_frame` (``key``, ``delta``, ``dense``)."""
        if kind == "key":
            return self.key_frame(x)
        if kind == "delta":
            return self.delta_frame(x)
        if kind == "dense":
            return self.dense_frame(x)
        raise ConfigError(f"unknown frame kind {kind!r}; known: key, delta, dense")

    def _outputs(self, p: _Prepared, values: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
        results = []
        for i, (t, shape) in enumerate(zip(p.graph.outputs, p.graph.output_shapes)):
            info = p.graph.tensors[t]
            value = p.state[_out(t)] if values is None else values[i]
            if len(shape) == 4:
                results.append(value.view(info.h, info.w, info.c).permute(2, 0, 1)[None].contiguous())
            else:
                results.append(value.reshape(shape).clone())
        return tuple(results)

    def reset(self) -> None:
        """Forget the reference: the next frame must be a key frame."""
        if self._current is not None:
            self._current.keyed = False

    # -- facts ------------------------------------------------------------------------------------------
    def state_bytes(self, input_hw: tuple[int, int]) -> int:
        """Bytes of state the engine keeps between frames at ``input_hw`` (scratch of the native kernels
        included)."""
        p = self.prepare(input_hw)
        total = sum(t.numel() * t.element_size() for t in p.state.values())
        return total + (p.program.scratch_bytes if p.program is not None else 0)

    def last_frame_macs(self) -> float:
        return float(sum(self.last_macs.values()))

    @property
    def conv_layers(self) -> list[str]:
        """The delta layers (convolutions) of the last prepared size, by name, as ``last_macs`` names them."""
        return [] if self._current is None else \
            [n.name for n in self._current.graph.nodes if isinstance(n, ConvNode) and not n.is_linear]

    @property
    def linear_layers(self) -> set[str]:
        """The linear layers (run as 1 x 1 on pooled vectors), by name."""
        return set() if self._current is None else \
            {n.name for n in self._current.graph.nodes if isinstance(n, ConvNode) and n.is_linear}


def _scaled_norms(graph: EngineGraph) -> list[str]:
    return [n.buffer("key_norm") for n in graph.nodes
            if isinstance(n, ConvNode) and n.rule == "gate" and n.gate.needs_key_norm]


def _out(tensor: int) -> str:
    return f"out:{tensor}"


def _torch_delta_frame(p: _Prepared, x: torch.Tensor, dtype: torch.dtype) -> dict[str, float]:
    frame = Frame(p.state, p.graph.tensors, dtype)
    nodes = p.graph.nodes
    assert isinstance(nodes[0], InputNode)
    nodes[0].feed(frame, x)
    for node in nodes[1:]:
        node.run(frame)
    for t in p.graph.outputs:
        msg: Message = frame.msgs[t]
        p.state[_out(t)].index_add_(0, msg.idx, msg.val)
    return {name: macs for name, macs in frame.macs.items() if macs}


def engine_stream(engine: SparseEngine, frames: Iterable[torch.Tensor], policy: KeyframePolicy | FrameSchedule,
                  fallback: DenseFallback | None = None) -> Iterator[EngineFrame]:
    """Frames (C, H, W) float in [0, 1], one at a time: key frames where ``policy`` puts them; with ``fallback``,
    the teacher alone where delta frames cost more (:class:`DenseFallback`, timed as the frames run). A
    :class:`FrameSchedule` as ``policy`` keeps its decisions and timings for the caller (``fallback`` then
    ignored: the schedule has its own)."""
    schedule = policy if isinstance(policy, FrameSchedule) else None
    for index, frame in enumerate(frames):
        x = frame[None] if frame.ndim == 3 else frame
        if schedule is None:
            dense = engine.dense_seconds(tuple(x.shape[-2:])) if fallback is not None else None
            schedule = FrameSchedule(policy, fallback, dense)
        kind = schedule.next(x)
        start = time.perf_counter()
        outputs = engine.run(kind, x)
        schedule.ran(kind, time.perf_counter() - start)
        macs = dict(engine.last_macs) if kind == "delta" else {}
        yield EngineFrame(index, kind == "key", outputs, macs, dense=kind == "dense")
