"""Student modules: bias-free maps from a layer's input delta to its output delta.

Each is built from the teacher's (dense) weight so that it starts as a good approximation of it
(truncated SVD and friends), never from random noise.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import LayerInfo, conv_output_hw

__all__ = [
    "dense_weight",
    "with_padding_mode",
    "FullDelta",
    "ZeroDelta",
    "LowRankDelta",
    "ChannelDelta",
    "DepthwiseDelta",
    "SubsampleDelta",
]


def svd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD on one thread: the small matrices here run ~50x slower on two threads (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.svd(matrix, full_matrices=False)
    finally:
        torch.set_num_threads(threads)


def dense_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The convolution's weight as a dense (C_out, C_in, kh, kw) tensor (groups made block-diagonal)."""
    w = conv.weight.detach()
    if conv.groups == 1:
        return w.clone()
    c_out, c_in_g = w.shape[:2]
    out_g = c_out // conv.groups
    dense = w.new_zeros(c_out, c_in_g * conv.groups, *w.shape[2:])
    for g in range(conv.groups):
        dense[g * out_g:(g + 1) * out_g, g * c_in_g:(g + 1) * c_in_g] = w[g * out_g:(g + 1) * out_g]
    return dense


class PrePad(nn.Module):
    """Pads like a ``padding_mode != 'zeros'`` teacher conv, so the student can run unpadded."""

    def __init__(self, padding: tuple[int, int], mode: str) -> None:
        super().__init__()
        self.pad = (padding[1], padding[1], padding[0], padding[0])
        self.mode = mode

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        return F.pad(dx, self.pad, mode=self.mode)


def with_padding_mode(layer: LayerInfo, conv: nn.Conv2d, make) -> nn.Module:
    """``make(layer)``, behind a :class:`PrePad` when the teacher pads by reflection, replication...

    Padding commutes with the 1x1 parts of every student, so padding the delta once up front is exact.
    """
    if conv.padding_mode == "zeros":
        return make(layer)
    return nn.Sequential(PrePad(layer.padding, conv.padding_mode), make(replace(layer, padding=(0, 0))))


class FullDelta(nn.Module):
    """The exact update ``W dx``: shares the teacher's weight (no copy, not trainable, not saved)."""

    def __init__(self, conv: nn.Conv2d, layer: LayerInfo) -> None:
        super().__init__()
        self.register_buffer("weight", conv.weight.detach(), persistent=False)
        self.layer = layer

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        return F.conv2d(dx, self.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


class ZeroDelta(nn.Module):
    """No update: the layer keeps its key-frame output (plain feature reuse)."""

    def __init__(self, layer: LayerInfo) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        out_hw = conv_output_hw(self.layer.with_input(tuple(dx.shape[-2:])))
        return dx.new_zeros(dx.shape[0], self.layer.out_channels, *out_hw)


class LowRankDelta(nn.Module):
    """Rank-r factorisation. 1x1: ``V U``; k x k: a (kh x 1) conv to r channels, then (1 x kw) to C_out.

    Initialised by truncated SVD of the weight reshaped to (C_in kh) x (C_out kw), which is exact
    at full rank.
    """

    def __init__(self, weight: torch.Tensor, layer: LayerInfo, rank: int) -> None:
        super().__init__()
        c_out, c_in, kh, kw = weight.shape
        (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
        self.rows = nn.Conv2d(c_in, rank, (kh, 1), (sh, 1), (ph, 0), (dh, 1), bias=False)
        self.cols = nn.Conv2d(rank, c_out, (1, kw), (1, sw), (0, pw), (1, dw), bias=False)
        matrix = weight.permute(1, 2, 0, 3).reshape(c_in * kh, c_out * kw)
        u, s, vh = svd(matrix)
        root = s[:rank].sqrt()
        with torch.no_grad():
            self.rows.weight.copy_((u[:, :rank] * root).T.reshape(rank, c_in, kh, 1))
            self.cols.weight.copy_((vh[:rank] * root[:, None]).reshape(rank, c_out, kw).permute(1, 0, 2)[:, :, None])

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        return self.cols(self.rows(dx))


def _top_singular_vectors(matrix: torch.Tensor, count: int) -> torch.Tensor:
    u, _, _ = svd(matrix)
    return u[:, :count]


class ChannelDelta(nn.Module):
    """1x1 down to C_in/c, the k x k convolution on the reduced channels, 1x1 up to C_out.

    Initialised with the principal input and output channel subspaces of the weight, so that
    ``up . mid . down = Q Q^T W P P^T``.
    """

    def __init__(self, weight: torch.Tensor, layer: LayerInfo, reduced_in: int, reduced_out: int) -> None:
        super().__init__()
        c_out, c_in, kh, kw = weight.shape
        self.down = nn.Conv2d(c_in, reduced_in, 1, bias=False)
        self.mid = nn.Conv2d(reduced_in, reduced_out, (kh, kw), layer.stride, layer.padding, layer.dilation,
                             bias=False)
        self.up = nn.Conv2d(reduced_out, c_out, 1, bias=False)
        p = _top_singular_vectors(weight.transpose(0, 1).reshape(c_in, -1), reduced_in)  # (C_in, m)
        q = _top_singular_vectors(weight.reshape(c_out, -1), reduced_out)  # (C_out, n)
        with torch.no_grad():
            self.down.weight.copy_(p.T[:, :, None, None])
            self.mid.weight.copy_(torch.einsum("on,oiab,im->nmab", q, weight, p))
            self.up.weight.copy_(q[:, :, None, None])

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        return self.up(self.mid(self.down(dx)))


class DepthwiseDelta(nn.Module):
    """Depthwise k x k on C_in, then pointwise to C_out; per input channel the best rank-1 split."""

    def __init__(self, weight: torch.Tensor, layer: LayerInfo) -> None:
        super().__init__()
        c_out, c_in, kh, kw = weight.shape
        self.depthwise = nn.Conv2d(c_in, c_in, (kh, kw), layer.stride, layer.padding, layer.dilation,
                                   groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        per_channel = weight.permute(1, 0, 2, 3).reshape(c_in, c_out, kh * kw)
        u, s, vh = svd(per_channel)  # batched over input channels
        with torch.no_grad():
            self.depthwise.weight.copy_(vh[:, 0].reshape(c_in, 1, kh, kw))
            self.pointwise.weight.copy_((u[:, :, 0] * s[:, :1]).T[:, :, None, None])

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(dx))


class SubsampleDelta(nn.Module):
    """The inner student on an average-pooled delta, upsampled (bilinear) to the layer's output size."""

    def __init__(self, inner: nn.Module, layer: LayerInfo, factor: int) -> None:
        super().__init__()
        self.inner = inner
        self.layer = layer
        self.factor = factor

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        out_hw = conv_output_hw(self.layer.with_input(tuple(dx.shape[-2:])))
        pooled = F.avg_pool2d(dx, self.factor, ceil_mode=True)
        return F.interpolate(self.inner(pooled), size=out_hw, mode="bilinear", align_corners=False)


def subsampled_hw(hw: tuple[int, int], factor: int) -> tuple[int, int]:
    return (math.ceil(hw[0] / factor), math.ceil(hw[1] / factor))
