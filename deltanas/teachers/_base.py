"""The teacher contract: what every network that deltanas distils must offer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Teacher", "TeacherInfo"]


@dataclass(frozen=True)
class TeacherInfo:
    """Facts about a registered teacher that do not need its weights."""

    name: str
    input_size: tuple[int, int]  # (H, W) the weights were trained at
    mean: tuple[float, float, float]  # per-channel normalisation of RGB in [0, 1]
    std: tuple[float, float, float]
    num_classes: int
    source: str  # where the weights come from, for the record
    # a state-dict file loaded into a user model (``module:function`` teachers): exports record it so
    # that ``create_teacher(name, weights=weights)`` rebuilds the same teacher; None for the registered ones
    weights: str | None = None


class Teacher(nn.Module):
    """A frozen classifier whose convolutions deltanas replaces by delta students.

    Contract (subclasses implement ``forward_features`` and ``classify``):

    - input: RGB float in [0, 1], shape (N, 3, H, W); :meth:`normalize` maps it to what the
      weights expect, so callers never need the statistics;
    - ``forward_features(x)`` returns the last feature map (N, C, h, w) (x already normalised);
    - ``classify(features)`` maps pooled features (N, C) to logits (N, classes);
    - ``forward(x)`` = global logits; :meth:`dense_logits` = the classifier at every position.

    Everything before ``classify`` must be made of ``nn.Conv2d`` plus cheap per-element modules, so
    that :func:`deltanas.delta.convert` can wrap its convolutions.
    """

    info: TeacherInfo

    def __init__(self, info: TeacherInfo) -> None:
        super().__init__()
        self.info = info
        self.register_buffer("_mean", torch.tensor(info.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(info.std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean) / self._std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(features.mean(dim=(2, 3)))

    def dense_logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier applied at every position: (N, C, h, w) -> (N, classes, h, w)."""
        n, c, h, w = features.shape
        flat = features.permute(0, 2, 3, 1).reshape(n * h * w, c)
        return self.classify(flat).reshape(n, h, w, -1).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global logits of RGB frames in [0, 1]."""
        return self.logits_from_features(self.forward_features(self.normalize(x)))

    def dense_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_logits_from_features(self.forward_features(self.normalize(x)))
