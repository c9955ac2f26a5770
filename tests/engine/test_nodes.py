"""Each node type of the engine on tiny graphs: exact against the dense network, native equal to PyTorch.

Every net is converted with exact updates (``full``) and streamed over a sequence with a moving patch, a
frame equal to the last one (which must cost nothing) and a frame where everything changed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deltanas.delta import convert
from deltanas.engine import native_available

from tests.delta._helpers import seeded_
from ._helpers import engine_frames, relative_error, sparse_sequence

BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not native_available(),
                                                                        reason="native engine not built"))]


class Pointwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1, stride=2), nn.Conv2d(8, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.c(F.relu(self.b(F.relu(self.bn(self.a(x))))))


class Windows(nn.Module):
    """Dense, dilated, strided, grouped and depthwise k x k convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.dilated = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, bias=False)
        self.strided = nn.Conv2d(8, 12, 5, 2, 2)
        self.grouped = nn.Conv2d(12, 12, 3, 1, 1, groups=3, bias=False)
        self.dw = nn.Conv2d(12, 12, 3, 2, 1, groups=12, bias=False)
        self.valid = nn.Conv2d(12, 6, (3, 2), 1, 0)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(self.dilated(h))
        h = F.relu(self.strided(h))
        h = F.relu(self.grouped(h))
        return self.valid(F.relu(self.dw(h)))


class Activations(nn.Module):
    KINDS = (nn.ReLU(), nn.ReLU6(), nn.SiLU(), nn.Hardswish(), nn.Hardsigmoid(), nn.Sigmoid(), nn.Tanh(),
             nn.LeakyReLU(0.2), nn.GELU(), nn.Hardtanh(-0.5, 0.5))

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 6, 6, 3, 1, 1) for i in range(len(self.KINDS)))
        self.acts = nn.ModuleList(self.KINDS)

    def forward(self, x):
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return F.relu6(x) + torch.relu(x) + F.silu(x)


class Joins(nn.Module):
    """Residual add and sub, channel concatenation, constants, a BatchNorm that follows an add."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 6, 3, 1, 1), nn.Conv2d(6, 6, 1), nn.Conv2d(12, 5, 3, 1, 1)
        self.bn = nn.BatchNorm2d(6)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, 6).view(1, 6, 1, 1))

    def forward(self, x):
        x = (x - 0.5) / 0.25
        h = F.relu(self.a(x))
        r = self.bn(h + self.b(h)) - 0.5 * h
        y = torch.cat([r * self.scale, F.relu(h + 1.0)], dim=1)
        return 2 * self.c(y)


class Pools(nn.Module):
    def __init__(self, ceil: bool) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 6, 3, 1, 1), nn.Conv2d(6, 6, 1), nn.Conv2d(6, 6, 1)
        self.max = nn.MaxPool2d(3, 2, 1, ceil_mode=ceil)
        self.avg = nn.AvgPool2d(3, 2, 1, ceil_mode=ceil, count_include_pad=False)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = self.max(F.relu(self.a(x)))
        h = self.avg(F.relu(self.b(h)))
        h = F.avg_pool2d(F.relu(self.c(h)), 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class Upsampling(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.down = nn.Conv2d(3, 6, 3, 2, 1)
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.head = nn.Conv2d(9, 4, 1)

    def forward(self, x):
        h = self.up(F.relu(self.down(x)))
        h = torch.cat([h, F.interpolate(x, size=h.shape[-2:], mode=self.mode)], dim=1)
        return self.head(h).mean(dim=(2, 3))


NETS = {
    "pointwise": Pointwise,
    "windows": Windows,
    "activations": Activations,
    "joins": Joins,
    "pools": lambda: Pools(False),
    "pools-ceil": lambda: Pools(True),
    "nearest": lambda: Upsampling("nearest"),
    "bilinear": lambda: Upsampling("bilinear"),
}


def _net(name: str) -> nn.Module:
    return seeded_(NETS[name](), seed=len(name)).eval()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(NETS))
def test_exact_updates_equal_the_dense_network(name, backend):
    net = _net(name)
    frames = sparse_sequence(6, (29, 43), seed=1)  # odd sizes: border windows and ceil mode matter
    model = convert(net, "full", input_hw=(29, 43))
    results = engine_frames(model, frames, backend)
    with torch.no_grad():
        dense = [net(f[None]) for f in frames]
    for frame, want in zip(results, dense):
        assert relative_error(frame.outputs[0], want) < 1e-4, (name, frame.index)  # float32 increments
    unchanged, everything = results[-2], results[-1]
    assert not unchanged.is_key and sum(unchanged.macs.values()) == 0  # a frame equal to the last costs nothing
    assert sum(everything.macs.values()) > 0


@pytest.mark.skipif(not native_available(), reason="native engine not built")
@pytest.mark.parametrize("name", sorted(NETS))
def test_native_path_equals_the_pytorch_path(name):
    model = convert(_net(name), "full", input_hw=(29, 43))
    frames = sparse_sequence(6, (29, 43), seed=2)
    a, b = engine_frames(model, frames, "torch"), engine_frames(model, frames, "native")
    # exp, tanh and erf differ in their last bits between the two: an output change that rounds to zero in one
    # (and drops its position) may not in the other
    smooth = name == "activations"
    for x, y in zip(a, b):
        assert relative_error(y.outputs[0], x.outputs[0]) < (1e-4 if smooth else 1e-5)
        assert x.macs.keys() == y.macs.keys()
        for k in x.macs:
            assert abs(x.macs[k] - y.macs[k]) <= (0.02 * x.macs[k] if smooth else 1e-6), k


def test_everything_changed_costs_a_pointwise_layer_its_dense_macs():
    model = convert(_net("pointwise"), "full", input_hw=(29, 43))
    last = engine_frames(model, sparse_sequence(6, (29, 43)), "torch")[-1]
    cost = {c.name: c.teacher_macs for c in model.cost((29, 43)).layers}
    assert last.macs["a"] == cost["a"]  # every input position changed: every output is recomputed
    assert 0 < last.macs["b"] <= cost["b"]
