"""The native backend: the C++ kernels (``native/kernels.cpp``), loaded through ctypes, and the program of a
delta frame.

The program is built once per input size: every message buffer and scratch array is a torch tensor held
here, every native node one instruction ``[opcode, length, args...]`` of int64 words (pointers, sizes,
doubles bit-cast). Nodes without a native kernel (a student run densely, bilinear upsampling) run in
PyTorch between native segments, reading and writing the same buffers. One delta frame is then one native
call per segment, with no per-op Python work in between.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import platform
import struct
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ._graph import EngineGraph
from ._nodes import (
    AddNode, AffineNode, ActivationNode, AliasNode, AvgPoolNode, CatNode, ConvNode, Frame, GlobalPoolNode,
    InputNode, MaxPoolNode, Message, Node, UpsampleNode, conv_weights,
)

__all__ = ["available", "why_unavailable", "build_program", "NativeProgram"]

_OP = {"input": 1, "affine": 2, "gate": 3, "gate_reset": 4, "conv1": 5, "convk": 6, "act": 7, "add": 8,
       "cat": 9, "maxpool": 10, "avgpool": 11, "global_pool": 12, "nearest": 13, "accumulate": 14, "state_norm": 15,
       "keygate": 16, "keygate_reset": 17, "act_gate": 18}
_ACT = {"relu": 0, "hardtanh": 1, "silu": 2, "hardswish": 3, "hardsigmoid": 4, "sigmoid": 5, "tanh": 6,
        "leaky_relu": 7, "gelu": 8}
_GATE = {"a": 0, "w": 0, "t": 1, "p": 2}
_ABI_VERSION = 2  # deltanas_abi_version() of kernels.cpp: the words of every op as emitted here


@functools.lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL | None, str]:
    spec = importlib.util.find_spec("deltanas.engine._kernels")
    if spec is None or spec.origin is None:
        return None, "the extension deltanas.engine._kernels was not built at install"
    if platform.machine().lower() in ("x86_64", "amd64") and not _cpu_has("avx2", "fma"):
        return None, "this CPU lacks AVX2/FMA, which the kernels were built for"
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError as exc:
        return None, f"cannot load {spec.origin}: {exc}"
    if lib.deltanas_abi_version() != _ABI_VERSION:
        return None, (f"{spec.origin} is a build of other kernels (version {lib.deltanas_abi_version()}, "
                      f"this deltanas needs {_ABI_VERSION}): reinstall, or `python setup.py build_ext --inplace`")
    lib.deltanas_init.argtypes = [ctypes.c_char_p]
    lib.deltanas_run.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.deltanas_run.restype = ctypes.c_int64
    torch_lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    code = lib.deltanas_init(str(torch_lib).encode())
    if code:
        return None, f"no BLAS (sgemm_) found in {torch_lib} (code {code})"
    return lib, ""


def _cpu_has(*flags: str) -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return all(f in have for f in flags)


def available() -> bool:
    return _library()[0] is not None


def why_unavailable() -> str:
    return _library()[1]


def _real(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


class _Buffers:
    """A message per tensor: positions (int32), changes (float32), a count; aliases share their input's.

    A message lives from the node that writes it to the last node that reads it (the graph's outputs: to the
    end of the frame), so tensors whose lives do not overlap share storage (best fit from a free pool).
    """

    def __init__(self, graph: EngineGraph) -> None:
        self.counts = torch.zeros(len(graph.tensors) + 1, dtype=torch.int64)
        self.idx: dict[int, torch.Tensor] = {}
        self.val: dict[int, torch.Tensor] = {}
        self.slot: dict[int, int] = {}
        self.storages: list[tuple[torch.Tensor, torch.Tensor]] = []
        source = {n.output: n.inputs[0] for n in graph.nodes if isinstance(n, AliasNode)}

        def storage(t: int) -> int:
            while t in source:
                t = source[t]
            return t

        last: dict[int, int] = {}
        for i, node in enumerate(graph.nodes):
            for t in node.inputs:
                last[storage(t)] = i
        for t in graph.outputs:
            last[storage(t)] = len(graph.nodes)
        free: list[tuple[torch.Tensor, torch.Tensor]] = []
        owner: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for i, node in enumerate(graph.nodes):
            t = node.output
            if t in source:
                self.alias(t, source[t])
            else:
                info = graph.tensors[t]
                fits = [k for k, b in enumerate(free)
                        if b[0].numel() >= info.positions and b[1].numel() >= info.positions * info.c]
                if fits:
                    buf = free.pop(min(fits, key=lambda k: free[k][1].numel()))
                else:
                    buf = (torch.zeros(info.positions, dtype=torch.int32),
                           torch.zeros(info.positions * info.c, dtype=torch.float32))
                    self.storages.append(buf)
                owner[t] = buf
                self.idx[t] = buf[0][:info.positions]
                self.val[t] = buf[1][:info.positions * info.c].view(info.positions, info.c)
                self.slot[t] = t
            for u in {storage(x) for x in node.inputs} | {storage(t)}:
                if last.get(u, -1) <= i and u in owner:  # read for the last time (or never): free
                    free.append(owner.pop(u))
        self.scratch_slot = len(graph.tensors)

    def alias(self, t: int, source: int) -> None:
        self.idx[t], self.val[t], self.slot[t] = self.idx[source], self.val[source], self.slot[source]

    def words(self, t: int) -> list[int]:
        return [self.idx[t].data_ptr(), self.val[t].data_ptr(), self.counts.data_ptr() + 8 * self.slot[t]]

    def read(self, t: int) -> Message:
        n = int(self.counts[self.slot[t]])
        return Message(self.idx[t][:n].long(), self.val[t][:n])

    def write(self, t: int, msg: Message) -> None:
        n = msg.idx.numel()
        self.idx[t][:n] = msg.idx
        self.val[t][:n] = msg.val
        self.counts[self.slot[t]] = n

    @property
    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.storages)


class _Scratch:
    """Work arrays that no two nodes use at once, one of each kind for the whole program, as large as the
    largest need: a zero padded frame and a -1 mark per position (each op restores them), gathered patches
    and rows, and the message a gate passes to its convolution."""

    def __init__(self, graph: EngineGraph) -> None:
        need = {"frame": 1, "mark": 1, "patches": 1, "rows": 1, "passed_rows": 1, "passed": 1, "fresh": 1}
        for node in graph.nodes:
            g = getattr(node, "geometry", None)
            if isinstance(node, (AddNode, CatNode)):
                need["mark"] = max(need["mark"], graph.tensors[node.output].positions)
            if g is None or not isinstance(node, (ConvNode, MaxPoolNode, AvgPoolNode)):
                continue
            hp, wp = g.padded_hw
            need["mark"] = max(need["mark"], g.out_h * g.out_w, g.in_h * g.in_w)  # depthwise: marks inputs too
            if isinstance(node, AvgPoolNode) or (isinstance(node, ConvNode) and not g.is_pointwise
                                                 and not (node.is_depthwise and node.rule != "keygate")):
                need["frame"] = max(need["frame"], hp * wp * g.in_c)
            if isinstance(node, ConvNode) and not node.is_depthwise and (not g.is_pointwise or node.rule == "keygate"):
                need["patches"] = max(need["patches"], g.out_h * g.out_w * g.taps * (g.in_c // node.groups))
            if isinstance(node, ConvNode) and node.rule == "keygate":
                need["fresh"] = max(need["fresh"], g.out_h * g.out_w * g.out_c)
            if isinstance(node, ConvNode) and g.is_pointwise and g.stride != (1, 1):
                need["rows"] = max(need["rows"], g.out_h * g.out_w * g.in_c)
            if isinstance(node, ConvNode) and node.rule == "gate":
                need["passed_rows"] = max(need["passed_rows"], g.in_h * g.in_w)
                need["passed"] = max(need["passed"], g.in_h * g.in_w * g.in_c)
        self.frame = torch.zeros(need["frame"])
        self.mark = torch.full((need["mark"],), -1, dtype=torch.int32)
        self.patches = torch.zeros(need["patches"])
        self.rows = torch.zeros(need["rows"])
        self.passed_idx = torch.zeros(need["passed_rows"], dtype=torch.int32)
        self.passed_val = torch.zeros(need["passed"])
        self.fresh = torch.zeros(need["fresh"])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.frame, self.mark, self.patches, self.rows,
                                                           self.passed_idx, self.passed_val, self.fresh))


class _PythonStep:
    """A node without a native kernel, run by its PyTorch path on the native buffers."""

    def __init__(self, node: Node, buffers: _Buffers, state: dict[str, torch.Tensor], tensors: list) -> None:
        self.node, self.buffers, self.state, self.tensors = node, buffers, state, tensors

    def run(self, macs: dict[str, float]) -> None:
        frame = Frame(self.state, self.tensors, torch.float32)
        for t in self.node.inputs:
            frame.msgs[t] = self.buffers.read(t)
        self.node.run(frame)
        self.buffers.write(self.node.output, frame.msgs[self.node.output])
        for name, value in frame.macs.items():
            macs[name] = macs.get(name, 0.0) + value


class NativeProgram:
    """The delta frame of one engine graph at one input size, as native segments and PyTorch steps."""

    def __init__(self, graph: EngineGraph, state: dict[str, torch.Tensor]) -> None:
        self.lib = _library()[0]
        if self.lib is None:
            raise RuntimeError(f"native engine unavailable: {why_unavailable()}")
        self.graph, self.state = graph, state
        self.buffers = _Buffers(graph)
        self.scratch = _Scratch(graph)
        self.keep: list[torch.Tensor] = []  # weights and tables the words point into
        names = sorted({n.name for n in graph.nodes if isinstance(n, ConvNode)})
        self.macs = torch.zeros(max(len(names), 1), dtype=torch.float64)
        self.macs_names = names
        self._macs_slot = {name: i for i, name in enumerate(names)}
        self.fused = _fused_activations(graph)
        self.segments: list[torch.Tensor | _PythonStep] = []
        self.python_nodes: list[Node] = []
        self.steps: list[tuple[Node, torch.Tensor | _PythonStep]] = []  # node by node, for profiling
        words: list[int] = []
        self._input_word: tuple[int, int] | None = None
        key_words: list[int] = []
        for node in graph.nodes:
            emitted = self._emit(node, key_words)
            if emitted is None:
                if words:
                    self.segments.append(torch.tensor(words, dtype=torch.int64))
                    words = []
                step = _PythonStep(node, self.buffers, state, graph.tensors)
                self.segments.append(step)
                self.steps.append((node, step))
                self.python_nodes.append(node)
                continue
            if isinstance(node, InputNode):
                self._input_word = (len(self.segments), len(words) + 2)
            if emitted:
                self.steps.append((node, torch.tensor(emitted, dtype=torch.int64)))
            words += emitted
        for t in graph.outputs:
            words += self._instr("accumulate", self.buffers.words(t), state[f"out:{t}"].data_ptr(),
                                 graph.tensors[t].c)
        if words:
            self.segments.append(torch.tensor(words, dtype=torch.int64))
        self.key_program = torch.tensor(key_words, dtype=torch.int64)

    # -- facts ------------------------------------------------------------------------------------------
    @property
    def scratch_bytes(self) -> int:
        """Messages, scratch, and the weights in the kernels' layouts."""
        kept = sum(t.numel() * t.element_size() for t in self.keep)
        return kept + self.buffers.nbytes + self.scratch.nbytes

    # -- running ----------------------------------------------------------------------------------------
    def _run_words(self, words: torch.Tensor) -> None:
        if words.numel():
            bad = self.lib.deltanas_run(words.data_ptr(), words.numel())
            if bad:
                raise RuntimeError(f"native engine: bad instruction at word {bad - 1}")

    def key_frame(self) -> None:
        """Clear what gates held back; the PyTorch steps reset their own state."""
        self._run_words(self.key_program)
        for node in self.python_nodes:
            node.reset(self.state)
            if isinstance(node, ConvNode) and node.norm_source is not None:
                node.derive_key_norm(self.state)

    def delta_frame(self, frame_nchw: torch.Tensor) -> dict[str, float]:
        """``frame_nchw``: the frame (1, C, H, W), float32. Refuses a frame with NaN or infinity (ConfigError),
        leaving the engine as it was."""
        x = frame_nchw.contiguous()
        segment, word = self._input_word
        self.segments[segment][word] = x.data_ptr()
        self.macs.zero_()
        extra: dict[str, float] = {}
        input_count = self.buffers.counts[self.buffers.slot[self.graph.nodes[0].output]:][:1]
        for i, part in enumerate(self.segments):
            if isinstance(part, _PythonStep):
                part.run(extra)
            else:
                self._run_words(part)
            if i == segment and int(input_count) < 0:
                raise ConfigError("the frame holds NaN or infinite values")
        macs = {name: float(v) for name, v in zip(self.macs_names, self.macs.tolist()) if v}
        for name, v in extra.items():
            if v:
                macs[name] = macs.get(name, 0.0) + v
        return macs

    def profile_frame(self, frame_nchw: torch.Tensor) -> list[tuple[Node, int, int, float]]:
        """Run one delta frame node by node: (node, rows in, rows out, seconds) per node that computes.
        The same work as :meth:`delta_frame` (the outputs are updated too), timed op by op."""
        import time

        x = frame_nchw.contiguous()
        node0, words0 = self.steps[0]
        words0[2] = x.data_ptr()
        self.macs.zero_()
        records = []
        for node, step in self.steps:
            rows_in = sum(int(self.buffers.counts[self.buffers.slot[t]]) for t in node.inputs)
            start = time.perf_counter()
            if isinstance(step, _PythonStep):
                step.run({})
            else:
                self._run_words(step)
            seconds = time.perf_counter() - start
            records.append((node, rows_in, int(self.buffers.counts[self.buffers.slot[node.output]]), seconds))
        for t in self.graph.outputs:
            self._run_words(torch.tensor(self._instr("accumulate", self.buffers.words(t),
                                                     self.state[f"out:{t}"].data_ptr(), self.graph.tensors[t].c)))
        return records

    # -- emitting ---------------------------------------------------------------------------------------
    def _hold(self, t: torch.Tensor) -> int:
        t = t.contiguous()
        self.keep.append(t)
        return t.data_ptr()

    @staticmethod
    def _instr(op: str, *args) -> list[int]:
        flat: list[int] = []
        for a in args:
            flat.extend(a if isinstance(a, list) else [int(a)])
        return [_OP[op], len(flat) + 2, *flat]

    def _macs_ptr(self, name: str) -> int:
        return self.macs.data_ptr() + 8 * self._macs_slot[name]

    def _emit(self, node: Node, key_words: list[int]) -> list[int] | None:
        b, tensors, state = self.buffers, self.graph.tensors, self.state
        if isinstance(node, AliasNode):
            return []
        if isinstance(node, InputNode):
            info = tensors[node.output]
            return self._instr("input", 0, state[node.buffer("x")].data_ptr(), info.positions, info.c,
                               b.words(node.output))
        if isinstance(node, AffineNode):
            info = tensors[node.output]
            return self._instr("affine", b.words(node.inputs[0]), b.words(node.output),
                               self._hold(node.scale.float()), info.c)
        if isinstance(node, ActivationNode):
            if node.output in self.fused:  # runs inside the gate it feeds
                return []
            return self._instr("act", b.words(node.inputs[0]), b.words(node.output),
                               state[node.buffer("state")].data_ptr(), tensors[node.output].c, *self._act_words(node))
        mark = self.scratch.mark.data_ptr()
        if isinstance(node, AddNode):
            info = tensors[node.output]
            return self._instr("add", b.words(node.inputs[0]), b.words(node.inputs[1]), b.words(node.output),
                               info.c, _real(node.sign), mark)
        if isinstance(node, CatNode):
            info = tensors[node.output]
            parts: list[int] = []
            offset = 0
            for t in node.inputs:
                parts += b.words(t) + [tensors[t].c, offset]
                offset += tensors[t].c
            return self._instr("cat", b.words(node.output), info.c, mark, len(node.inputs), parts)
        if isinstance(node, GlobalPoolNode):
            info = tensors[node.inputs[0]]
            return self._instr("global_pool", b.words(node.inputs[0]), b.words(node.output), info.c, info.positions)
        if isinstance(node, MaxPoolNode):
            g = node.geometry
            return self._instr("maxpool", b.words(node.inputs[0]), b.words(node.output), _window(g),
                               state[node.buffer("input")].data_ptr(), state[node.buffer("output")].data_ptr(), mark)
        if isinstance(node, AvgPoolNode):
            g = node.geometry
            return self._instr("avgpool", b.words(node.inputs[0]), b.words(node.output), _window(g),
                               self.scratch.frame.data_ptr(), mark, self._hold(node.divisor.float()))
        if isinstance(node, UpsampleNode):
            if node.mode != "nearest":
                return None
            source = node.source.to(torch.int64)
            order = torch.argsort(source, stable=True)
            counts = torch.bincount(source, minlength=tensors[node.inputs[0]].positions)
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
            return self._instr("nearest", b.words(node.inputs[0]), b.words(node.output), tensors[node.output].c,
                               self._hold(offsets.to(torch.int32)), self._hold(order.to(torch.int32)))
        if isinstance(node, ConvNode):
            return self._emit_conv(node, key_words)
        raise RuntimeError(f"no native emitter for {type(node).__name__}")

    def _emit_conv(self, node: ConvNode, key_words: list[int]) -> list[int] | None:
        if node.rule == "student" or node.inner is not None:
            return None
        b, g = self.buffers, node.geometry
        if node.rule == "keygate":
            return self._emit_keygate(node, key_words)
        if node.rule == "zero":
            self.buffers.counts[self.buffers.slot[node.output]] = 0
            return []
        words: list[int] = []
        source = node.inputs[0]
        sc = self.scratch
        if node.rule == "gate":
            gate, hw = node.gate, g.in_h * g.in_w
            passed = [sc.passed_idx.data_ptr(), sc.passed_val.data_ptr(), b.counts.data_ptr() + 8 * b.scratch_slot]
            acc = self.state[node.buffer("acc")]
            dirty = self._hold(torch.zeros(hw, dtype=torch.uint8))
            dirty_list = self._hold(torch.zeros(hw, dtype=torch.int32))
            dirty_count = self._hold(torch.zeros(1, dtype=torch.int64))
            weight = self._hold(gate.channel_weight.float()) if gate.channel_weight is not None else 0
            act = self.fused.get(source)
            head = ["gate", b.words(source)] if act is None else \
                ["act_gate", b.words(source)[2], self.state[act.buffer("state")].data_ptr(), *self._act_words(act),
                 b.words(act.inputs[0])]
            words += self._instr(*head, passed, acc.data_ptr(), g.in_c, hw,
                                 _GATE[gate.kind], _real(gate.value), weight,
                                 self.state[node.buffer("key_norm")].data_ptr(), dirty, dirty_list, dirty_count,
                                 self._macs_ptr(node.name), 2 if gate.channel_weight is not None else 1)
            key_words += self._instr("gate_reset", acc.data_ptr(), g.in_c, dirty, dirty_list, dirty_count)
            if node.norm_source is not None:
                src = node.norm_source
                key_words += self._instr("state_norm", self.state[src.buffer("state")].data_ptr(), hw, g.in_c,
                                         *self._act_words(src), weight, self.state[node.buffer("key_norm")].data_ptr())
        source_words = passed if node.rule == "gate" else b.words(source)
        w = conv_weights(node.weight.float(), node.groups, node.is_depthwise, g.is_pointwise)
        if g.is_pointwise and node.groups == 1:
            rows = sc.rows.data_ptr()
            words += self._instr("conv1", source_words, b.words(node.output), self._weight(w),
                                 g.stride[0], g.stride[1], g.in_w, g.out_h, g.out_w, rows, self._macs_ptr(node.name),
                                 node.position_macs)
            return words
        words += self._instr("convk", source_words, b.words(node.output), _window(g), node.groups,
                             int(node.is_depthwise), self._conv_weight_words(node, window=True),
                             sc.frame.data_ptr(), sc.mark.data_ptr(),
                             sc.patches.data_ptr(), self._macs_ptr(node.name), node.position_macs)
        return words

    @staticmethod
    def _act_words(node: ActivationNode) -> list[int]:
        p = node.params
        p0, p1 = (p.get("low", 0.0), p.get("high", 0.0)) if node.kind == "hardtanh" else (p.get("slope", 0.0), 0.0)
        return [_ACT[node.kind], _real(p0), _real(p1)]

    def _conv_weight_words(self, node: ConvNode, window: bool) -> list[int]:
        """The ``w`` pointer, then one weight per group (the layout :func:`conv_weights` gives)."""
        g = node.geometry
        w = conv_weights(node.weight.float(), node.groups, node.is_depthwise, g.is_pointwise and not window)
        return [self._hold(w)] if node.is_depthwise else [0, *[x for part in w for x in self._weight(part)]]

    def _emit_keygate(self, node: ConvNode, key_words: list[int]) -> list[int]:
        b, g, sc = self.buffers, node.geometry, self.scratch
        hw, units = g.in_h * g.in_w, g.out_h * g.out_w
        since, prev = self.state[node.buffer("since")], self.state[node.buffer("out")]
        dirty = [self._hold(torch.zeros(hw, dtype=torch.uint8)), self._hold(torch.zeros(hw, dtype=torch.int32)),
                 self._hold(torch.zeros(1, dtype=torch.int64))]
        selected = [self._hold(torch.zeros(units, dtype=torch.uint8)),
                    self._hold(torch.zeros(units, dtype=torch.int32)), self._hold(torch.zeros(1, dtype=torch.int64))]
        pooled = self._hold(torch.zeros(units))
        words = self._instr("keygate", b.words(node.inputs[0]), b.words(node.output), _window(g), node.groups,
                            int(node.is_depthwise), self._conv_weight_words(node, window=True), since.data_ptr(),
                            dirty, pooled, prev.data_ptr(), selected, sc.mark.data_ptr(), sc.patches.data_ptr(),
                            sc.fresh.data_ptr(), 0 if node.gate.kind == "p" else 1, _real(node.gate.value),
                            self._macs_ptr(node.name), node.position_macs)
        hp, wp = g.padded_hw
        key_words += self._instr("keygate_reset", since.data_ptr(), g.in_c, g.in_w, g.padding[1], g.padding[0], wp,
                                 dirty, prev.data_ptr(), g.out_c, selected)
        return words

    def _weight(self, w: torch.Tensor) -> list[int]:
        """A (k, n) weight as the kernels take it: row-major, and in zero-padded panels of 8 columns."""
        k, n = w.shape
        panels = F.pad(w, (0, (-n) % 8)).view(k, -1, 8).permute(1, 0, 2).contiguous()
        return [self._hold(w), self._hold(panels), k, n]


def _fused_activations(graph: EngineGraph) -> dict[int, ActivationNode]:
    """Activations whose output only a running gate reads (not a graph output): the gate runs them
    (``act_gate``), so their output change is never written out as a message. By output tensor."""
    readers: dict[int, int] = {}
    for node in graph.nodes:
        for t in node.inputs:
            readers[t] = readers.get(t, 0) + 1
    acts = {n.output: n for n in graph.nodes if isinstance(n, ActivationNode)}
    return {n.inputs[0]: acts[n.inputs[0]] for n in graph.nodes
            if isinstance(n, ConvNode) and n.rule == "gate" and n.inner is None and n.inputs[0] in acts
            and readers[n.inputs[0]] == 1 and n.inputs[0] not in graph.outputs}


def _window(g) -> list[int]:
    hp, wp = g.padded_hw
    return [g.in_h, g.in_w, g.in_c, g.out_h, g.out_w, g.out_c, g.kernel[0], g.kernel[1], g.stride[0], g.stride[1],
            g.padding[0], g.padding[1], g.dilation[0], g.dilation[1], hp, wp]


def build_program(graph: EngineGraph, state: dict[str, torch.Tensor]) -> NativeProgram:
    return NativeProgram(graph, state)
