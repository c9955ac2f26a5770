"""Delta distillation of a fixed architecture (``deltanas train``)."""

from __future__ import annotations

from ._config import DataConfig, TrainConfig
from ._data import VideoData, load_video_data
from ._loss import DistillLoss, LossTerms, LossWeights
from ._trainer import TrainResult, build_model, lr_at, train

__all__ = [
    "DataConfig",
    "DistillLoss",
    "LossTerms",
    "LossWeights",
    "TrainConfig",
    "TrainResult",
    "VideoData",
    "build_model",
    "load_video_data",
    "lr_at",
    "train",
]
