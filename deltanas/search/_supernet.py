"""The supernet: every layer offers its candidate students, mixed by Gumbel-softmax over logits.

Search-time only (STYLE 5): the plain :class:`~deltanas.delta.DeltaModel` that a search derives is
built by :func:`~deltanas.delta.convert` from the chosen ``arch.json``; nothing here is exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..delta import Arch, DeltaModel, LayerInfo, SearchSpace, StudentOp, convert
from ..teachers import Teacher

__all__ = ["MixedDelta", "Supernet", "build_supernet"]


class MixedDelta(nn.Module):
    """A layer's candidates with architecture logits ``alpha``.

    The weights of the mixture are set per step by :meth:`Supernet.sample`: soft (every candidate
    runs, weighted) or hard (one candidate runs; straight-through, GDAS style, so the logits still
    get a gradient through the chosen candidate's weight).
    """

    # In soft mode a candidate whose weight is below this is skipped: after a sensitivity prior most
    # candidates of a layer carry almost no weight, and computing them would dominate the step.
    min_weight = 1e-3

    def __init__(self, candidates: list[nn.Module], specs: list[str]) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        self.specs = specs
        self.alpha = nn.Parameter(torch.zeros(len(candidates)))
        self.weights: torch.Tensor | None = None
        self.index: int | None = None

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        if self.weights is None:  # not sampled: the most likely candidate
            return self.candidates[int(self.alpha.argmax())](dx)
        if self.index is not None:
            return self.weights[self.index] * self.candidates[self.index](dx)
        keep = (self.weights.detach() >= self.min_weight).nonzero().flatten().tolist()
        return sum(self.weights[k] * self.candidates[k](dx) for k in keep)


@dataclass
class Supernet:
    model: DeltaModel
    layers: list[LayerInfo]  # geometry at the budget's input size
    candidates: dict[str, list[StudentOp]]
    macs: dict[str, torch.Tensor]  # per layer, each candidate's MACs per delta frame (float64)
    linear_macs: int
    teacher: nn.Module  # the plain network the supernet was converted from (untouched)

    @property
    def mixed(self) -> dict[str, MixedDelta]:
        return {name: layer.student for name, layer in self.model.delta_layers().items()}

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [m.alpha for m in self.mixed.values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.mixed.values() for p in m.candidates.parameters() if p.requires_grad]

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {name: m.alpha.detach().softmax(0) for name, m in self.mixed.items()}

    def log_probabilities(self) -> dict[str, torch.Tensor]:
        """Per-layer scores of the candidates (float64), as the budget fitting uses them."""
        return {name: torch.log_softmax(m.alpha.detach().double(), 0) for name, m in self.mixed.items()}

    def expected_macs(self) -> torch.Tensor:
        """``sum_l softmax(alpha_l) . M_l`` plus the always-on linear layers (differentiable)."""
        total = sum((m.alpha.softmax(0).double() * self.macs[name]).sum() for name, m in self.mixed.items())
        return total + self.linear_macs

    def macs_of(self, choice: dict[str, int]) -> float:
        return float(sum(self.macs[name][i] for name, i in choice.items()) + self.linear_macs)

    def cheapest_macs(self) -> float:
        return float(sum(m.min() for m in self.macs.values()) + self.linear_macs)

    def sample(self, tau: float, hard: bool, generator: torch.Generator) -> None:
        """Draw this step's mixture weights (Gumbel-softmax at temperature ``tau``)."""
        for m in self.mixed.values():
            u = torch.rand(m.alpha.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
            soft = F.softmax((m.alpha - torch.log(-torch.log(u))) / tau, dim=0)
            if hard:
                index = int(soft.argmax())
                one_hot = torch.zeros_like(soft)
                one_hot[index] = 1.0
                m.weights, m.index = one_hot - soft.detach() + soft, index
            else:
                m.weights, m.index = soft, None

    def clear_sample(self) -> None:
        for m in self.mixed.values():
            m.weights, m.index = None, None

    def fix(self, choice: dict[str, int]) -> None:
        """Run exactly ``choice`` (weight 1, no gradient to the logits): for probing and evaluation."""
        for name, m in self.mixed.items():
            index = choice[name]
            m.weights = torch.nn.functional.one_hot(torch.tensor(index), len(m.specs)).float()
            m.index = index

    def argmax(self) -> dict[str, int]:
        return {name: int(m.alpha.argmax()) for name, m in self.mixed.items()}

    def full_choice(self) -> dict[str, int]:
        return {name: m.specs.index("full") for name, m in self.mixed.items()}

    def arch(self, choice: dict[str, int], teacher: str | None) -> Arch:
        return Arch(layers={n: self.mixed[n].specs[i] for n, i in choice.items()}, teacher=teacher)

    def student_state_for(self, choice: dict[str, int]) -> dict[str, torch.Tensor]:
        """The chosen candidates' weights, keyed as in the plain delta model of that choice."""
        state = {}
        for name, index in choice.items():
            prefix = f"net.{name}.student."
            for key, value in self.mixed[name].candidates[index].state_dict().items():
                state[prefix + key] = value.detach().clone()
        return state


def build_supernet(teacher: Teacher, space: SearchSpace, input_hw: tuple[int, int]) -> Supernet:
    model = convert(teacher, "full", input_hw=input_hw)
    infos, linear = model.layer_infos(input_hw)
    by_name = {i.name: i for i in infos}
    candidates: dict[str, list[StudentOp]] = {}
    macs: dict[str, torch.Tensor] = {}
    for name, layer in model.delta_layers().items():
        info = by_name[name]
        ops = space.candidates(info)
        candidates[name] = ops
        macs[name] = torch.tensor([float(op.macs(info)) for op in ops], dtype=torch.float64)
        layer.student = MixedDelta([op.build(info, layer.conv) for op in ops], [str(op) for op in ops])
        layer.op = "mixed"
    return Supernet(model, infos, candidates, macs, linear, teacher)
