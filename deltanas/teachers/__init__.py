"""Teachers: the accurate, expensive networks whose convolutions get delta students."""

from __future__ import annotations

from ._base import Teacher, TeacherInfo
from ._efficientnet_lite import LITE_VARIANTS, EfficientNetLite, load_efficientnet_lite
from ._registry import TeacherRegistry, create_teacher, list_teachers, register_teacher

__all__ = [
    "Teacher",
    "TeacherInfo",
    "TeacherRegistry",
    "EfficientNetLite",
    "create_teacher",
    "list_teachers",
    "register_teacher",
]


def _register_builtin() -> None:
    for variant in LITE_VARIANTS:
        def factory(pretrained: bool = True, _name: str = variant) -> EfficientNetLite:
            return load_efficientnet_lite(_name, pretrained=pretrained)

        register_teacher(variant)(factory)


_register_builtin()
