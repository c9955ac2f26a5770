"""Shared helpers for the deltanas.delta tests: seeded tensors and tiny synthetic networks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# One example spec per registered op type: a new op type must add one here (test_ops_macs checks).
EXAMPLE_SPEC = {
    "full": "full",
    "zero": "zero",
    "lowrank": "lowrank:0.5",
    "channel": "channel:2",
    "depthwise": "depthwise",
    "subsample": "subsample(full)",
    "gated": "gated:p1:b2(full)",  # p = 1: every block, so linear like the other examples
}


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def seeded_(module: nn.Module, seed: int) -> nn.Module:
    """Deterministic weights (fan-in scaled) and BatchNorm statistics, without the global RNG."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(fan_in))
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return module


def seeded_conv(*args, seed: int, **kwargs) -> nn.Conv2d:
    return seeded_(nn.Conv2d(*args, **kwargs), seed)  # type: ignore[return-value]


class TinyNet(nn.Module):
    """Stem conv, depthwise conv, grouped conv with a residual add, strided conv, 1x1 conv,
    BatchNorm, ReLU, global pool and a Linear classifier.

    Modules are declared in a different order from the one they run in, so that execution order
    (not declaration order) is what the tests see.
    """

    EXECUTION_ORDER = ["stem", "dw", "grouped", "down", "pw"]

    def __init__(self) -> None:
        super().__init__()
        self.pw = nn.Conv2d(16, 16, 1)
        self.down = nn.Conv2d(8, 16, 3, 2, 1, bias=True)
        self.stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, 1, 1, groups=2, bias=True)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn0(self.stem(x)))
        r = F.relu(self.bn1(self.dw(h)))
        h = h + self.grouped(r)  # residual add
        h = F.relu(self.bn2(self.down(h)))
        h = F.relu(self.pw(h))
        return self.fc(h.mean(dim=(2, 3)))


def tiny_net(seed: int = 0) -> TinyNet:
    return seeded_(TinyNet(), seed).eval()  # type: ignore[return-value]


class TwiceNet(nn.Module):
    """Calls the same convolution twice per frame: a delta layer cannot cache one key input."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(F.relu(self.shared(self.stem(x))))
