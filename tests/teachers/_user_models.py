"""User factories for ``create_teacher("tests.teachers._user_models:NAME")``: the ways a classifier
ends in a global pool, and networks each of the user-model errors must refuse."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests._nets import seeded

NOT_CALLABLE = 5


class PoolNet(nn.Module):
    """conv -> ReLU -> squeeze-excite (a global pool *inside* the features) -> conv -> global pool
    (one of several spellings) -> dropout -> Linear."""

    def __init__(self, pool: str, classes: int = 6) -> None:
        super().__init__()
        self.pool_kind = pool
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.se = nn.Linear(8, 8)
        self.conv2 = nn.Conv2d(8, 12, 3, 1, 1)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = x * torch.sigmoid(self.se(F.adaptive_avg_pool2d(x, 1).flatten(1)))[:, :, None, None]
        x = F.relu(self.conv2(x))
        if self.pool_kind == "module":
            pooled = torch.flatten(self.avgpool(x), 1)
        elif self.pool_kind == "functional":
            pooled = F.adaptive_avg_pool2d(x, 1)
            pooled = pooled.view(pooled.size(0), -1)
        elif self.pool_kind == "mean_tuple":
            pooled = x.mean((2, 3))
        elif self.pool_kind == "mean_list":
            pooled = x.mean([2, 3])
        elif self.pool_kind == "mean_keepdim":
            pooled = x.mean(dim=(-1, -2), keepdim=True).flatten(1)
        elif self.pool_kind == "torch_mean":
            pooled = torch.mean(x, dim=(2, 3))
        else:
            raise ValueError(self.pool_kind)
        return self.fc(self.drop(pooled))


POOLS = ("module", "functional", "mean_tuple", "mean_list", "mean_keepdim", "torch_mean")


def pool_module() -> PoolNet:
    return seeded(PoolNet("module"), 2)


def pool_functional() -> PoolNet:
    return seeded(PoolNet("functional"), 2)


def pool_mean_tuple() -> PoolNet:
    return seeded(PoolNet("mean_tuple"), 2)


def pool_mean_list() -> PoolNet:
    return seeded(PoolNet("mean_list"), 2)


def pool_mean_keepdim() -> PoolNet:
    return seeded(PoolNet("mean_keepdim"), 2)


def pool_torch_mean() -> PoolNet:
    return seeded(PoolNet("torch_mean"), 2)


# -- networks the user-model path must refuse -------------------------------------------------

class NoPool(nn.Module):
    """Logits from flattening the map of a 32x32 frame: no global pool to split at (and other
    frame sizes fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 4, 1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv(x), 1))


class Bypass(nn.Module):
    """The logits also read the input directly, around the pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3)) + x.amax((2, 3))


class ConvHead(nn.Module):
    """A 1x1 convolution after the pool (SqueezeNet-like classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.pool(self.conv(x))), 1)


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > 0:
            y = y * 2
        return self.fc(y.mean((2, 3)))


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor):
        y = self.conv(x)
        return y, y.mean((2, 3))


class SequenceOut(nn.Module):
    """A 3-D output (N, tokens, channels): neither logits nor a class map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(2).transpose(1, 2)


def no_pool() -> nn.Module:
    return NoPool()


def bypass() -> nn.Module:
    return Bypass()


def conv_head() -> nn.Module:
    return ConvHead()


def untraceable() -> nn.Module:
    return Untraceable()


def tuple_output() -> nn.Module:
    return TupleOut()


def sequence_output() -> nn.Module:
    return SequenceOut()


def not_a_module() -> dict:
    return {"conv": nn.Conv2d(3, 4, 3)}


def failing() -> nn.Module:
    raise RuntimeError("the factory could not find its config")


def needs_arguments(depth: int) -> nn.Module:
    return nn.Conv2d(3, depth, 1)
