"""A delta model's layer table: each convolution's shape, the teacher's and the chosen operator's MACs, the
search space's candidates for it, the totals, and which engine would run it (``deltanas info``)."""

from __future__ import annotations

from ..delta import DeltaModel, SearchSpace, parse_op
from ..engine import available_key_runtimes, native_available, native_unavailable_reason

__all__ = ["model_table"]


def model_table(model: DeltaModel, size: tuple[int, int], space: SearchSpace, keyframe_interval: int, *,
                op_fields: bool = False) -> dict:
    """``{"layers": [...], "totals": {...}, "engine": {...}}`` of ``model`` at ``size`` (H, W). A layer's
    ``op`` is its compact grammar, or with ``op_fields`` its named-field object (as ``arch.json`` holds it);
    ``candidates`` maps each of ``space``'s operators that fit the layer to its MACs per delta frame."""
    infos, linear = model.layer_infos(size)
    cost = model.cost(size)
    layers = [{
        "layer": info.name,
        "shape": f"{info.in_channels}->{info.out_channels} k{info.kernel[0]}x{info.kernel[1]} "
                 f"s{info.stride[0]} g{info.groups} {info.out_hw[0]}x{info.out_hw[1]}",
        "teacher_macs": info.teacher_macs,
        "op": parse_op(layer_cost.op).to_fields() if op_fields else layer_cost.op,
        "op_macs": layer_cost.student_macs,
        "candidates": {str(op): op.macs(info) for op in space.candidates(info)},
    } for info, layer_cost in zip(infos, cost.layers)]
    totals = {"teacher_macs": cost.teacher_macs, "delta_macs": cost.delta_macs, "linear_macs": linear,
              "per_frame": cost.per_frame(keyframe_interval), "speedup": cost.speedup(keyframe_interval),
              "cache_bytes": cost.cache_bytes, "layers": len(infos), "size": list(size)}
    engine = {"native": native_available(), "native_unavailable": native_unavailable_reason() or None,
              "key_runtimes": available_key_runtimes()}
    return {"layers": layers, "totals": totals, "engine": engine}
