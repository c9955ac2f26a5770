"""Budget penalties on the expected MACs ``E`` against the target ``T`` (DESIGN section 4)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from ..errors import ConfigError

__all__ = ["Penalty", "PENALTIES", "make_penalty"]


class Penalty(ABC):
    """Combines the task loss with the cost. Contract: ``combine(task, expected, target)`` returns
    the loss to minimise (differentiable in ``expected``); ``after_step(expected, target)`` may
    update internal state (the Lagrangian's multiplier); ``state``/``load_state`` round-trip it."""

    name: ClassVar[str]

    def __init__(self, weight: float) -> None:
        self.weight = weight

    @abstractmethod
    def combine(self, task: torch.Tensor, expected: torch.Tensor, target: float) -> torch.Tensor: ...

    def after_step(self, expected: float, target: float) -> None:
        pass

    def state(self) -> dict[str, float]:
        return {"weight": self.weight}

    def load_state(self, state: dict[str, float]) -> None:
        self.weight = float(state["weight"])


class LinearPenalty(Penalty):
    """Additive ``lambda * (E/T - 1)``: a constant push toward cheaper ops (no target is hit by itself)."""

    name = "linear"

    def combine(self, task, expected, target):
        return task + self.weight * (expected / target - 1)


class LogPenalty(Penalty):
    """ProxylessNAS style, multiplicative: ``task * (log E / log T) ** beta``."""

    name = "log"

    def combine(self, task, expected, target):
        return task * (torch.log(expected) / math.log(target)) ** self.weight


class AbsolutePenalty(Penalty):
    """TuNAS style: ``lambda * |E/T - 1|``: pulls E onto T from both sides."""

    name = "absolute"

    def combine(self, task, expected, target):
        return task + self.weight * (expected / target - 1).abs()


class LagrangianPenalty(Penalty):
    """Augmented Lagrangian ``task + lambda g + (rho / 2) g^2`` with ``g = E/T - 1`` and dual ascent
    ``lambda += rate * g`` after each step, which drives E onto T (lambda turns negative when E falls
    below T). The quadratic term damps the oscillation that plain dual ascent shows."""

    name = "lagrangian"

    def __init__(self, weight: float, rate: float = 0.2, rho: float = 4.0) -> None:
        super().__init__(weight)
        self.rate = rate
        self.rho = rho

    def combine(self, task, expected, target):
        g = expected / target - 1
        return task + self.weight * g + 0.5 * self.rho * g * g

    def after_step(self, expected: float, target: float) -> None:
        self.weight += self.rate * (expected / target - 1)


PENALTIES: dict[str, type[Penalty]] = {p.name: p for p in (LinearPenalty, LogPenalty, AbsolutePenalty,
                                                           LagrangianPenalty)}


def make_penalty(name: str, weight: float) -> Penalty:
    if name not in PENALTIES:
        raise ConfigError(f"unknown penalty {name!r}; choose from {', '.join(PENALTIES)}")
    return PENALTIES[name](weight)
