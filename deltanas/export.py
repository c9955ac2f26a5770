"""Export and load delta models: ``arch.json`` (plain JSON) + ``students.safetensors``.

The teacher's own weights are not copied: they come from the teacher registry, so an export is
small and only the students travel. ``build_from_config`` rebuilds the model from the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from ._io import atomic_write, atomic_write_text
from .delta import Arch, DeltaModel, convert
from .errors import ArchError, ConfigError, DeltaNASError
from .teachers import Teacher, create_teacher

__all__ = ["student_state", "save_students", "load_students", "build_from_config", "export_model", "load_model"]

EXPORT_FORMAT = "deltanas-export"


def student_state(model: DeltaModel) -> dict[str, torch.Tensor]:
    """The trainable part of a delta model: every student's tensors (the teacher's are not saved)."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if ".student." in k}


def save_students(model: DeltaModel, path: "str | Path") -> Path:
    state = student_state(model)
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": EXPORT_FORMAT}))


def load_students(model: DeltaModel, path: "str | Path") -> DeltaModel:
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise DeltaNASError(f"{path}: no such weights file") from None
    except Exception as exc:
        raise DeltaNASError(f"{path}: not a readable safetensors file ({exc})") from None
    load_student_state(model, state, str(path))
    return model


def load_student_state(model: DeltaModel, state: Mapping[str, torch.Tensor], origin: str) -> None:
    expected = student_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ArchError(f"{origin}: weights do not fit the architecture "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict(dict(state), strict=False)


def build_from_config(config: Mapping[str, Any] | Arch, teacher: Teacher | None = None) -> DeltaModel:
    """A delta model from an architecture mapping (as in ``arch.json``) with freshly initialised students.

    Without ``teacher`` it is rebuilt by name, loading ``teacher_weights`` when the mapping has them
    (a ``module:function`` teacher).
    """
    arch = config if isinstance(config, Arch) else Arch.from_dict(config)
    if teacher is None:
        if not arch.teacher:
            raise ArchError("the architecture names no teacher; pass one")
        weights = {"weights": arch.teacher_weights} if arch.teacher_weights is not None else {}
        teacher = create_teacher(arch.teacher, **weights)
    elif arch.teacher and teacher.info.name != arch.teacher:
        raise ArchError(f"architecture was made for teacher {arch.teacher!r}, not {teacher.info.name!r}")
    return convert(teacher, arch)


def export_model(model: DeltaModel, folder: "str | Path", extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``arch.json`` (explicit per layer) and ``students.safetensors`` into ``folder``.

    A ``module:function`` teacher's weight file is referenced by its absolute path, not copied.
    """
    folder = Path(folder)
    arch = model.arch.explicit(model.ops)
    if model.teacher is not None:
        arch = Arch(layers=arch.layers, default=arch.default, teacher=model.teacher.info.name,
                    teacher_weights=model.teacher.info.weights)
    arch.save(folder / "arch.json")
    save_students(model, folder / "students.safetensors")
    if extra:
        atomic_write_text(folder / "export.json", json.dumps(dict(extra), indent=2) + "\n")
    return folder


def load_model(folder: "str | Path", teacher: Teacher | None = None) -> DeltaModel:
    """Rebuild an exported (or trained) delta model from its folder."""
    folder = Path(folder)
    if not (folder / "arch.json").is_file():
        raise ConfigError(f"{folder}: no arch.json here (expected an export or a run folder)")
    model = build_from_config(Arch.load(folder / "arch.json"), teacher)
    if (folder / "students.safetensors").is_file():
        load_students(model, folder / "students.safetensors")
    return model
