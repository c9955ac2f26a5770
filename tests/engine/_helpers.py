"""Frame sequences with known changes, and the comparison of the engine with its references."""

from __future__ import annotations

import torch

from deltanas.delta import KeyframePolicy, stream
from deltanas.engine import SparseEngine, engine_stream


def sparse_sequence(frames: int = 6, size: tuple[int, int] = (32, 48), seed: int = 0) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1]: a random first frame, then a patch that moves and changes, an unchanged frame
    (the one before last), and a last frame where everything changed."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    seq = [torch.rand(3, h, w, generator=g)]
    for t in range(1, frames - 2):
        f = seq[-1].clone()
        y, x = (3 * t) % (h - 6), (5 * t) % (w - 8)
        f[:, y:y + 5, x:x + 7] += 0.3 * torch.randn(3, 5, 7, generator=g)
        seq.append(f)
    seq.append(seq[-1].clone())  # nothing changed
    seq.append((seq[-1] + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0, 1))  # everything changed
    return torch.stack(seq)


def reference_outputs(model, frames: torch.Tensor, interval: int = 8) -> list[torch.Tensor]:
    """The dense-masked reference path, streamed."""
    with torch.no_grad():
        return [o.output for o in stream(model, frames, KeyframePolicy(interval))]


def engine_frames(model, frames: torch.Tensor, backend: str, interval: int = 8, **kw):
    engine = SparseEngine(model, backend=backend, keyframes=kw.pop("keyframes", "torch"), **kw)
    return list(engine_stream(engine, frames, KeyframePolicy(interval)))


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))
