"""Where a sparse change lands: positions of a windowed op (convolution, pooling) on channels-last maps.

Positions are row-major indices ``y * W + x``. A window op with kernel ``k``, stride ``s``, padding ``p``
and dilation ``d`` reads, for output ``(oy, ox)`` and tap ``(i, j)``, the input ``(oy s - p + i d, ...)``.
Its input is kept zero padded (``padded_hw``, large enough for ceil-mode windows too), so a tap's index
is ``(oy s + i d) * Wp + (ox s + j d)`` and no bounds are checked when gathering.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

__all__ = ["Geometry", "pair"]


def pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


@dataclass(frozen=True)
class Geometry:
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @classmethod
    def make(cls, inp, out, kernel=1, stride=1, padding=0, dilation=1) -> "Geometry":
        """From two ``TensorInfo`` (h, w, c) and the op's window."""
        return cls(inp.h, inp.w, inp.c, out.h, out.w, out.c, pair(kernel), pair(stride), pair(padding),
                   pair(dilation))

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def is_pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.padding == (0, 0)

    @property
    def padded_hw(self) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        need_h = (self.out_h - 1) * sh + dh * (kh - 1) + 1
        need_w = (self.out_w - 1) * sw + dw * (kw - 1) + 1
        return max(self.in_h + 2 * ph, need_h), max(self.in_w + 2 * pw, need_w)

    @cached_property
    def tap_offsets(self) -> torch.Tensor:
        """(taps,) offsets of each tap from a window's top-left corner in the padded frame."""
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        wp = self.padded_hw[1]
        i = torch.arange(kh)[:, None] * dh
        j = torch.arange(kw)[None, :] * dw
        return (i * wp + j).flatten()

    def to_padded(self, idx: torch.Tensor) -> torch.Tensor:
        """Input positions as indices into the padded frame."""
        (ph, pw), wp = self.padding, self.padded_hw[1]
        return (idx // self.in_w + ph) * wp + idx % self.in_w + pw

    def window_corner(self, out_idx: torch.Tensor) -> torch.Tensor:
        """Output positions -> the padded index of their window's top-left tap."""
        (sh, sw), wp = self.stride, self.padded_hw[1]
        return (out_idx // self.out_w) * sh * wp + (out_idx % self.out_w) * sw

    def patch_index(self, out_idx: torch.Tensor) -> torch.Tensor:
        """(m, taps) padded input indices read by each output position."""
        return self.window_corner(out_idx)[:, None] + self.tap_offsets[None, :]

    def touched(self, idx: torch.Tensor) -> torch.Tensor:
        """The output positions whose window holds one of the input positions ``idx`` (sorted, unique)."""
        if self.is_pointwise and self.stride == (1, 1):
            return idx
        out, valid = self.reached(idx)
        return torch.unique(out[valid])

    def reach(self, idx: torch.Tensor) -> int:
        """How many (input position, output position) pairs the inputs ``idx`` take part in: the taps that a
        computation driven by the changed inputs does."""
        return int(self.reached(idx)[1].sum())

    def reached(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each input position of ``idx`` and kernel tap (n, kh, kw): the output position whose window
        holds it there, and whether that output exists (stride, padding and edges)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        y, x = idx // self.in_w, idx % self.in_w
        oy_num = (y + ph)[:, None] - torch.arange(kh)[None, :] * dh  # (n, kh): oy * sh for each tap row
        ox_num = (x + pw)[:, None] - torch.arange(kw)[None, :] * dw
        ok_y = (oy_num >= 0) & (oy_num % sh == 0) & (oy_num // sh < self.out_h)
        ok_x = (ox_num >= 0) & (ox_num % sw == 0) & (ox_num // sw < self.out_w)
        out = (oy_num // sh)[:, :, None] * self.out_w + (ox_num // sw)[:, None, :]
        return out, ok_y[:, :, None] & ok_x[:, None, :]
