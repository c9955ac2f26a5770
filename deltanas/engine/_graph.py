"""From a network to the engine's graph: a ``torch.fx`` trace, lowered to sparse nodes.

The trace runs the model as :class:`~deltanas.delta.DeltaModel` runs it (a teacher normalises, then
``forward_features``, then ``logits_from_features``; any other module is called as it is), with each
:class:`~deltanas.delta.DeltaConv` kept as one call. Lowering maps every traced call to a node of
``_nodes`` through one table (``_HANDLERS``); a call the table does not know is refused with an
:class:`~deltanas.errors.ArchError` that names the node. A BatchNorm that only follows one convolution
is folded into it (its scale into the weights; its shift belongs to the key frame), any other
BatchNorm becomes a per-channel scale, and ops that do not change a delta (adding a constant,
dropout, flatten of a pooled vector) alias their input.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..delta import DeltaConv, DeltaModel, DeltaMode
from ..errors import ArchError
from ..teachers import Teacher
from . import _nodes as N

__all__ = ["EngineGraph", "TensorInfo", "lower", "trace_model"]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph, channels last: ``h x w`` positions of ``c`` channels (a vector is 1 x 1)."""

    h: int
    w: int
    c: int

    @property
    def positions(self) -> int:
        return self.h * self.w


@dataclass
class EngineGraph:
    """Nodes in execution order over numbered tensors; ``tensors[0]`` is the input frame.

    ``outputs`` are the tensors the model returns (a teacher: the last feature map, then the logits),
    ``output_shapes`` their shapes as the model returns them (N = 1). ``fx_nodes`` maps each tensor to the
    traced node whose value it is (what a key frame must export for nodes that keep state).
    """

    input_hw: tuple[int, int]
    tensors: list[TensorInfo]
    nodes: list[N.Node]
    outputs: list[int]
    output_shapes: list[tuple[int, ...]]
    gm: fx.GraphModule
    fx_nodes: dict[int, fx.Node] = field(default_factory=dict)
    teacher: Teacher | None = None


class _Traced(nn.Module):
    """What a delta model computes, as one traceable forward: features (and logits for a teacher)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        net = self.net
        if isinstance(net, Teacher):
            features = net.forward_features(net.normalize(x))
            return features, net.logits_from_features(features)
        return net(x)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, DeltaConv) or super().is_leaf_module(m, qualname)


def trace_model(model: DeltaModel) -> fx.GraphModule:
    """The delta model's forward (features, and logits for a teacher) as an fx graph, DeltaConvs as leaves."""
    root = _Traced(model.net)
    try:
        graph = _Tracer().trace(root)
    except Exception as exc:  # fx raises many kinds on data-dependent control flow
        raise ArchError(f"the sparse engine needs a torch.fx-traceable network: {type(exc).__name__}: {exc}") from None
    return fx.GraphModule(root, graph)


def lower(model: DeltaModel, input_hw: tuple[int, int]) -> EngineGraph:
    """The engine graph of ``model`` at ``input_hw`` (batch one, ``model.in_channels`` input channels)."""
    gm = trace_model(model)
    with model.mode(DeltaMode.PLAIN), torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, model.in_channels, *input_hw))
    return _Lowering(gm, model, input_hw).run()


# -- lowering ---------------------------------------------------------------------------------------

class _Lowering:
    def __init__(self, gm: fx.GraphModule, model: DeltaModel, input_hw: tuple[int, int]) -> None:
        self.gm = gm
        self.model = model
        self.input_hw = input_hw
        self.tensors: list[TensorInfo] = []
        self.nodes: list[N.Node] = []
        self.value: dict[fx.Node, Any] = {}  # fx node -> tensor id, or a constant (Python number, tensor)
        self.fx_nodes: dict[int, fx.Node] = {}
        self.names = {m: name.removeprefix("net.") for name, m in gm.named_modules()}

    # tensors
    def new_tensor(self, node: fx.Node) -> int:
        shape = _shape(node)
        if len(shape) == 4:
            info = TensorInfo(shape[2], shape[3], shape[1])
        elif len(shape) == 2:
            info = TensorInfo(1, 1, shape[1])
        else:
            raise ArchError(f"node {node.name}: the sparse engine handles (1, C, H, W) maps and (1, C) vectors, "
                            f"not shape {tuple(shape)}")
        self.tensors.append(info)
        self.fx_nodes[len(self.tensors) - 1] = node
        return len(self.tensors) - 1

    def tensor_of(self, arg: Any, node: fx.Node) -> int:
        value = self.value.get(arg) if isinstance(arg, fx.Node) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArchError(f"node {node.name}: expected a tensor that changes from frame to frame as input")
        return value

    def is_variable(self, arg: Any) -> bool:
        return isinstance(arg, fx.Node) and isinstance(self.value.get(arg), int) \
            and not isinstance(self.value.get(arg), bool)

    def constant(self, arg: Any) -> Any:
        if isinstance(arg, fx.Node):
            if self.is_variable(arg):
                raise ArchError(f"node {arg.name}: a constant was expected here")
            return self.value[arg]
        return arg

    def add(self, node: N.Node) -> int:
        self.nodes.append(node)
        return node.output

    def run(self) -> EngineGraph:
        outputs: list[int] = []
        output_shapes: list[tuple[int, ...]] = []
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                tid = self.new_tensor(node)
                self.value[node] = tid
                self.nodes.append(N.InputNode(name="input", inputs=(), output=tid))
            elif node.op == "get_attr":
                self.value[node] = _fetch_attr(self.gm, node.target).detach()
            elif node.op == "output":
                results = node.args[0]
                results = results if isinstance(results, (tuple, list)) else (results,)
                for r in results:
                    outputs.append(self.tensor_of(r, node))
                    output_shapes.append(tuple(_shape(r)))
            else:
                self.value[node] = self.lower_call(node)
        graph = EngineGraph(self.input_hw, self.tensors, self.nodes, outputs, output_shapes, self.gm,
                            self.fx_nodes, self.model.teacher)
        _fold_batchnorms(graph)
        for uid, node in enumerate(graph.nodes):
            node.uid = uid
        _link_norm_sources(graph)
        return graph

    def lower_call(self, node: fx.Node) -> Any:
        if not any(self.is_variable(a) for a in _flat_args(node)):
            return self.evaluate_constant(node)
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            key: Any = type(module)
            handler = _MODULE_HANDLERS.get(key)
            if handler is None:
                handler = next((h for t, h in _MODULE_HANDLERS.items() if isinstance(module, t)), None)
            if handler is None:
                raise _unsupported(node, f"module {type(module).__name__}")
            return handler(self, node, module)
        target = node.target
        handler = (_METHOD_HANDLERS if node.op == "call_method" else _FUNCTION_HANDLERS).get(target)
        if handler is None:
            raise _unsupported(node, f"{'method' if node.op == 'call_method' else 'function'} "
                                     f"{getattr(target, '__name__', target)}")
        return handler(self, node)

    def evaluate_constant(self, node: fx.Node) -> Any:
        """A call on constants only (e.g. reshaping a normalisation buffer): computed once, here."""
        args = fx.node.map_arg(node.args, lambda n: self.value[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self.value[n])
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return self.gm.get_submodule(node.target)(*args, **kwargs)


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise ArchError(f"node {node.name}: no tensor shape (the sparse engine handles single tensors only)")
    shape = tuple(meta.shape)
    if shape and shape[0] != 1:
        raise ArchError(f"node {node.name}: batch {shape[0]}; the engine runs one frame at a time")
    return shape


def _flat_args(node: fx.Node) -> list[Any]:
    flat: list[Any] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: flat.append(n) or n)
    return flat


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _unsupported(node: fx.Node, what: str) -> ArchError:
    return ArchError(f"node {node.name} ({what}) is not supported by the sparse engine; it handles Conv2d, "
                     f"BatchNorm2d, ReLU/ReLU6/SiLU/Hardswish/Sigmoid/Tanh/LeakyReLU/GELU, add/sub, cat, max/avg "
                     f"pooling, global average pooling, upsampling, Linear, flatten and dropout")


def _alias(lw: _Lowering, node: fx.Node, arg: Any | None = None) -> int:
    return lw.tensor_of(node.args[0] if arg is None else arg, node)


# -- handlers: one row per op (fvcore style) ----------------------------------------------------------

def _conv(lw: _Lowering, node: fx.Node, module: nn.Module) -> int:
    if isinstance(module, DeltaConv):
        name = lw.names[module]
        conv, student = module.conv, module.student
    else:  # a plain convolution (a network not converted): exact updates
        name, conv, student = lw.names[module], module, None
    inp = lw.tensor_of(node.args[0], node)
    out = lw.new_tensor(node)
    return lw.add(N.conv_node(name, inp, out, lw.tensors[inp], lw.tensors[out], conv, student,
                              lw.model.ops.get(name)))


def _linear(lw: _Lowering, node: fx.Node, module: nn.Linear) -> int:
    inp = lw.tensor_of(node.args[0], node)
    if lw.tensors[inp].positions != 1:
        raise ArchError(f"node {node.name}: Linear on a spatial map; the engine applies Linear to pooled vectors")
    return lw.add(N.ConvNode.linear(lw.names[module], inp, lw.new_tensor(node), module))


def _batchnorm(lw: _Lowering, node: fx.Node, module: nn.BatchNorm2d) -> int:
    scale = _bn_scale(module)
    return lw.add(N.AffineNode(name=lw.names[module], inputs=(lw.tensor_of(node.args[0], node),),
                               output=lw.new_tensor(node), scale=scale, batchnorm=True))


def _bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    if bn.training or bn.running_var is None:
        raise ArchError(f"BatchNorm {bn}: the engine needs running statistics in eval mode")
    scale = 1 / torch.sqrt(bn.running_var + bn.eps)
    return (scale * bn.weight if bn.weight is not None else scale).detach().float()


def _activation(kind: str, **params: float) -> Callable:
    def handler(lw: _Lowering, node: fx.Node, module: nn.Module | None = None) -> int:
        values = dict(params)
        if kind == "hardtanh":
            if module is not None:
                values = {"low": float(module.min_val), "high": float(module.max_val)}
            else:
                low, high = _args(node, ("min_val", -1.0), ("max_val", 1.0))
                values = {"low": float(low), "high": float(high)}
        elif kind == "leaky_relu":
            slope = module.negative_slope if module is not None else _args(node, ("negative_slope", 0.01))[0]
            values = {"slope": float(slope)}
        elif kind == "gelu":
            approximate = module.approximate if module is not None else node.kwargs.get("approximate", "none")
            if approximate != "none":
                raise _unsupported(node, "gelu(approximate='tanh')")
        inp = lw.tensor_of(node.args[0], node)
        return lw.add(N.ActivationNode(name=node.name, inputs=(inp,), output=lw.new_tensor(node), kind=kind,
                                       params=values))
    return handler


def _args(node: fx.Node, *names_defaults: tuple[str, Any]) -> list[Any]:
    """Positional-or-keyword arguments after the input, by name, with defaults."""
    out = []
    for i, (name, default) in enumerate(names_defaults, start=1):
        out.append(node.args[i] if len(node.args) > i else node.kwargs.get(name, default))
    return out


def _add(lw: _Lowering, node: fx.Node, sign: float = 1.0) -> int:
    a, b = node.args[0], node.args[1]
    if lw.is_variable(a) and lw.is_variable(b):
        return lw.add(N.AddNode(name=node.name, inputs=(lw.tensor_of(a, node), lw.tensor_of(b, node)),
                                output=lw.new_tensor(node), sign=sign))
    if lw.is_variable(b):  # constant - x: the delta flips sign
        if sign < 0:
            return _scale(lw, node, b, -1.0)
        a = b
    # x +/- constant: the delta is unchanged, the value (what a key frame exports) is not
    return lw.add(N.AliasNode(name=node.name, inputs=(lw.tensor_of(a, node),), output=lw.new_tensor(node)))


def _scale(lw: _Lowering, node: fx.Node, arg: fx.Node, scale: Any) -> int:
    info = lw.tensors[lw.tensor_of(arg, node)]
    s = torch.as_tensor(scale, dtype=torch.float32).detach()
    if s.numel() not in (1, info.c) or (s.numel() == info.c and s.ndim == 4 and s.shape[1] != info.c):
        raise ArchError(f"node {node.name}: only a scalar or per-channel constant factor is supported")
    s = s.flatten().expand(info.c).clone() if s.numel() == 1 else s.flatten().clone()
    return lw.add(N.AffineNode(name=node.name, inputs=(lw.tensor_of(arg, node),), output=lw.new_tensor(node),
                               scale=s))


def _mul(lw: _Lowering, node: fx.Node) -> int:
    a, b = node.args[0], node.args[1]
    if lw.is_variable(a) and lw.is_variable(b):
        raise _unsupported(node, "the product of two changing tensors")
    var, const = (a, b) if lw.is_variable(a) else (b, a)
    return _scale(lw, node, var, lw.constant(const))


def _div(lw: _Lowering, node: fx.Node) -> int:
    a, b = node.args[0], node.args[1]
    if lw.is_variable(b):
        raise _unsupported(node, "division by a changing tensor")
    return _scale(lw, node, a, 1 / torch.as_tensor(lw.constant(b), dtype=torch.float32))


def _cat(lw: _Lowering, node: fx.Node) -> int:
    tensors = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if dim not in (1, -3) or len(_shape(node)) != 4:
        raise _unsupported(node, f"cat along dim {dim}")
    inputs = tuple(lw.tensor_of(t, node) for t in tensors)
    return lw.add(N.CatNode(name=node.name, inputs=inputs, output=lw.new_tensor(node)))


def _pool(kind: str) -> Callable:
    def handler(lw: _Lowering, node: fx.Node, module: nn.Module | None = None) -> int:
        if module is not None:
            p = {k: getattr(module, k) for k in ("kernel_size", "stride", "padding", "ceil_mode")}
            p["dilation"] = getattr(module, "dilation", 1)
            p["count_include_pad"] = getattr(module, "count_include_pad", True)
            p["divisor_override"] = getattr(module, "divisor_override", None)
        else:
            names = (("kernel_size", None), ("stride", None), ("padding", 0))
            names += (("dilation", 1), ("ceil_mode", False)) if kind == "max" else \
                (("ceil_mode", False), ("count_include_pad", True), ("divisor_override", None))
            p = dict(zip([n for n, _ in names], _args(node, *names)))
            p.setdefault("dilation", 1)
            p.setdefault("count_include_pad", True)
            p.setdefault("divisor_override", None)
        if p.get("return_indices") or (module is not None and getattr(module, "return_indices", False)):
            raise _unsupported(node, "max pooling with indices")
        if p["stride"] is None or p["stride"] == []:
            p["stride"] = p["kernel_size"]
        inp = lw.tensor_of(node.args[0], node)
        out = lw.new_tensor(node)
        geometry = N.Geometry.make(lw.tensors[inp], lw.tensors[out], p["kernel_size"], p["stride"], p["padding"],
                                   p["dilation"])
        if kind == "max":
            return lw.add(N.MaxPoolNode(name=node.name, inputs=(inp,), output=out, geometry=geometry))
        if p["divisor_override"] is not None:
            raise _unsupported(node, "avg pooling with divisor_override")
        pool = module if module is not None else _constant_call(lw, node)
        return lw.add(N.AvgPoolNode.make(node.name, inp, out, geometry, pool))
    return handler


def _adaptive_avg(lw: _Lowering, node: fx.Node, module: nn.Module | None = None) -> int:
    size = module.output_size if module is not None else _args(node, ("output_size", None))[0]
    if size not in (1, (1, 1), [1, 1]):
        raise _unsupported(node, f"adaptive average pooling to {size}")
    return _global_pool(lw, node)


def _global_pool(lw: _Lowering, node: fx.Node) -> int:
    inp = lw.tensor_of(node.args[0], node)
    return lw.add(N.GlobalPoolNode(name=node.name, inputs=(inp,), output=lw.new_tensor(node)))


def _mean(lw: _Lowering, node: fx.Node) -> int:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if dim is None or sorted(d % 4 for d in ([dim] if isinstance(dim, int) else dim)) != [2, 3]:
        raise _unsupported(node, f"mean over dims {dim} (the engine pools over (2, 3))")
    del keepdim  # (1, C) or (1, C, 1, 1): the same vector
    return _global_pool(lw, node)


def _flatten(lw: _Lowering, node: fx.Node) -> int:
    inp = lw.tensor_of(node.args[0], node)
    if lw.tensors[inp].positions != 1:
        raise _unsupported(node, "flatten of a spatial map")
    return inp


def _constant_call(lw: _Lowering, node: fx.Node) -> Callable:
    """``x -> f(x, *rest)`` for a call whose other arguments are constants (sizes taken from static shapes)."""
    args = fx.node.map_arg(node.args[1:], lw.constant)
    kwargs = fx.node.map_arg(node.kwargs, lw.constant)
    return lambda x: node.target(x, *args, **kwargs)


def _vector_view(lw: _Lowering, node: fx.Node) -> int:
    """squeeze / unsqueeze / view / reshape of a pooled vector: the same vector."""
    inp = lw.tensor_of(node.args[0], node)
    if lw.tensors[inp].positions != 1 or math.prod(_shape(node)) != lw.tensors[inp].c:
        raise _unsupported(node, f"{node.target} of a spatial map")
    return inp


def _static_shape(lw: _Lowering, node: fx.Node) -> Any:
    """``x.size()`` / ``x.shape`` / ``x.size(d)``: shapes are fixed at the engine's input size."""
    shape = torch.Size(node.args[0].meta["tensor_meta"].shape)
    if node.op == "call_method" and len(node.args) > 1:
        return shape[node.args[1]]
    return shape


def _upsample(lw: _Lowering, node: fx.Node, module: nn.Module | None = None) -> int:
    mode = module.mode if module is not None else node.kwargs.get("mode", "nearest")
    if len(node.args) > 4:
        mode = node.args[4]
    align = (module.align_corners if module is not None else node.kwargs.get("align_corners")) or False
    if mode not in ("nearest", "bilinear"):
        raise _unsupported(node, f"upsampling mode {mode!r}")
    inp = lw.tensor_of(node.args[0], node)
    call = module if module is not None else _constant_call(lw, node)
    return lw.add(N.UpsampleNode.make(node.name, inp, lw.new_tensor(node), lw.tensors[inp], call, mode,
                                      bool(align)))


_MODULE_HANDLERS: dict[type, Callable] = {
    DeltaConv: _conv,
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _activation("relu"),
    nn.ReLU6: _activation("hardtanh"),  # hardtanh(0, 6): its module holds min_val / max_val
    nn.Hardtanh: _activation("hardtanh"),
    nn.SiLU: _activation("silu"),
    nn.Hardswish: _activation("hardswish"),
    nn.Hardsigmoid: _activation("hardsigmoid"),
    nn.Sigmoid: _activation("sigmoid"),
    nn.Tanh: _activation("tanh"),
    nn.LeakyReLU: _activation("leaky_relu"),
    nn.GELU: _activation("gelu"),
    nn.MaxPool2d: _pool("max"),
    nn.AvgPool2d: _pool("avg"),
    nn.AdaptiveAvgPool2d: _adaptive_avg,
    nn.Upsample: _upsample,
    nn.Dropout: lambda lw, node, m: _alias(lw, node),
    nn.Dropout2d: lambda lw, node, m: _alias(lw, node),
    nn.Identity: lambda lw, node, m: _alias(lw, node),
    nn.Flatten: lambda lw, node, m: _flatten(lw, node),
}

_FUNCTION_HANDLERS: dict[Any, Callable] = {
    operator.add: _add,
    torch.add: _add,
    operator.sub: lambda lw, node: _add(lw, node, -1.0),
    torch.sub: lambda lw, node: _add(lw, node, -1.0),
    operator.mul: _mul,
    torch.mul: _mul,
    operator.truediv: _div,
    torch.div: _div,
    operator.neg: lambda lw, node: _scale(lw, node, node.args[0], -1.0),
    torch.cat: _cat,
    torch.flatten: _flatten,
    torch.mean: _mean,
    F.relu: _activation("relu"),
    torch.relu: _activation("relu"),
    F.relu6: _activation("hardtanh", low=0.0, high=6.0),
    F.hardtanh: _activation("hardtanh"),
    F.silu: _activation("silu"),
    F.hardswish: _activation("hardswish"),
    F.hardsigmoid: _activation("hardsigmoid"),
    torch.sigmoid: _activation("sigmoid"),
    F.sigmoid: _activation("sigmoid"),
    torch.tanh: _activation("tanh"),
    F.leaky_relu: _activation("leaky_relu"),
    F.gelu: _activation("gelu"),
    F.max_pool2d: _pool("max"),
    F.avg_pool2d: _pool("avg"),
    F.adaptive_avg_pool2d: _adaptive_avg,
    F.interpolate: _upsample,
    F.dropout: lambda lw, node: _alias(lw, node),
    torch.reshape: _vector_view,
    torch.squeeze: _vector_view,
    torch.unsqueeze: _vector_view,
    getattr: lambda lw, node: _static_shape(lw, node) if node.args[1] == "shape" else _unsupported_attr(node),
}


def _unsupported_attr(node: fx.Node):
    raise _unsupported(node, f"attribute {node.args[1]!r}")

_METHOD_HANDLERS: dict[str, Callable] = {
    "add": _add,
    "sub": lambda lw, node: _add(lw, node, -1.0),
    "mul": _mul,
    "div": _div,
    "mean": _mean,
    "flatten": _flatten,
    "relu": _activation("relu"),
    "sigmoid": _activation("sigmoid"),
    "tanh": _activation("tanh"),
    "contiguous": lambda lw, node: _alias(lw, node),
    "unsqueeze": _vector_view,
    "squeeze": _vector_view,
    "view": _vector_view,
    "reshape": _vector_view,
    "size": _static_shape,
}


def _fold_batchnorms(graph: EngineGraph) -> None:
    """A BatchNorm whose input is a convolution's output used by nothing else scales that convolution."""
    producer = {n.output: n for n in graph.nodes}
    consumers: dict[int, int] = {}
    for n in graph.nodes:
        for t in n.inputs:
            consumers[t] = consumers.get(t, 0) + 1
    for t in graph.outputs:
        consumers[t] = consumers.get(t, 0) + 1
    kept: list[N.Node] = []
    rename: dict[int, int] = {}
    for n in graph.nodes:
        n.inputs = tuple(rename.get(t, t) for t in n.inputs)
        source = producer.get(n.inputs[0]) if n.inputs else None
        if (isinstance(n, N.AffineNode) and n.batchnorm and isinstance(source, N.ConvNode)
                and consumers.get(n.inputs[0]) == 1):
            source.scale_output(n.scale)
            rename[n.output] = source.output
            source.folded_bn = n.name
            graph.fx_nodes[source.output] = graph.fx_nodes[n.output]  # the conv's tensor is now the BN's value
            continue
        kept.append(n)
    graph.nodes = kept
    graph.outputs = [rename.get(t, t) for t in graph.outputs]


def _link_norm_sources(graph: EngineGraph) -> None:
    """An ``a``/``w`` gate fed by an activation derives the key frame's input norm from that activation's state."""
    producer = {n.output: n for n in graph.nodes}
    for n in graph.nodes:
        source = producer.get(n.inputs[0]) if n.inputs else None
        if isinstance(n, N.ConvNode) and n.rule == "gate" and n.gate.needs_key_norm and \
                isinstance(source, N.ActivationNode):
            n.norm_source = source
