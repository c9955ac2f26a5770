"""Online student training (after JITNet): a bounded number of optimiser steps per key frame on the pair
(last key frame, this key frame), the teacher's output on this one as the target."""

from __future__ import annotations

import torch

from ..delta import DeltaModel
from ..errors import ConfigError
from ..training import DistillLoss, LossWeights

__all__ = ["OnlineTrainer"]


class OnlineTrainer:
    """``step(x_key, x_now)`` takes ``steps`` AdamW steps of the distillation loss (:class:`DistillLoss`) on
    the group (x_key, x_now) and returns (steps taken, MACs spent). The MACs count the teacher pass of the
    loss and three times the group's forward pass (forward and backward) at the teacher's cost per frame, a
    bound: the reference path runs every layer densely. The sparse engine sees the updated weights at once
    (its student nodes run the model's own modules)."""

    def __init__(self, model: DeltaModel, steps: int = 2, lr: float = 1e-4) -> None:
        if steps < 1:
            raise ConfigError("online training needs at least one step per key frame")
        self.params = model.student_parameters()
        if not self.params:
            raise ConfigError("the model has no trainable students to train online (running gates and exact "
                              "layers have none): train a model with students, or leave out --train-steps")
        self.model = model
        self.steps = steps
        self.loss = DistillLoss(model, LossWeights(anchor=0.01, gate=0.0))
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.0)
        self.last_loss: float | None = None
        self._teacher_macs: dict[tuple[int, int], float] = {}  # per input size (costing traces the network)

    def step(self, x_key: torch.Tensor, x_now: torch.Tensor) -> tuple[int, float]:
        group = torch.cat([x_key, x_now])[None]
        hw = (int(x_now.shape[-2]), int(x_now.shape[-1]))
        if hw not in self._teacher_macs:
            self._teacher_macs[hw] = float(self.model.cost(hw).teacher_macs)
        self.model.train()
        try:
            with torch.enable_grad():
                for _ in range(self.steps):
                    self.optimizer.zero_grad(set_to_none=True)
                    terms = self.loss(group)
                    if not torch.isfinite(terms.total):
                        raise ConfigError("online training: the loss is not finite; stopped")
                    terms.total.backward()
                    self.optimizer.step()
                    self.last_loss = float(terms.total.detach())
        finally:
            self.model.eval()
            self.model.clear_cache()
        return self.steps, self.steps * (2 + 3 * 2) * self._teacher_macs[hw]
