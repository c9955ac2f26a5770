"""Gates of skip-convolutions: which output positions (or b x b blocks) of a layer to update.

A gate looks at a layer's input delta ``dx`` (N, C_in, H, W) and returns a 0/1 mask over the layer's
output *units*: single output positions (``block=1``) or ``block x block`` tiles of output positions.

**Why the mask is decided on the outputs.** The scores of the input positions are pooled (max) over each
output position's receptive field (the conv's kernel, stride, padding and dilation), then over the
block. An output unit is active when its pooled score passes the gate. For a threshold this is exactly
"an output position is active if any input position of its receptive field is active" (dilating the
input mask by the kernel, then striding); for a fixed budget it makes the cost exact: top-p picks
``ceil(p x units)`` output units, so the MACs of a layer are known before the frame arrives, which
dilating an input top-p mask (whose output footprint depends on how the chosen positions cluster)
could not give. MACs then count exactly the output units computed.

Gates (the contract: ``forward(dx, layer, block, padding_mode) -> GateDecision``, ``macs(layer)``):

* :class:`TopPGate` -- the top ``p`` fraction of units per frame by input-delta L2 norm (over channels).
* :class:`ThresholdGate` -- units whose largest input-delta norm in the receptive field exceeds
  ``t`` times the frame's mean per-position norm: scale-free (multiplying ``dx`` by any constant keeps
  the mask), ``t = 0`` updates every unit whose receptive field changed at all (exact), ``t = 1``
  those above the frame's average change.
* :class:`LearnedGate` -- a learned threshold on the log channel-mean of ``|dx|`` (a 1x1 conv with one
  weight and a bias on a one-channel map), hard Gumbel-sigmoid with a straight-through gradient in
  training; its expected fraction (mean sigmoid) is differentiable, for a MAC penalty.

Gate MACs: a norm gate squares and sums ``dx`` (``C_in H W`` multiply-adds); pooling, top-k and
comparisons are not multiply-adds and are not counted. The learned gate sums ``|dx|`` over channels
(``C_in H W``) and applies its 1x1 conv to the one-channel map (``H W``).
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import LayerInfo

__all__ = [
    "Gate",
    "GateDecision",
    "LearnedGate",
    "ThresholdGate",
    "TopPGate",
    "active_units",
    "top_mask",
    "pool_to_units",
    "unit_grid",
    "unit_layer",
    "units_to_positions",
]

_EPS = 1e-8  # added to |dx| before the log of the learned gate


class GateDecision(NamedTuple):
    mask: torch.Tensor  # (N, units_h, units_w) of 0/1 (may carry a straight-through gradient)
    expected_fraction: torch.Tensor  # scalar; differentiable for a learned gate


def unit_grid(layer: LayerInfo, block: int) -> tuple[int, int]:
    """How many units (``block x block`` tiles of output positions) cover the layer's output."""
    return (math.ceil(layer.out_hw[0] / block), math.ceil(layer.out_hw[1] / block))


def unit_layer(layer: LayerInfo, block: int) -> LayerInfo:
    """The layer on one unit's input patch (the tile plus the conv's halo), unpadded: ``block x block``
    outputs. ``op.macs(unit_layer(...))`` is what computing one unit costs."""
    patch = tuple((block - 1) * s + d * (k - 1) + 1 for s, d, k in zip(layer.stride, layer.dilation, layer.kernel))
    return layer.with_input(patch, padding=(0, 0))  # type: ignore[arg-type]


def active_units(fraction: float, units: int) -> int:
    """Units a fraction asks for: ``ceil(fraction x units)``, at least one, at most all."""
    return max(1, min(units, math.ceil(round(fraction * units, 6))))


def _max_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """``F.max_pool2d`` without padding on (N, H, W), as a running maximum of strided slices (on a
    one-channel map ~20x faster on CPU than the pooling kernel)."""
    for dim, k, s, d in ((1, kernel[0], stride[0], dilation[0]), (2, kernel[1], stride[1], dilation[1])):
        if k == 1 and s == 1:
            continue
        span = (x.shape[dim] - d * (k - 1) - 1) // s * s + 1
        out = x.narrow(dim, 0, span)
        for j in range(1, k):
            out = torch.maximum(out, x.narrow(dim, j * d, span))
        x = out if s == 1 else out[:, ::s] if dim == 1 else out[:, :, ::s]
    return x


def pool_to_units(score: torch.Tensor, layer: LayerInfo, block: int, pad_value: float,
                  padding_mode: str = "zeros") -> torch.Tensor:
    """Per-input-position scores (N, H, W) -> the max over each output unit's receptive field.

    Padded input positions score ``pad_value`` (the score of a zero delta) for zero padding; other
    padding modes pad the scores the way the convolution pads its input.
    """
    (ph, pw), (oh, ow) = layer.padding, layer.out_hw
    if ph or pw:
        pads = (pw, pw, ph, ph)
        score = (F.pad(score, pads, value=pad_value) if padding_mode == "zeros"
                 else F.pad(score[:, None], pads, mode=padding_mode)[:, 0])
    x = _max_pool(score, layer.kernel, layer.stride, layer.dilation)
    if block > 1:
        uh, uw = unit_grid(layer, block)
        x = _max_pool(F.pad(x, (0, uw * block - ow, 0, uh * block - oh), value=pad_value), (block, block),
                      (block, block))
    return x


def units_to_positions(mask: torch.Tensor, block: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """A unit mask (N, uh, uw) as a mask of output positions (N, 1, H_out, W_out)."""
    if block > 1:
        mask = mask.repeat_interleave(block, dim=1).repeat_interleave(block, dim=2)
        mask = mask[:, : out_hw[0], : out_hw[1]]
    return mask[:, None]


def top_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 (N, units), 1 at the ``k`` largest scores of each row (N, units); ties at the k-th score go to the
    lower index, so that every implementation (the sparse engine's included) picks the same units."""
    kth = scores.topk(k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(dim=1, keepdim=True)
    return (above | (tied & (tied.cumsum(dim=1) <= room))).to(scores.dtype)


def _squared_norm(dx: torch.Tensor) -> torch.Tensor:
    return (dx * dx).sum(dim=1)  # C_in multiply-adds per position (3x faster on CPU than einsum)


class Gate(nn.Module):
    """Base of the gates. ``forward(dx, layer, block, padding_mode)`` returns a :class:`GateDecision`
    whose mask covers ``unit_grid(layer, block)``; ``layer`` is the convolution at ``dx``'s size.
    ``macs(layer)`` is the gate's own cost on one frame. See :class:`TopPGate` for the smallest one.
    """

    kind: ClassVar[str]

    @classmethod
    def macs(cls, layer: LayerInfo) -> int:
        return layer.in_channels * layer.in_hw[0] * layer.in_hw[1]


class TopPGate(Gate):
    """A fixed budget: the ``ceil(p x units)`` units of largest input-delta norm, per frame."""

    kind = "p"

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, dx: torch.Tensor, layer: LayerInfo, block: int, padding_mode: str = "zeros") -> GateDecision:
        grid = unit_grid(layer, block)
        scores = pool_to_units(_squared_norm(dx), layer, block, 0.0, padding_mode).flatten(1)
        k = active_units(self.p, grid[0] * grid[1])
        if k == grid[0] * grid[1]:
            mask = torch.ones_like(scores)
        else:
            mask = top_mask(scores, k)
        mask = mask.view(-1, *grid)
        return GateDecision(mask, mask.mean())


class ThresholdGate(Gate):
    """Units whose receptive field holds a position with ``||dx|| > t x mean ||dx||`` (frame mean)."""

    kind = "t"

    def __init__(self, t: float) -> None:
        super().__init__()
        self.t = t

    def extra_repr(self) -> str:
        return f"t={self.t}"

    def forward(self, dx: torch.Tensor, layer: LayerInfo, block: int, padding_mode: str = "zeros") -> GateDecision:
        norm = _squared_norm(dx).sqrt()
        mean = norm.mean(dim=(1, 2))
        pooled = pool_to_units(norm, layer, block, 0.0, padding_mode)
        mask = (pooled > self.t * mean[:, None, None]).to(dx.dtype)
        return GateDecision(mask, mask.mean())


class LearnedGate(Gate):
    """``logit = sharpness x (log mean_c |dx| - log threshold)``, max-pooled over each unit's receptive
    field; active when ``logit > 0`` (eval) or, in training, by a hard Gumbel-sigmoid sample at
    temperature ``tau`` with a straight-through gradient (noise from the gate's own seeded generator).

    The threshold is absolute (not relative to the frame) on purpose: it is what lets a learned gate
    skip a frame that barely changed (sensor noise), which no scale-free rule can tell apart from a
    frame that changed everywhere. ``threshold`` and ``sharpness`` are the initial values; both are
    learned in log space (positive). ``expected_fraction`` is the mean sigmoid of the logits.
    """

    kind = "learned"

    def __init__(self, threshold: float = 0.01, sharpness: float = 2.0, tau: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.log_threshold = nn.Parameter(torch.tensor(math.log(threshold)))
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(sharpness)))
        self.tau = tau
        self.seed = seed
        self.generator: torch.Generator | None = None

    @classmethod
    def macs(cls, layer: LayerInfo) -> int:
        return (layer.in_channels + 1) * layer.in_hw[0] * layer.in_hw[1]

    @property
    def threshold(self) -> float:
        return float(self.log_threshold.detach().exp())

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.3g}, tau={self.tau}"

    def logits(self, dx: torch.Tensor, layer: LayerInfo, block: int, padding_mode: str = "zeros") -> torch.Tensor:
        score = torch.log(dx.abs().mean(dim=1) + _EPS)
        pooled = pool_to_units(score, layer, block, math.log(_EPS), padding_mode)
        return self.log_sharpness.exp() * (pooled - self.log_threshold)

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        if self.generator is None or self.generator.device != like.device:
            self.generator = torch.Generator(device=like.device).manual_seed(self.seed)
        u = torch.rand(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)
        u = u.clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)  # logistic = difference of two Gumbels

    def forward(self, dx: torch.Tensor, layer: LayerInfo, block: int, padding_mode: str = "zeros") -> GateDecision:
        logits = self.logits(dx, layer, block, padding_mode)
        expected = torch.sigmoid(logits).mean()
        if self.training:
            soft = torch.sigmoid((logits + self._noise(logits)) / self.tau)
            mask = (soft > 0.5).to(soft.dtype) + soft - soft.detach()
        else:
            mask = (logits > 0).to(dx.dtype)
        return GateDecision(mask, expected)
