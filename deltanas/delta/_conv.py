"""DeltaConv: a teacher convolution that, after a key frame, updates its output with a student."""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn

from ._students import ZeroDelta

__all__ = ["DeltaConv", "DeltaMode"]


class DeltaMode(str, Enum):
    PLAIN = "plain"  # the teacher convolution, no delta (exact, every frame)
    GROUP = "group"  # the batch holds groups of T frames, the first of each group is its key frame
    KEY = "key"  # streaming: this batch is a key frame; cache its input and output
    DELTA = "delta"  # streaming: frames after the cached key frame


class DeltaConv(nn.Module):
    """``z_t = z_key + student(x_t - x_key)``; the key frame runs the teacher convolution (with bias).

    The mode is set by the owning :class:`~deltanas.delta.DeltaModel`. With ``record`` on, the
    student's output deltas of the last GROUP call are kept in ``last_delta`` (for per-layer losses).
    """

    def __init__(self, conv: nn.Conv2d, student: nn.Module, op: str) -> None:
        super().__init__()
        self.conv = conv
        self.student = student
        self.op = op
        self.mode = DeltaMode.PLAIN
        self.group_size = 1
        self.record = False
        self.last_delta: torch.Tensor | None = None
        self._key_input: torch.Tensor | None = None
        self._key_output: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"op={self.op}"

    @property
    def sequential(self) -> bool:
        """The student runs the frames after a key frame in order (a running reference)."""
        return getattr(self.student, "sequential", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode is DeltaMode.PLAIN:
            return self.conv(x)
        if self.mode is DeltaMode.KEY:
            z = self.conv(x)
            reuse = isinstance(self.student, ZeroDelta)  # needs no key input: don't hold it
            self._key_input, self._key_output = (None if reuse else x.detach()), z.detach()
            if self.sequential:
                self.student.reset()
            return z
        if self.mode is DeltaMode.DELTA:
            if self._key_output is None:
                raise RuntimeError("DeltaConv: a delta frame came before any key frame")
            if isinstance(self.student, ZeroDelta):
                return self._key_output.expand(x.shape[0], *self._key_output.shape[1:])
            dx = x - self._key_input
            dz = self.student.step(dx, self._key_input) if self.sequential else self.student(dx)
            return self._key_output + dz
        t = self.group_size
        groups = x.shape[0] // t
        x = x.view(groups, t, *x.shape[1:])
        x_key = x[:, 0]
        z_key = self.conv(x_key)
        if t == 1:
            return z_key
        if isinstance(self.student, ZeroDelta):  # reuse: nothing to compute
            z_rest = z_key[:, None].expand(groups, t - 1, *z_key.shape[1:])
            if self.record:
                self.last_delta = torch.zeros_like(z_rest).flatten(0, 1)
        else:
            dx = x[:, 1:] - x_key[:, None]
            if self.sequential:
                dz = self.student.run_group(dx, x_key)
            else:
                dz = self.student(dx.flatten(0, 1))
                dz = dz.view(groups, t - 1, *dz.shape[1:])
            z_rest = z_key[:, None] + dz
            if self.record:
                self.last_delta = dz.flatten(0, 1)
        return torch.cat([z_key[:, None], z_rest], dim=1).flatten(0, 1)

    def clear_cache(self) -> None:
        self._key_input = self._key_output = self.last_delta = None

    @property
    def cache_bytes(self) -> int:
        """Bytes held for the key frame (its input and output)."""
        return sum(t.numel() * t.element_size() for t in (self._key_input, self._key_output) if t is not None)
