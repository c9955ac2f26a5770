"""A skip-convolution against the key frame: a student applied only at the output units (positions or
blocks) whose input changed most since the key frame, the others keep the key frame's output (or take a
cheap ``rest`` student).

MACs of one delta frame (what the sparse path computes, block and receptive-field aware):
``gate + k x macs(OP on one unit's patch) + (units - k) x macs(REST on one unit's patch)`` with
``k = ceil(fraction x units)``. On a unit's patch (the tile plus the conv's halo) a separable student
such as ``lowrank`` recomputes part of its first conv per tile, which this count includes.

The module has two paths computing the same thing: ``sparse=False`` (default; any device, trains)
runs the students densely and masks their outputs; ``sparse=True`` gathers the active units' input
patches, runs the students on that batch and scatters the results back (CPU inference that really
skips work; a learned gate then gets gradient only from its expected fraction). Each call records
the measured fraction of active units (``last_active_fraction``) and the MACs the sparse path spends
(``last_macs``); ``expected_macs()`` is differentiable for a learned gate. The operator that builds it
from a spec is ``_skipconv.Gated``; the running-reference variant is ``_running.RunningGatedDelta``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._gates import Gate, GateDecision, unit_grid, unit_layer, units_to_positions
from ._layers import LayerInfo
from ._students import FullDelta, ZeroDelta

__all__ = ["GatedDelta", "DEFAULT_EXPECTED_FRACTION", "gated_layers"]

DEFAULT_EXPECTED_FRACTION = 0.25


class GatedDelta(nn.Module):
    """``inner`` at the active output units of ``gate``, ``rest`` (or nothing) at the others.

    ``inner`` and ``rest`` are built for the layer *without* padding: this module pads ``dx`` once
    (as the teacher conv pads) so that the same students run on the whole map or on unit patches.
    """

    def __init__(self, gate: Gate, inner: nn.Module, rest: nn.Module | None, layer: LayerInfo, block: int,
                 padding_mode: str, unit_macs: tuple[int, int], sparse: bool = False) -> None:
        super().__init__()
        self.gate = gate
        self.inner = inner
        self.rest = rest
        self.layer = layer
        self.block = block
        self.padding_mode = padding_mode
        self.unit_macs = unit_macs  # (inner, rest) on one unit's patch
        self.sparse = sparse
        self.expected_fraction: torch.Tensor | None = None  # of the last call
        self._last: tuple[torch.Tensor, LayerInfo] | None = None  # active units per frame, geometry

    def extra_repr(self) -> str:
        return f"block={self.block}, sparse={self.sparse}"

    # -- measurements of the last call --------------------------------------------------------
    def _units(self, layer: LayerInfo) -> int:
        uh, uw = unit_grid(layer, self.block)
        return uh * uw

    def _macs(self, layer: LayerInfo, active: "float | torch.Tensor") -> "float | torch.Tensor":
        inner, rest = self.unit_macs
        return type(self.gate).macs(layer) + active * inner + (self._units(layer) - active) * rest

    @property
    def last_active_fraction(self) -> float | None:
        """Mean fraction of active units (positions, or blocks) over the frames of the last call."""
        if self._last is None:
            return None
        active, layer = self._last
        return float(active.float().mean()) / self._units(layer)

    @property
    def last_macs(self) -> float | None:
        """MACs per frame of the last call, as the sparse path spends them (gate included)."""
        if self._last is None:
            return None
        active, layer = self._last
        return float(self._macs(layer, float(active.float().mean())))

    def expected_macs(self) -> torch.Tensor:
        """MACs per frame at the last call's size and expected fraction (differentiable when learned)."""
        if self._last is None or self.expected_fraction is None:
            raise RuntimeError("GatedDelta.expected_macs: run the layer on a delta first")
        layer = self._last[1]
        return self._macs(layer, self.expected_fraction * self._units(layer))  # type: ignore[return-value]

    @property
    def last_teacher_macs(self) -> int:
        """The dense teacher layer's MACs at the last call's size (what ``expected_macs`` compares to)."""
        if self._last is None:
            raise RuntimeError("GatedDelta.last_teacher_macs: run the layer on a delta first")
        return self._last[1].teacher_macs

    def reset_measurements(self) -> None:
        self._last, self.expected_fraction = None, None

    # -- computing ----------------------------------------------------------------------------
    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        hw = tuple(dx.shape[-2:])
        layer = self.layer if hw == self.layer.in_hw else self.layer.with_input(hw)  # type: ignore[arg-type]
        decision: GateDecision = self.gate(dx, layer, self.block, self.padding_mode)
        self.expected_fraction = decision.expected_fraction
        self._last = ((decision.mask.detach() > 0.5).sum(dim=(1, 2)), layer)
        (ph, pw) = layer.padding
        if ph or pw:
            pads = (pw, pw, ph, ph)
            dx = F.pad(dx, pads) if self.padding_mode == "zeros" else F.pad(dx, pads, mode=self.padding_mode)
        if self.sparse:
            return self._sparse(dx, decision.mask, layer)
        return self._dense(dx, decision.mask, layer)

    def _dense(self, dx: torch.Tensor, mask: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
        m = units_to_positions(mask, self.block, layer.out_hw)
        out = None if isinstance(self.inner, ZeroDelta) else self.inner(dx) * m
        if self.rest is not None:
            rest = self.rest(dx) * (1 - m)
            out = rest if out is None else out + rest
        if out is None:
            out = dx.new_zeros(dx.shape[0], layer.out_channels, *layer.out_hw)
        return out

    def _sparse(self, dx: torch.Tensor, mask: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
        b, n = self.block, dx.shape[0]
        (uh, uw), patch = unit_grid(layer, b), unit_layer(layer, b).in_hw
        (sh, sw), (dh, dw), (kh, kw) = layer.stride, layer.dilation, layer.kernel
        # Pad bottom/right so that the border units' patches exist (their extra outputs are cropped).
        need_h, need_w = (uh * b - 1) * sh + dh * (kh - 1) + 1, (uw * b - 1) * sw + dw * (kw - 1) + 1
        have_h, have_w = (size + 2 * p for size, p in zip(layer.in_hw, layer.padding))
        if need_h > have_h or need_w > have_w:
            dx = F.pad(dx, (0, max(0, need_w - have_w), 0, max(0, need_h - have_h)))
        patches = dx.unfold(2, patch[0], b * sh).unfold(3, patch[1], b * sw)  # (N, C, uh', uw', ph, pw), a view
        out = dx.new_zeros(n, layer.out_channels, uh, b, uw, b)
        tiles = out.permute(0, 2, 4, 1, 3, 5)  # (N, uh, uw, C_out, b, b), a view of out
        active = mask.detach() > 0.5
        for module, where in ((self.inner, active), (self.rest, ~active)):
            if module is None or isinstance(module, ZeroDelta):
                continue
            index = where.nonzero(as_tuple=True)
            if index[0].numel():
                tiles[index] = self._run_on_patches(module, patches[index[0], :, index[1], index[2]])
        return out.view(n, layer.out_channels, uh * b, uw * b)[:, :, : layer.out_hw[0], : layer.out_hw[1]]

    def _run_on_patches(self, module: nn.Module, patches: torch.Tensor) -> torch.Tensor:
        """``module(patches)``; the exact teacher copy as a matrix product where that is what it is
        (one output per patch, or a 1x1 kernel): about 2x faster on CPU than a batch of small convs,
        and a depthwise one with one output per patch as a weighted sum (~8x faster)."""
        if isinstance(module, FullDelta) and module.layer.is_depthwise and module.layer.out_channels == \
                module.layer.in_channels and patches.shape[-2:] == module.weight.shape[-2:]:
            return (patches * module.weight[:, 0]).sum(dim=(2, 3))[:, :, None, None]
        if isinstance(module, FullDelta) and module.layer.groups == 1:
            w = module.weight
            if patches.shape[-2:] == w.shape[-2:]:
                return F.linear(patches.flatten(1), w.flatten(1)).view(-1, w.shape[0], 1, 1)
            if w.shape[-2:] == (1, 1):
                (sh, sw) = module.layer.stride
                patches = patches[:, :, ::sh, ::sw]
                k, c, bh, bw = patches.shape
                y = F.linear(patches.permute(0, 2, 3, 1).reshape(-1, c), w.flatten(1))
                return y.view(k, bh, bw, -1).permute(0, 3, 1, 2)
        return module(patches)


def gated_layers(model: nn.Module) -> dict[str, GatedDelta]:
    """The gated students of a (delta) model by name of their module."""
    return {name: m for name, m in model.named_modules() if isinstance(m, GatedDelta)}
