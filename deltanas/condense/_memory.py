"""The learned memories of a distilled set: still key frames (static memory), low-resolution codes per later
frame (dynamic memory) and one small generator shared by all groups that turns a key frame and a code into a
later frame."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["GeneratorSpec", "GroupGenerator", "SyntheticGroups", "quantize"]


@dataclass(frozen=True)
class GeneratorSpec:
    """The generator's shape: ``code_channels`` per later frame at ``1/code_stride`` of the frame size; a
    three-layer 3x3 convolution net of ``hidden`` channels at ``1/work_stride`` of it; ``max_flow`` bounds the
    displacement of the key frame's pixels, as a share of the frame's half-size (grid_sample's units)."""

    code_channels: int = 4
    code_stride: int = 16
    hidden: int = 16
    work_stride: int = 4
    max_flow: float = 0.15

    def __post_init__(self) -> None:
        for name in ("code_channels", "code_stride", "hidden", "work_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"generator {name} must be a positive integer, got {value!r}")
        if not 0 < float(self.max_flow) <= 1:
            raise ConfigError(f"generator max_flow must be in (0, 1], got {self.max_flow!r}")

    def code_hw(self, size: tuple[int, int]) -> tuple[int, int]:
        return -(-size[0] // self.code_stride), -(-size[1] // self.code_stride)

    def work_hw(self, size: tuple[int, int]) -> tuple[int, int]:
        return -(-size[0] // self.work_stride), -(-size[1] // self.work_stride)

    def as_dict(self) -> dict:
        return asdict(self)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """``x`` in [0, 1] rounded to 1/255 (what uint8 frames hold), with the gradient of the identity."""
    return x + ((x * 255).round() / 255 - x).detach()


class GroupGenerator(nn.Module):
    """Later frames from a key frame and a code each: the key frame warped by a flow, plus an appearance
    residual, both predicted at low resolution from the code and the downsampled key frame, then upsampled."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        c, h = spec.code_channels, spec.hidden
        self.net = nn.Sequential(nn.Conv2d(c + 3, h, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(h, h, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(h, 5, 3, padding=1))

    def forward(self, key: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``key`` float (G, 3, H, W) in [0, 1], ``codes`` (G, L, code_channels, h, w) -> float
        (G, L, 3, H, W) in [0, 1]."""
        g, later = codes.shape[:2]
        size = tuple(key.shape[-2:])
        work = self.spec.work_hw(size)  # type: ignore[arg-type]
        small = F.interpolate(key, size=work, mode="area").repeat_interleave(later, dim=0)
        up = F.interpolate(codes.flatten(0, 1), size=work, mode="bilinear", align_corners=False)
        out = F.interpolate(self.net(torch.cat([up, small], dim=1)), size=size, mode="bilinear", align_corners=False)
        flow = torch.tanh(out[:, :2]) * self.spec.max_flow
        residual = 0.5 * torch.tanh(out[:, 2:])
        theta = torch.eye(2, 3, dtype=key.dtype, device=key.device).expand(g * later, 2, 3)
        grid = F.affine_grid(theta, [g * later, 3, *size], align_corners=False) + flow.permute(0, 2, 3, 1)
        base = F.grid_sample(key.repeat_interleave(later, dim=0), grid, mode="bilinear", padding_mode="border",
                             align_corners=False)
        return (base + residual).clamp(0, 1).reshape(g, later, 3, *size)


class SyntheticGroups(nn.Module):
    """N synthetic groups of K frames: key frames (as logits, rendered through uint8 rounding), codes for the
    K-1 later frames of each, and the generator. :meth:`render` is what both the matching (with gradients)
    and the loaded set (:meth:`frames`) see."""

    def __init__(self, key_frames: torch.Tensor, keyframe_interval: int, spec: GeneratorSpec,
                 generator: torch.Generator) -> None:
        super().__init__()
        if key_frames.ndim != 4 or key_frames.shape[1] != 3:
            raise ConfigError(f"key frames must be (N, 3, H, W), got {tuple(key_frames.shape)}")
        n, size = key_frames.shape[0], tuple(key_frames.shape[-2:])
        self.spec, self.keyframe_interval = spec, keyframe_interval
        frames = key_frames.float() / 255 if key_frames.dtype == torch.uint8 else key_frames.float()
        self.key_logits = nn.Parameter(torch.logit(frames.clamp(0.25 / 255, 1 - 0.25 / 255)))
        code = torch.randn(n, keyframe_interval - 1, spec.code_channels, *spec.code_hw(size), generator=generator)
        self.codes = nn.Parameter(0.5 * code)
        self.generator = GroupGenerator(spec)
        with torch.no_grad():  # seeded, and small at first: the later frames start near their key frame
            for p in self.generator.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * (0.1 if p.dim() > 1 else 0.0))

    @property
    def size(self) -> tuple[int, int]:
        return int(self.key_logits.shape[-2]), int(self.key_logits.shape[-1])

    def key_frames(self) -> torch.Tensor:
        """float (N, 3, H, W), on the uint8 grid."""
        return quantize(torch.sigmoid(self.key_logits))

    def render(self, groups: torch.Tensor | None = None, later: torch.Tensor | None = None) -> torch.Tensor:
        """float (G, 1 + L, 3, H, W) on the uint8 grid: groups ``groups`` (default all), the key frame then the
        later frames at positions ``later`` (indices in 0..K-2, default all K-1)."""
        index = torch.arange(self.codes.shape[0]) if groups is None else groups
        key = self.key_frames()[index]
        codes = self.codes[index] if later is None else self.codes[index][:, later]
        rest = quantize(self.generator(key, codes))
        return torch.cat([key.unsqueeze(1), rest], dim=1)

    @torch.no_grad()
    def frames(self) -> torch.Tensor:
        """uint8 (N, K, 3, H, W), one group at a time."""
        out = [self.render(torch.tensor([i])) for i in range(self.codes.shape[0])]
        return torch.cat(out).mul(255).round().to(torch.uint8)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the file stores: uint8 key frames, float codes, the generator's weights."""
        with torch.no_grad():
            static = self.key_frames().mul(255).round().to(torch.uint8)
        out = {"static": static.contiguous(), "codes": self.codes.detach().float().contiguous()}
        out.update({f"generator.{k}": v.detach().float().contiguous() for k, v in self.generator.state_dict().items()})
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], keyframe_interval: int,
                     spec: GeneratorSpec) -> "SyntheticGroups":
        """Rebuild from :meth:`tensors` (shapes checked by the caller)."""
        groups = cls(tensors["static"], keyframe_interval, spec, torch.Generator().manual_seed(0))
        with torch.no_grad():
            groups.codes.copy_(tensors["codes"])
            groups.generator.load_state_dict({k[len("generator."):]: v for k, v in tensors.items()
                                              if k.startswith("generator.")})
        return groups
