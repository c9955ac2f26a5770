"""MAC budgets: what the user names (``0.2x``, ``150M``, per averaged frame at K) -> MACs per delta frame."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..delta import averaged_macs
from ..errors import ConfigError

__all__ = ["Budget", "parse_macs"]

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_macs(text: str, reference: float) -> float:
    """``0.2x`` (times ``reference``) or an absolute count ``150M`` / ``1.2G`` / ``5e8``."""
    t = str(text).strip().lower()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*(x|k|m|g)?", t)
    if not match:
        raise ConfigError(f"bad MAC target {text!r}: use a fraction of the teacher like 0.2x, or MACs like 150M")
    value, unit = float(match.group(1)), match.group(2) or ""
    return value * reference if unit == "x" else value * _UNITS[unit]


@dataclass(frozen=True)
class Budget:
    """A target in MACs per *delta* frame (what the search constrains), and how it was asked for."""

    delta_macs: float
    teacher_macs: float
    keyframe_interval: int
    asked: str

    @classmethod
    def parse(cls, target: str | None, teacher_macs: float, keyframe_interval: int,
              target_frame: str | None = None) -> "Budget":
        """``target`` per delta frame, or ``target_frame`` averaged over a group of K frames:
        ``(M_teacher + (K-1) M_delta) / K = target_frame``."""
        if (target is None) == (target_frame is None):
            raise ConfigError("name one budget: --target (per delta frame) or --target-frame (averaged at K)")
        k = keyframe_interval
        if target is not None:
            return cls(parse_macs(target, teacher_macs), teacher_macs, k, f"--target {target}")
        if k < 2:
            raise ConfigError("--target-frame needs a keyframe interval >= 2")
        per_frame = parse_macs(target_frame, teacher_macs)
        if per_frame < teacher_macs / k:
            raise ConfigError(f"--target-frame {target_frame} is below the key frame's own share "
                              f"({teacher_macs / k / 1e6:.1f}M at K={k}): no delta model can reach it")
        return cls((k * per_frame - teacher_macs) / (k - 1), teacher_macs, k, f"--target-frame {target_frame}")

    @property
    def fraction(self) -> float:
        return self.delta_macs / self.teacher_macs

    def per_frame(self) -> float:
        return averaged_macs(self.teacher_macs, self.delta_macs, self.keyframe_interval)

    def check_reachable(self, cheapest: float) -> None:
        """Refuse, before any training, a target outside [cheapest architecture, teacher]."""
        if self.delta_macs > self.teacher_macs:
            raise ConfigError(f"target {self.asked} = {self.delta_macs / 1e6:.1f}M MACs per delta frame is above "
                              f"the teacher's {self.teacher_macs / 1e6:.1f}M: nothing to search")
        if self.delta_macs < cheapest:
            raise ConfigError(f"target {self.asked} = {self.delta_macs / 1e6:.2f}M MACs per delta frame is below "
                              f"the cheapest architecture of the search space ({cheapest / 1e6:.2f}M)")

    def describe(self) -> str:
        return (f"{self.delta_macs / 1e6:.1f}M MACs per delta frame ({self.fraction:.3f}x the teacher), "
                f"{self.per_frame() / 1e6:.1f}M averaged at K={self.keyframe_interval}")
