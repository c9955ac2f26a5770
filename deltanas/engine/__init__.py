"""Sparse inference end to end: a delta model's delta frames computed only where the input changed.

``SparseEngine(model)`` traces a :class:`~deltanas.delta.DeltaModel` with ``torch.fx``, lowers it to sparse
nodes (``_nodes``: the pure-PyTorch reference path; ``_native``: the same in C++), runs key frames in the
fastest dense runtime installed (``_keyframes``) and delta frames through the sparse nodes.
"""

from ._engine import EngineFrame, SparseEngine, engine_stream
from ._graph import EngineGraph, TensorInfo, lower
from ._keyframes import KEY_RUNTIMES, available_key_runtimes, dense_runtime
from ._native import available as native_available
from ._native import why_unavailable as native_unavailable_reason

__all__ = ["EngineFrame", "EngineGraph", "KEY_RUNTIMES", "SparseEngine", "TensorInfo", "available_key_runtimes",
           "dense_runtime", "engine_stream", "lower", "native_available", "native_unavailable_reason"]
