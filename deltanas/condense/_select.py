"""The baselines of a distilled set: N real groups, drawn at random or by k-center greedy on the teacher's
pooled features (a coreset)."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ._footage import CandidateGroups

__all__ = ["group_features", "kcenter_greedy", "random_selection", "kcenter_selection"]


def random_selection(candidates: CandidateGroups, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct candidate indices, uniformly at random (sorted)."""
    _check_count(candidates, count)
    return torch.randperm(len(candidates), generator=generator)[:count].sort().values


@torch.no_grad()
def group_features(teacher: nn.Module, candidates: CandidateGroups, batch: int = 4,
                   progress: bool = False) -> torch.Tensor:
    """(M, 2C) per candidate group: the teacher's last feature map averaged over positions on the key frame,
    beside the mean absolute change of that map from the key frame to the group's last frame (what the group
    is, and how it moves), each part divided by its mean norm over all candidates so both count alike."""
    keys, moves = [], []
    bar = tqdm(total=len(candidates), desc="features", unit="group", disable=not progress, leave=False)
    for at in range(0, len(candidates), batch):
        index = torch.arange(at, min(at + batch, len(candidates)))
        groups = candidates.frames(index)
        pair = torch.stack([groups[:, 0], groups[:, -1]], dim=1).flatten(0, 1).float().div(255)
        f = teacher.forward_features(teacher.normalize(pair))
        f = f.reshape(len(index), 2, *f.shape[1:])
        keys.append(f[:, 0].mean(dim=(-2, -1)))
        moves.append((f[:, 1] - f[:, 0]).abs().mean(dim=(-2, -1)))
        bar.update(len(index))
    bar.close()
    parts = [torch.cat(keys), torch.cat(moves)]
    return torch.cat([p / p.norm(dim=1).mean().clamp_min(1e-12) for p in parts], dim=1)


def kcenter_greedy(features: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``features`` by k-center greedy: first the row nearest the mean, then each time the row
    farthest from those chosen (deterministic; ties to the lower index). Sorted."""
    if not 1 <= count <= features.shape[0]:
        raise ConfigError(f"cannot choose {count} of {features.shape[0]} groups")
    chosen = [int(torch.cdist(features, features.mean(0, keepdim=True)).squeeze(1).argmin())]
    nearest = torch.cdist(features, features[chosen]).squeeze(1)
    while len(chosen) < count:
        nxt = int(nearest.argmax())
        chosen.append(nxt)
        nearest = torch.minimum(nearest, torch.cdist(features, features[nxt:nxt + 1]).squeeze(1))
    return torch.tensor(sorted(chosen))


def kcenter_selection(teacher: nn.Module, candidates: CandidateGroups, count: int,
                      progress: bool = False) -> torch.Tensor:
    _check_count(candidates, count)
    return kcenter_greedy(group_features(teacher, candidates, progress=progress), count)


def _check_count(candidates: CandidateGroups, count: int) -> None:
    if count > len(candidates):
        raise ConfigError(f"--groups {count} is more than the footage's {len(candidates)} whole groups of "
                          f"K={candidates.keyframe_interval} frames; ask for fewer or give more footage")
