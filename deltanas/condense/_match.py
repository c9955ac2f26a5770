"""The matching loop: learn the memories of N synthetic groups so that the teacher's statistics on them
(:mod:`._stats`) approach those on the real footage. Checkpoints into the output folder and resumes."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from .._io import atomic_write
from .._run import RunDir
from ..errors import ConfigError, DeltaNASError
from ._config import CondenseConfig
from ._footage import CandidateGroups
from ._format import CondensedSet
from ._memory import SyntheticGroups
from ._stats import GroupStatistics, LayerStatistics, StatisticsPool, group_statistics, statistic_distance

__all__ = ["match_groups", "set_distance", "frozen_teacher"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
_POOL_BATCH = 2  # groups per forward pass when pooling statistics (all of their frames at once)


@contextmanager
def frozen_teacher(teacher: nn.Module) -> Iterator[nn.Module]:
    """``teacher`` in eval mode with no gradient kept for its weights, as it was afterwards."""
    training = teacher.training
    wanted = [(p, p.requires_grad) for p in teacher.parameters()]
    teacher.eval()
    for p, _ in wanted:
        p.requires_grad_(False)
    try:
        yield teacher
    finally:
        teacher.train(training)
        for p, flag in wanted:
            p.requires_grad_(flag)


def _pool(teacher: nn.Module, groups: torch.Tensor, seed: int, progress: bool = False) -> GroupStatistics:
    """The statistics of uint8 (G, K, 3, H, W) groups, pooled a few groups at a time."""
    pool = StatisticsPool(teacher, torch.Generator().manual_seed(seed))
    bar = tqdm(total=groups.shape[0], desc="statistics", unit="group", disable=not progress, leave=False)
    for at in range(0, groups.shape[0], _POOL_BATCH):
        pool.add(groups[at:at + _POOL_BATCH].float().div(255))
        bar.update(min(_POOL_BATCH, groups.shape[0] - at))
    bar.close()
    return pool.result()


def set_distance(teacher: nn.Module, groups: torch.Tensor, real: GroupStatistics,
                 weights: dict[str, float] | None = None, seed: int = 0) -> tuple[float, dict[str, float]]:
    """The statistic distance of a whole set of uint8 (N, K, 3, H, W) groups (every later frame) to ``real``."""
    with frozen_teacher(teacher):
        distance, terms = statistic_distance(_pool(teacher, groups, seed), real, weights)
    return float(distance), terms


def match_groups(teacher: nn.Module, candidates: CandidateGroups, config: CondenseConfig, teacher_name: str,
                 folder: Path | None = None, *, resume: bool = False, progress: bool = True) -> CondensedSet:
    """A ``distill`` set of ``config.groups`` groups learned on ``candidates`` (the real footage's groups): key
    frames initialised from as many real groups drawn at random, codes and generator from the seed. Each step
    measures ``batch_groups`` of them at ``later_frames`` consecutive later frames from a random distance. With
    ``folder``, a checkpoint and ``metrics.csv`` (step, distance and its terms, seconds) go there and ``resume``
    continues from the checkpoint."""
    c, k = config, config.keyframe_interval
    generator = torch.Generator().manual_seed(c.seed)
    if c.groups > len(candidates):
        raise ConfigError(f"--groups {c.groups} is more than the footage's {len(candidates)} whole groups of "
                          f"K={k} frames; ask for fewer or give more footage")
    init = torch.randperm(len(candidates), generator=generator)[:c.groups].sort().values
    memory = SyntheticGroups(candidates.frames(init)[:, 0], k, c.generator, generator)
    optimizer = torch.optim.Adam([{"params": [memory.key_logits], "lr": c.lr_frames},
                                  {"params": [memory.codes], "lr": c.lr_codes},
                                  {"params": list(memory.generator.parameters()), "lr": c.lr_generator}])
    identity = {"config": json.dumps(c.to_dict(), sort_keys=True), "teacher": teacher_name,
                "footage": [[candidates.segments[s][0], start] for s, start in candidates.starts]}
    run = RunDir(folder) if folder is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / CHECKPOINT if folder is not None else None
    step, seconds, real, start_distance = 0, 0.0, None, None
    with frozen_teacher(teacher):
        if resume and ckpt is not None and ckpt.is_file():
            state = run.load_checkpoint(ckpt)
            if state.get("identity") != identity:
                raise ConfigError(f"{ckpt}: a checkpoint of another job (other footage, teacher or settings); "
                                  f"rerun with the same ones, or give another --out")
            memory.load_state_dict(state["memory"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["rng"])
            step, seconds, start_distance = state["step"], state["seconds"], state["start_distance"]
            real = _unflatten(state["real"])
            run.truncate_metrics(step, folder / METRICS)
        started = time.perf_counter() - seconds
        if real is None:
            real_index = candidates.spread(c.real_groups)
            real = _pool(teacher, candidates.frames(real_index), c.seed, progress)
            start_distance = float(statistic_distance(_pool(teacher, memory.frames(), c.seed), real, c.weights)[0])
        bar = tqdm(total=c.steps, initial=step, desc="condense", unit="step", disable=not progress, leave=False)
        while step < c.steps:
            pick = torch.randperm(c.groups, generator=generator)[:c.batch_groups]
            first = int(torch.randint(k - c.later_frames, (1,), generator=generator))
            later = torch.arange(first, first + c.later_frames)  # consecutive: their steps are measured too
            distance, terms = statistic_distance(group_statistics(teacher, memory.render(pick, later)), real,
                                                 c.weights)
            if not torch.isfinite(distance):
                raise DeltaNASError(f"condense: the statistic distance became {float(distance)} at step {step}; "
                                    f"lower the learning rates")
            optimizer.zero_grad(set_to_none=True)
            distance.backward()
            optimizer.step()
            step += 1
            bar.update()
            bar.set_postfix(distance=f"{float(distance.detach()):.3f}")
            if run is not None:
                run.append_metrics({"step": step, "distance": float(distance.detach()), **terms,
                                    "seconds": time.perf_counter() - started}, folder / METRICS)
                if step % c.checkpoint_every == 0 and step < c.steps:
                    state = {"identity": identity, "memory": memory.state_dict(), "optimizer": optimizer.state_dict(),
                             "rng": generator.get_state(), "step": step, "seconds": time.perf_counter() - started,
                             "start_distance": start_distance, "real": _flatten(real)}
                    atomic_write(ckpt, lambda tmp: torch.save(state, tmp))
        bar.close()
        frames = memory.frames()
        end_distance, end_terms = statistic_distance(_pool(teacher, frames, c.seed), real, c.weights)
    info = {"distance": {"start": start_distance, "end": float(end_distance), "end_terms": end_terms},
            "init": candidates.origin(init), "real_groups": len(candidates.spread(c.real_groups)),
            "candidates": len(candidates), "steps": c.steps, "seconds": round(time.perf_counter() - started, 3),
            "config": c.to_dict()}
    return CondensedSet("distill", teacher_name, tuple(memory.size), k, memory.tensors(), c.generator, info)


def _flatten(stats: GroupStatistics) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v for k, v in s.__dict__.items() if v is not None} for name, s in stats.items()}


def _unflatten(flat: dict[str, dict[str, torch.Tensor]]) -> GroupStatistics:
    return {name: LayerStatistics(input_q=v.get("input_q"), step_q=v.get("step_q"), output_q=v["output_q"],
                                  delta_energy=v["delta_energy"], key_mean=v["key_mean"], key_std=v["key_std"])
            for name, v in flat.items()}
