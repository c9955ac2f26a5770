"""Sparse inference end to end: a delta model's delta frames computed only where the input changed.

``SparseEngine(model)`` traces a :class:`~deltanas.delta.DeltaModel` with ``torch.fx``, lowers it to sparse
nodes (``_nodes``: the pure-PyTorch reference path; ``_native``: the same in C++), runs key frames in the
fastest dense runtime installed (``_keyframes``) and delta frames through the sparse nodes. ``profile_latency``
measures what a delta frame costs here, layer by layer (``_latency``: the cost model latency budgets use).
"""

from ._engine import EngineFrame, SparseEngine, engine_stream
from ._graph import EngineGraph, TensorInfo, lower
from ._keyframes import BF16_RUNTIME, KEY_RUNTIMES, available_dense_runtimes, available_key_runtimes, dense_runtime
from ._latency import (DEFAULT_SCALES, FrameParts, LatencyCheck, LatencyModel, LayerLatency, attribute, check_latency,
                       machine_name, profile_latency, teacher_name)
from ._native import available as native_available
from ._native import why_unavailable as native_unavailable_reason
from ._schedule import DenseFallback, FrameKind, FrameSchedule

__all__ = ["BF16_RUNTIME", "DEFAULT_SCALES", "DenseFallback", "EngineFrame", "EngineGraph", "FrameKind", "FrameParts",
           "FrameSchedule", "KEY_RUNTIMES", "LatencyCheck", "LatencyModel", "LayerLatency", "SparseEngine",
           "TensorInfo", "attribute", "available_dense_runtimes", "available_key_runtimes", "check_latency",
           "dense_runtime", "engine_stream", "lower", "machine_name", "native_available", "native_unavailable_reason",
           "profile_latency", "teacher_name"]
