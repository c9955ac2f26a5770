"""The delta-distillation loss: an end-to-end output term, per-layer delta terms, an anchor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..delta import DeltaConv, DeltaModel
from ..delta._gated import gated_layers
from ..delta._gates import LearnedGate

__all__ = ["DistillLoss", "LossWeights", "LossTerms"]

_EPS = 1e-12


@dataclass(frozen=True)
class LossWeights:
    output: float = 1.0
    kl: float = 0.5
    layer: float = 0.3
    anchor: float = 0.01
    gate: float = 0.5  # learned skip-convolution gates: expected MACs / the layers' teacher MACs


@dataclass
class LossTerms:
    total: torch.Tensor
    output: float
    kl: float
    layer: float
    anchor: float
    gate: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"loss": float(self.total.detach()), "output_loss": self.output, "kl": self.kl,
                "layer_loss": self.layer, "anchor": self.anchor, "gate_cost": self.gate}


class DistillLoss:
    """Loss of a batch of groups (B, T, 3, H, W), key frame first, against the exact teacher.

    - output: ``sum|f_hat_t - f_t|^2 / sum|f_t - f_key|^2`` on the last feature map (1 = no better
      than reusing the key frame), plus ``kl`` x KL(teacher || model) of the logits;
    - layer: per trainable layer ``sum|g(dx_hat) - (W x_t - W x_key)|^2 / sum|W x_t - W x_key|^2``,
      averaged over layers, so that every layer counts alike whatever its scale;
    - anchor: ``sum|theta - theta_0|^2 / sum|theta_0|^2`` toward the teacher-derived initialisation.
    """

    def __init__(self, model: DeltaModel, weights: LossWeights) -> None:
        self.model = model
        self.weights = weights
        self.layers: dict[str, DeltaConv] = {
            name: m for name, m in model.delta_layers().items()
            if any(p.requires_grad for p in m.student.parameters())
        }
        self.anchors = {n: p.detach().clone() for n, p in self._student_params()}
        # learned gates would otherwise learn to update everything: their expected cost is penalised
        self.learned_gates = [g for g in gated_layers(model).values() if isinstance(g.gate, LearnedGate)]

    def _student_params(self):
        for name, layer in self.layers.items():
            for pname, p in layer.student.named_parameters():
                if not pname.endswith("alpha"):  # a supernet's architecture logits are not anchored
                    yield f"{name}.{pname}", p

    @torch.no_grad()
    def _teacher_pass(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, t = frames.shape[:2]
        deltas: dict[str, torch.Tensor] = {}
        handles = []
        if self.weights.layer > 0:
            for name, layer in self.layers.items():
                def hook(module, inputs, output, name=name):
                    z = output.view(b, t, *output.shape[1:])
                    deltas[name] = (z[:, 1:] - z[:, :1]).flatten(0, 1)
                handles.append(layer.register_forward_hook(hook))
        try:
            features = self.model.teacher_forward(frames.flatten(0, 1))
        finally:
            for h in handles:
                h.remove()
        return features.view(b, t, *features.shape[1:]), deltas

    def __call__(self, frames: torch.Tensor) -> LossTerms:
        w = self.weights
        ref, ref_deltas = self._teacher_pass(frames)
        for layer in self.layers.values():
            layer.record = w.layer > 0
        try:
            out = self.model.forward_group(frames)
            layer_terms = [
                (layer.last_delta - ref_deltas[name]).pow(2).sum() / (ref_deltas[name].pow(2).sum() + _EPS)
                for name, layer in self.layers.items() if layer.last_delta is not None
            ] if w.layer > 0 else []
        finally:
            for layer in self.layers.values():
                layer.record, layer.last_delta = False, None
        f_hat, f, f_key = out[:, 1:], ref[:, 1:], ref[:, :1]
        output = (f_hat - f).pow(2).sum() / ((f - f_key).pow(2).sum() + _EPS)
        kl = torch.zeros((), device=frames.device)
        teacher = self.model.teacher
        if teacher is not None and w.kl > 0:
            logits_hat = teacher.logits_from_features(f_hat.flatten(0, 1))
            logits = teacher.logits_from_features(f.flatten(0, 1))
            kl = F.kl_div(logits_hat.log_softmax(-1), logits.log_softmax(-1), log_target=True,
                          reduction="batchmean")
        layer_loss = torch.stack(layer_terms).mean() if layer_terms else torch.zeros((), device=frames.device)
        anchor = torch.zeros((), device=frames.device)
        if w.anchor > 0 and self.anchors:
            num = sum((p - self.anchors[n]).pow(2).sum() for n, p in self._student_params())
            den = sum(a.pow(2).sum() for a in self.anchors.values()) + _EPS
            anchor = num / den
        gate = torch.zeros((), device=frames.device)
        if w.gate > 0 and self.learned_gates:
            gate = (sum(g.expected_macs() for g in self.learned_gates)
                    / sum(g.last_teacher_macs for g in self.learned_gates))
        total = w.output * (output + w.kl * kl) + w.layer * layer_loss + w.anchor * anchor + w.gate * gate
        return LossTerms(total, *(float(t.detach()) for t in (output, kl, layer_loss, anchor, gate)))
