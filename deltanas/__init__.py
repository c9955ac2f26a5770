"""deltanas: delta distillation for video CNNs, with a FLOPs-constrained search for per-layer students.

Sub-packages: ``teachers`` (registry of real-weight teachers), ``video`` (decoding, bundled clips,
sampling), ``delta`` (DeltaConv, conversion, student operators, MACs), ``training``, ``search``,
``sweep``, ``analysis``; ``export`` writes/reads ``arch.json`` + ``students.safetensors``; ``runs``
reads run folders (their ``summary.json`` schema, the points they hold).
"""

from __future__ import annotations

from .delta import Arch, DeltaModel, KeyframePolicy, convert, stream
from .errors import DeltaNASError
from .teachers import create_teacher, list_teachers

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "DeltaModel",
    "DeltaNASError",
    "KeyframePolicy",
    "convert",
    "create_teacher",
    "list_teachers",
    "stream",
]
