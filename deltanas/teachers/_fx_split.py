"""Split a classifier with ``torch.fx`` at its last global average pooling.

A classifier ``x -> logits`` becomes three ``torch.fx.GraphModule``\\ s: ``features`` (``x`` -> the
pool's 4-D input), ``pool`` (that map -> (N, C) with the network's own pooling op) and ``head``
((N, C) -> logits: whatever followed the pool, e.g. flatten, dropout, Linear). Chained they compute
exactly what the network computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ConfigError

__all__ = ["ClassifierSplit", "split_at_global_pool", "GLOBAL_POOLS"]

GLOBAL_POOLS = "nn.AdaptiveAvgPool2d(1), F.adaptive_avg_pool2d(x, 1), x.mean((2, 3)) or torch.mean(x, (2, 3))"


@dataclass(frozen=True)
class ClassifierSplit:
    features: fx.GraphModule  # x -> (N, C, h, w)
    pool: fx.GraphModule  # (N, C, h, w) -> (N, C)
    head: fx.GraphModule  # (N, C) -> logits


def _arg(node: fx.Node, index: int, key: str, default: Any = None) -> Any:
    return node.args[index] if len(node.args) > index else node.kwargs.get(key, default)


def _is_unit(size: Any) -> bool:
    return size == 1 or (isinstance(size, (tuple, list)) and tuple(size) == (1, 1))


def _pool_keepdim(root: nn.Module, node: fx.Node) -> bool | None:
    """Whether ``node`` is a global average pool keeping (N, C, 1, 1) (True) or giving (N, C)
    (False); None if it is no global average pool."""
    if node.op == "call_module":
        module = root.get_submodule(str(node.target))
        if isinstance(module, nn.AdaptiveAvgPool2d) and _is_unit(module.output_size):
            return True
    elif node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        if _is_unit(_arg(node, 1, "output_size")):
            return True
    elif (node.op == "call_method" and node.target == "mean") or (
            node.op == "call_function" and node.target is torch.mean):
        dim = _arg(node, 1, "dim")
        if isinstance(dim, (tuple, list)) and all(isinstance(d, int) for d in dim) \
                and sorted(d % 4 for d in dim) == [2, 3]:
            return bool(_arg(node, 2, "keepdim", False))
    return None


def _ancestors(node: fx.Node, stop: fx.Node | None = None) -> set[fx.Node]:
    """``node`` and every node it reads, not looking past ``stop``."""
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n is not stop:
            stack.extend(n.all_input_nodes)
    return seen


def _ndim(node: Any) -> int | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return len(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def split_at_global_pool(module: nn.Module, probe: torch.Tensor, name: str) -> ClassifierSplit:
    """Split ``module`` (in eval mode; ``probe`` a valid input) at the last global average pool on the
    way to its output. Raises :class:`ConfigError` naming why when it cannot be traced or split."""
    try:
        traced = fx.symbolic_trace(module)
        ShapeProp(traced).propagate(probe)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"teacher {name!r}: torch.fx cannot trace the model to split it at its global pool "
                          f"({type(exc).__name__}: {first}); keep data-dependent control flow out of forward")
    nodes = list(traced.graph.nodes)
    output = next(n for n in nodes if n.op == "output")
    on_the_way = _ancestors(output)
    pools = [n for n in nodes if n in on_the_way and _pool_keepdim(traced, n) is not None
             and isinstance(n.args[0] if n.args else None, fx.Node) and _ndim(n.args[0]) == 4]
    if not pools:
        raise ConfigError(f"teacher {name!r}: its (N, classes) output has no global average pooling of a 4-D map "
                          f"on the way ({GLOBAL_POOLS}), so there is no feature map to split it at")
    pool = pools[-1]
    keepdim = bool(_pool_keepdim(traced, pool))
    feature_node: fx.Node = pool.args[0]  # type: ignore[assignment]
    head_nodes = _ancestors(output, stop=pool)
    if any(n.op == "placeholder" for n in head_nodes):
        raise ConfigError(f"teacher {name!r}: its output reads the input other than through the last global "
                          f"pool ({pool.name}), so classify(pooled) cannot compute it")
    convs = [str(n.target) for n in head_nodes
             if n.op == "call_module" and isinstance(traced.get_submodule(str(n.target)), nn.Conv2d)]
    if convs:
        raise ConfigError(f"teacher {name!r}: convolution(s) {convs[:3]} follow the last global pool ({pool.name}); "
                          f"deltanas converts the convolutions before it, so make the classifier Linear")

    def graph_module(graph: fx.Graph, class_name: str) -> fx.GraphModule:
        graph.lint()
        return fx.GraphModule(traced, graph, class_name=class_name)

    features = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    keep = _ancestors(feature_node)
    for n in nodes:
        if n in keep:
            env[n] = features.node_copy(n, lambda a: env[a])
    features.output(env[feature_node])

    pooling = fx.Graph()
    env = {feature_node: pooling.placeholder("features")}
    pooled = pooling.node_copy(pool, lambda a: env[a])
    pooling.output(pooling.call_method("flatten", (pooled, 1)) if keepdim else pooled)

    head = fx.Graph()
    value = head.placeholder("pooled")
    if keepdim:  # what the rest of the network read: (N, C, 1, 1)
        value = head.call_method("unsqueeze", (head.call_method("unsqueeze", (value, -1)), -1))
    env = {pool: value}
    for n in nodes:
        if n in head_nodes and n is not pool:
            env[n] = head.node_copy(n, lambda a: env[a])
    return ClassifierSplit(graph_module(features, "Features"), graph_module(pooling, "GlobalPool"),
                           graph_module(head, "Head"))
