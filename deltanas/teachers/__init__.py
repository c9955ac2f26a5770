"""Teachers: the accurate, expensive networks whose convolutions get delta students.

Registered: EfficientNet-Lite0/1/2 and MobileNetV2 with real ImageNet weights; any other CNN by
``create_teacher("module:function", weights=...)``.
"""

from __future__ import annotations

from ._base import Teacher, TeacherInfo
from ._efficientnet_lite import LITE_VARIANTS, EfficientNetLite, load_efficientnet_lite
from ._mobilenet_v2 import MobileNetV2, load_mobilenet_v2
from ._module import ModuleTeacher, load_module_teacher
from ._registry import TeacherRegistry, create_teacher, list_teachers, register_teacher

__all__ = [
    "Teacher",
    "TeacherInfo",
    "TeacherRegistry",
    "EfficientNetLite",
    "MobileNetV2",
    "ModuleTeacher",
    "create_teacher",
    "list_teachers",
    "load_module_teacher",
    "register_teacher",
]


def _register_builtin() -> None:
    for variant in LITE_VARIANTS:
        def factory(pretrained: bool = True, _name: str = variant) -> EfficientNetLite:
            return load_efficientnet_lite(_name, pretrained=pretrained)

        register_teacher(variant)(factory)

    @register_teacher("mobilenet_v2")
    def mobilenet_v2(pretrained: bool = True) -> MobileNetV2:
        return load_mobilenet_v2(pretrained=pretrained)


_register_builtin()
