"""Key frames at the speed of the best dense runtime, and the state they hand the engine.

A key frame runs the dense teacher. Besides its outputs, the engine needs what its stateful nodes keep
(the inputs of activations, of max pooling, the key frame's mean input norm of ``a``/``w`` gates): the
:func:`key_graph` is the traced network with every delta layer replaced by its teacher convolution and
those values as extra outputs, channels last. It runs in PyTorch, or exported to ONNX in ONNX Runtime or
OpenVINO (optional extras: ``pip install 'deltanas[openvino]'``); :func:`create_key_runtime` picks the
fastest.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from ..delta import DeltaConv
from ..errors import ConfigError
from ._graph import EngineGraph
from ._nodes import KeyExport

__all__ = ["KEY_RUNTIMES", "KeyRuntime", "available_dense_runtimes", "available_key_runtimes", "create_key_runtime",
           "dense_runtime", "key_graph"]

KEY_RUNTIMES = ("openvino", "onnxruntime", "torch")
# OpenVINO at its default precision on a CPU that computes bfloat16 natively (AVX512_BF16, AMX): what a user who
# only wants speed gets there. Never a key runtime: the engine's state must be float32.
BF16_RUNTIME = "openvino_bf16"


def key_graph(graph: EngineGraph, exports: Sequence[KeyExport]) -> fx.GraphModule:
    """The dense network returning ``(*outputs, *exports)``: each output and ``map`` export as
    (positions, channels), each ``norm`` export as a (1,) tensor."""
    gm = graph.gm
    new = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    root = nn.Module()  # shares the traced modules; buffers of the norms are added below
    for name, child in gm.named_children():
        root.add_module(name, child)
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), DeltaConv):
            env[node] = new.call_module(f"{node.target}.conv", fx.node.map_arg(node.args, env.__getitem__))
        else:
            env[node] = new.node_copy(node, env.__getitem__)

    def rows(tensor: int) -> fx.Node:
        info, value = graph.tensors[tensor], env[graph.fx_nodes[tensor]]
        if info.positions > 1:
            value = new.call_method("permute", (value, 0, 2, 3, 1))
        return new.call_method("reshape", (value, info.positions, info.c))

    results = [rows(t) for t in graph.outputs]
    for i, export in enumerate(exports):
        if export.kind == "map":
            results.append(rows(export.tensor))
            continue
        value = env[graph.fx_nodes[export.tensor]]
        sq = new.call_function(torch.mul, (value, value))
        if export.weight is not None:
            name = f"_engine_norm_weight_{i}"
            root.register_buffer(name, export.weight.detach().float().view(1, -1, 1, 1))
            sq = new.call_function(torch.mul, (sq, new.get_attr(name)))
        norm = new.call_method("sqrt", (new.call_method("sum", (sq, 1)),))
        results.append(new.call_method("reshape", (new.call_method("mean", (norm,)), 1)))
    new.output(tuple(results))
    return fx.GraphModule(root, new).eval()  # a new module trains by default: exporters would honour that


class KeyRuntime(ABC):
    """Runs the key graph on a (1, C, H, W) frame. Output ``i`` goes into ``targets[i]`` (a contiguous tensor of
    its shape, bound once where the runtime can write into it directly); ``run`` returns the outputs that
    have no target (None in their place elsewhere)."""

    name: str

    def __init__(self, targets: Sequence[torch.Tensor | None]) -> None:
        self.targets = list(targets)

    @abstractmethod
    def run(self, x: torch.Tensor) -> list[torch.Tensor | None]: ...

    def _deliver(self, values: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        results: list[torch.Tensor | None] = []
        for target, value in zip(self.targets, values):
            if target is None:
                results.append(value)
            else:
                target.copy_(value.reshape(target.shape))
                results.append(None)
        return results


class TorchKeyRuntime(KeyRuntime):
    name = "torch"

    def __init__(self, gm: fx.GraphModule, targets: Sequence[torch.Tensor | None]) -> None:
        super().__init__(targets)
        self.gm = gm

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        return self._deliver(self.gm(x))


class _OnnxFile:
    """A key graph exported to ONNX at one input size, in a temporary folder that lives as long as this does."""

    def __init__(self, gm: fx.GraphModule, example: torch.Tensor) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="deltanas-key-")
        self.path = Path(self._folder.name) / "key.onnx"
        outputs = len(gm.graph.find_nodes(op="output")[0].args[0])
        self.output_names = [f"out{i}" for i in range(outputs)]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(gm.eval(), (example,), str(self.path), input_names=["x"],
                              output_names=self.output_names, dynamo=False, opset_version=17,
                              training=torch.onnx.TrainingMode.EVAL)


class _OnnxExported(KeyRuntime):
    def __init__(self, onnx: _OnnxFile, threads: int, targets: Sequence[torch.Tensor | None]) -> None:
        super().__init__(targets)
        self.onnx, self.path, self.output_names, self.threads = onnx, onnx.path, onnx.output_names, threads


class OnnxRuntimeKeyRuntime(_OnnxExported):
    """ONNX Runtime's CPU provider, writing the targets in place through an IO binding. ``alone``: its threads
    busy-wait after a run, as by default (fastest when nothing else runs); otherwise they sleep, since spinning
    threads slow the engine's kernels that run next (measured: delta frames 29 against 17 ms)."""

    name = "onnxruntime"

    def __init__(self, onnx: _OnnxFile, threads: int, targets: Sequence[torch.Tensor | None],
                 alone: bool = False) -> None:
        super().__init__(onnx, threads, targets)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if alone else "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.binding = self.session.io_binding()
        for name, target in zip(self.output_names, self.targets):
            if target is None:
                self.binding.bind_output(name, "cpu")
            else:
                self.binding.bind_output(name, "cpu", 0, np.float32, list(target.shape), target.data_ptr())

    def run(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        frame = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        self.binding.bind_cpu_input("x", frame)
        self.session.run_with_iobinding(self.binding)
        outs = self.binding.get_outputs()
        return [None if t is not None else torch.from_numpy(o.numpy()) for t, o in zip(self.targets, outs)]


class OpenVinoKeyRuntime(_OnnxExported):
    """OpenVINO's CPU plugin (latency hint), writing the targets in place. It computes in float32: on a CPU
    with native bfloat16 OpenVINO would otherwise compute in bfloat16 (relative error near 1e-1 on Lite0's last
    feature map), and the engine's state must equal the teacher's. ``bf16``: its default precision there."""

    name = "openvino"

    def __init__(self, onnx: _OnnxFile, threads: int, targets: Sequence[torch.Tensor | None],
                 bf16: bool = False) -> None:
        super().__init__(onnx, threads, targets)
        import openvino as ov

        self.name = BF16_RUNTIME if bf16 else "openvino"
        core = ov.Core()
        self.compiled = core.compile_model(str(self.path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
        self.request = self.compiled.create_infer_request()
        for i, target in enumerate(self.targets):
            if target is not None:
                self.request.set_output_tensor(i, ov.Tensor(target.numpy(), shared_memory=True))

    def run(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        import openvino as ov

        frame = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        self.request.set_input_tensor(ov.Tensor(frame, shared_memory=True))
        self.request.infer()
        return [None if t is not None else torch.from_numpy(self.request.get_output_tensor(i).data.copy())
                for i, t in enumerate(self.targets)]


_CLASSES = {"torch": TorchKeyRuntime, "onnxruntime": OnnxRuntimeKeyRuntime, "openvino": OpenVinoKeyRuntime}


def available_key_runtimes() -> list[str]:
    """The dense runtimes installed here (PyTorch always)."""
    return [name for name in KEY_RUNTIMES if name == "torch" or importlib.util.find_spec(name) is not None]


def available_dense_runtimes() -> list[str]:
    """The runtimes to time the dense teacher in: :func:`available_key_runtimes`, and ``openvino_bf16`` where
    OpenVINO is installed and the CPU computes bfloat16 natively (OpenVINO's default precision there)."""
    runtimes = available_key_runtimes()
    if "openvino" in runtimes:
        import openvino as ov

        if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            runtimes.append(BF16_RUNTIME)
    return runtimes


def create_key_runtime(name: str, gm: fx.GraphModule, example: torch.Tensor, threads: int,
                       targets: Sequence[torch.Tensor | None], *, alone: bool = False) -> KeyRuntime:
    """``name``: one of :data:`KEY_RUNTIMES`, or ``auto``: of the installed ONNX runtimes (OpenVINO, ONNX
    Runtime) the one that runs this graph fastest here (timed on ``example``), PyTorch when neither is
    installed. A runtime that is not installed is refused with the command that installs it. ``targets``: see
    :class:`KeyRuntime`. Every runtime computes in float32. ``alone``: nothing else runs between its runs (see
    :class:`OnnxRuntimeKeyRuntime`)."""
    installed = available_key_runtimes()
    if name != "auto" and name not in _CLASSES:
        raise ConfigError(f"unknown key-frame runtime {name!r}; known: auto, {', '.join(KEY_RUNTIMES)}")
    if name != "auto" and name not in installed:
        raise ConfigError(f"key-frame runtime {name!r} is not installed: pip install 'deltanas[{name}]'")
    candidates = [n for n in installed if n != "torch"] if name == "auto" else [name]
    if not candidates or candidates == ["torch"]:
        return TorchKeyRuntime(gm, targets)
    onnx = _OnnxFile(gm, example)
    runtimes = [OnnxRuntimeKeyRuntime(onnx, threads, targets, alone) if n == "onnxruntime" else
                _CLASSES[n](onnx, threads, targets) for n in candidates]
    if len(runtimes) == 1:
        return runtimes[0]
    return _fastest(runtimes, example)


def _fastest(runtimes: Sequence[KeyRuntime], example: torch.Tensor, rounds: int = 9) -> KeyRuntime:
    """The runtime with the least median time, timed in turns (each round times each once), so that a change of
    load on a shared machine falls on every runtime alike. Each timed run follows an untimed one of the same
    runtime: the threads another runtime leaves spinning right after its run would slow whichever comes next."""
    for _ in range(3):  # warm-up: the first runs after compiling are slower, and not alike across runtimes
        for runtime in runtimes:
            runtime.run(example)
    times: list[list[float]] = [[] for _ in runtimes]
    for _ in range(rounds):
        for runtime, spent in zip(runtimes, times):
            runtime.run(example)
            start = time.perf_counter()
            runtime.run(example)
            spent.append(time.perf_counter() - start)
    medians = [sorted(spent)[rounds // 2] for spent in times]
    return runtimes[medians.index(min(medians))]


def dense_runtime(model, name: str, input_hw: tuple[int, int], threads: int, *, alone: bool = True) -> KeyRuntime:
    """The dense teacher of ``model`` (its outputs only, no engine state) in runtime ``name`` (``auto``: the
    fastest installed, as for key frames): what a user who only wants speed would run, to compare the engine
    with. ``.run(x)`` on one frame (1, C, H, W); ``.name`` says which runtime it is.
    ``openvino_bf16`` (see :func:`available_dense_runtimes`) computes in bfloat16; the others in float32.
    ``alone``: as in :func:`create_key_runtime` (False where the engine runs between its frames).
    """
    from ._graph import lower

    graph = lower(model, input_hw)
    gm = key_graph(graph, [])
    example = torch.zeros(1, model.in_channels, *input_hw)
    targets = [None] * len(graph.outputs)
    if name == BF16_RUNTIME:
        if name not in available_dense_runtimes():
            raise ConfigError(f"{BF16_RUNTIME} needs OpenVINO (pip install 'deltanas[openvino]') on a CPU that "
                              f"computes bfloat16 natively")
        return OpenVinoKeyRuntime(_OnnxFile(gm, example), threads, targets, bf16=True)
    return create_key_runtime(name, gm, example, threads, targets, alone=alone)
