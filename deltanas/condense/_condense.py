"""``condense``: footage in, a condensed set out (and into a folder), by any of the three methods."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ConfigError
from ..teachers import Teacher
from ._config import CondenseConfig
from ._footage import candidate_groups
from ._format import META_FILE, CondensedSet, load_condensed, save_condensed
from ._match import CHECKPOINT, frozen_teacher, match_groups
from ._select import kcenter_selection, random_selection

__all__ = ["condense"]


def condense(teacher: Teacher, footage: Sequence[tuple[str, torch.Tensor]], config: CondenseConfig,
             out: "str | Path | None" = None, *, resume: bool = False, progress: bool = True) -> CondensedSet:
    """A set of ``config.groups`` groups of K frames for ``teacher`` from ``footage`` (``(name, uint8 frames
    (T, 3, H, W) at config.size)``, e.g. :func:`condense_footage`), written to the folder ``out`` when given.

    An ``out`` that holds a set already is refused, unless ``resume`` (then that set is returned as it is); a
    ``distill`` job checkpoints there and ``resume`` continues it."""
    folder = None if out is None else Path(out)
    if folder is not None:
        if (folder / META_FILE).is_file():
            if resume:
                return load_condensed(folder)
            raise ConfigError(f"{folder} holds a condensed set already: give another --out, or --resume to keep it")
        if not resume and folder.is_dir() and (folder / CHECKPOINT).is_file():
            raise ConfigError(f"{folder} holds an unfinished condense job: pass --resume to continue it, "
                              f"or give another --out")
    sizes = {tuple(frames.shape[-2:]) for _, frames in footage}
    if sizes != {tuple(config.size)}:
        raise ConfigError(f"footage frames are {sorted(sizes)}, the set is for {config.size}: load them at that size")
    candidates = candidate_groups(footage, config.keyframe_interval)
    name = teacher.info.name
    if config.method == "distill":
        result = match_groups(teacher, candidates, config, name, folder, resume=resume, progress=progress)
    else:
        started = time.perf_counter()
        if config.method == "random":
            index = random_selection(candidates, config.groups, torch.Generator().manual_seed(config.seed))
        else:
            with frozen_teacher(teacher), torch.no_grad():
                index = kcenter_selection(teacher, candidates, config.groups, progress=progress)
        info = {"origin": candidates.origin(index), "candidates": len(candidates),
                "seconds": round(time.perf_counter() - started, 3), "config": config.to_dict()}
        result = CondensedSet(config.method, name, tuple(config.size), config.keyframe_interval,
                              {"frames": candidates.frames(index).contiguous()}, None, info)
    if folder is not None:
        save_condensed(result, folder)
        (folder / CHECKPOINT).unlink(missing_ok=True)
    return result
