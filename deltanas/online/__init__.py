"""Online adaptation on a live stream (after online model distillation / JITNet): every key frame is also a
check of the delta model against the teacher, and a controller sets the key-frame interval and the gate scale
from the checks to hold an accuracy target at the least cost."""

from ._controller import Check, Controller, Decision, OnlineConfig
from ._stream import OnlineReport, run_online, window_fidelity
from ._training import OnlineTrainer

__all__ = ["Check", "Controller", "Decision", "OnlineConfig", "OnlineReport", "OnlineTrainer", "run_online",
           "window_fidelity"]
